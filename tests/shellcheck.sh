#!/usr/bin/env bash
# Run shellcheck on every shell script that git tracks: files whose first line starts a POSIX shell or bash,
# whatever their name (.ci/run has no .sh).
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t scripts < <(git ls-files -z | xargs -0 awk 'FNR == 1 && /^#!.*[\/ ](ba)?sh( |$)/ { print FILENAME } { nextfile }')
echo "shellcheck $(shellcheck --version | sed -n 's/^version: //p'): ${#scripts[@]} scripts"
shellcheck "${scripts[@]}"
