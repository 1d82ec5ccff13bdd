#!/usr/bin/env bash
# smolrun's engine options: the KV budget sizes the pool (too small is a clear
# error naming the sizes), --device and --backend are validated, --compute and
# --weights reject unknown values; each bad input exits non-zero with a message.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
SR=$BUILD/smolrun
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
pass=0 fail=0
ok() { pass=$((pass+1)); }
bad() { fail=$((fail+1)); echo "FAIL: $*"; }
# expect_err PATTERN cmd...: non-zero exit and PATTERN in stderr
expect_err() {
    local pat=$1; shift
    if "$@" >"$T/out" 2>"$T/err"; then bad "$* succeeded"; return; fi
    if grep -q -- "$pat" "$T/err"; then ok; else bad "$*: stderr lacks '$pat': $(head -2 "$T/err")"; fi
}

$SR mkmodel --out "$T/m" --preset tiny --seed 3 --vocab 512 2>/dev/null || { echo "FAIL: mkmodel"; exit 1; }
I="1 2 3 4 5 6 7 8"
# 1 MiB of KV holds 2048 tokens of this model (512 bytes each): enough here
if $SR logits --model "$T/m" --ids "$I" --out "$T/a.f32" --backend cpu --kv-budget 1 --block 16 2>"$T/err"; then ok
else bad "logits with --kv-budget 1: $(head -2 "$T/err")"; fi
if $SR logits --model "$T/m" --ids "$I" --out "$T/b.f32" --backend cpu 2>/dev/null && cmp -s "$T/a.f32" "$T/b.f32"; then ok
else bad "the KV budget changed the logits"; fi
# 8 tokens need one 16-token block; a pool smaller than one block is refused
expect_err "KV budget" $SR logits --model "$T/m" --ids "$I" --out "$T/c.f32" --backend cpu --kv-budget 1 --block 65536
expect_err "--kv-budget" $SR logits --model "$T/m" --ids "$I" --out "$T/c.f32" --kv-budget 0
expect_err "--device" $SR logits --model "$T/m" --ids "$I" --out "$T/c.f32" --device -1
expect_err "--device" $SR logits --model "$T/m" --ids "$I" --out "$T/c.f32" --device x
if $SR logits --model "$T/m" --ids "$I" --out "$T/d.f32" --backend cpu --device 3 2>/dev/null && cmp -s "$T/b.f32" "$T/d.f32"; then ok
else bad "--device with --backend cpu"; fi
expect_err "backend" $SR logits --model "$T/m" --ids "$I" --out "$T/c.f32" --backend tpu
expect_err "--compute" $SR logits --model "$T/m" --ids "$I" --out "$T/c.f32" --compute fp4
expect_err "--weights" $SR logits --model "$T/m" --ids "$I" --out "$T/c.f32" --weights q4_k
if [ ! -e /dev/nvidiactl ]; then
    expect_err "" $SR logits --model "$T/m" --ids "$I" --out "$T/c.f32" --backend cuda
fi
# the fast and bf16 spellings are the same mode
$SR logits --model "$T/m" --ids "$I" --out "$T/f.f32" --compute fast 2>/dev/null &&
    $SR logits --model "$T/m" --ids "$I" --out "$T/g.f32" --compute bf16 2>/dev/null && cmp -s "$T/f.f32" "$T/g.f32" && ok ||
    bad "--compute bf16 is not --compute fast"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
