#!/usr/bin/env bash
# Print the Molecule scenarios in the order make test runs them.
set -euo pipefail
cd "$(dirname "$0")/../molecule"
order=(default failover)
for s in "${order[@]}"; do [ -f "$s/molecule.yml" ] && echo "$s"; done
for d in */molecule.yml; do s=${d%/molecule.yml}; [[ " ${order[*]} " == *" $s "* ]] || echo "$s"; done
