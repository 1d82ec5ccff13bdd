#!/usr/bin/env bash
# demo.sh - the main job end to end: builds everything, starts smoldocd on an
# ipc endpoint in a temporary data folder, ingests a sample CUAD contract,
# runs summarize, clauses and ask with the C client, prints the results with
# their timings, and stops the daemon.
#
# usage: tools/demo.sh [--model DIR] [--contract FILE] [--keep]
#   --model DIR      a SmolLM3 model folder (config.json, *.safetensors,
#                    tokenizer.json). Without it a random-weight model is made
#                    with `smolrun mkmodel` and every answer is MEANINGLESS text.
#   --contract FILE  the document (default: a short CUAD contract from
#                    ../shared/corpus/contracts, relative to the repository)
#   --keep           keep the temporary data folder
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BUILD=${BUILD:-build}
MODEL="" CONTRACT="" KEEP=0
while [ $# -gt 0 ]; do
    case "$1" in
        --model) MODEL=$2; shift 2;;
        --contract) CONTRACT=$2; shift 2;;
        --keep) KEEP=1; shift;;
        -h|--help) sed -n 2,14p "$0"; exit 0;;
        *) echo "demo.sh: unknown argument $1" >&2; exit 1;;
    esac
done

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "building (make -j$(nproc 2>/dev/null || echo 2))"
make -j"$(nproc 2>/dev/null || echo 2)" "$BUILD/smoldocd" "$BUILD/smoldoc" "$BUILD/smolrun" >/dev/null

TMP=$(mktemp -d /tmp/smoldoc-demo.XXXXXX)
DATA=$TMP/data
PID=""
cleanup() {
    if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then kill -TERM "$PID"; wait "$PID" || true; fi
    if [ "$KEEP" = 1 ]; then echo "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT

RANDOM_MODEL=0
if [ -z "$MODEL" ]; then
    RANDOM_MODEL=1
    TOK=$ROOT/tests/fixtures/gen/tokenizer.json
    if [ ! -f "$TOK" ]; then
        say "making the tokenizer fixture"
        /usr/bin/python3 tools/mk-tokenizer-fixture.py --quiet || {
            echo "demo.sh: no tokenizer: run 'npm ci' in tests/node, or pass --model DIR" >&2; exit 1; }
    fi
    MODEL=$TMP/model
    PRESET=${DEMO_PRESET:-tiny}
    say "no --model given: making a RANDOM-WEIGHT '$PRESET' model"
    "$BUILD/smolrun" mkmodel --out "$MODEL" --preset "$PRESET" --seed 42 --tokenizer "$TOK"
    cat <<'WARN'

  *********************************************************************
  *  THIS MODEL HAS RANDOM WEIGHTS. Every summary, clause and answer  *
  *  below is MEANINGLESS TEXT. The run shows the machinery working:  *
  *  ingest, prefix reuse, streaming, timings. For real answers run   *
  *  tools/demo.sh --model /path/to/SmolLM3-3B                        *
  *********************************************************************
WARN
fi

if [ -z "$CONTRACT" ]; then
    CORPUS=$ROOT/../shared/corpus/contracts
    CONTRACT=$CORPUS/SECURIANFUNDSTRUST_05_01_2012-EX-99.28.H.9-NET_INVESTMENT_INCOME_MAINTENANCE_AGREEMENT.PDF
    [ -f "$CONTRACT" ] || CONTRACT=$(ls -S "$CORPUS"/*.PDF "$CORPUS"/*.pdf 2>/dev/null | tail -1 || true)
fi
[ -f "$CONTRACT" ] || { echo "demo.sh: no contract found (pass --contract FILE)" >&2; exit 1; }

say "starting smoldocd (data $DATA)"
"$BUILD/smoldocd" --model "$MODEL" --data "$DATA" --log-file "$TMP/smoldocd.log" &
PID=$!
export SMOLDOC_ENDPOINT="ipc://$DATA/smoldocd.sock"
for _ in $(seq 600); do
    "$BUILD/smoldoc" -q --timeout 1 ping >/dev/null 2>&1 && break
    kill -0 "$PID" 2>/dev/null || { echo "smoldocd failed to start:"; tail -20 "$TMP/smoldocd.log"; exit 1; }
    sleep 0.2
done
"$BUILD/smoldoc" ping
"$BUILD/smoldoc" status | head -20 || true

say "ingest $(basename "$CONTRACT")"
DOC=$("$BUILD/smoldoc" ingest "$CONTRACT" | awk '{print $1; exit}')
"$BUILD/smoldoc" show "$DOC" | head -15

MAXT=${DEMO_MAX_TOKENS:-}
if [ "$RANDOM_MODEL" = 1 ]; then MAXT=${MAXT:-48}; fi
OPTS=()
[ -n "$MAXT" ] && OPTS+=(--max-tokens "$MAXT")

say "summarize (the first query prefills the document prefix)"
"$BUILD/smoldoc" summarize "$DOC" "${OPTS[@]}"

say "clauses (the 41 CUAD categories; quotes located in the text or marked unverified)"
COPTS=()
[ "$RANDOM_MODEL" = 1 ] && COPTS+=(--max-tokens 16)
"$BUILD/smoldoc" clauses "$DOC" "${COPTS[@]}" | head -60

say "ask (reuses the prefix: only the question is prefilled)"
"$BUILD/smoldoc" ask "$DOC" "Who are the parties, and which law governs this agreement?" "${OPTS[@]}"

say "timings as JSON"
"$BUILD/smoldoc" --json ask "$DOC" "When does the agreement terminate?" "${OPTS[@]}" | tail -1 |
    /usr/bin/python3 -c 'import json,sys; r=json.loads(sys.stdin.read()); print(json.dumps(r["timings"], indent=1))'

say "stopping smoldocd"
kill -TERM "$PID"
wait "$PID" && echo "smoldocd stopped cleanly"
PID=""
[ "$RANDOM_MODEL" = 1 ] && echo "(reminder: random-weight model, the text above is meaningless)"
exit 0
