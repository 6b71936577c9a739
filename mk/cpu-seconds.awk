# Reads the output of the shell's `times` (line 2: user and system time of
# the shell's waited-for children, e.g. "1m2.500000s 0m3.250000s") and
# prints their sum in whole seconds.
function secs(t,    m) {
    m = t
    sub(/m.*/, "", m)
    sub(/^[0-9]+m/, "", t)
    sub(/s$/, "", t)
    return m * 60 + t
}
NR == 2 { printf "%d\n", secs($1) + secs($2) + 0.5 }
