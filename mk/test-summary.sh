#!/bin/sh
# Prints the closing line of `make test`: every test case of every suite
# (unit, integration, their sanitizer runs, fuzz smoke) in one count.
f=${1:?summary file}
[ -s "$f" ] || { echo "tests: no results recorded"; exit 1; }
awk '{ p += $2; q += $3 } END { printf "tests: %d passed, %d failed\n", p, q; exit (q > 0) }' "$f"
