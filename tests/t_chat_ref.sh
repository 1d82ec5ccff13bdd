#!/usr/bin/env bash
# t_chat_ref.sh - the C chat template against Jinja2 rendering SmolLM3's
# chat_template.jinja (tests/reference/render_chat.py, at test time): every case
# through the library (test_chat --ref) and through `smolrun chat`, byte for byte.
# Prints "N passed, N failed".
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
TEMPLATE=${SMOLLM3_TEMPLATE:-../shared/models/smollm3/chat_template.jinja}
[ -f "$TEMPLATE" ] || TEMPLATE=/work/shared/models/smollm3/chat_template.jinja
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if ! /usr/bin/python3 -c 'import jinja2' 2>/dev/null; then
    echo "FAIL: python3-jinja2 missing"; echo "0 passed, 1 failed"; exit 1
fi
/usr/bin/python3 tests/reference/render_chat.py "$TEMPLATE" "$tmp/ref" || { echo "FAIL: reference"; echo "0 passed, 1 failed"; exit 1; }
[ -x "$BUILD/tests/test_chat" ] || make -s "$BUILD/tests/test_chat" >/dev/null
"$BUILD/tests/test_chat" --ref "$tmp/ref" > "$tmp/lib.log" 2>&1
grep -E '^(FAIL|  first)' "$tmp/lib.log"
line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$tmp/lib.log" | tail -1)
pass=$(echo "${line:-0 passed, 1 failed}" | sed -E 's/^([0-9]+) passed.*/\1/')
fail=$(echo "${line:-0 passed, 1 failed}" | sed -E 's/.* ([0-9]+) failed.*/\1/')
echo "library: ${line:-no summary}"
if [ -x "$BUILD/smolrun" ]; then
    n=0
    for txt in "$tmp"/ref/*.txt; do
        name=$(basename "$txt" .txt)
        mapfile -t args < "$tmp/ref/$name.args"
        if "$BUILD/smolrun" chat --messages "$tmp/ref/$name.messages.json" "${args[@]}" > "$tmp/out.txt" 2> "$tmp/err.txt" &&
           cmp -s "$tmp/out.txt" "$txt"; then
            pass=$((pass+1))
        else
            fail=$((fail+1)); echo "FAIL: smolrun chat, case $name: $(head -c 300 "$tmp/err.txt")"
        fi
        n=$((n+1))
    done
    echo "smolrun chat: $n cases"
else
    echo "SKIP: $BUILD/smolrun not built; CLI cases not run"
fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
