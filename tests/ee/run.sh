#!/usr/bin/env bash
# make ee: the collection in an execution environment, run as AWX/AAP runs a job.
#   run.sh build TARBALL   build EE_IMAGE with ansible-builder (podman) from tests/ee/execution-environment.yml:
#                          the tarball and its dependency community.crypto (the dev venv's copy) installed by
#                          ansible-galaxy, and what the collection's meta/execution-environment.yml asks for
#                          (requirements.txt, bindep.txt). Skipped when the image was built from the same
#                          inputs (their fingerprint is the image's recipe label).
#   run.sh test            the lab: smarthost-ee-sink and smarthost-ee-relay from LAB_IMAGE on LAB_NETWORK at
#                          static addresses checked to be free, each with an SSH server that lets a throwaway
#                          key in as root (no sudo on them); then the EE container (smarthost-ee-runner), where
#                          each job runs by ansible-runner on a private data dir as in AWX (tests/ee/project, tests/ee/inventory.yml,
#                          the key as env/ssh_key, the account as env/extravars): upstream.yml (the sink role),
#                          relay.yml (smarthost.postfix.relay) twice, probe.yml (smarthost.postfix.probe: the
#                          message is delivered through the sink), spf.yml (smarthost.postfix.spf: pyspf and
#                          dnspython work in the EE). Every job must succeed, the second relay job change nothing,
#                          and no artifact hold the password. The containers are removed at the end, also on failure.
# Environment (the Makefile's): LAB_IMAGE, LAB_NETWORK, LAB_SUBNET, LAB_LABEL, EE_IMAGE.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
here=$root/tests/ee
work=$root/.tmp/ee
: "${LAB_IMAGE:?}" "${LAB_NETWORK:?}" "${LAB_SUBNET:?}" "${LAB_LABEL:?}" "${EE_IMAGE:?}"
prefix=${LAB_SUBNET%.*/*}
declare -A address=([smarthost-ee-sink]=$prefix.241 [smarthost-ee-relay]=$prefix.242 [smarthost-ee-runner]=$prefix.243)
hosts=(smarthost-ee-sink smarthost-ee-relay)

build() {
  local tarball=$1 crypto ansible_core fingerprint context
  tarball=$(realpath "$tarball")
  crypto=$("$root/.venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/ansible_collections/community/crypto
  ansible_core=$(grep -x 'ansible-core==[0-9.]*' "$root/requirements-dev.txt")
  # The inputs: the definition, the collection's files (FILES.json holds every file's checksum; the tarball's
  # own bytes change with each build), community.crypto's version, ansible-core, the base image, ansible-builder.
  fingerprint=$({
    cat "$here/execution-environment.yml"
    tar -xzOf "$tarball" MANIFEST.json FILES.json
    cat "$crypto/MANIFEST.json"
    echo "$ansible_core"
    podman image inspect --format '{{.Id}}' "$LAB_IMAGE"
    "$root/.venv/bin/ansible-builder" --version
  } | sha256sum | cut -c1-16)
  if [ "$(podman image inspect --format '{{index .Labels "recipe"}}' "$EE_IMAGE" 2>/dev/null || true)" = "$fingerprint" ]; then
    echo "image $EE_IMAGE is up to date (recipe $fingerprint)"
    return
  fi
  context=$work/build
  rm -rf "$context" && mkdir -p "$context/collections"
  cp "$here/execution-environment.yml" "$context/"
  cp "$tarball" "$context/collections/smarthost-postfix.tar.gz"
  cp -r "$crypto" "$context/collections/community.crypto"
  echo "building $EE_IMAGE (recipe $fingerprint) with ansible-builder on $LAB_IMAGE: $ansible_core, $(basename "$tarball"), community.crypto $(
    python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["collection_info"]["version"])' "$crypto/MANIFEST.json")"
  # The build host's CA bundle is mounted for the RUN steps only and named by PIP_CERT (see the definition).
  "$root/.venv/bin/ansible-builder" build --container-runtime podman -f "$context/execution-environment.yml" \
    -c "$context/context" -t "$EE_IMAGE" -v 1 \
    --build-arg EE_BASE_IMAGE="$LAB_IMAGE" --build-arg ANSIBLE_INSTALL_REFS="$ansible_core ansible-runner==$(
      sed -n 's/^ *package_pip: ansible-runner==\([0-9.]*\)$/\1/p' "$here/execution-environment.yml")" \
    --build-arg PIP_CERT=/run/build-host-ca.crt \
    --extra-build-cli-args "--layers=false --label recipe=$fingerprint --label $LAB_LABEL=image --volume /etc/ssl/certs/ca-certificates.crt:/run/build-host-ca.crt:ro"
  # The image this one replaced is left without a name: remove it (only the project's, only unnamed ones).
  podman image prune -f --filter "label=$LAB_LABEL=image" >/dev/null
  echo "built $EE_IMAGE: $(podman run --rm "$EE_IMAGE" ansible --version | head -n 1); its collections:"
  podman run --rm "$EE_IMAGE" ansible-galaxy collection list 2>/dev/null | grep -E '^(smarthost|community)\.'
}

remove_containers() {
  local name
  for name in "${hosts[@]}" smarthost-ee-runner; do
    if podman container exists "$name"; then
      podman rm -f -t 5 "$name" >/dev/null
    fi
  done
}

# A container of one of our names must be the project's (a leftover: removed); an address must be free.
check_lab() {
  local name other ip
  for name in "${hosts[@]}" smarthost-ee-runner; do
    if podman container exists "$name" &&
       [ "$(podman container inspect --format "{{index .Config.Labels \"$LAB_LABEL\"}}" "$name")" != container ]; then
      echo "a container named $name exists and is not the project's: remove it or rename it" >&2
      exit 1
    fi
  done
  remove_containers
  for other in $(podman ps -aq --filter "network=$LAB_NETWORK"); do
    for ip in $(podman container inspect --format '{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}' "$other"); do
      for name in "${!address[@]}"; do
        if [ "$ip" = "${address[$name]}" ]; then
          echo "$ip (for $name) is taken on $LAB_NETWORK by $(podman container inspect --format '{{.Name}}' "$other")" >&2
          exit 1
        fi
      done
    done
  done
}

start_host() {  # NAME: boot it and let the key in over SSH as root
  local name=$1
  podman run -d --name "$name" --hostname "$name" --label "$LAB_LABEL=container" --network "$LAB_NETWORK" \
    --ip "${address[$name]}" --systemd=always "$LAB_IMAGE" /sbin/init >/dev/null
  # systemd has booted (running, or degraded: a unit of the image that a container cannot start) within 60 s.
  podman exec -i "$name" sh -ec 'for _ in $(seq 60); do
      case $(systemctl is-system-running 2>/dev/null) in running|degraded) break ;; esac; sleep 1; done
    systemctl is-system-running >/dev/null || [ "$(systemctl is-system-running)" = degraded ]
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends openssh-server >/dev/null
    install -d -m 0700 /root/.ssh && cat >/root/.ssh/authorized_keys && chmod 0600 /root/.ssh/authorized_keys
    systemctl enable -q --now ssh' <"$work/runner/env/ssh_key.pub"
  echo "$name (${address[$name]}): booted, SSH server for root with the test's key, no sudo ($(
    podman exec "$name" sh -c 'command -v sudo || echo none'))"
}

# The EE container, started once: AWX starts one per job, but a container joining or leaving the lab network
# reconfigures its DNS server, and a relay that looks up its upstream at that moment defers the message.
start_runner() {
  podman run -d --name smarthost-ee-runner --label "$LAB_LABEL=container" --network "$LAB_NETWORK" \
    --ip "${address[smarthost-ee-runner]}" -v "$work/runner:/runner" "$EE_IMAGE" sleep infinity >/dev/null
}

job() {  # IDENT PLAYBOOK: one job by ansible-runner in the EE, on the private data dir, as AWX runs one
  local ident=$1 playbook=$2 status=0
  echo "--- job $ident: ansible-runner run /runner -p $playbook in $EE_IMAGE"
  podman exec smarthost-ee-runner ansible-runner run /runner -p "$playbook" --ident "$ident" || status=$?
  echo "--- job $ident: exit $status, status $(cat "$work/runner/artifacts/$ident/status" 2>/dev/null || echo none)"
  [ "$status" -eq 0 ] && [ "$(cat "$work/runner/artifacts/$ident/status")" = successful ]
}

test_lab() {
  local password
  podman image exists "$EE_IMAGE" || { echo "no $EE_IMAGE: run.sh build first" >&2; exit 1; }
  check_lab
  trap remove_containers EXIT
  # The private data dir of AWX's jobs: project, inventory, env (the machine credential's key, extra vars).
  rm -rf "$work/runner" && mkdir -p "$work/runner/inventory" "$work/runner/env"
  cp -r "$here/project" "$work/runner/project"
  cp "$here/inventory.yml" "$work/runner/inventory/hosts.yml"
  ssh-keygen -q -t ed25519 -N '' -C smarthost-ee -f "$work/runner/env/ssh_key"
  password="ee pass:$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n') with spaces"
  printf 'ee_account:\n  name: relay-ee\n  password: "%s"\n' "$password" >"$work/runner/env/extravars"
  # The EE runs as its user 1000: the data dir is the job's.
  chmod -R a+rwX "$work/runner"
  chmod 0600 "$work/runner/env/ssh_key"
  chown 1000 "$work/runner/env/ssh_key"
  start_host smarthost-ee-sink &
  start_host smarthost-ee-relay &
  start_runner
  for _ in "${hosts[@]}"; do wait -n; done

  job upstream upstream.yml
  job relay relay.yml
  job relay-again relay.yml
  if grep -E '^smarthost-ee-relay +: .*changed=[1-9]' "$work/runner/artifacts/relay-again/stdout"; then
    echo "the second relay job changed something (above)" >&2
    exit 1
  fi
  echo "the second relay job changed nothing"
  job probe probe.yml
  job spf spf.yml
  grep -q 'example.com and 192.0.2.25: NOT permitted (SPF temperror)' "$work/runner/artifacts/spf/stdout" ||
    { echo "spf.yml did not report pyspf's temperror for a domain without a DNS server" >&2; exit 1; }
  if grep -rlF "${password}" "$work/runner/artifacts"; then
    echo "the password is in the artifacts above" >&2
    exit 1
  fi
  echo "the password is in no artifact of the $(find "$work/runner/artifacts" -mindepth 1 -maxdepth 1 | wc -l) jobs"
}

case ${1:?usage: run.sh build TARBALL | test} in
  build) build "${2:?tarball}" ;;
  test) test_lab ;;
  *) echo "run.sh: unknown command $1" >&2; exit 2 ;;
esac
