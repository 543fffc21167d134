#!/usr/bin/env bash
# Totals of the fault harness's seeded runs that bench/RESULTS.md records
# for one tier: every "### Fault harness, TIER tier: seed N" section's
# per-kind table (fault | durations | faults | promotions | recovery median
# / max | goal met) summed per kind, and its audit line ("N acknowledged,
# L lost, W wrong") summed over the runs. Sections without that table (the
# faults of full CI runs, before/after comparisons) are not counted. The
# totals span every image version recorded: each run names its own.
#   bench/fault-totals.sh redis|postgres [RESULTS.md]
set -euo pipefail

tier=${1:-}
file=${2:-"$(dirname "${BASH_SOURCE[0]}")/RESULTS.md"}
case $tier in
  redis | postgres) ;;
  *) echo "usage: bench/fault-totals.sh redis|postgres [RESULTS.md]" >&2; exit 2 ;;
esac
[ -r "$file" ] || { echo "fault-totals: cannot read $file" >&2; exit 1; }

awk -v tier="$tier" '
  # A number in a cell, or -1 ("never").
  function num(s) { gsub(/[^0-9]/, "", s); return s == "" ? -1 : s + 0 }
  /^### / {
    in_run = ($0 ~ "^### Fault harness, " tier " tier: seed ")
    in_table = 0
    if (in_run) { runs++; seed = $0; sub(/^.*seed /, "", seed); sub(/[^0-9].*/, "", seed); seeds = seeds (seeds ? ", " : "") seed }
    next
  }
  in_run && /Audit over all faults: / {
    line = $0; sub(/^.*Audit over all faults: /, "", line)
    split(line, w, /[ ,;]+/)
    acked += w[1]; lost += w[3]; wrong += w[5]
  }
  in_run && /^\| fault \| durations/ { in_table = 1; next }
  in_table && /^\|---/ { next }
  in_table && /^\| / {
    n = split($0, c, /[ ]*\|[ ]*/)
    kind = c[2]; faults[kind] += c[4]; promotions[kind] += c[5]
    split(c[6], rec, "/"); m = num(rec[2])
    if (m < 0) never[kind] = 1
    else if (m > worst[kind]) worst[kind] = m
    split(c[7], met, " of "); goal_met[kind] += met[1] + 0
    total += c[4]
    next
  }
  in_table { in_table = 0 }
  END {
    printf "%d %s runs (seeds %s): %d faults, %d votes acknowledged, %d lost, %d wrong\n\n", runs, tier, seeds, total, acked, lost, wrong
    print "| fault | faults | promotions | worst recovery (ms) | goal met |"
    print "|---|---|---|---|---|"
    for (k in faults)
      printf "| %s | %d | %d | %s | %d of %d |\n", k, faults[k], promotions[k], never[k] ? "never (once or more)" : worst[k] + 0, goal_met[k], faults[k] | "sort"
  }
' "$file"
