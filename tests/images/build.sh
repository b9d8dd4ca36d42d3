#!/usr/bin/env bash
# Build a local systemd image for the lab with mmdebstrap + podman import.
# Usage: build.sh SUITE IMAGE   (e.g. build.sh bookworm localhost/smarthost-debian12:latest)
# Rebuilt only when the image is missing or this recipe changed (recipe hash kept as a label).
set -euo pipefail
suite=$1 image=$2
here=$(cd "$(dirname "$0")" && pwd)
packages=python3,systemd,systemd-sysv,iproute2,ca-certificates,procps,nftables
recipe=$(printf '%s\n' "$suite" "$packages" | cat - "$0" | sha256sum | cut -c1-16)
if [ "$(podman image inspect --format '{{index .Labels "recipe"}}' "$image" 2>/dev/null || true)" = "$recipe" ]; then
  echo "image $image is up to date ($recipe)"
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "building $image from Debian $suite (recipe $recipe)"
mmdebstrap --quiet --variant=apt --include="$packages" \
  --customize-hook='rm -f "$1"/etc/machine-id; touch "$1"/etc/machine-id' \
  "$suite" "$work/rootfs.tar"
podman import --change 'CMD ["/sbin/init"]' --change "LABEL recipe=$recipe" \
  --change 'STOPSIGNAL SIGRTMIN+3' "$work/rootfs.tar" "$image" >/dev/null
echo "built $image"
