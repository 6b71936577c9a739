#!/bin/sh
# Where opstream-count spends its time: loads EVENTS events into the embedded
# broker, then counts them under a profiler into a throwaway redis-server.
#   sh bench/profile-count.sh [perf|callgrind|none] [EVENTS]
# Needs the programs in $OPSTREAM_BIN_DIR (default bin) and opstream-bench in
# $BENCH_BIN (default build/release/bench/opstream-bench). Output goes to
# $OUT (default /tmp/opstream-profile): perf.data or callgrind.out, redis
# INFO commandstats before/after, and the counter's stderr.
set -eu

TOOL=${1:-perf}
EVENTS=${2:-300000}
BIN=${OPSTREAM_BIN_DIR:-bin}
BENCH=${BENCH_BIN:-build/release/bench/opstream-bench}
OUT=${OUT:-/tmp/opstream-profile}
mkdir -p "$OUT"

cleanup() {
    [ -n "${CNT:-}" ] && kill "$CNT" 2>/dev/null || true
    [ -n "${BRK:-}" ] && kill "$BRK" 2>/dev/null || true
    [ -n "${RDS:-}" ] && redis-cli -p "$PORT" shutdown nosave >/dev/null 2>&1 || true
}
trap cleanup EXIT INT TERM

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$PORT" --save '' --appendonly no --dir "$OUT" --logfile "$OUT/redis.log" &
RDS=$!
"$BIN/opstream-broker" --partitions 16 > "$OUT/broker.out" 2> "$OUT/broker.err" &
BRK=$!
while [ ! -s "$OUT/broker.out" ]; do sleep 0.1; done
BOOT=$(head -1 "$OUT/broker.out")
until redis-cli -p "$PORT" ping >/dev/null 2>&1; do sleep 0.1; done

"$BENCH" fill "$BOOT" opstream. "$EVENTS"
redis-cli -p "$PORT" info commandstats > "$OUT/commandstats.before"

case "$TOOL" in
perf) PRE="perf record -F 2000 -g -o $OUT/perf.data --" ;;
callgrind) PRE="valgrind --tool=callgrind --callgrind-out-file=$OUT/callgrind.out" ;;
*) PRE="" ;;
esac
# shellcheck disable=SC2086
$PRE "$BIN/opstream-count" -b "$BOOT" --redis "redis://127.0.0.1:$PORT/0" \
    --stats-interval 1 2> "$OUT/count.err" &
CNT=$!
while :; do
    DONE=$(redis-cli -p "$PORT" hvals opstream:offsets:opstream-count | awk '{s+=$1} END {print s+0}')
    [ "$DONE" -ge "$EVENTS" ] && break
    sleep 0.2
done
kill -INT "$CNT"
wait "$CNT" || true
CNT=
redis-cli -p "$PORT" info commandstats > "$OUT/commandstats.after"
echo "counted $EVENTS events; profile in $OUT"
