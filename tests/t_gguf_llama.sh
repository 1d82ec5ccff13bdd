#!/usr/bin/env bash
# t_gguf_llama.sh - a tiny random SmolLM3 written by engine/gguf's writer loads in
# the llama.cpp peer, and llama.cpp's logits match a numpy forward pass in the HF
# convention (which un-permutes the Q/K rows), for F32, BF16 and Q8_0 weights.
# SKIPs when the peer is not built (tools/llama-peer.sh) or numpy is missing.
set -u
cd "$(dirname "$0")/.."
pass=0 fail=0 skip=0
ok() { pass=$((pass+1)); }
bad() { fail=$((fail+1)); echo "FAIL: $*"; }
finish() {
    if [ $skip -gt 0 ]; then echo "$pass passed, $fail failed, $skip skipped"; else echo "$pass passed, $fail failed"; fi
    [ $fail -eq 0 ]
    exit
}
if ! peer=$(tools/llama-peer.sh --check 2>&1); then
    echo "SKIP: llama.cpp peer not built ($peer)"; skip=1; finish
fi
eval "$peer"
GGUFPY=$LLAMA_CACHE/node_modules/node-llama-cpp/llama/llama.cpp/gguf-py
if ! /usr/bin/python3 -c 'import numpy' 2>/dev/null || [ ! -d "$GGUFPY" ]; then
    echo "SKIP: numpy or gguf-py missing"; skip=1; finish
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if ! ${CC:-cc} -std=c11 -O1 -Wall -Wextra -Werror -D_GNU_SOURCE -Iengine tools/bench/smollm3_tiny_gguf.c \
        engine/gguf.c engine/sd.c -lm -o "$tmp/tiny" 2>"$tmp/cc.log"; then
    bad "building smollm3_tiny_gguf: $(head -5 "$tmp/cc.log")"; finish
fi
for t in f32 bf16 q8_0; do
    m=$tmp/tiny-$t.gguf
    if ! "$tmp/tiny" "$m" $t >/dev/null; then bad "writing $t"; continue; fi
    # threads 1: the logits do not depend on it and 2 threads are slow on a busy box
    if ! out=$("$LLAMA_HARNESS" "$m" --threads 1 --prefill 24 --logits-out "$tmp/ll-$t.f32" 2>"$tmp/h.log"); then
        bad "llama.cpp did not load or run the $t file: $(tail -3 "$tmp/h.log")"; continue
    fi
    ok
    toks=$(echo "$out" | /usr/bin/python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["tokens"]))')
    case $t in f32) tol=3e-3;; *) tol=2e-2;; esac
    if res=$(PYTHONPATH=$GGUFPY /usr/bin/python3 tools/bench/smollm3_gguf_ref.py "$m" "$toks" "$tmp/ll-$t.f32" $tol 2>&1); then
        ok; echo "$res"
    else
        bad "logits ($t): $res"
    fi
done
# control: the reference without the Q/K un-permutation must not match at F32 tolerance
sed 's/return w.reshape(nh, R \/\/ 2, 2, -1).swapaxes(1, 2).reshape(w.shape)/return w/' \
    tools/bench/smollm3_gguf_ref.py >"$tmp/noperm.py"
if [ -f "$tmp/ll-f32.f32" ]; then
    out=$("$LLAMA_HARNESS" "$tmp/tiny-f32.gguf" --threads 1 --prefill 24 --logits-out "$tmp/ll-f32.f32" 2>/dev/null)
    toks=$(echo "$out" | /usr/bin/python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["tokens"]))')
    if PYTHONPATH=$GGUFPY /usr/bin/python3 "$tmp/noperm.py" "$tmp/tiny-f32.gguf" "$toks" "$tmp/ll-f32.f32" 3e-3 >/dev/null 2>&1; then
        bad "control: logits matched without un-permuting Q/K (test cannot tell)"
    else
        ok
    fi
fi
finish
