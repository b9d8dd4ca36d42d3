#!/usr/bin/env bash
# Build the collection tarball, check what it ships, install it into a temporary path and run a
# smoke playbook that resolves every FQCN from that installed copy (not from the work tree).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=$root/.venv/bin
out=$root/.tmp/build
rm -rf "$out" && mkdir -p "$out/dist" "$out/install"
"$bin/ansible-galaxy" collection build --force --output-path "$out/dist" "$root" >/dev/null
tarball=$(ls "$out"/dist/smarthost-postfix-*.tar.gz)
echo "built $(basename "$tarball") ($(du -k "$tarball" | cut -f1) KiB)"

listing=$(tar -tzf "$tarball")
for wanted in roles/relay/ roles/sink/ plugins/modules/postmap.py plugins/modules/smtp_probe.py plugins/modules/relay_config.py \
              plugins/module_utils/_relay_model.py plugins/modules/postfix_config.py plugins/modules/spf_check.py \
              playbooks/relay.yml meta/runtime.yml README.md MANIFEST.json; do
  grep -q "^$wanted" <<<"$listing" || { echo "tarball lacks $wanted" >&2; exit 1; }
done
if grep -E '(^|/)(\.venv|\.cache|\.tmp|\.git|\.ci|molecule|tests/(images|build|docs|ee|galaxy|matrix|[^/]*\.sh)|__pycache__)(/|$)|\.tar$' <<<"$listing"; then
  echo "tarball ships files it must not (above)" >&2
  exit 1
fi

"$bin/ansible-galaxy" collection install --offline --force --no-deps -p "$out/install" "$tarball" >/dev/null
for doc in smarthost.postfix.postmap smarthost.postfix.smtp_probe smarthost.postfix.relay_config smarthost.postfix.postfix_config \
           smarthost.postfix.spf_check; do
  ANSIBLE_COLLECTIONS_PATH=$out/install "$bin/ansible-doc" "$doc" >/dev/null
done
for role in relay sink; do
  ANSIBLE_COLLECTIONS_PATH=$out/install "$bin/ansible-doc" -t role "smarthost.postfix.$role" >/dev/null
done
ANSIBLE_COLLECTIONS_PATH=$out/install "$bin/ansible-playbook" -i localhost, -c local \
  -e ansible_python_interpreter="$bin/python" -e smoke_dir="$out/smoke" \
  "$root/tests/build/smoke.yml"
echo "build: tarball content and installed-copy smoke test passed"
