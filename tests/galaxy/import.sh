#!/usr/bin/env bash
# Galaxy's importer (galaxy-importer, the checks Galaxy runs on upload) on the built tarball, with the
# settings of tests/galaxy/galaxy-importer.cfg, in the matrix venv of the newest ansible-core among those
# whose requirements include tests/galaxy/requirements.txt and whose Python is on this machine.
# Fails when the importer fails or logs an ERROR (also one it passes on as a WARNING); its warnings are
# shown and counted.
# The importer points ansible-lint at nothing but the collection itself; community.crypto (the dependency
# the sink role uses) is put on the importer's Python path from the dev venv's ansible package, as where the
# collection is installed with its dependencies, so that ansible-lint resolves its modules.
# Usage: import.sh TARBALL
set -euo pipefail
tarball=$(realpath "${1:?tarball}")
root=$(cd "$(dirname "$0")/../.." && pwd)
venv=
mapfile -t candidates < <(grep -l '^-r \.\./galaxy/requirements\.txt$' "$root"/tests/matrix/*.txt | sort -rV)
for requirements in "${candidates[@]}"; do
  status=0
  "$root/tests/matrix/venv.sh" "$requirements" || status=$?
  if [ "$status" -eq 0 ]; then
    venv=$("$root/tests/matrix/venv.sh" --path "$requirements")
    break
  fi
  [ "$status" -eq 3 ] || exit "$status"
done
[ -n "$venv" ] || { echo "no venv for galaxy-importer: none of its Pythons is here" >&2; exit 1; }
log=$root/.tmp/galaxy-importer.log
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/dependencies/ansible_collections/community"
ln -s "$("$root/.venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/ansible_collections/community/crypto" \
  "$work/dependencies/ansible_collections/community/crypto"
echo "galaxy-importer $("$venv/bin/python" -c 'from importlib.metadata import version; print(version("galaxy-importer"))')" \
  "with ansible-core $("$venv/bin/python" -c 'from importlib.metadata import version; print(version("ansible-core"))') on $(basename "$tarball")"
status=0
(cd "$work" && env GALAXY_IMPORTER_CONFIG="$root/tests/galaxy/galaxy-importer.cfg" PATH="$venv/bin:$PATH" \
   PYTHONPATH="$work/dependencies" ANSIBLE_LOCAL_TEMP="$work/tmp" \
   "$venv/bin/python" -m galaxy_importer.main "$tarball") 2>&1 | tee "$log" || status=$?
# An ERROR of a linter that the importer passes on as a WARNING ("WARNING: ERROR ...") counts as an ERROR.
errors=$(grep -cE '^(WARNING: +)?ERROR' "$log" || true)
warnings=$(grep -E '^WARNING' "$log" | grep -cvE '^WARNING: +ERROR' || true)
echo "galaxy-importer: exit $status, $errors ERROR lines, $warnings WARNING lines (log: ${log#"$root"/})"
[ "$status" -eq 0 ] && [ "$errors" -eq 0 ]
