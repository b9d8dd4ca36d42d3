#!/usr/bin/env bash
# Progress of make demo / make test: one line when a stage starts and one when it ends, with the time
# since the run began, and a summary table of every stage at the end.
#   stage.sh begin TITLE          start a run: forget the stages of the last one
#   stage.sh run NAME CMD [ARG]   run CMD as stage NAME, record pass/FAIL and seconds, keep CMD's exit status
#   stage.sh record NAME STATUS SECONDS   record a stage run by someone else (the Molecule step filter);
#                                 STATUS pass, FAIL or SKIP (not run: what it needs is missing, a note says what)
#   stage.sh note TEXT            keep a line that the summary prints under its table (what a stage found)
#   stage.sh elapsed              print the time since the run began (hh:mm:ss)
#   stage.sh summary              print the table and the notes; exit 1 when a stage failed or none ran
# Records live in .tmp/stages/ (stages.tsv, tab-separated: name, status, seconds; notes). The run began at STAGE_RUN_START
# (seconds since the epoch; the Makefile sets it once per make command), or now.
set -euo pipefail
dir=$(cd "$(dirname "$0")/.." && pwd)/.tmp/stages
mkdir -p "$dir"
now() { printf '%(%s)T' -1; }
run_start=${STAGE_RUN_START:-$(now)}
elapsed() {
  local s=$(( $(now) - run_start ))
  printf '%02d:%02d:%02d' $((s / 3600)) $((s % 3600 / 60)) $((s % 60))
}

case ${1:?usage: stage.sh begin|run|record|elapsed|summary} in
  begin)
    rm -f "$dir/stages.tsv" "$dir/notes"
    printf '%s\n' "${2:-}" >"$dir/title"
    echo "==> [$(elapsed)] ${2:-}"
    ;;
  run)
    name=${2:?stage name}; shift 2
    echo "==> [$(elapsed)] $name"
    start=$(now)
    status=0
    "$@" || status=$?
    seconds=$(( $(now) - start ))
    if [ "$status" -eq 0 ]; then result=pass; else result=FAIL; fi
    printf '%s\t%s\t%s\n' "$name" "$result" "$seconds" >>"$dir/stages.tsv"
    echo "<== [$(elapsed)] $name: $result in ${seconds}s$([ "$status" -eq 0 ] || echo " (exit $status)")"
    exit "$status"
    ;;
  elapsed) elapsed; echo ;;
  note)
    printf '%s\n' "${2:?text}" >>"$dir/notes"
    ;;
  record)
    printf '%s\t%s\t%s\n' "${2:?name}" "${3:?status}" "${4:?seconds}" >>"$dir/stages.tsv"
    ;;
  summary)
    touch "$dir/stages.tsv"
    title=
    [ ! -f "$dir/title" ] || title=$(cat "$dir/title")
    echo
    echo "== Summary${title:+ of $title} (total $(elapsed))"
    touch "$dir/notes"
    # The notes come under the table, before the count (which stays the last line).
    awk -F'\t' -v notes="$dir/notes" '
      BEGIN { printf "%-64s %-6s %8s\n", "stage", "result", "seconds" }
      { printf "%-64s %-6s %8d\n", $1, $2, $3; if ($2 == "FAIL") failed++; if ($2 == "SKIP") skipped++ }
      END {
        while ((getline line < notes) > 0) print line
        if (NR == skipped) { print "no stage ran"; exit 1 }
        if (skipped) printf "stages: %d passed, %d failed, %d skipped\n", NR - failed - skipped, failed, skipped
        else printf "stages: %d passed, %d failed\n", NR - failed, failed
        exit failed > 0
      }' "$dir/stages.tsv"
    ;;
  *) echo "stage.sh: unknown command $1" >&2; exit 2 ;;
esac
