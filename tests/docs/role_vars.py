#!/usr/bin/env python
"""Render each role's meta/argument_specs.yml as the README's variable tables.

The argument specs are the single source: `role_vars.py --write` refreshes README.md between the
`<!-- role-vars:NAME -->` and `<!-- /role-vars:NAME -->` markers, `--check` fails when it is stale.
"""
import argparse
import pathlib
import re
import sys

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
MARKUP = re.compile(r"[A-Z]\(([^)]*)\)")  # O(x), V(x), C(x) ... -> `x`


def plain(text):
    return MARKUP.sub(lambda m: "`%s`" % m.group(1).split("=")[-1] if m.group(0)[0] == "V" else "`%s`" % m.group(1), text)


def describe(option):
    desc = option.get("description", "")
    if isinstance(desc, list):
        desc = " ".join(desc)
    return plain(desc).replace("|", "\\|").replace("\n", " ")


def rows(options, prefix=""):
    for name, option in options.items():
        default = option.get("default")
        shown = "" if default is None else "`%s`" % (yaml.safe_dump(default, default_flow_style=True).strip().removesuffix("\n...").strip())
        kind = option.get("type", "str")
        if option.get("elements"):
            kind += " of " + option["elements"]
        if option.get("choices"):
            kind += ": " + ", ".join(str(c) for c in option["choices"])
        required = " **required**" if option.get("required") else ""
        yield "| `%s%s` | %s%s | %s | %s |" % (prefix, name, kind, required, shown, describe(option))
        if option.get("options"):
            yield from rows(option["options"], prefix + name + "[]." if option.get("type") == "list" else prefix + name + ".")


def table(role):
    spec = yaml.safe_load((ROOT / "roles" / role / "meta" / "argument_specs.yml").read_text())
    lines = ["| variable | type | default | description |", "| --- | --- | --- | --- |"]
    lines.extend(rows(spec["argument_specs"]["main"]["options"]))
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail when README.md is stale")
    parser.add_argument("--write", action="store_true", help="refresh README.md")
    args = parser.parse_args()
    readme_path = ROOT / "README.md"
    readme = readme_path.read_text()
    fresh = readme
    for role in sorted(p.name for p in (ROOT / "roles").iterdir() if (p / "meta" / "argument_specs.yml").exists()):
        block = re.compile(r"(<!-- role-vars:%s -->\n).*?(<!-- /role-vars:%s -->)" % (role, role), re.S)
        if not block.search(fresh):
            sys.exit("README.md has no <!-- role-vars:%s --> block" % role)
        fresh = block.sub(lambda m: m.group(1) + table(role) + "\n" + m.group(2), fresh)
    if args.write and fresh != readme:
        readme_path.write_text(fresh)
        print("README.md variable tables refreshed")
    elif args.check and fresh != readme:
        sys.exit("README.md variable tables are stale: run `make docs`")


if __name__ == "__main__":
    main()
