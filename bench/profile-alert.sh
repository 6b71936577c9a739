#!/bin/sh
# Where opstream-alert spends its time: loads EVENTS events into the embedded
# broker, then runs opstream-alert (the shipped rules, config/alerts.conf)
# over them under a profiler, with a throwaway redis-server.
#   sh bench/profile-alert.sh [perf|callgrind|none] [EVENTS]
# Needs the programs in $OPSTREAM_BIN_DIR (default bin) and opstream-bench in
# $BENCH_BIN (default build/release/bench/opstream-bench). Output goes to
# $OUT (default /tmp/opstream-profile-alert): perf.data or callgrind.out,
# redis INFO commandstats before/after, opstream-alert's stderr, and
# times.txt (wall seconds and CPU seconds of opstream-alert, alerts raised).
# $ALERT_ARGS (words) are passed to opstream-alert, for trying settings.
set -eu

TOOL=${1:-perf}
EVENTS=${2:-400000}
BIN=${OPSTREAM_BIN_DIR:-bin}
BENCH=${BENCH_BIN:-build/release/bench/opstream-bench}
OUT=${OUT:-/tmp/opstream-profile-alert}
RULES=${RULES:-config/alerts.conf}
# shellcheck source=bench/profile-lib.sh
. "$(dirname "$0")/profile-lib.sh"
profile_start "$EVENTS"
redis-cli -p "$PORT" info commandstats > "$OUT/commandstats.before"

profile_prefix
T0=$(date +%s.%N)
# shellcheck disable=SC2086
$PRE "$BIN/opstream-alert" -b "$BOOT" --redis "redis://127.0.0.1:$PORT/0" \
    --rules "$RULES" ${ALERT_ARGS:-} 2> "$OUT/alert.err" &
PROG=$!
profile_wait_stored opstream-alert "$EVENTS"
T1=$(date +%s.%N)
PID=$(pgrep -P "$PROG" opstream-alert || echo "$PROG")
CPU=$(awk '{print ($14 + $15) / 100}' "/proc/$PID/stat")
kill -INT "$PROG"
wait "$PROG" || true
PROG=
redis-cli -p "$PORT" info commandstats > "$OUT/commandstats.after"
ALERTS=$(grep -c ' alert ' "$OUT/alert.err" || true)
echo "wall $(echo "$T1 - $T0" | bc) s, cpu $CPU s, $ALERTS alerts" > "$OUT/times.txt"
cat "$OUT/times.txt"
echo "handled $EVENTS events; profile in $OUT"
