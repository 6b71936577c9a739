#!/bin/sh
# Builds and runs the libFuzzer targets in tests/fuzz/ (clang, ASan + UBSan)
# against the core library compiled with clang into build/fuzz (never the gcc
# objects). Usage:
#   sh mk/fuzz.sh build              compile the library and every target
#   sh mk/fuzz.sh run SECONDS [T..]  fuzz each target (or those named) for SECONDS
#   sh mk/fuzz.sh smoke              a short run of each target (make fuzz-smoke)
#   sh mk/fuzz.sh smoke-run          the same without building (make test builds first)
# A target passes only when it ran at least FUZZ_MIN_RUNS inputs (default
# 1000 in the smoke, 10000 in a timed run): a target that crashes at start,
# hangs, or is starved of CPU does not pass for having found nothing.
# A run starts from the seed corpus tests/fuzz/corpus/TARGET/ (read only) and
# a work corpus in build/fuzz/corpus/TARGET/. A crash leaves its input in
# build/fuzz/artifacts/ and makes the script exit 1; turn that input into a
# file under tests/fuzz/regressions/TARGET/, where every run replays it.
set -eu

FUZZ=${FUZZ_BUILD:-build/fuzz}
CC=${FUZZ_CC:-clang}
SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
CFLAGS="-std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -O1 -g -Wall -Wextra -Wno-unused-parameter $SAN"
# The same pkg-config list as the Makefile's PKGS.
PKGS="rdkafka avro-c hiredis uuid jansson"
PKG_CFLAGS=$(pkg-config --cflags $PKGS)
PKG_LIBS=$(pkg-config --libs $PKGS)
VERSION=$(cat VERSION 2>/dev/null || echo 0.1.0)
CPPFLAGS="-Iinclude -I$FUZZ/gen -DOPS_VERSION=\"$VERSION\""

targets() {
    for f in tests/fuzz/fuzz_*.c; do basename "$f" .c; done
}

# Recompiles a source when it or any header is newer than its object.
compile() {
    src=$1 obj=$2 extra=$3
    if [ -f "$obj" ] && [ -z "$(find "$src" include lib/*.h "$FUZZ/gen" -newer "$obj" -type f 2>/dev/null | head -1)" ]; then
        return 0
    fi
    mkdir -p "$(dirname "$obj")"
    echo "  CLANG   $src"
    # shellcheck disable=SC2086
    $CC $CPPFLAGS $CFLAGS $extra $PKG_CFLAGS -c "$src" -o "$obj"
}

build() {
    OPSTREAM_DEPS="clang libclang-rt-14-dev" sh mk/deps.sh
    mkdir -p "$FUZZ/gen" "$FUZZ/obj" "$FUZZ/bin"
    if [ ! -f "$FUZZ/gen/schemas_gen.c" ] || [ -n "$(find schemas mk/embed-schemas.sh -newer "$FUZZ/gen/schemas_gen.c" -type f | head -1)" ]; then
        sh mk/embed-schemas.sh schemas > "$FUZZ/gen/schemas_gen.c.tmp"
        mv "$FUZZ/gen/schemas_gen.c.tmp" "$FUZZ/gen/schemas_gen.c"
    fi
    objs=""
    for src in lib/*.c "$FUZZ/gen/schemas_gen.c"; do
        obj="$FUZZ/obj/lib/$(basename "$src" .c).o"
        compile "$src" "$obj" "-fsanitize=fuzzer-no-link"
        objs="$objs $obj"
    done
    # shellcheck disable=SC2086
    rm -f "$FUZZ/libopstream-fuzz.a" && ar rcs "$FUZZ/libopstream-fuzz.a" $objs
    for t in $(targets); do
        compile "tests/fuzz/$t.c" "$FUZZ/obj/$t.o" "-fsanitize=fuzzer-no-link"
        echo "  LD      $FUZZ/bin/$t"
        # shellcheck disable=SC2086
        $CC $SAN -fsanitize=fuzzer -o "$FUZZ/bin/$t" "$FUZZ/obj/$t.o" "$FUZZ/libopstream-fuzz.a" \
            $PKG_LIBS -lpthread -lm
    done
}

# Replays the regression inputs of target $1 (files that once crashed it).
replay() {
    t=$1
    dir=tests/fuzz/regressions/$t
    [ -d "$dir" ] || return 0
    files=$(find "$dir" -type f | sort)
    [ -n "$files" ] || return 0
    # shellcheck disable=SC2086
    "$FUZZ/bin/$t" $files > "$FUZZ/logs/$t.replay.log" 2>&1 || {
        echo "fuzz: $t: a regression input crashes again (log: $FUZZ/logs/$t.replay.log)" >&2
        tail -30 "$FUZZ/logs/$t.replay.log" >&2
        return 1
    }
}

run() {
    secs=$1
    min=$2
    shift 2
    list=${*:-$(targets)}
    mkdir -p "$FUZZ/artifacts" "$FUZZ/logs"
    failed=""
    for t in $list; do
        mkdir -p "$FUZZ/corpus/$t"
        seeds=tests/fuzz/corpus/$t
        [ -d "$seeds" ] || seeds=""
        start=$(date +%s)
        if replay "$t" && "$FUZZ/bin/$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
            -max_len=65536 -print_final_stats=1 -artifact_prefix="$FUZZ/artifacts/$t-" \
            "$FUZZ/corpus/$t" $seeds > "$FUZZ/logs/$t.log" 2>&1; then
            runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$FUZZ/logs/$t.log")
            if [ "${runs:-0}" -ge "$min" ]; then
                echo "== fuzz/$t: ok (${runs} runs, $(($(date +%s) - start)) s)"
            else
                failed="$failed $t"
                echo "== fuzz/$t: FAILED (${runs:-no} runs in $(($(date +%s) - start)) s, fewer than the $min required; log: $FUZZ/logs/$t.log)"
            fi
        else
            failed="$failed $t"
            echo "== fuzz/$t: FAILED (log: $FUZZ/logs/$t.log, inputs: $FUZZ/artifacts/)"
            grep -E "ERROR|SUMMARY|runtime error|Test unit written" "$FUZZ/logs/$t.log" | head -10 || true
        fi
    done
    n_ok=0
    n_bad=0
    for t in $list; do
        case " $failed " in *" $t "*) n_bad=$((n_bad + 1)) ;; *) n_ok=$((n_ok + 1)) ;; esac
    done
    [ -n "${OPSTREAM_TEST_SUMMARY:-}" ] && echo "targets fuzz $n_ok $n_bad" >>"$OPSTREAM_TEST_SUMMARY"
    [ -z "$failed" ] || echo "fuzz: failed:$failed"
    echo "fuzz: $n_ok passed, $n_bad failed"
    [ -z "$failed" ]
}

cmd=${1:-smoke}
[ $# -gt 0 ] && shift
case "$cmd" in
    build) build ;;
    run)
        secs=${1:-60}
        [ $# -gt 0 ] && shift
        build
        run "$secs" "${FUZZ_MIN_RUNS:-10000}" "$@"
        ;;
    smoke) build; run "${FUZZ_SMOKE_SECONDS:-5}" "${FUZZ_MIN_RUNS:-1000}" ;;
    smoke-run) run "${FUZZ_SMOKE_SECONDS:-5}" "${FUZZ_MIN_RUNS:-1000}" ;;
    *) echo "usage: sh mk/fuzz.sh build | run SECONDS [TARGET...] | smoke | smoke-run" >&2; exit 2 ;;
esac
