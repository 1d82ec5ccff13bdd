#!/usr/bin/env bash
# bench-ingest.sh - ingest speed in pages per second (a benchmark, not a test):
# freeculture.pdf (352 pages) and the longest CUAD contract of the corpus, RUNS runs
# each (default 5), median wall time of build/smoldoc-inspect --json (extraction in
# the forked child, normalisation, headers/footers, sections, quality, JSON out),
# and of `pdftotext` on the same file for scale. Also store_put_document time via
# smoldoc-ingest into a fresh database.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
RUNS=${RUNS:-5}
CORPUS=${SMOLDOC_CORPUS:-../shared/corpus}
[ -f "$CORPUS/MANIFEST.tsv" ] || CORPUS=/work/shared/corpus
make -s "$BUILD/smoldoc-inspect" "$BUILD/smoldoc-ingest" >/dev/null 2>&1
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
longest=$(for f in "$CORPUS"/contracts/*.[pP][dD][fF]; do echo "$(pdfinfo "$f" 2>/dev/null | awk '/^Pages:/ {print $2}') $f"; done | sort -n | tail -1 | cut -d' ' -f2-)
median() { sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
timeit() { local s e; s=$(date +%s.%N); "$@" >/dev/null 2>&1; e=$(date +%s.%N); echo "$e - $s" | bc -l; }
printf '%-40s %6s %10s %10s %12s %12s\n' file pages "ingest s" "pages/s" "pdftotext s" "store put s"
for f in "$CORPUS/reports/freeculture.pdf" "$longest"; do
    pages=$(pdfinfo "$f" | awk '/^Pages:/ {print $2}')
    ti=$(for i in $(seq "$RUNS"); do timeit "$BUILD/smoldoc-inspect" "$f" --json; done | median)
    tp=$(for i in $(seq "$RUNS"); do timeit pdftotext "$f" -; done | median)
    ts=$(for i in $(seq "$RUNS"); do rm -f "$T"/b.db*; timeit "$BUILD/smoldoc-ingest" "$T/b.db" "$f"; done | median)
    printf '%-40s %6d %10.3f %10.1f %12.3f %12.3f\n' "$(basename "$f" | cut -c1-40)" "$pages" "$ti" \
        "$(echo "$pages / $ti" | bc -l)" "$tp" "$ts"
done
echo "(medians of $RUNS runs; wall time on a shared machine: $(nproc) CPUs, load $(cut -d' ' -f1 /proc/loadavg));"
echo " store put = ingest + SHA-256 + one-transaction insert into a fresh WAL database)"
