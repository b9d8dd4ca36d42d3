"""Every version_added of the collection's plugins and roles is a version it was released in, or the one
galaxy.yml is about to release.

The released versions are those of changelogs/changelog.yaml (antsibull-changelog); the documentation
is what ansible-doc reads (--metadata-dump of the collection: modules with their options, sub-options
and return values, and the roles' argument specs). A new module or option therefore says the version
that ships it, and antsibull-changelog lists it as new in that release.
Usage: python version_added.py   (with ansible-doc on PATH and the collection on ANSIBLE_COLLECTIONS_PATH)
"""
import json
import pathlib
import subprocess
import sys

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]


def version_added(node, where, collection):
    """(where, version_added) for node and everything documented below it, when it is the collection's
    (a doc fragment of ansible.builtin, such as the files fragment, says its version with its collection)."""
    if isinstance(node, dict):
        if isinstance(node.get('version_added'), str) and node.get('version_added_collection', collection) == collection:
            yield where, node['version_added']
        for key, value in node.items():
            yield from version_added(value, where + [str(key)], collection)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from version_added(value, where + [str(index)], collection)


def main():
    galaxy = yaml.safe_load((ROOT / 'galaxy.yml').read_text())
    name = '%s.%s' % (galaxy['namespace'], galaxy['name'])
    changelog = yaml.safe_load((ROOT / 'changelogs' / 'changelog.yaml').read_text())
    released = set(changelog.get('releases') or {})
    allowed = released | {str(galaxy['version'])}
    dump = json.loads(subprocess.run(['ansible-doc', '--metadata-dump', '--no-fail-on-errors', name],
                                     check=True, capture_output=True, text=True).stdout)
    wrong, seen = [], 0
    for plugin_type, plugins in sorted(dump['all'].items()):
        for fqcn, doc in sorted(plugins.items()):
            if not fqcn.startswith(name + '.'):
                continue
            for where, version in version_added(doc, [], name):
                seen += 1
                if version not in allowed:
                    wrong.append('%s %s %s: version_added %s' % (plugin_type, fqcn, '.'.join(where) or '(itself)', version))
    if wrong:
        sys.exit('version_added must be a released version or galaxy.yml\'s %s (released: %s):\n  %s' % (
            galaxy['version'], ', '.join(sorted(released)) or 'none yet', '\n  '.join(wrong)))
    print('%d version_added values, each in %s' % (seen, ', '.join(sorted(allowed))))


if __name__ == '__main__':
    main()
