#!/bin/sh
# Where opstream-count spends its time: loads EVENTS events into the embedded
# broker, then counts them under a profiler into a throwaway redis-server.
#   sh bench/profile-count.sh [perf|callgrind|none] [EVENTS]
# Needs the programs in $OPSTREAM_BIN_DIR (default bin) and opstream-bench in
# $BENCH_BIN (default build/release/bench/opstream-bench). Output goes to
# $OUT (default /tmp/opstream-profile): perf.data or callgrind.out, redis
# INFO commandstats before/after, and the counter's stderr. PREV_IDS=N first
# puts N ids in the previous dedupe generation of the (one) operation, as in
# production once a window has passed (a fresh Redis has no previous one).
set -eu

TOOL=${1:-perf}
EVENTS=${2:-300000}
BIN=${OPSTREAM_BIN_DIR:-bin}
BENCH=${BENCH_BIN:-build/release/bench/opstream-bench}
OUT=${OUT:-/tmp/opstream-profile}
# shellcheck source=bench/profile-lib.sh
. "$(dirname "$0")/profile-lib.sh"
profile_start "$EVENTS"
if [ "${PREV_IDS:-0}" -gt 0 ]; then
    redis-cli -p "$PORT" eval "
        local t = redis.call('TIME')[1]
        local w = 604800
        local k = 'opstream:{BENCH-001}:seen:' .. (t - t % w - w)
        for i = 1, tonumber(ARGV[1]), 1000 do
            local a = {}
            for j = i, math.min(i + 999, tonumber(ARGV[1])) do
                a[#a + 1] = string.format('%016d', j); a[#a + 1] = '1'
            end
            redis.call('HSET', k, unpack(a))
        end
        redis.call('EXPIRE', k, 3600)" 0 "$PREV_IDS" >/dev/null
fi
redis-cli -p "$PORT" info commandstats > "$OUT/commandstats.before"

profile_prefix
# shellcheck disable=SC2086
$PRE "$BIN/opstream-count" -b "$BOOT" --redis "redis://127.0.0.1:$PORT/0" \
    --stats-interval 1 2> "$OUT/count.err" &
PROG=$!
profile_wait_stored opstream-count "$EVENTS"
kill -INT "$PROG"
wait "$PROG" || true
PROG=
redis-cli -p "$PORT" info commandstats > "$OUT/commandstats.after"
echo "counted $EVENTS events; profile in $OUT"
