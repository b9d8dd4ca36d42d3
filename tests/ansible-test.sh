#!/usr/bin/env bash
# Run the ansible-test of a venv in the collection's copy under ansible_collections/smarthost/postfix,
# for the venv's own Python, after putting its pip bootstrap stand-in in place (tests/sanity/pip_bootstrap.py:
# the download host of the real one is unreachable here).
# Usage: ansible-test.sh VENV COPY COMMAND [ARG...]   (e.g. ansible-test.sh .venv /var/tmp/.../postfix sanity --venv)
set -euo pipefail
venv=$(realpath "$1") copy=$2 command=$3
shift 3
here=$(cd "$(dirname "$0")" && pwd)
python=$("$venv/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
"$venv/bin/python" "$here/sanity/pip_bootstrap.py" "$python" 2>&1 | sed -u '/^WARNING: Location .* is ignored/d'
# The venv's bin first: ansible-test finds pythonX.Y there (not as a pyenv shim that refuses to run).
cd "$copy"
PATH=$venv/bin:$PATH exec "$venv/bin/ansible-test" "$command" --python "$python" --color no "$@"
