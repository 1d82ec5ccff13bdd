#!/usr/bin/env bash
# bench.sh - `make bench`: our CPU engine against llama.cpp on the full-size random
# SmolLM3-3B (mkmodel --preset 3b --seed 1), BF16 and Q8_0, same threads: prefill
# tokens/s at 128- and 1024-token prompts, decode tokens/s at contexts 128 and 4096.
# Both engines read the same GGUF files (written once by `smolrun mkmodel --gguf`,
# cached next to the folder). Every measurement is one process per engine, the two
# engines alternating (ABBA) rep after rep, so machine noise falls on both; figures
# are medians over the reps. Also measures the streaming-copy bandwidth (before
# the runs and before each rep; the table takes the median) and the decode
# ceiling it implies (bandwidth / weight bytes read per token).
#
# env: BENCH_QUICK=1     prompt 128 and context 128 only, 16 decode steps (about 5
#                        minutes on an idle 2-core machine; the full run about 35-40)
#      BENCH_REPS=N      reps per figure (default 3)
#      BENCH_THREADS=T   threads for both engines (default 2)
#      BENCH_OURS_FLAGS  extra smolrun bench flags (default none). Both engines hold
#                        the weights in anonymous memory (llama_harness --load-mode none)
#      SMOLDOC_CACHE     cache folder (default ~/.cache/smoldoc)
#      BUILD             build folder (default build)
# Results: one JSON line per process in $SMOLDOC_CACHE/bench/<time>.jsonl; the
# table (tools/bench/table.py) is printed at the end, and again by
# tools/bench.sh --table FILE. The machine is shared: only side-by-side ratios count.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
QUICK=${BENCH_QUICK:-0}
REPS=${BENCH_REPS:-3}
T=${BENCH_THREADS:-2}
OURS_FLAGS=${BENCH_OURS_FLAGS-}
CACHE=${SMOLDOC_CACHE:-${HOME:-/root}/.cache/smoldoc}
SRC=$CACHE/3b
PY=/usr/bin/python3
t_start=$(date +%s)
log() { printf '[bench %4ds] %s\n' $(($(date +%s) - t_start)) "$*" >&2; }

# table FILE.jsonl: the summary of a results file (also: tools/bench.sh --table FILE)
table() {
    $PY tools/bench/table.py "$1" "$T" "$(nproc)" "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs)"
}
if [ "${1-}" = --table ]; then
    [ -f "${2-}" ] || { echo "usage: tools/bench.sh --table RESULTS.jsonl" >&2; exit 2; }
    table "$2"
    exit
fi

[ -x "$BUILD/smolrun" ] || { echo "bench: $BUILD/smolrun not built (make all)" >&2; exit 1; }
log "llama.cpp peer (tools/llama-peer.sh; the first build takes a while)"
eval "$(tools/llama-peer.sh)"

# ---- models: the folder and its two GGUFs, made once ----
mkdir -p "$CACHE/bench"
if [ ! -f "$SRC/model.safetensors" ]; then
    log "writing the random SmolLM3-3B folder $SRC (6.2 GB, once)"
    "$BUILD/smolrun" mkmodel --out "$SRC" --preset 3b --seed 1
fi
for ty in bf16 q8_0; do
    g=$CACHE/3b-$ty.gguf
    [ -f "$g" ] && continue
    # mkmodel is deterministic in its seed: the regenerated folder equals $SRC
    log "writing $g (once): regenerating the seed-1 folder in $CACHE/.3b-gguf-src, then converting"
    "$BUILD/smolrun" mkmodel --out "$CACHE/.3b-gguf-src" --preset 3b --seed 1 --gguf "$g" --gguf-type $ty
done
rm -rf "$CACHE/.3b-gguf-src"

# ---- memory bandwidth: streaming copy, T threads, STREAM convention (read + write bytes) ----
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat >"$work/bw.c" <<'EOF'
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
static int cmp(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return (x > y) - (x < y); }
int main(int argc, char **argv) {
    size_t n = (size_t)1 << 30; /* 1 GiB each way: far beyond any cache */
    int reps = 7, th = argc > 1 ? atoi(argv[1]) : 2;
    char *a = aligned_alloc(1 << 21, n), *b = aligned_alloc(1 << 21, n);
    if (!a || !b) return 1;
    memset(a, 1, n); memset(b, 2, n);
    double cp[7], rd[7];
    volatile long sink = 0;
    for (int r = 0; r < reps; r++) {
        double t0 = now();
#pragma omp parallel num_threads(th)
        {
            size_t k = (size_t)omp_get_thread_num(), m = n / (size_t)th;
            memcpy(b + k * m, a + k * m, m);
        }
        double t1 = now();
        long s = 0;
#pragma omp parallel for num_threads(th) reduction(+:s)
        for (size_t i = 0; i < n / 8; i += 8) { const long *p = (const long *)a + i; s += p[0] ^ p[1] ^ p[2] ^ p[3] ^ p[4] ^ p[5] ^ p[6] ^ p[7]; }
        double t2 = now();
        sink += s;
        cp[r] = 2.0 * n / (t1 - t0) / 1e9;
        rd[r] = (double)n / (t2 - t1) / 1e9;
    }
    qsort(cp, reps, sizeof *cp, cmp); qsort(rd, reps, sizeof *rd, cmp);
    printf("{\"copy_gbs\":%.2f,\"read_gbs\":%.2f,\"threads\":%d}\n", cp[reps / 2], rd[reps / 2], th);
    return (int)(sink & 0);
}
EOF
${CC:-cc} -O2 -march=native -fopenmp "$work/bw.c" -o "$work/bw"
log "memory bandwidth ($T threads, medians of 7)"
BW=$("$work/bw" "$T")
log "  $BW"
out=$CACHE/bench/$(date +%Y%m%d-%H%M%S).jsonl
echo "{\"tag\":\"bandwidth\",\"dtype\":\"-\",\"res\":$BW}" >"$out"

# ---- the runs ----
if [ "$QUICK" = 1 ]; then
    JOBS="short" GEN=16
else
    JOBS="short long" GEN=32
fi
# short: prefill 128, then decode $GEN at context 128
# long:  prefill 1024 (ours: one process), decode 16 at context 4096 (ours: a 4096 prefill first)
ours() { # tag dtype args...   (twice: --compute fast, llama.cpp's precision, and exact;
          #                    the 4096 context, whose prefill alone takes minutes, fast only)
    local tag=$1 ty=$2; shift 2
    ours1 "$tag" "$ty" --compute fast "$@"
    [ "$tag" = d4096 ] || ours1 "$tag-exact" "$ty" --compute exact "$@"
}
ours1() {
    local tag=$1 ty=$2; shift 2
    local res
    if ! res=$("$BUILD/smolrun" bench --model "$CACHE/3b-$ty.gguf" --backend cpu --threads "$T" --reps 1 $OURS_FLAGS "$@" 2>"$work/err"); then
        log "  ours $tag $ty FAILED: $(tail -2 "$work/err")"; return 0
    fi
    echo "{\"tag\":\"$tag\",\"dtype\":\"$ty\",\"res\":$res}" >>"$out"
    log "  ours  $tag $ty: $(echo "$res" | jq -c '{prefill_tps,decode_tps}')"
}
llama() { # tag dtype args...
    local tag=$1 ty=$2; shift 2
    local res
    if ! res=$("$LLAMA_HARNESS" "$CACHE/3b-$ty.gguf" --threads "$T" --runs 1 "$@" 2>"$work/err"); then
        log "  llama $tag $ty FAILED: $(tail -2 "$work/err")"; return 0
    fi
    echo "{\"tag\":\"$tag\",\"dtype\":\"$ty\",\"res\":$res}" >>"$out"
    log "  llama $tag $ty: $(echo "$res" | jq -c '{prefill_tps,decode_tps}')"
}
run_job() { # job dtype engine
    case $1-$3 in
    short-ours) ours short "$2" --prompt 128 --gen "$GEN" ;;
    short-llama) llama short "$2" --prefill 128 --ctx 128 --decode "$GEN" ;;
    long-ours) ours p1024 "$2" --prompt 1024 --gen 0
               ours d4096 "$2" --prompt 4096 --gen 16 ;;
    long-llama) llama long "$2" --prefill 1024 --ctx 4096 --decode 16 ;;
    esac
}
log "runs: $REPS reps x {bf16, q8_0} x {$JOBS}, $T threads, engines alternating; results in $out"
k=0
for r in $(seq 1 "$REPS"); do
    b=$("$work/bw" "$T") && echo "{\"tag\":\"bandwidth\",\"dtype\":\"-\",\"rep\":$r,\"res\":$b}" >>"$out"
    log "rep $r/$REPS: bandwidth $b"
    for ty in bf16 q8_0; do
        for j in $JOBS; do
            log "rep $r/$REPS $ty $j"
            if [ $((k % 2)) = 0 ]; then run_job $j $ty ours; run_job $j $ty llama
            else run_job $j $ty llama; run_job $j $ty ours; fi
            k=$((k + 1))
        done
    done
    el=$(($(date +%s) - t_start))
    [ "$r" -lt "$REPS" ] && log "rep $r done; about $((el * (REPS - r) / r / 60 + 1)) more minutes at this pace"
done

# ---- the table ----
log "done in $(($(date +%s) - t_start)) s"
table "$out"
echo "results: $out"
