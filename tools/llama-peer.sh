#!/usr/bin/env bash
# llama-peer.sh - builds (once) the llama.cpp benchmark peer outside the repository
# and our timing harness against it, then prints where everything is:
#   LLAMA_CACHE=... LLAMA_LIBDIR=... LLAMA_LIB=... LLAMA_INCLUDE=... GGML_INCLUDE=... LLAMA_HARNESS=...
# (one KEY=VALUE per line; `eval "$(tools/llama-peer.sh)"` imports them).
#
# llama.cpp comes from the npm package node-llama-cpp (pinned), whose command
# `source download --gpu false` compiles the llama.cpp source it carries as a git
# bundle natively for this CPU (GGML_NATIVE, no network; ~10-30 min on 2 cores).
# Nothing of llama.cpp is committed. Idempotent; safe to run concurrently (flock).
#
# usage: tools/llama-peer.sh [--check]
#   --check   do not install or build; exit 1 if the peer is not built yet
# env: SMOLDOC_LLAMA_CACHE (default ~/.cache/smoldoc/llama), NODE_LLAMA_CPP_VERSION (3.22.1)
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
VERSION=${NODE_LLAMA_CPP_VERSION:-3.22.1}
CACHE=${SMOLDOC_LLAMA_CACHE:-${HOME:-/root}/.cache/smoldoc/llama}
CHECK=0
[ "${1:-}" = "--check" ] && CHECK=1

PKG=$CACHE/node_modules/node-llama-cpp
SRC=$PKG/llama/llama.cpp

find_lib() {
    [ -d "$PKG/llama/localBuilds" ] || return 0
    # node-llama-cpp names it libllama.vX.Y.Z.so (SONAME too)
    find "$PKG/llama/localBuilds" -name 'libllama*.so' \( -type f -o -type l \) 2>/dev/null | sort | head -1
}

installed_version() {
    [ -f "$PKG/package.json" ] || return 0
    sed -nE 's/^[[:space:]]*"version":[[:space:]]*"([^"]+)".*/\1/p' "$PKG/package.json" | head -1
}

lib=$(find_lib)
if [ -z "$lib" ] || [ "$(installed_version)" != "$VERSION" ]; then
    if [ $CHECK = 1 ]; then
        echo "llama-peer: not built in $CACHE (run tools/llama-peer.sh)" >&2
        exit 1
    fi
    mkdir -p "$CACHE"
    exec 9>"$CACHE/.lock"
    flock 9
    lib=$(find_lib)
    if [ "$(installed_version)" != "$VERSION" ]; then
        echo "llama-peer: installing node-llama-cpp@$VERSION into $CACHE" >&2
        nice -n 19 npm install --prefix "$CACHE" --no-audit --no-fund --ignore-scripts \
            "node-llama-cpp@$VERSION" >"$CACHE/npm-install.log" 2>&1 ||
            { tail -20 "$CACHE/npm-install.log" >&2; exit 1; }
        lib=""
    fi
    if [ -z "$lib" ]; then
        echo "llama-peer: compiling llama.cpp natively (log: $CACHE/build.log); this takes a while" >&2
        (cd "$CACHE" && nice -n 19 npx --no-install --prefix "$CACHE" node-llama-cpp source download \
            --gpu false) >"$CACHE/build.log" 2>&1 || { tail -30 "$CACHE/build.log" >&2; exit 1; }
        lib=$(find_lib)
        [ -n "$lib" ] || { echo "llama-peer: build finished but no libllama*.so found" >&2; exit 1; }
    fi
    flock -u 9
fi

LIBDIR=$(cd "$(dirname "$lib")" && pwd)
INC=$SRC/include
GINC=$SRC/ggml/include
[ -f "$INC/llama.h" ] || { echo "llama-peer: $INC/llama.h missing" >&2; exit 1; }

# our harness, rebuilt when its source or the library changes
HARNESS=$CACHE/bin/llama_harness
HSRC=$REPO/tools/bench/llama_harness.c
if [ ! -x "$HARNESS" ] || [ "$HSRC" -nt "$HARNESS" ] || [ "$lib" -nt "$HARNESS" ]; then
    if [ $CHECK = 1 ] && [ ! -x "$HARNESS" ]; then
        echo "llama-peer: harness not built (run tools/llama-peer.sh)" >&2
        exit 1
    fi
    mkdir -p "$CACHE/bin"
    ${CC:-cc} -std=c11 -O2 -Wall -Wextra -Wshadow -Wstrict-prototypes -Werror -D_GNU_SOURCE \
        -I"$INC" -I"$GINC" "$HSRC" -o "$HARNESS.tmp" \
        "$lib" -Wl,-rpath,"$LIBDIR" -lm -pthread
    mv "$HARNESS.tmp" "$HARNESS"
fi

echo "LLAMA_CACHE=$CACHE"
echo "LLAMA_LIBDIR=$LIBDIR"
echo "LLAMA_LIB=$lib"
echo "LLAMA_INCLUDE=$INC"
echo "GGML_INCLUDE=$GINC"
echo "LLAMA_HARNESS=$HARNESS"
