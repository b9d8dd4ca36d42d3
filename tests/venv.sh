#!/usr/bin/env bash
# Create the venv and install the pinned tools of the requirements file into it (make setup).
# pip's own errors stop the step; only its warnings about ignored index locations are filtered out.
# Usage: venv.sh PYTHON VENV REQUIREMENTS
set -euo pipefail
python=$1 venv=$2 requirements=$3
if [ ! -x "$venv/bin/python" ]; then
  echo "creating the venv $venv ($python -m venv)"
  "$python" -m venv "$venv"
fi
pip() {
  "$venv/bin/pip" "$@" --disable-pip-version-check 2>&1 | sed -u '/^WARNING: Location .* is ignored/d'
}
echo "pip: upgrading pip in the venv"
pip install -q --upgrade pip
echo "pip: installing the $(grep -c '^[^#]' "$requirements") pinned packages of $requirements with their dependencies (quiet until done)"
pip install -q -r "$requirements"
"$venv/bin/python" -c 'import ansible, molecule, passlib, aiosmtpd'
echo "venv ready: $("$venv/bin/python" -c 'from importlib.metadata import version as v
print(", ".join(f"{name} {v(name)}" for name in ("ansible-core", "molecule", "molecule-plugins")))')"
