#!/bin/sh
# Runs test binaries one after another and prints a line for each and a
# closing "SUITE: N passed, N failed" line counting the binaries. Exits 1
# when any failed; a binary that does not exist counts as failed.
# With OPSTREAM_TEST_SUMMARY set, appends "cases-passed cases-failed" (the
# cmocka test cases of this suite) to that file for mk/test-summary.sh.
suite=$1
shift
passed=0
failed=0
cases_ok=0
cases_bad=0
failed_names=""
log=$(mktemp "${TMPDIR:-/tmp}/opstream-run.XXXXXX")
for t in "$@"; do
    name=$(basename "$t")
    start=$(date +%s)
    "$t" >"$log" 2>&1
    rc=$?
    cat "$log"
    ok=$(sed -n 's/^\[  PASSED  \] \([0-9][0-9]*\) test(s)\./\1/p' "$log" | tail -n 1)
    bad=$(sed -n 's/^\[  FAILED  \] \([0-9][0-9]*\) test(s), listed below:/\1/p' "$log" | tail -n 1)
    cases_ok=$((cases_ok + ${ok:-0}))
    if [ "$rc" -eq 0 ]; then
        passed=$((passed + 1))
        echo "== $suite/$name: ok ($(($(date +%s) - start)) s)"
    else
        failed=$((failed + 1))
        cases_bad=$((cases_bad + ${bad:-1}))
        failed_names="$failed_names $name"
        echo "== $suite/$name: FAILED (exit $rc, $(($(date +%s) - start)) s)"
    fi
done
rm -f "$log"
[ -n "$failed_names" ] && echo "failed in $suite:$failed_names"
echo "$suite: $passed passed, $failed failed"
[ -n "${OPSTREAM_TEST_SUMMARY:-}" ] && echo "$suite $cases_ok $cases_bad" >>"$OPSTREAM_TEST_SUMMARY"
[ "$failed" -eq 0 ]
