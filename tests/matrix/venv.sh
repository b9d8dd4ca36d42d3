#!/usr/bin/env bash
# The venv of one requirements file of tests/matrix/ (ansible-core-X.Y.txt): .cache/venvs/ansible-core-X.Y,
# with the Python that the file's "# python: X.Y" line names (pythonX.Y from PATH if it runs, a pyenv shim
# of a version that is not selected does not, else pyenv's newest X.Y), made by tests/venv.sh as a stage
# when it is missing or its requirements changed.
#   venv.sh REQUIREMENTS          make it unless it is up to date; exit 3, saying so, when there is no such
#                                 Python here (on Debian 12 without pyenv: 3.12 and 3.13); callers skip it
#   venv.sh --path REQUIREMENTS   print where it is
set -euo pipefail
print=false
if [ "${1:-}" = --path ]; then print=true; shift; fi
requirements=$(realpath "${1:?requirements file}")
root=$(cd "$(dirname "$0")/../.." && pwd)
name=$(basename "$requirements" .txt)
venv=$root/.cache/venvs/$name
if $print; then echo "$venv"; exit 0; fi

version=$(sed -n 's/^# python: *\([0-9.]*\).*/\1/p' "$requirements")
[ -n "$version" ] || { echo "$requirements has no '# python: X.Y' line" >&2; exit 1; }
if python=$(command -v "python$version") && "$python" -c '' 2>/dev/null; then
  :
elif command -v pyenv >/dev/null && found=$(pyenv latest "$version" 2>/dev/null) &&
     [ -x "$(pyenv root)/versions/$found/bin/python$version" ]; then
  python=$(pyenv root)/versions/$found/bin/python$version
else
  echo "no Python $version here for $name: neither python$version on PATH nor in pyenv (pyenv install $version)" >&2
  exit 3
fi
"$root/tests/venv.sh" --up-to-date "$python" "$venv" "$requirements" ||
  "$root/tests/stage.sh" run "setup: venv $name (Python $version)" "$root/tests/venv.sh" "$python" "$venv" "$requirements"
