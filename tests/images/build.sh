#!/usr/bin/env bash
# Build a local systemd image for the lab with mmdebstrap + podman import.
# Usage: build.sh SUITE IMAGE LABEL   (e.g. build.sh bookworm localhost/smarthost-debian12:latest smarthost.postfix)
# Rebuilt only when the image is missing or this recipe changed (recipe hash kept as a label). The image
# carries LABEL=image; containers started from it inherit that, not the project's LABEL=container.
set -euo pipefail
suite=$1 image=$2 label=$3
packages=python3,systemd,systemd-sysv,iproute2,ca-certificates,procps,nftables
recipe=$(printf '%s\n' "$suite" "$packages" "$label" | cat - "$0" | sha256sum | cut -c1-16)
if [ "$(podman image inspect --format '{{index .Labels "recipe"}}' "$image" 2>/dev/null || true)" = "$recipe" ]; then
  echo "image $image is up to date ($recipe)"
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "building $image (recipe $recipe): mmdebstrap downloads and installs Debian $suite with"
echo "  $packages into a tarball (quiet until done), then podman import"
# The hook's "$1" is mmdebstrap's (the root directory it builds): single quotes on purpose.
# shellcheck disable=SC2016
mmdebstrap --quiet --variant=apt --include="$packages" \
  --customize-hook='rm -f "$1"/etc/machine-id; touch "$1"/etc/machine-id' \
  "$suite" "$work/rootfs.tar"
podman import --quiet --change 'CMD ["/sbin/init"]' --change "LABEL recipe=$recipe" --change "LABEL $label=image" \
  --change 'STOPSIGNAL SIGRTMIN+3' "$work/rootfs.tar" "$image" >/dev/null
# The image this one replaced is left without a name: remove it (only the project's, only unnamed ones).
podman image prune -f --filter "label=$label=image" >/dev/null
echo "built $image"
