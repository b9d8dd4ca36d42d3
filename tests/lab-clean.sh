#!/usr/bin/env bash
# Remove the lab (make clean, make clean-lab): each Molecule scenario's containers (molecule destroy,
# which keeps Molecule's own state right and removes only containers with the project's label), then
# any other container with the label (the bench's, one left by an interrupted run), then the network.
# A container without the label is never removed, whatever its name; images stay (make setup reuses them).
# Usage: lab-clean.sh LABEL NETWORK
set -euo pipefail
label=$1 network=$2
root=$(cd "$(dirname "$0")/.." && pwd)
if ! command -v podman >/dev/null; then
  echo "podman is not installed: no lab to remove"
  exit 0
fi
if [ -x "$root/.venv/bin/molecule" ]; then
  for scenario in $("$root/tests/molecule-scenarios.sh"); do
    echo "molecule destroy -s $scenario"
    (cd "$root" && "$root/.venv/bin/molecule" destroy -s "$scenario")
  done
fi
mapfile -t ours < <(podman ps -a --filter "label=$label=container" --format '{{.ID}} {{.Names}}')
for container in "${ours[@]}"; do
  echo "removing the container ${container#* } (label $label=container)"
  podman rm -f -t 0 "${container%% *}" >/dev/null
done
if podman network exists "$network"; then
  podman network rm "$network" >/dev/null
  echo "removed the network $network"
fi
