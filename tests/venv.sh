#!/usr/bin/env bash
# Create a venv and install the pinned packages of a requirements file into it: the dev venv of make
# setup and the venvs of the ansible-core matrix (tests/matrix/run.sh).
# A venv remembers what it was built from (the Python, and the requirements file with every file it
# includes with -r or -c); when that changes, the venv is made anew, so no package of an old pin stays
# behind (pip install over an old venv keeps packages the requirements no longer name).
# pip's own errors stop the step; only its warnings about ignored index locations are filtered out.
# Usage: venv.sh PYTHON VENV REQUIREMENTS               build the venv unless it is up to date
#        venv.sh --up-to-date PYTHON VENV REQUIREMENTS  exit 0 when it is, 1 when it is not (no output)
set -euo pipefail
check=false
if [ "${1:-}" = --up-to-date ]; then check=true; shift; fi
python=$1 venv=$2 requirements=$3

# The requirements file and the files it includes, each once, in the order pip reads them.
requirement_files() {
  local file=$1 dir include
  printf '%s\n' "$file"
  dir=$(dirname "$file")
  sed -n 's/^ *-[rc] *\([^ #]*\).*/\1/p; s/^ *--\(requirement\|constraint\)[ =]*\([^ #]*\).*/\2/p' "$file" |
    while read -r include; do requirement_files "$dir/$include"; done
}
fingerprint() {
  local file
  "$python" -c 'import sys; print(sys.version)'
  while read -r file; do
    printf '== %s\n' "$(realpath --relative-to="$(dirname "$requirements")" "$file")"
    cat "$file"
  done < <(requirement_files "$requirements")
}
wanted=$(fingerprint | sha256sum | cut -c1-16)
stamp=$venv/.requirements-fingerprint
if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$wanted" ]; then
  $check || echo "venv $venv is up to date ($requirements, $wanted)"
  exit 0
fi
$check && exit 1

if [ -e "$venv" ]; then
  echo "removing the venv $venv: it was built from other requirements or another Python"
  rm -rf "$venv"
fi
echo "creating the venv $venv ($python -m venv, $("$python" --version))"
"$python" -m venv "$venv"
pip() {
  "$venv/bin/pip" "$@" --disable-pip-version-check 2>&1 | sed -u '/^WARNING: Location .* is ignored/d'
}
echo "pip: upgrading pip in the venv"
pip install -q --upgrade pip
echo "pip: installing the pinned packages of $(requirement_files "$requirements" | xargs) with their dependencies (quiet until done)"
pip install -q -r "$requirements"
pip check
echo "$wanted" >"$stamp"
"$venv/bin/python" - ansible-core molecule molecule-plugins galaxy-importer pytest <<'EOF'
import sys
from importlib.metadata import PackageNotFoundError, version
found = []
for name in sys.argv[1:]:
    try:
        found.append("%s %s" % (name, version(name)))
    except PackageNotFoundError:
        pass
print("venv ready: " + ", ".join(found))
EOF
