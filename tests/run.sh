#!/usr/bin/env bash
# Runs every test binary (build/tests/test_*) and every script test (tests/t_*.sh),
# each of which prints "N passed, N failed"; sums them and fails if any failed.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
pass=0 fail=0 skip=0 bad=()
run_one() {
    local name=$1; shift
    local log; log=$(mktemp)
    printf '== %s\n' "$name"
    "$@" >"$log" 2>&1
    local rc=$?
    grep -E '^(FAIL|SKIP)' "$log" | head -40
    local line; line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -1)
    if [ -z "$line" ]; then
        echo "   (no summary line; exit $rc)"; tail -20 "$log"; fail=$((fail+1)); bad+=("$name")
    else
        echo "   $line"
        local p f s
        p=$(echo "$line" | sed -E 's/^([0-9]+) passed.*/\1/')
        f=$(echo "$line" | sed -E 's/.* ([0-9]+) failed.*/\1/')
        s=$(echo "$line" | sed -nE 's/.* ([0-9]+) skipped.*/\1/p')
        pass=$((pass+p)); fail=$((fail+f)); skip=$((skip+${s:-0}))
        if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then fail=$((fail+1)); echo "   exit $rc"; fi
        [ "$rc" -ne 0 ] && bad+=("$name")
    fi
    rm -f "$log"
}
only=${1:-}
for t in "$BUILD"/tests/test_*; do
    [ -x "$t" ] || continue
    case "$t" in *.d|*.o) continue;; esac
    [ -n "$only" ] && [[ "$t" != *"$only"* ]] && continue
    run_one "$(basename "$t")" "$t"
done
for t in tests/t_*.sh; do
    [ -f "$t" ] || continue
    [ -n "$only" ] && [[ "$t" != *"$only"* ]] && continue
    run_one "$(basename "$t")" env BUILD="$BUILD" bash "$t"
done
[ ${#bad[@]} -gt 0 ] && echo "failing: ${bad[*]}"
echo "total: $pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
