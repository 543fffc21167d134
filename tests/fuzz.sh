#!/usr/bin/env bash
# A longer, bounded run of the property tests of every parser that takes
# outside input: the form and JSON ballots, the cookie header and signed
# voter id (vote/tests/hostile_input.rs) and the queue-entry decoder
# (common/tests/hostile_queue_entries.rs). ./test.sh runs them with 256
# cases each; this runs CASES (default 20000) each. A failing case is kept
# by proptest in the test's .proptest-regressions file beside it: commit
# it, fix the parser, and the case runs first on every later run, ./test.sh
# included.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

case "${1:-}" in
  "") ;;
  -h | --help)
    sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'
    echo "Usage: [CASES=N] tests/fuzz.sh"
    exit 0
    ;;
  *) echo "fuzz.sh: unknown argument: $1 (see --help)" >&2; exit 1 ;;
esac
cases=${CASES:-20000}
[[ "$cases" =~ ^[1-9][0-9]{0,6}$ ]] || { echo "fuzz.sh: CASES must be a number from 1 to 9999999, not '$cases'" >&2; exit 1; }
started=$SECONDS
PROPTEST_CASES=$cases cargo test -q --release --locked -p vote --test hostile_input
PROPTEST_CASES=$cases cargo test -q --release --locked -p common --test hostile_queue_entries
echo "fuzz.sh: $cases cases per property, every property passed, in $((SECONDS - started)) s"
