#!/usr/bin/env bash
# t_gguf_engine.sh - `smolrun mkmodel --gguf` files load in the llama.cpp peer and
# llama.cpp's logits on them match our engine's on the safetensors folder (F32,
# BF16, Q8_0; tied and untied; head_dim != hidden/heads; YaRN; the real tokenizer
# vocabulary); our engine on the same GGUF matches the folder too.
# SKIPs when the peer is not built (tools/llama-peer.sh) or numpy is missing;
# tests/test_model_gguf (no peer needed) always runs.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
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
if ! /usr/bin/python3 -c 'import numpy' 2>/dev/null; then echo "SKIP: numpy missing"; skip=1; finish; fi
[ -x "$BUILD/smolrun" ] || { bad "$BUILD/smolrun not built"; finish; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# compare A REF TOL MIN_ARGMAX -> prints the figures; fails beyond the bounds
compare() {
    /usr/bin/python3 - "$@" <<'EOF'
import sys, numpy as np
a, r = (np.fromfile(p, np.float32) for p in sys.argv[1:3])
tol, agree_min, V = float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
if a.size != r.size or a.size % V:
    print(f"sizes differ: {a.size} vs {r.size}"); sys.exit(1)
a, r = a.reshape(-1, V), r.reshape(-1, V)
rel = float(np.abs(a - r).max() / np.abs(r).max())
agree = float((a.argmax(1) == r.argmax(1)).mean())
print(f"max rel err {rel:.3g}, argmax agreement {100*agree:.1f}%")
sys.exit(0 if rel <= tol and agree >= agree_min else 1)
EOF
}

# case NAME GGUF_TYPE TOL MIN_AGREE MKMODEL_ARGS...
run_case() {
    local name=$1 ty=$2 tol=$3 agree=$4; shift 4
    local dir=$tmp/$name gg=$tmp/$name.gguf
    if ! "$BUILD/smolrun" mkmodel --out "$dir" --preset tiny --gguf "$gg" --gguf-type "$ty" "$@" 2>"$tmp/mk.log"; then
        bad "$name: mkmodel --gguf: $(tail -2 "$tmp/mk.log")"; return
    fi
    ok
    local out
    if ! out=$("$LLAMA_HARNESS" "$gg" --threads 1 --prefill 24 --logits-out "$tmp/ll.f32" 2>"$tmp/h.log"); then
        bad "$name: llama.cpp did not load or run the file: $(tail -3 "$tmp/h.log")"; return
    fi
    ok
    local ids V
    ids=$(echo "$out" | /usr/bin/python3 -c 'import json,sys; print(" ".join(map(str, json.load(sys.stdin)["tokens"])))')
    V=$(echo "$out" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["n_vocab"])')
    if ! "$BUILD/smolrun" logits --model "$dir" --backend cpu --kv f32 --threads 1 --all --ids "$ids" --out "$tmp/ours.f32" 2>"$tmp/o.log"; then
        bad "$name: smolrun logits (folder): $(tail -2 "$tmp/o.log")"; return
    fi
    local res
    if res=$(compare "$tmp/ll.f32" "$tmp/ours.f32" "$tol" "$agree" "$V" 2>&1); then ok; echo "$name: llama.cpp(GGUF $ty) vs ours(folder): $res"
    else bad "$name: llama.cpp(GGUF $ty) vs ours(folder): $res"; fi
    # ours on the GGUF against ours on the folder (exact for f32/bf16 weights).
    # --mmap: the GGUF loader already copies its weights into anonymous memory
    # (model_materialize does not take GGUF models yet).
    local gtol=1e-5 gagree=1
    [ "$ty" = q8_0 ] && gtol=0.02 gagree=0.95
    if ! "$BUILD/smolrun" logits --model "$gg" --mmap --backend cpu --kv f32 --threads 1 --all --ids "$ids" \
            --out "$tmp/oursg.f32" 2>"$tmp/o.log"; then
        bad "$name: smolrun logits (GGUF): $(tail -2 "$tmp/o.log")"; return
    fi
    if res=$(compare "$tmp/oursg.f32" "$tmp/ours.f32" "$gtol" "$gagree" "$V" 2>&1); then ok; echo "$name: ours(GGUF $ty) vs ours(folder): $res"
    else bad "$name: ours(GGUF $ty) vs ours(folder): $res"; fi
}

# llama.cpp keeps its KV cache in F16 and, for BF16/Q8_0 weights, rounds
# activations to BF16/Q8_0 in the products: hence the looser bounds there.
run_case f32 f32 3e-3 1 --seed 11
run_case bf16 bf16 2e-2 1 --seed 12
run_case q8_0 q8_0 4e-2 0.9 --seed 13
run_case untied-hd32 f32 3e-3 1 --seed 14 --untied --head-dim 32
run_case yarn f32 3e-3 1 --seed 15 --yarn 4 --orig 1024
if [ -f tests/fixtures/gen/tokenizer.json ]; then
    run_case tokenizer bf16 2e-2 1 --seed 16 --tokenizer tests/fixtures/gen/tokenizer.json
else
    echo "SKIP: tests/fixtures/gen/tokenizer.json not built (tools/mk-tokenizer-fixture.py)"; skip=$((skip+1))
fi
# mkmodel refuses a RoPE layout llama.cpp cannot express (it hard-codes every 4th layer NoPE)
if "$BUILD/smolrun" mkmodel --out "$tmp/norope" --preset tiny --rope-interval 0 --gguf "$tmp/norope.gguf" 2>"$tmp/mk.log"; then
    bad "mkmodel --gguf accepted --rope-interval 0"
elif grep -q "every 4th layer" "$tmp/mk.log"; then ok
else bad "mkmodel --gguf --rope-interval 0: unexpected message: $(cat "$tmp/mk.log")"; fi
finish
