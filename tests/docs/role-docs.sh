#!/usr/bin/env bash
# The variable reference in each role's README.md, rendered by aar-doc from the role's
# meta/argument_specs.yml (every entry point, nested options) with tests/docs/role-readme.md.j2, between
# the <!-- BEGIN_ANSIBLE_DOCS --> and <!-- END_ANSIBLE_DOCS --> lines; the rest of the README is prose.
#   role-docs.sh --write   refresh the READMEs (make docs)
#   role-docs.sh --check   fail, with the difference, when a README is not what aar-doc renders (make lint)
set -euo pipefail
mode=${1:?usage: role-docs.sh --write|--check}
root=$(cd "$(dirname "$0")/../.." && pwd)
aar_doc=$root/.venv/bin/aar-doc
template=$root/tests/docs/role-readme.md.j2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
status=0
for spec in "$root"/roles/*/meta/argument_specs.yml; do
  role=$(dirname "$(dirname "$spec")")
  readme=$role/README.md
  grep -qx '<!-- BEGIN_ANSIBLE_DOCS -->' "$readme" ||
    { echo "${readme#"$root"/} has no <!-- BEGIN_ANSIBLE_DOCS --> line for the generated variables" >&2; exit 1; }
  cp "$readme" "$work/README.md"
  # aar-doc logs each run at INFO level: only its errors are shown.
  "$aar_doc" --config-file "$work/none.yml" --output-file "$work/README.md" --output-template "$template" "$role" markdown >"$work/log" 2>&1 ||
    { cat "$work/log" >&2; exit 1; }
  if cmp -s "$readme" "$work/README.md"; then
    continue
  elif [ "$mode" = --write ]; then
    cp "$work/README.md" "$readme"
    echo "${readme#"$root"/}: variables refreshed from meta/argument_specs.yml"
  else
    diff -u --label "${readme#"$root"/}" --label "rendered by aar-doc" "$readme" "$work/README.md" || true
    echo "${readme#"$root"/} is not what aar-doc renders from meta/argument_specs.yml: run make docs" >&2
    status=1
  fi
done
exit "$status"
