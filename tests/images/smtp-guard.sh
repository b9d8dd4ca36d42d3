#!/usr/bin/env bash
# Host firewall guard for the lab: SMTP (25, 465, 587) may only go to the lab subnet or loopback,
# so a relay that lost its relayhost can never deliver to a real MX. Rewritten atomically each run.
set -euo pipefail
subnet=${1:?usage: smtp-guard.sh LAB_SUBNET}
nft -f - <<NFT
table inet smarthost_guard
delete table inet smarthost_guard
table inet smarthost_guard {
  chain forward {
    type filter hook forward priority -10; policy accept;
    ip saddr $subnet ip daddr != $subnet tcp dport { 25, 465, 587 } counter reject with tcp reset
  }
  chain output {
    type filter hook output priority -10; policy accept;
    ip daddr != { 127.0.0.0/8, $subnet } tcp dport { 25, 465, 587 } counter reject with tcp reset
    ip6 daddr != ::1 tcp dport { 25, 465, 587 } counter reject with tcp reset
  }
}
NFT
