#!/usr/bin/env bash
# t_store_crash.sh - crash consistency of store_put_document: build/smoldoc-ingest
# writes copies of a contract (one transaction each) into one database and is
# killed with SIGKILL at a random moment of the writing phase, ROUNDS times (default 25) without
# cleaning up in between. After every kill: PRAGMA integrity_check is ok, and every
# stored document is whole (same pages, sections, header/footer rows, text bytes
# and FTS rows as a clean ingest) - never half written.
# Prints "N passed, N failed".
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
ROUNDS=${ROUNDS:-25}
COPIES=${COPIES:-20}
CORPUS=${SMOLDOC_CORPUS:-../shared/corpus}
[ -f "$CORPUS/MANIFEST.tsv" ] || CORPUS=/work/shared/corpus
TOOL=$BUILD/smoldoc-ingest
[ -x "$TOOL" ] || make -s "$TOOL" >/dev/null 2>&1
pass=0 fail=0
ok() { pass=$((pass+1)); }
bad() { fail=$((fail+1)); echo "FAIL $*"; }
if [ ! -x "$TOOL" ]; then echo "FAIL no $TOOL"; echo "0 passed, 1 failed"; exit 1; fi
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
# the document: a 40-page contract from the corpus, or a generated text file
DOC="$CORPUS/contracts/RangeResourcesLouisianaInc_20150417_8-K_EX-10.5_9045501_EX-10.5_Transportation_Agreement.pdf"
if [ ! -f "$DOC" ]; then
    DOC=$T/doc.txt
    for i in $(seq 1 400); do printf '%d. Clause %d\nThe party shall do thing %d on time.\n\f' "$i" "$i" "$i"; done >"$DOC"
fi
# expected shape, from a clean ingest
"$TOOL" "$T/ref.db" "$DOC" >/dev/null || { echo "FAIL reference ingest"; echo "0 passed, 1 failed"; exit 1; }
shape() { # db -> one line per document: pages sections headfoot text_bytes fts_rows
    /usr/bin/python3 - "$1" <<'PY'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
ic = c.execute("PRAGMA integrity_check").fetchone()[0]
print("integrity", ic)
def per_doc(sql):
    return dict(c.execute(sql).fetchall())
np = per_doc("SELECT doc_id, count(*) FROM pages GROUP BY doc_id")
ns = per_doc("SELECT doc_id, count(*) FROM sections GROUP BY doc_id")
nh = per_doc("SELECT doc_id, count(*) FROM headfoot GROUP BY doc_id")
nf = per_doc("SELECT doc_id, count(*) FROM fts GROUP BY doc_id")
for i, p, s, tb, bl in c.execute("SELECT id, pages, sections, text_bytes, length(CAST(body AS BLOB)) FROM documents ORDER BY id"):
    print("doc", p, np.get(i, 0), s, ns.get(i, 0), nh.get(i, 0), tb, bl, nf.get(i, 0))
# rows whose document is gone would be half-deleted or half-written leftovers
orphans = c.execute("SELECT (SELECT count(*) FROM pages WHERE doc_id NOT IN (SELECT id FROM documents))"
                    " + (SELECT count(*) FROM sections WHERE doc_id NOT IN (SELECT id FROM documents))"
                    " + (SELECT count(*) FROM fts WHERE doc_id NOT IN (SELECT id FROM documents))").fetchone()[0]
print("orphans", orphans)
PY
}
REF=$(shape "$T/ref.db" | grep '^doc' | head -1)
echo "reference: $REF"
# duration of the writing phase of an uninterrupted run (after "parsed"), to spread the kills over it
"$TOOL" "$T/timing.db" "$DOC" --copies $COPIES --salt 999 | while read -r l; do echo "$(date +%s.%N) $l"; done >"$T/timing.log"
DUR=$(/usr/bin/python3 -c "
t=[float(l.split()[0]) for l in open('$T/timing.log')]
print(round(max(0.05, (t[-1] - t[0]) * 0.8), 3))")
echo "writing $COPIES copies takes about ${DUR}s"
DB=$T/crash.db
total_docs=0 mid=0
for r in $(seq 1 "$ROUNDS"); do
    "$TOOL" "$DB" "$DOC" --copies $COPIES --salt "$r" >"$T/run.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 600); do grep -q '^parsed' "$T/run.log" && break; sleep 0.01; done
    sleep "$(awk -v d="$DUR" -v r="$RANDOM" 'BEGIN { printf "%.3f", d * r / 32768 }')"
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    out=$(shape "$DB")
    if ! grep -q '^integrity ok$' <<<"$out"; then bad "round $r: integrity: $(head -1 <<<"$out")"; continue; fi
    ok
    if grep -q '^orphans 0$' <<<"$out"; then ok; else bad "round $r: $(grep '^orphans' <<<"$out") rows without a document"; fi
    n=0 broken=0
    while read -r line; do
        n=$((n+1))
        [ "$line" = "$REF" ] || { broken=$((broken+1)); echo "   round $r not whole: $line (want $REF)"; }
    done < <(grep '^doc' <<<"$out")
    if [ $broken -eq 0 ]; then ok; else bad "round $r: $broken half-written document(s)"; fi
    st=$(grep -c stored "$T/run.log")
    [ "$st" -lt "$COPIES" ] && mid=$((mid+1))
    echo "round $r: killed after $st of $COPIES stored; $n whole documents in the database"
    total_docs=$n
done
# the library's own check agrees, and the database still takes writes
if "$TOOL" "$DB" --check >/dev/null; then ok; else bad "smoldoc-ingest --check"; fi
if "$TOOL" "$DB" "$DOC" --copies 1 --salt 100000 >/dev/null; then ok; else bad "write after crashes"; fi
echo "documents after $ROUNDS kills: $total_docs; kills that landed while writing: $mid"
# enough kills must land mid-write for the test to mean something
if [ $mid -ge 5 ]; then ok; else bad "only $mid kills landed while writing"; fi
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
