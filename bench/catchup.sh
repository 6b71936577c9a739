#!/bin/sh
# One opstream-count catch-up, measured from outside: loads EVENTS events of
# OPS operations (the bench's generator) into the embedded broker, then
# counts them into a throwaway redis-server and prints, between 10% and
# 100% of the events stored: events/s, and the CPU per counted event of
# opstream-count, redis-server and opstream-broker (from /proc); then
# opstream-count's peak RSS, Redis's used_memory, and what each Redis
# command took per counted event (INFO commandstats; the commands a script
# calls are counted inside EVALSHA as well).
#   sh bench/catchup.sh [EVENTS [OPS]]          (defaults 600000 1)
#   REDIS_ARGS="--hash-max-listpack-entries 128" (the default here; "" for
#   the server's own settings) and extra opstream-count options after OPS.
# Needs the programs in $OPSTREAM_BIN_DIR (default bin) and opstream-bench
# in $BENCH_BIN (default build/release/bench/opstream-bench); files in $OUT
# (default /tmp/opstream-catchup).
set -eu

EVENTS=${1:-600000}
OPS=${2:-1}
if [ $# -ge 2 ]; then shift 2; else shift $#; fi
BIN=${OPSTREAM_BIN_DIR:-bin}
# shellcheck disable=SC2034 # used by profile-lib.sh
BENCH=${BENCH_BIN:-build/release/bench/opstream-bench}
OUT=${OUT:-/tmp/opstream-catchup}
REDIS_ARGS=${REDIS_ARGS---hash-max-listpack-entries 128}
# shellcheck source=bench/profile-lib.sh
. "$(dirname "$0")/profile-lib.sh"
profile_start "$EVENTS" "$OPS" >/dev/null
redis-cli -p "$PORT" config resetstat >/dev/null

cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
now() { date +%s.%N; }

"$BIN/opstream-count" -b "$BOOT" --redis "redis://127.0.0.1:$PORT/0" --stats-interval 1 "$@" \
    2> "$OUT/count.err" &
PROG=$!
profile_wait_stored opstream-count $((EVENTS / 10)) 0.02
T0=$(now) N0=$(profile_stored opstream-count) C0=$(cpu "$PROG") R0=$(cpu "$RDS") B0=$(cpu "$BRK")
profile_wait_stored opstream-count "$EVENTS" 0.02
T1=$(now) N1=$(profile_stored opstream-count) C1=$(cpu "$PROG") R1=$(cpu "$RDS") B1=$(cpu "$BRK")
HWM=$(awk '/VmHWM/ {print $2}' "/proc/$PROG/status")
kill -INT "$PROG"
wait "$PROG" || true
PROG=
redis-cli -p "$PORT" info commandstats > "$OUT/commandstats"
MEM=$(redis-cli -p "$PORT" info memory | awk -F: '/^used_memory:/ {print $2}' | tr -d '\r')
TICK=$(getconf CLK_TCK)

echo "catch-up of $EVENTS events, $OPS operation(s), redis-server ${REDIS_ARGS:-(its own settings)}"
awk -v t0="$T0" -v t1="$T1" -v n0="$N0" -v n1="$N1" -v c="$((C1 - C0))" -v r="$((R1 - R0))" \
    -v b="$((B1 - B0))" -v tick="$TICK" -v hwm="$HWM" -v mem="$MEM" 'BEGIN {
    n = n1 - n0; dt = t1 - t0
    printf "  events/s               %.0f\n", n / dt
    printf "  CPU per counted event  opstream-count %.2f us, redis-server %.2f us, opstream-broker %.2f us\n",
        c / tick * 1e6 / n, r / tick * 1e6 / n, b / tick * 1e6 / n
    printf "  opstream-count VmHWM   %.1f MiB\n", hwm / 1024
    printf "  Redis used_memory      %.1f MiB\n", mem / 1048576
}'
echo "  Redis commands, per counted event (all $EVENTS):"
awk -F'[:,=]' -v n="$EVENTS" '/^cmdstat_/ && !/^cmdstat_(hvals|ping|info|config)/ {
    sub(/^cmdstat_/, "", $1)
    printf "    %-14s %9.4f calls  %6.2f us\n", $1, $3 / n, $5 / n
}' "$OUT/commandstats"
