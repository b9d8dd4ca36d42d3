#!/usr/bin/env bash
# Run a Molecule command and pass its output through; when a step starts or ends (Molecule's
# "[scenario > step] Executing" and "... Executed: <state>" lines) print a progress line with the
# time since the run began and record the step as a stage (see stage.sh). Exits with Molecule's status.
# Usage: molecule-steps.sh MOLECULE ARGS...   (e.g. .venv/bin/molecule test -s default)
set -uo pipefail
stage=$(dirname "$0")/stage.sh
# Plain ("[default > converge] Executing") and coloured ("default ➜ converge: Executing") forms.
# The end line says how the step went: "Executed: Successful", "Executed: Failed", "Executed: 2 disabled" ...
header='^[A-Z]+ +(\[([^] ]+) > ([a-z_-]+)\]|([^ ]+) ➜ ([a-z_-]+):) (Executing|Executed: (.*))'
shopt -s extglob
esc=$'\e'

steps() {
  local line plain name result i open=() started=()
  while IFS= read -r line; do
    printf '%s\n' "$line"
    plain=${line//${esc}\[*([0-9;])m/}
    [[ $plain =~ $header ]] || continue
    name="molecule ${BASH_REMATCH[2]:-${BASH_REMATCH[4]}}: ${BASH_REMATCH[3]:-${BASH_REMATCH[5]}}"
    if [ "${BASH_REMATCH[6]}" = Executing ]; then
      open+=("$name") started+=("$(printf '%(%s)T' -1)")
      echo "--> [$("$stage" elapsed)] $name"
      continue
    fi
    case ${BASH_REMATCH[7],,} in
      *fail*) result=FAIL ;;
      *successful*) result=pass ;;
      *) result=skip ;;  # skipped, disabled, missing (nothing to run)
    esac
    for i in "${!open[@]}"; do
      [ "${open[$i]}" = "$name" ] || continue
      finish "$name" "$result" "${started[$i]}"
      unset 'open[i]' 'started[i]'
      break
    done
  done
  # A step that started and never said how it ended (Molecule was killed or crashed) failed.
  for i in "${!open[@]}"; do
    finish "${open[$i]}" FAIL "${started[$i]}"
  done
}

finish() {  # NAME RESULT START: record the step and print its end line
  local seconds=$(( $(printf '%(%s)T' -1) - $3 ))
  "$stage" record "$1" "$2" "$seconds"
  echo "<-- [$("$stage" elapsed)] $1: $2 in ${seconds}s"
}

"$@" 2>&1 | steps
exit "${PIPESTATUS[0]}"
