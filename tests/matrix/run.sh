#!/usr/bin/env bash
# The ansible-core matrix of make test: ansible-test sanity and the unit tests on every ansible-core
# minor release from the oldest that meta/runtime.yml claims (requires_ansible) to the newest we pin,
# each in its own venv:
#   - the dev venv (.venv, requirements-dev.txt), shared with the other stages of make test;
#   - one venv per tests/matrix/ansible-core-X.Y.txt, in .cache/venvs/, with the Python its "# python:"
#     line names, made when missing or when its requirements changed (tests/matrix/venv.sh), reused otherwise.
# The pinned releases must start at requires_ansible's minor release and leave no minor release out (checked
# here, from the pins, whether their venvs can be made or not).
# A release whose Python is not on this machine (3.12 and 3.13 on a Debian 12 without pyenv) is skipped:
# a SKIP row in the summary and a note that names it as not tested; the run fails only on a failed test.
# The sanity runs are stages one after the other (pylint and validate-modules need the CPU); meanwhile
# the unit suites of all venvs run at once in the background (they mostly wait for Postfix's commands and
# the local test servers), each recorded as a stage when it ends. Last, the ansible-core releases tested,
# also kept as a note that make test prints under its summary.
# Usage: run.sh SANITY_COPY   (the dev venv exists: make venv)
set -euo pipefail
copy=${1:?sanity copy}
root=$(cd "$(dirname "$0")/../.." && pwd)
stage=$root/tests/stage.sh
logs=$root/.tmp/matrix
rm -rf "$logs" && mkdir -p "$logs"

pin_of() { sed -n 's/^ansible-core==\([0-9.]*\)$/\1/p' "$1"; }
version_of() { "$1/bin/python" -c 'from importlib.metadata import version; print(version("ansible-core"))'; }
python_of() { "$1/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])'; }

# The requirements files with their pinned release, oldest first.
mapfile -t pinned < <({
  printf '%s %s\n' "$(pin_of "$root/requirements-dev.txt")" "$root/requirements-dev.txt"
  for requirements in "$root"/tests/matrix/ansible-core-*.txt; do
    printf '%s %s\n' "$(pin_of "$requirements")" "$requirements"
  done } | sort -V)

# The matrix covers what meta/runtime.yml claims: from its minimum's minor release, no minor left out.
claimed=$(sed -n 's/^requires_ansible: *["'\'']*>=\([0-9]*\.[0-9]*\)\..*/\1/p' "$root/meta/runtime.yml")
[ -n "$claimed" ] || { echo "meta/runtime.yml: no requires_ansible \">=X.Y.Z\"" >&2; exit 1; }
expected=${claimed#*.}
for entry in "${pinned[@]}"; do
  minor=$(echo "${entry%% *}" | cut -d. -f1-2)
  if [ "${minor%%.*}.$expected" != "$minor" ]; then
    echo "the matrix must test ansible-core ${minor%%.*}.$expected next (requires_ansible >=$claimed): found $minor in ${entry#* }" >&2
    exit 1
  fi
  expected=$((expected + 1))
done

# The venvs, oldest ansible-core first; the releases without their Python here are skipped.
venvs=() skipped=()
for entry in "${pinned[@]}"; do
  requirements=${entry#* }
  if [ "$requirements" = "$root/requirements-dev.txt" ]; then
    venvs+=("$root/.venv")
    continue
  fi
  status=0
  "$root/tests/matrix/venv.sh" "$requirements" || status=$?
  if [ "$status" -eq 3 ]; then
    python=$(sed -n 's/^# python: *\([0-9.]*\).*/\1/p' "$requirements")
    "$stage" record "sanity and unit: ansible-core ${entry%% *} (no Python $python here)" SKIP 0
    skipped+=("${entry%% *} (no Python $python)")
    continue
  fi
  [ "$status" -eq 0 ] || exit "$status"
  venvs+=("$("$root/tests/matrix/venv.sh" --path "$requirements")")
done

# Unit suites in the background, one log each.
declare -A unit_pid=() unit_start=()
for venv in "${venvs[@]}"; do
  label="ansible-core $(version_of "$venv") (Python $(python_of "$venv"))"
  unit_start[$venv]=$(printf '%(%s)T' -1)
  (
    cd "$root"
    unit_status=0
    PATH="$venv/bin:$PATH" "$venv/bin/python" -m pytest -q -p no:cacheprovider tests/unit || unit_status=$?
    printf '%(%s)T\n' -1 >"$logs/unit-${venv##*/}.end"
    exit "$unit_status"
  ) >"$logs/unit-${venv##*/}.log" 2>&1 &
  unit_pid[$venv]=$!
  echo "--> [$("$stage" elapsed)] unit: $label started in the background"
done

declare -A failed=()
for venv in "${venvs[@]}"; do
  label="ansible-core $(version_of "$venv") (Python $(python_of "$venv"))"
  "$stage" run "sanity: $label" "$root/tests/ansible-test.sh" "$venv" "$copy" sanity --venv || failed[$venv]+=" sanity"
done

for venv in "${venvs[@]}"; do
  label="ansible-core $(version_of "$venv") (Python $(python_of "$venv"))"
  log=$logs/unit-${venv##*/}.log
  unit_status=0
  wait "${unit_pid[$venv]}" || unit_status=$?
  seconds=$(( $(cat "$logs/unit-${venv##*/}.end") - unit_start[$venv] ))
  if [ "$unit_status" -eq 0 ]; then
    result=pass
  else
    result=FAIL failed[$venv]+=" unit"
    cat "$log"
  fi
  "$stage" record "unit: $label" "$result" "$seconds"
  echo "<== [$("$stage" elapsed)] unit: $label: $result in ${seconds}s ($(tail -n 1 "$log"))"
done

note="ansible-core tested with ansible-test sanity and the unit tests: $(for venv in "${venvs[@]}"; do
  printf '%s (Python %s)%s, ' "$(version_of "$venv")" "$(python_of "$venv")" "${failed[$venv]:+ FAILED${failed[$venv]}}"
  done | sed 's/, $//')"
echo "$note"
"$stage" note "$note"
if [ "${#skipped[@]}" -gt 0 ]; then
  note="ansible-core NOT tested here (meta/runtime.yml claims them): $(printf '%s, ' "${skipped[@]}" | sed 's/, $//'); install that Python (pyenv install X.Y) and run make matrix"
  echo "$note"
  "$stage" note "$note"
fi
[ "${#failed[@]}" -eq 0 ]
