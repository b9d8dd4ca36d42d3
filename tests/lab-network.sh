#!/usr/bin/env bash
# The lab's podman network (make setup), under the netavark backend that tests/images/containers.conf
# pins (its aardvark-dns lets the lab's containers find each other by name).
# A network of this name that an older checkout created under CNI (before the backend was pinned,
# podman chose CNI where netavark was not installed) is moved: with podman running the CNI backend,
# the containers attached to it (the project's: only the project attaches containers to its network)
# and the CNI network are removed; then the network is created under netavark. Nothing else of the
# machine's podman is touched: no other network, container or image, no `podman system reset`.
# Usage: lab-network.sh NETWORK SUBNET LABEL
set -euo pipefail
network=$1 subnet=$2 label=$3
conf=${CONTAINERS_CONF:?CONTAINERS_CONF must name the project containers.conf}

backend=$(podman info --format '{{.Host.NetworkBackend}}')
if [ "$backend" != netavark ]; then
  echo "podman runs the '$backend' network backend with $conf; the lab needs netavark" >&2
  exit 1
fi

# Podman's CNI backend keeps each network as NAME.conflist in /etc/cni/net.d.
if [ -e "/etc/cni/net.d/$network.conflist" ]; then
  cni_conf=$(mktemp)
  trap 'rm -f "$cni_conf"' EXIT
  sed 's/^network_backend = .*/network_backend = "cni"/' "$conf" >"$cni_conf"
  cni() { CONTAINERS_CONF=$cni_conf podman "$@"; }
  if cni network exists "$network"; then
    echo "$network exists under the CNI backend (an older checkout made it): moving it to netavark"
    mapfile -t attached < <(cni ps -a --filter "network=$network" --format '{{.ID}} {{.Names}}')
    for container in "${attached[@]}"; do
      echo "removing the container ${container#* } (attached to $network under CNI)"
      cni rm -f -t 0 "${container%% *}" >/dev/null
    done
    cni network rm "$network" >/dev/null
    echo "removed $network from the CNI backend"
  fi
fi

if podman network exists "$network"; then
  if [ "$(podman network inspect --format '{{.DNSEnabled}}' "$network")" != true ]; then
    echo "the network $network exists without DNS; remove it (make clean-lab) and run make setup again" >&2
    exit 1
  fi
  # Molecule's podman driver creates a missing network on its own, with podman's default subnet: the lab's
  # static addresses are not in it.
  found=$(podman network inspect --format '{{range .Subnets}}{{.Subnet}} {{end}}' "$network")
  if [ "${found% }" != "$subnet" ]; then
    echo "the network $network exists with the subnet ${found% }, not $subnet (Molecule run without make setup?);" \
         "remove it when no container uses it (podman network rm $network) and run make setup again" >&2
    exit 1
  fi
  echo "network $network exists (netavark, DNS on, $subnet)"
else
  podman network create --subnet "$subnet" --label "$label=network" "$network" >/dev/null
  echo "created network $network ($subnet, netavark, DNS $(podman network inspect --format '{{.DNSEnabled}}' "$network"))"
fi
