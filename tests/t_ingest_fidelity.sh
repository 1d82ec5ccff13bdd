#!/usr/bin/env bash
# t_ingest_fidelity.sh - text fidelity: per-page word-level similarity of ingest's
# body text to pdftotext (>= 0.97 on every page of every corpus PDF with a text
# layer), CUAD contracts against their .txt twins, and the PDFBox ligature words.
# Accepted exceptions, each with its reason, are in tests/reference/fidelity_known.tsv.
# Prints "N passed, N failed" (from tests/reference/fidelity.py).
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
CORPUS=${SMOLDOC_CORPUS:-../shared/corpus}
[ -f "$CORPUS/MANIFEST.tsv" ] || CORPUS=/work/shared/corpus
if [ ! -f "$CORPUS/MANIFEST.tsv" ] || ! command -v pdftotext >/dev/null; then
    echo "SKIP: corpus or pdftotext missing"; echo "0 passed, 0 failed, 1 skipped"; exit 0
fi
[ -x "$BUILD/smoldoc-inspect" ] || make -s "$BUILD/smoldoc-inspect" >/dev/null 2>&1
exec /usr/bin/python3 tests/reference/fidelity.py --inspect "$BUILD/smoldoc-inspect" --corpus "$CORPUS" \
    --threshold 0.97 --known tests/reference/fidelity_known.tsv ${FIDELITY_TABLE:+--table "$FIDELITY_TABLE"}
