#!/bin/sh
# Prints the closing lines of `make test` from the results the runners
# recorded (mk/run-tests.sh, mk/fuzz.sh). Each test case counts once: the
# sanitizer pass runs the same cases again and has its own line, and so have
# the fuzz targets. The last line counts the distinct test cases, a case
# failing in either build counting as failed:
#   asan: N passed, N failed
#   fuzz: N passed, N failed
#   tests: N passed, N failed
# Exits 1 when anything failed (or nothing was recorded).
f=${1:?summary file}
[ -s "$f" ] || { echo "tests: no results recorded"; exit 1; }
awk '
function base(s) { sub(/^asan-/, "", s); return s }
$1 == "cases" {
    key = base($2) " " $3
    n = $4 + $5
    if (n > total[key]) total[key] = n
    if ($2 ~ /^asan-/) { ap += $4; af += $5 } else { rp += $4; rf += $5 }
    if ($2 ~ /^asan-/) asan = 1
    next
}
$1 == "failed" { bad[base($2) " " $3 " " $4] = 1; next }
$1 == "targets" { fp += $3; ff += $4; fuzz = 1; next }
END {
    for (k in total) cases += total[k]
    for (k in bad) failed++
    if (asan) printf "asan: %d passed, %d failed\n", ap, af
    if (fuzz) printf "fuzz: %d passed, %d failed\n", fp, ff
    printf "tests: %d passed, %d failed\n", cases - failed, failed
    exit (failed > 0 || af > 0 || ff > 0 || cases == 0)
}' "$f"
