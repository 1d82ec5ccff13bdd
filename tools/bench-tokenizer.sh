#!/usr/bin/env bash
# bench-tokenizer.sh - encode speed of our tokenizer vs Hugging Face tokenizers
# (Rust, through its Node binding) on the same inputs in the same run: English
# prose (all CUAD contract .txt in the corpus, ~1.3 MB) and a ~500 KB document.
# Medians of N runs, wall and CPU time, side by side. Usage: tools/bench-tokenizer.sh [N]
set -eu
cd "$(dirname "$0")/.."
N=${1:-21}
BUILD=${BUILD:-build}
CORPUS=${SMOLDOC_CORPUS:-../shared/corpus}
[ -d "$CORPUS" ] || CORPUS=/work/shared/corpus
[ -d tests/node/node_modules/@anush008/tokenizers ] || { echo "bench-tokenizer: run npm ci in tests/node first" >&2; exit 2; }
make -s "$BUILD/smolrun" >/dev/null
/usr/bin/python3 tools/mk-tokenizer-fixture.py --quiet
TOK=$PWD/tests/fixtures/gen/tokenizer.json
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat "$CORPUS"/contracts/*.txt > "$tmp/prose.txt"
head -c 500000 "$tmp/prose.txt" > "$tmp/doc500k.txt"
echo "tokenizer benchmark: $N runs each, medians; $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-14s %9s %8s | %-34s | %-34s | %s\n' input bytes tokens "ours: wall ms (MB/s)  cpu ms (MB/s)" \
    "HF Rust: wall ms (MB/s) cpu ms (MB/s)" "speedup (cpu)"
for f in prose doc500k; do
    ours=$("$BUILD/smolrun" tokenize --model "$TOK" --file "$tmp/$f.txt" --repeat "$N" 2>&1 >/dev/null | grep '^tokenize:')
    ow=$(echo "$ours" | sed -E 's/.*wall ([0-9.]+) ms.*/\1/')
    oc=$(echo "$ours" | sed -E 's/.*thread cpu ([0-9.]+) ms.*/\1/')
    ot=$(echo "$ours" | sed -E 's/.* ([0-9]+) tokens.*/\1/')
    hf=$(cd tests/node && node bench_hf.js "$TOK" "$tmp/$f.txt" "$N")
    read -r hw hc ht < <(echo "$hf" | /usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["wall_ms"], d["cpu_ms"], d["tokens"])')
    bytes=$(stat -c %s "$tmp/$f.txt")
    /usr/bin/python3 - "$f" "$bytes" "$ot" "$ht" "$ow" "$oc" "$hw" "$hc" <<'PY'
import sys
f, b, ot, ht, ow, oc, hw, hc = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], *map(float, sys.argv[5:])
mbs = lambda ms: b / ms / 1e3
same = "" if ot == ht else "  (TOKEN COUNTS DIFFER: HF %s)" % ht
print("%-14s %9d %8s | %8.2f (%6.1f) %8.2f (%6.1f)   | %8.2f (%6.1f) %8.2f (%6.1f)   | x%.2f%s" % (
    f, b, ot, ow, mbs(ow), oc, mbs(oc), hw, mbs(hw), hc, mbs(hc), hc / oc, same))
PY
done
