# shellcheck shell=sh
# Shared by bench/profile-count.sh, bench/profile-alert.sh and
# bench/catchup.sh (sourced).
# profile_start EVENTS [OPS]: a throwaway redis-server on a free port (with
# $REDIS_ARGS, e.g. "--hash-max-listpack-entries 128") and opstream-broker
# (16 partitions), their files in $OUT, EVENTS events of OPS operations
# (default 1) loaded; sets PORT and BOOT, and stops both (and $PROG, the profiled
# program's pid, when set) on exit. profile_prefix: the command that runs
# the program under $TOOL (perf, callgrind or none), in PRE.
# profile_stored GROUP: prints the sum of GROUP's stored offsets in Redis.
# profile_wait_stored GROUP EVENTS [SECONDS]: until that sum is EVENTS or
# more, looking every SECONDS (default 0.2).

profile_cleanup() {
    [ -n "${PROG:-}" ] && kill "$PROG" 2>/dev/null || true
    [ -n "${BRK:-}" ] && kill "$BRK" 2>/dev/null || true
    [ -n "${RDS:-}" ] && redis-cli -p "$PORT" shutdown nosave >/dev/null 2>&1 || true
}

profile_start() {
    mkdir -p "$OUT"
    rm -f "$OUT/broker.out" "$OUT/broker.err"
    trap profile_cleanup EXIT INT TERM
    PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    # shellcheck disable=SC2086
    redis-server --port "$PORT" --save '' --appendonly no --dir "$OUT" --logfile "$OUT/redis.log" \
        ${REDIS_ARGS:-} &
    RDS=$!
    "$BIN/opstream-broker" --partitions 16 > "$OUT/broker.out" 2> "$OUT/broker.err" &
    BRK=$!
    while [ ! -s "$OUT/broker.out" ]; do sleep 0.1; done
    BOOT=$(head -1 "$OUT/broker.out")
    until redis-cli -p "$PORT" ping >/dev/null 2>&1; do sleep 0.1; done
    "$BENCH" fill "$BOOT" opstream. "$1" "${2:-1}"
}

profile_prefix() {
    case "$TOOL" in
    perf) PRE="perf record -F 2000 -g -o $OUT/perf.data --" ;;
    callgrind) PRE="valgrind --tool=callgrind --callgrind-out-file=$OUT/callgrind.out" ;;
    *) PRE="" ;;
    esac
}

profile_stored() {
    redis-cli -p "$PORT" hvals "opstream:offsets:$1" | awk '{s += $1} END {print s + 0}'
}

profile_wait_stored() {
    while [ "$(profile_stored "$1")" -lt "$2" ]; do sleep "${3:-0.2}"; done
}
