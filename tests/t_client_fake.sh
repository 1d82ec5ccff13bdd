#!/usr/bin/env bash
# t_client_fake.sh - drives the C client (build/smoldoc) and the Python client
# against tests/fake_smoldocd.py (a ROUTER speaking protocol v1): every command,
# streamed tokens, progress, --json, exit codes, Ctrl-C cancel, CurveZMQ keys.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
PY=/usr/bin/python3
pass=0 fail=0
ok() { pass=$((pass+1)); }
bad() { fail=$((fail+1)); echo "FAIL: $*"; }
check() { local name=$1; shift; if "$@"; then ok; else bad "$name"; fi; }

tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; rm -rf "$tmp"; }
trap cleanup EXIT

SMOLDOC=$BUILD/smoldoc
if [ ! -x "$SMOLDOC" ]; then
    # The library may not build while others are mid-edit; the client needs
    # only the protocol module and sd.c.
    SMOLDOC=$tmp/smoldoc
    cc -std=c11 -O2 -D_GNU_SOURCE -Iengine -Iprotocol clients/smoldoc.c protocol/protocol.c \
        protocol/protocol_client.c engine/sd.c -ljansson -lzmq -o "$SMOLDOC" || { echo "0 passed, 1 failed"; exit 1; }
fi

start_fake() { # ENDPOINT [args]: starts the fake daemon, waits for "ready"
    $PY tests/fake_smoldocd.py "$@" >"$tmp/fake.out" 2>"$tmp/fake.err" &
    pids+=($!)
    for _ in $(seq 50); do grep -q ready "$tmp/fake.out" 2>/dev/null && return 0; sleep 0.1; done
    echo "fake daemon did not start"; cat "$tmp/fake.err"; return 1
}

export SMOLDOC_DATA=$tmp/data
mkdir -p "$SMOLDOC_DATA"
unset SMOLDOC_ENDPOINT
start_fake "ipc://$SMOLDOC_DATA/smoldocd.sock" || { echo "0 passed, 1 failed"; exit 1; }

# ping through the default endpoint (from SMOLDOC_DATA)
out=$("$SMOLDOC" ping); rc=$?
check "ping rc" [ $rc -eq 0 ]
check "ping output" grep -q "^pong from ipc://$SMOLDOC_DATA/smoldocd.sock" <<<"$out"

# ls
out=$("$SMOLDOC" ls); rc=$?
check "ls rc" [ $rc -eq 0 ]
check "ls lists sample.pdf" grep -qE '^1 +3 +2026-01-01T00:00:00Z +sample.pdf' <<<"$out"

# ingest: the bytes arrive intact (sha256 computed by the fake)
head -c 300000 /dev/urandom >"$tmp/doc.bin"
want=$(sha256sum "$tmp/doc.bin" | cut -d' ' -f1)
out=$("$SMOLDOC" --json ingest "$tmp/doc.bin"); rc=$?
check "ingest rc" [ $rc -eq 0 ]
got=$($PY -c 'import json,sys; print(json.loads(sys.stdin.readline())["sha256"])' <<<"$out")
check "ingest sha256 round trip" [ "$got" = "$want" ]
check "ingest name" grep -q '"name": *"doc.bin"' <<<"$out"
out=$("$SMOLDOC" ingest "$tmp/doc.bin" "$tmp/doc.bin"); rc=$?
check "ingest two files" [ "$(grep -c '^1	' <<<"$out")" -eq 2 ]
"$SMOLDOC" ingest "$tmp/missing.pdf" 2>/dev/null; rc=$?
check "ingest missing file -> 1" [ $rc -eq 1 ]

# ask: tokens streamed to stdout, pages cited, options encoded
out=$("$SMOLDOC" -q ask 1 "What is it?"); rc=$?
check "ask rc" [ $rc -eq 0 ]
check "ask streamed text" [ "$out" = "The answer is 42.
(pages: 3)" ]
out=$("$SMOLDOC" --json --think --max-tokens 5 --temp 0 --seed 7 --deadline 900 ask 1 "Q?"); rc=$?
check "ask --json rc" [ $rc -eq 0 ]
echo "$out" >"$tmp/ask.json"
check "ask options on the wire" $PY -c '
import json,sys
r = json.load(open(sys.argv[1]))
e = r["echo"]
assert r["answer"] == "The answer is 42."
assert e["think"] is True and e["max_tokens"] == 5 and e["temperature"] == 0 and e["seed"] == 7, e
assert e["deadline_ms"] == 900 and e["question"] == "Q?" and e["doc"] == "1" and e["v"] == 1, e
assert "top_p" not in e  # defaults are not sent
' "$tmp/ask.json"

# summarize with style
out=$("$SMOLDOC" --json summarize 1 --style bullets); rc=$?
check "summarize rc" [ $rc -eq 0 ]
check "summarize style on the wire" grep -q '"style": *"bullets"' <<<"$out"

# clauses with categories
out=$("$SMOLDOC" -q clauses 1 --category "Governing Law" --category "Non-Compete"); rc=$?
check "clauses rc" [ $rc -eq 0 ]
check "clauses output" [ "$out" = 'Governing Law:
  "quote for Governing Law" (p. 2)
Non-Compete: (not found)' ]

# show / rm / status
out=$("$SMOLDOC" show 1 --pages); rc=$?
check "show rc" [ $rc -eq 0 ]
check "show sections and pages" bash -c 'grep -q "p.2    2. Law" <<<"$1" && grep -q -- "--- page 2 ---" <<<"$1"' _ "$out"
"$SMOLDOC" show 99 2>"$tmp/err"; rc=$?
check "show unknown -> 4" [ $rc -eq 4 ]
check "not_found message" grep -q "not_found: no document 99" "$tmp/err"
"$SMOLDOC" rm 99 2>/dev/null; rc=$?
check "rm unknown -> 4" [ $rc -eq 4 ]
out=$("$SMOLDOC" rm 1); rc=$?
check "rm" [ $rc -eq 0 ] && check "rm output" [ "$out" = "deleted 1" ]
"$SMOLDOC" ask busy q 2>/dev/null; rc=$?
check "busy -> 5" [ $rc -eq 5 ]
"$SMOLDOC" summarize boom 2>/dev/null; rc=$?
check "server error -> 3" [ $rc -eq 3 ]
out=$("$SMOLDOC" --json status); rc=$?
check "status" [ $rc -eq 0 ] && check "status json" grep -q '"server": *"fake"' <<<"$out"

# usage errors
"$SMOLDOC" 2>/dev/null; check "no command -> 1" [ $? -eq 1 ]
"$SMOLDOC" frobnicate 2>/dev/null; check "unknown command -> 1" [ $? -eq 1 ]
"$SMOLDOC" ask 1 2>/dev/null; check "ask without question -> 1" [ $? -eq 1 ]
"$SMOLDOC" --temp hot ping 2>/dev/null; check "bad --temp -> 1" [ $? -eq 1 ]
"$SMOLDOC" --help | grep -q "4  document (or request) not found"; check "--help exit codes" [ $? -eq 0 ]

# no daemon: a missing ipc socket fails at once; a silent tcp peer times out
"$SMOLDOC" --endpoint "ipc://$tmp/nope.sock" ping 2>/dev/null; check "missing socket -> 2" [ $? -eq 2 ]
t0=$(date +%s.%N)
"$SMOLDOC" --endpoint tcp://127.0.0.1:1 --timeout 1 ping 2>/dev/null; rc=$?
t1=$(date +%s.%N)
check "tcp timeout -> 2" [ $rc -eq 2 ]
check "timeout honoured" $PY -c "import sys; sys.exit(0 if $t1 - $t0 < 3 else 1)"

# Ctrl-C during a streamed answer: the client sends cancel, the request ends
"$SMOLDOC" ask 1 slow >"$tmp/slow.out" 2>"$tmp/slow.err" &
cpid=$!
sleep 1
kill -INT $cpid
wait $cpid; rc=$?
check "interrupt -> 130" [ $rc -eq 130 ]
check "streamed before interrupt" grep -q "tick" "$tmp/slow.out"
check "canceled by daemon" grep -q "canceled: canceled by request" "$tmp/slow.err"

# environment override of the endpoint
SMOLDOC_ENDPOINT="ipc://$SMOLDOC_DATA/smoldocd.sock" SMOLDOC_DATA=/nonexistent "$SMOLDOC" ping >/dev/null
check "SMOLDOC_ENDPOINT" [ $? -eq 0 ]

# ---- Python client against the same fake ----
PYC="$PY clients/python/smoldoc_client.py"
out=$($PYC --json ping); check "py ping" [ "$out" = '{"pong": true, "version": 1}' ]
out=$($PYC --json ingest "$tmp/doc.bin")
check "py ingest sha256" grep -q "\"sha256\": \"$want\"" <<<"$out"
out=$($PYC ask 1 "What?"); check "py ask streamed" [ "$out" = "The answer is 42." ]
$PYC show 99 2>/dev/null; check "py not_found -> 4" [ $? -eq 4 ]
$PYC ask busy q 2>/dev/null; check "py busy -> 5" [ $? -eq 5 ]
$PYC --endpoint tcp://127.0.0.1:1 --timeout 0.5 ping 2>/dev/null; check "py timeout -> 2" [ $? -eq 2 ]
check "py API" env PYTHONPATH=clients/python $PY -c '
import smoldoc_client as s
toks, prog = [], []
with s.Client() as c:
    r = c.ask("1", "q", on_token=toks.append, on_progress=lambda *a: prog.append(a), temperature=0.1)
    assert "".join(toks) == "The answer is 42." and r["echo"]["temperature"] == 0.1, r
    assert prog[-1] == ("prefill", 100, 100), prog
    r = c.extract("1", categories=["A", {"name": "B", "description": "b"}])
    assert [x["category"] for x in r["clauses"]] == ["A", "B"], r
    assert c.list()["total"] == 1 and c.get("1", pages=True)["page_text"][1] == "second page text"
    try:
        c.delete("nope"); raise SystemExit("no error")
    except s.SmoldocError as e:
        assert e.code == "not_found"
'

# ---- CurveZMQ over tcp ----
if $PY -c 'import zmq,sys; sys.exit(0 if zmq.has("curve") else 1)'; then
    out=$("$SMOLDOC" keygen "$tmp/server"); rc=$?
    check "keygen" [ $rc -eq 0 ]
    check "keygen modes" [ "$(stat -c %a "$tmp/server.key")" = 600 ]
    "$SMOLDOC" keygen "$tmp/server" 2>/dev/null; check "keygen no overwrite" [ $? -ne 0 ]
    "$SMOLDOC" keygen "$tmp/client" >/dev/null
    port=$((20000 + RANDOM % 20000))
    start_fake "tcp://127.0.0.1:$port" --curve "$tmp/server.key" || bad "curve fake start"
    "$SMOLDOC" --endpoint "tcp://127.0.0.1:$port" --server-key "$tmp/server.pub" \
        --client-key "$tmp/client.key" ping >/dev/null
    check "curve ping with keys" [ $? -eq 0 ]
    "$SMOLDOC" --endpoint "tcp://127.0.0.1:$port" --server-key "$tmp/server.pub" ping >/dev/null
    check "curve ping, throwaway client key" [ $? -eq 0 ]
    "$SMOLDOC" --endpoint "tcp://127.0.0.1:$port" --timeout 1 ping 2>/dev/null
    check "plaintext client to curve server -> 2" [ $? -eq 2 ]
    "$SMOLDOC" --endpoint "tcp://127.0.0.1:$port" --server-key "$tmp/client.pub" --timeout 1 ping 2>/dev/null
    check "wrong server key -> 2" [ $? -eq 2 ]
    out=$($PYC --json --endpoint "tcp://127.0.0.1:$port" --server-key "$tmp/server.pub" \
          --client-key "$tmp/client.key" ping)
    check "py curve ping" [ "$out" = '{"pong": true, "version": 1}' ]
else
    echo "SKIP: libzmq without CURVE"
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
