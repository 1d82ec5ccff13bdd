#!/usr/bin/env bash
# t_ingest_corpus.sh - every PDF in the corpus through smoldoc-inspect: no crash, no
# hang; each is ingested or rejected with a clear error; encrypted ones open with
# the MANIFEST.tsv passwords and are refused without. Then the same under
# AddressSanitizer+UBSan (all PDFs in the forked child, a subset in-process too)
# and valgrind (in-process; a subset of small files by default, all of them with
# SMOLDOC_FULL=1, which takes several minutes).
# Prints "N passed, N failed" and exits non-zero on failure.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
CORPUS=${SMOLDOC_CORPUS:-../shared/corpus}
[ -f "$CORPUS/MANIFEST.tsv" ] || CORPUS=/work/shared/corpus
pass=0 fail=0 skip=0
ok() { pass=$((pass+1)); }
bad() { fail=$((fail+1)); echo "FAIL $*"; }
if [ ! -f "$CORPUS/MANIFEST.tsv" ]; then
    echo "SKIP: corpus not found"; echo "0 passed, 0 failed, 1 skipped"; exit 0
fi
INSPECT=$BUILD/smoldoc-inspect
[ -x "$INSPECT" ] || make -s "$INSPECT" >/dev/null 2>&1
if [ ! -x "$INSPECT" ]; then bad "no $INSPECT"; echo "$pass passed, $fail failed"; exit 1; fi
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

password_for() { # file relative to corpus -> password from the MANIFEST note, or ""
    awk -F'\t' -v f="$1" '$1 == f && $6 ~ /password:/ { sub(/.*password: */, "", $6); print $6 }' "$CORPUS/MANIFEST.tsv"
}

mapfile -t PDFS < <(cd "$CORPUS" && find . -type f -iname '*.pdf' | sed 's|^\./||' | sort)
echo "corpus: ${#PDFS[@]} PDFs"

# run_one LABEL RUNNER... -- FILE: status 0 (ingested), 1 (clean error) or 3 (password) are fine;
# a signal, a timeout (124) or a sanitizer/valgrind error code is a failure.
check_file() {
    local mode=$1 rel=$2; shift 2
    local f="$CORPUS/$rel" pw; pw=$(password_for "$rel")
    local args=(--json)
    [ -n "$pw" ] && args+=(--password "$pw")
    timeout 300 "$@" "$f" "${args[@]}" >"$T/out.json" 2>"$T/err.txt"
    local rc=$?
    case $rc in
        0) if /usr/bin/python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["quality"]["pages"]==len(d["pages"])' "$T/out.json" 2>/dev/null; then
               ok; printf '%-8s ok    %s\n' "$mode" "$rel"
           else bad "$mode $rel: exit 0 but bad JSON"; fi ;;
        1) if grep -q '"message"' "$T/out.json"; then ok; printf '%-8s error %s: %s\n' "$mode" "$rel" "$(tail -1 "$T/err.txt")"
           else bad "$mode $rel: exit 1 without an error message"; fi ;;
        3) bad "$mode $rel: password refused (${pw:-none given})";;
        *) bad "$mode $rel: exit $rc (crash, hang or checker error)"; tail -5 "$T/err.txt";;
    esac
    if [ -n "$pw" ] && { [ "$mode" = plain ] || [ "$mode" = valgrind ]; }; then # no password and a wrong one: SD_EPASSWORD, exit 3
        "$@" "$f" --json >/dev/null 2>"$T/e2"; local r1=$?
        "$@" "$f" --json --password "not-$pw" >/dev/null 2>"$T/e3"; local r2=$?
        if [ $r1 -eq 3 ] && grep -q 'password is needed' "$T/e2" && [ $r2 -eq 3 ] && grep -q 'wrong password' "$T/e3"; then ok
        else bad "$rel: without/wrong password gave exit $r1/$r2"; fi
    fi
}

# 1. plain build, isolated extraction (the default)
for rel in "${PDFS[@]}"; do check_file plain "$rel" "$INSPECT"; done
# the scanned file reports its pages without text
"$INSPECT" "$CORPUS/scanned/issue7229.pdf" --json >"$T/scan.json" 2>/dev/null
if /usr/bin/python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["quality"]["pages_without_text"]; assert any("OCR needed" in w for w in d["warnings"])' "$T/scan.json"; then ok
else bad "scanned: no-text-layer pages not reported"; fi

# 2. AddressSanitizer + UBSan: a private build of ingest + the tool
ASAN_BIN=build-asan/ingest-check/smoldoc-inspect
if [ ! -x "$ASAN_BIN" ] || [ -n "$(find ingest engine/sd.c tools/smoldoc-inspect.c -newer "$ASAN_BIN" 2>/dev/null | head -1)" ]; then
    mkdir -p "$(dirname "$ASAN_BIN")"
    cc -std=c11 -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -D_GNU_SOURCE -pthread \
       -Iengine -Iingest -Istore $(pkg-config --cflags jansson poppler-glib) \
       engine/sd.c ingest/*.c tools/smoldoc-inspect.c $(pkg-config --libs jansson poppler-glib) -lm \
       -o "$ASAN_BIN" 2>"$T/asan-build.txt" || { cat "$T/asan-build.txt"; }
fi
if [ -x "$ASAN_BIN" ]; then
    mkdir -p "$T/asan"
    export ASAN_OPTIONS="log_path=$T/asan/log:detect_leaks=1:abort_on_error=0"
    export UBSAN_OPTIONS="log_path=$T/asan/log:print_stacktrace=1:halt_on_error=1"
    export LSAN_OPTIONS="suppressions=$PWD/tests/reference/lsan.supp:print_suppressions=0"
    for rel in "${PDFS[@]}"; do
        check_file asan "$rel" "$ASAN_BIN"
        case $rel in broken/*|encrypted/*|groundtruth/*|scanned/*|contracts/M*) # in-process path too, on a subset
            check_file asan-in "$rel" "$ASAN_BIN" --no-isolate;; esac
    done
    unset ASAN_OPTIONS UBSAN_OPTIONS LSAN_OPTIONS
    if ls "$T/asan"/log* >/dev/null 2>&1; then bad "sanitizer reports:"; head -60 "$T"/asan/log*; else ok; echo "asan: no reports"; fi
else
    bad "could not build the ASan binary"
fi

# 3. valgrind (in-process extraction so poppler runs under it directly)
if command -v valgrind >/dev/null; then
    if [ -n "${SMOLDOC_FULL:-}" ]; then VG=("${PDFS[@]}")
    else # small files: all under 200 KB, plus the broken/encrypted/scanned ones
        mapfile -t VG < <(cd "$CORPUS" && for r in "${PDFS[@]}"; do
            s=$(stat -c %s "$r"); case $r in broken/*|encrypted/*|groundtruth/*) echo "$r";; *) [ "$s" -lt 80000 ] && echo "$r";; esac; done)
    fi
    echo "valgrind: ${#VG[@]} files${SMOLDOC_FULL:+ (full)}"
    for rel in "${VG[@]}"; do
        check_file valgrind "$rel" valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
            --suppressions=tests/reference/valgrind.supp "$INSPECT" --no-isolate --timeout 0
    done
else
    skip=$((skip+1)); echo "SKIP: valgrind not installed"
fi

if [ $skip -gt 0 ]; then echo "$pass passed, $fail failed, $skip skipped"; else echo "$pass passed, $fail failed"; fi
[ $fail -eq 0 ]
