#!/bin/sh
# The test runner (mk/run-tests.sh) on a binary that fails on purpose
# (tests/integration/failing_on_purpose.c): it must fail, and its report at
# the end must name the failed case and its assertion (file:line) and show
# the last lines of the services' logs (opstream-broker, redis-server) and
# of the program the test ran (opstream-count), after every status line.
# Prints cmocka-style lines so that its checks count as test cases.
set -u
src=${OPSTREAM_SRC_DIR:-.}
bin=${OPSTREAM_TEST_BUILD:-$src/build/release}/tests/integration/failing_on_purpose
work=$(mktemp -d "${TMPDIR:-/tmp}/runner-test.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT

OPSTREAM_TEST_LOGS="$work/logs" OPSTREAM_TEST_SUMMARY="$work/summary" \
    bash "$src/mk/run-tests.sh" -j 2 --suite demo "$bin" >"$work/out" 2>&1
rc=$?

n=0
bad=0
failed=""
check() { # name, then a command that must succeed
    name=$1
    shift
    n=$((n + 1))
    echo "[ RUN      ] $name"
    if "$@"; then
        echo "[       OK ] $name"
    else
        echo "[  FAILED  ] $name"
        bad=$((bad + 1))
        failed="$failed $name"
    fi
}
has() { grep -qF -- "$1" "$work/out"; }
report_after_status() { # the report comes after the status line
    s=$(grep -n "^== demo/failing_on_purpose: FAILED" "$work/out" | cut -d: -f1)
    r=$(grep -n "^---- FAILED: demo/failing_on_purpose" "$work/out" | cut -d: -f1)
    [ -n "$s" ] && [ -n "$r" ] && [ "$r" -gt "$s" ]
}

echo "[==========] Running 10 test(s)."
check runner_exits_non_zero test "$rc" -ne 0
check status_line_says_failed has "== demo/failing_on_purpose: FAILED"
check report_names_the_failed_case grep -qxF "  [  FAILED  ] fails_on_purpose_after_running_the_counter" "$work/out"
line=$(grep -n "the failure the runner must point at" "$src/tests/integration/failing_on_purpose.c" | cut -d: -f1)
check report_shows_the_assertion_and_line grep -qxF "  [   LINE   ] --- tests/integration/failing_on_purpose.c:$line: error: Failure!" "$work/out"
check report_shows_the_broker_log grep -qE "^  -- .*/opstream-broker\.[0-9]+\.err \(last lines\):$" "$work/out"
check report_shows_the_broker_log_lines has "opstream-broker: NOTE: data is kept in memory only"
check report_shows_the_redis_log grep -qE "^  -- .*/redis\.log \(last lines\):$" "$work/out"
check report_shows_the_program_stderr grep -qE "^  -- .*/opstream-count\.[0-9]+\.err \(last lines\):$" "$work/out"
check report_comes_after_the_status_lines report_after_status
check summary_counts_one_case_passed_one_failed grep -qx "cases demo failing_on_purpose 1 1" "$work/summary"
if [ "$bad" -ne 0 ]; then
    echo "runner output:"
    sed 's/^/  | /' "$work/out"
    echo "[  FAILED  ] $bad test(s), listed below:"
    for f in $failed; do echo "[  FAILED  ] $f"; done
    exit 1
fi
echo "[==========] $n test(s) run."
echo "[  PASSED  ] $n test(s)."
