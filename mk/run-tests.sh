#!/bin/sh
# Runs test binaries one after another and prints a line for each and a
# closing "SUITE: N passed, N failed" line. Exits 1 when any failed.
# A binary that does not exist counts as failed.
suite=$1
shift
passed=0
failed=0
failed_names=""
for t in "$@"; do
    name=$(basename "$t")
    start=$(date +%s)
    if "$t"; then
        passed=$((passed + 1))
        echo "== $suite/$name: ok ($(($(date +%s) - start)) s)"
    else
        rc=$?
        failed=$((failed + 1))
        failed_names="$failed_names $name"
        echo "== $suite/$name: FAILED (exit $rc, $(($(date +%s) - start)) s)"
    fi
done
[ -n "$failed_names" ] && echo "failed in $suite:$failed_names"
echo "$suite: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
