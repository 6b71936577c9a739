#!/usr/bin/env bash
# Runs test binaries, several at once, each with its own log, and prints one
# line per binary as it ends, then what failed and where, then a closing
# "SUITE: N passed, N failed" line (binaries). Exits 1 when any failed; a
# binary that does not exist, crashes or runs past the time limit fails.
#
#   sh mk/run-tests.sh SUITE BIN...                  (the suite's binaries)
#   sh mk/run-tests.sh [-j N] --suite S [--bin-dir D] [--env V=X] BIN... [--suite S2 ...]
#
# --suite names the suite of the binaries after it, --bin-dir the
# OPSTREAM_BIN_DIR they run with (default: the one in the environment),
# --env one more variable they run with (--env may repeat; a new --suite
# clears them).
# Binaries start in the order given (put the slow ones first), N at a time:
# -j N, else OPSTREAM_TEST_JOBS, else 2 per core (integration tests mostly
# wait on their broker and redis-server). Each binary runs with its own
# TMPDIR under the log dir (OPSTREAM_TEST_LOGS, default build/test-logs),
# where the harness keeps its services' logs (OPSTREAM_KEEP_TMP=1); the
# runner deletes that dir when the binary passes. A failure is reported at
# the end: the binary, its failed cases and assertions, the last lines of its
# output and of its services' logs (opstream-broker, redis-server, the
# programs it ran), and the path of the full log.
#
# OPSTREAM_TEST_TIMEOUT (seconds, default 900) bounds each binary.
# With OPSTREAM_TEST_SUMMARY set, appends per binary "cases SUITE NAME
# PASSED FAILED" and per failed case "failed SUITE NAME CASE" to that file
# for mk/test-summary.sh.
set -u

jobs=${OPSTREAM_TEST_JOBS:-}
logroot=${OPSTREAM_TEST_LOGS:-build/test-logs}
limit=${OPSTREAM_TEST_TIMEOUT:-900}
suite=""
bindir=${OPSTREAM_BIN_DIR:-}
envs=""  # assignments, separated by US (0x1f)
us=$(printf '\037')
specs=() # "suite RS bindir RS envs RS binary" (RS: 0x1e)

if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then
    suite=$1
    shift
fi
while [ $# -gt 0 ]; do
    case "$1" in
        -j) jobs=$2; shift 2 ;;
        -j*) jobs=${1#-j}; shift ;;
        --suite) suite=$2; envs=""; shift 2 ;;
        --bin-dir) bindir=$2; shift 2 ;;
        --env) envs="$envs${envs:+$us}$2"; shift 2 ;;
        *)
            [ -n "$suite" ] || { echo "run-tests: no suite for $1" >&2; exit 2; }
            specs+=("$suite"$'\036'"$bindir"$'\036'"$envs"$'\036'"$1")
            shift
            ;;
    esac
done
if [ -z "$jobs" ]; then
    jobs=$(($(nproc 2>/dev/null || echo 1) * 2))
fi
[ "$jobs" -ge 1 ] 2>/dev/null || jobs=1

mkdir -p "$logroot" || exit 2
logroot=$(cd "$logroot" && pwd)
start_all=$(date +%s)

# One binary: runs it with its log and temp dir, writes "rc seconds" to
# LOG.rc when done. Runs in the background.
run_one() {
    local s=$1 d=$2 e=$3 t=$4 log=$5 tmp=$6 t0 rc a
    t0=$(date +%s)
    rm -rf "$tmp" && mkdir -p "$tmp"
    if [ ! -x "$t" ]; then
        echo "run-tests: $t does not exist or is not executable" >"$log"
        rc=127
    else
        (
            [ -n "$d" ] && export OPSTREAM_BIN_DIR="$d"
            if [ -n "$e" ]; then
                IFS=$us read -r -a assigns <<<"$e"
                for a in "${assigns[@]}"; do export "${a?}"; done
            fi
            export TMPDIR="$tmp" OPSTREAM_KEEP_TMP=1
            exec timeout -k 10 "$limit" "$t"
        ) >"$log" 2>&1 </dev/null
        rc=$?
        [ "$rc" -eq 124 ] && echo "run-tests: $t ran past the time limit of $limit s" >>"$log"
    fi
    echo "$rc $(($(date +%s) - t0))" >"$log.rc.tmp" && mv "$log.rc.tmp" "$log.rc"
}

# Prints what failed and where for one failed binary.
report_failure() {
    local s=$1 name=$2 log=$3 tmp=$4 rc=$5 secs=$6 f
    echo
    echo "---- FAILED: $s/$name (exit $rc, $secs s); full log: $log"
    # The failed cases and their assertions (cmocka), the harness's and the
    # sanitizers' own words.
    grep -E '^\[  FAILED  \] [A-Za-z_][A-Za-z0-9_]*$|^\[   LINE   \]|^\[  ERROR   \]|harness: .*(failed|timed out|still false)|runtime error|ERROR: (Address|Leak|Undefined)Sanitizer|^SUMMARY: |run-tests: ' \
        "$log" | awk '!seen[$0]++' | head -n 40 | sed 's/^/  /'
    echo "  -- last lines of the output:"
    tail -n 15 "$log" | sed 's/^/  | /'
    # Services and programs the harness started: their logs in the kept
    # temp dir (opstream-broker.N.err, redis-PORT/redis.log, PROGRAM.N.err).
    if [ -d "$tmp" ]; then
        find "$tmp" -type f \( -name '*.err' -o -name '*.log' \) -size +0c 2>/dev/null | sort |
            while read -r f; do
                echo "  -- ${f#"$tmp"/} (last lines):"
                tail -n 10 "$f" | sed 's/^/  | /'
            done
    fi
}

# Cases passed and failed in a cmocka log; a binary that printed no cmocka
# summary and failed counts as one failed case named after the binary.
count_cases() {
    local log=$1 rc=$2 ok bad
    ok=$(sed -n 's/^\[  PASSED  \] \([0-9][0-9]*\) test(s)\./\1/p' "$log" | tail -n 1)
    bad=$(sed -n 's/^\[  FAILED  \] \([0-9][0-9]*\) test(s), listed below:/\1/p' "$log" | tail -n 1)
    if [ "$rc" -ne 0 ] && [ -z "$bad" ]; then
        bad=1
    fi
    echo "${ok:-0} ${bad:-0}"
}

failed_cases() { # the names cmocka lists after "listed below"
    sed -n '/^\[  FAILED  \] [0-9][0-9]* test(s), listed below:/,$p' "$1" |
        sed -n 's/^\[  FAILED  \] \([A-Za-z_][A-Za-z0-9_]*\)$/\1/p'
}

total=${#specs[@]}
running=0
next=0
done_n=0
passed=0
failed=0
declare -A suites_p suites_f
failures=()
pending=() # indexes started and not yet collected

collect() { # $1: index of a finished spec
    local i=$1 s d e t name log tmp rc secs ok bad c
    IFS=$'\036' read -r s d e t <<<"${specs[$i]}"
    name=$(basename "$t")
    log="$logroot/$s/$name.log"
    tmp="$logroot/$s/$name.tmp"
    read -r rc secs <"$log.rc"
    rm -f "$log.rc"
    read -r ok bad <<<"$(count_cases "$log" "$rc")"
    if [ -n "${OPSTREAM_TEST_SUMMARY:-}" ]; then
        echo "cases $s $name $ok $bad" >>"$OPSTREAM_TEST_SUMMARY"
        if [ "$rc" -ne 0 ]; then
            local names
            names=$(failed_cases "$log")
            [ -n "$names" ] || names="($name)"
            for c in $names; do echo "failed $s $name $c" >>"$OPSTREAM_TEST_SUMMARY"; done
        fi
    fi
    if [ "$rc" -eq 0 ]; then
        passed=$((passed + 1))
        suites_p[$s]=$((${suites_p[$s]:-0} + 1))
        rm -rf "$tmp"
        echo "== $s/$name: ok ($ok cases, $secs s)"
    else
        failed=$((failed + 1))
        suites_f[$s]=$((${suites_f[$s]:-0} + 1))
        failures+=("$s"$'\036'"$name"$'\036'"$log"$'\036'"$tmp"$'\036'"$rc"$'\036'"$secs")
        echo "== $s/$name: FAILED (exit $rc, $secs s, log: $log)"
    fi
}

while [ "$done_n" -lt "$total" ]; do
    while [ "$running" -lt "$jobs" ] && [ "$next" -lt "$total" ]; do
        IFS=$'\036' read -r s d e t <<<"${specs[$next]}"
        name=$(basename "$t")
        mkdir -p "$logroot/$s"
        rm -f "$logroot/$s/$name.log.rc"
        run_one "$s" "$d" "$e" "$t" "$logroot/$s/$name.log" "$logroot/$s/$name.tmp" &
        pending+=("$next")
        next=$((next + 1))
        running=$((running + 1))
    done
    wait -n 2>/dev/null || true
    still=()
    for i in "${pending[@]}"; do
        IFS=$'\036' read -r s d e t <<<"${specs[$i]}"
        if [ -f "$logroot/$s/$(basename "$t").log.rc" ]; then
            collect "$i"
            running=$((running - 1))
            done_n=$((done_n + 1))
        else
            still+=("$i")
        fi
    done
    pending=("${still[@]+"${still[@]}"}")
done
wait

if [ "$failed" -gt 0 ]; then
    echo
    echo "==== what failed, and where ================================================"
    for f in "${failures[@]}"; do
        IFS=$'\036' read -r s name log tmp rc secs <<<"$f"
        report_failure "$s" "$name" "$log" "$tmp" "$rc" "$secs"
    done
    echo
fi
for s in $(printf '%s\n' "${!suites_p[@]}" "${!suites_f[@]}" | sort -u); do
    echo "$s: ${suites_p[$s]:-0} passed, ${suites_f[$s]:-0} failed (binaries, $jobs at a time, $(($(date +%s) - start_all)) s)"
done
echo "binaries: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
