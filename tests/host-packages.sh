#!/usr/bin/env bash
# Install the Debian packages that the lab, the demo and the tests need (make setup), without
# Recommends; a no-op when all are installed. A failing install stops with apt-get's own error.
# Usage: host-packages.sh PACKAGE...
set -euo pipefail
missing=()
for package in "$@"; do
  dpkg-query -W -f='${Status}\n' "$package" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$package")
done
if [ "${#missing[@]}" -eq 0 ]; then
  echo "all $# host packages are installed"
  exit 0
fi
# The Postfix package (for the real postmap of the unit tests) must not configure a mail server here.
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
echo "apt-get update: reading Debian's package lists (quiet)"
apt-get update -qq
echo "apt-get install --no-install-recommends ${missing[*]} and their dependencies (quiet)"
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "installed: ${missing[*]}"
