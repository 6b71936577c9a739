#!/usr/bin/env bash
# make demo: the whole opstream pipeline on one machine. Starts the embedded
# broker (opstream-broker) and a redis-server in a temp dir on free ports
# (or uses BROKERS / REDIS when given), opstream-count, opstream-alert and
# opstream-alerts, then runs opstream-simulate with an operation scenario
# for DEMO_SECONDS while showing live counts and the alerts as they fire.
# Stops everything it started on exit, Ctrl-C included.
set -u

BIN=${OPSTREAM_BIN_DIR:-bin}
SECONDS_TO_RUN=${DEMO_SECONDS:-60}
SCENARIO=${DEMO_SCENARIO:-liberterra-ii}
OP=${DEMO_OPERATION:-LIBERTERRA-II}
RATE=${DEMO_RATE:-25}
# A new seed each run by default: the same seed re-sends the same events,
# which the counter rightly counts once (set DEMO_SEED to repeat a run).
SEED=${DEMO_SEED:-$(date +%s)}
RULES=${DEMO_RULES:-config/alerts.conf}
BROKERS=${BROKERS:-}
REDIS=${REDIS:-}

work=$(mktemp -d "${TMPDIR:-/tmp}/opstream-demo.XXXXXX") || exit 1
pids=()
redis_port=""
status=0

say() { printf '\033[1m[demo]\033[0m %s\n' "$*"; }
[ -t 1 ] || say() { printf '[demo] %s\n' "$*"; }

# Stops every process this script started: SIGTERM, a grace period for the
# consumers to flush and leave their groups, then SIGKILL.
cleanup() {
    trap - EXIT INT TERM
    local p
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
    for _ in $(seq 1 50); do
        local alive=0
        for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
        [ "$alive" = 0 ] && break
        sleep 0.1
    done
    for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
    wait 2>/dev/null
    if [ "${DEMO_KEEP:-0}" = 1 ]; then
        say "logs kept in $work"
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT
trap 'echo; say "interrupted: stopping everything"; status=130; exit 130' INT TERM

start() { # name, command...: starts a background process, logs in $work/name.log
    local name=$1
    shift
    "$@" >"$work/$name.out" 2>"$work/$name.log" &
    pids+=($!)
}

fail() {
    say "error: $*"
    for f in "$work"/*.log; do
        [ -s "$f" ] && { echo "--- $(basename "$f") (last lines)"; tail -n 5 "$f"; }
    done
    exit 1
}

for prog in opstream-broker opstream-count opstream-alert opstream-alerts opstream-simulate opstream-stats; do
    [ -x "$BIN/$prog" ] || fail "$BIN/$prog is missing: run make first"
done

# --- Kafka: the embedded broker unless BROKERS is given ---------------------
if [ -z "$BROKERS" ]; then
    start broker "$BIN/opstream-broker" --bootstrap-file "$work/bootstrap"
    for _ in $(seq 1 100); do [ -s "$work/bootstrap" ] && break; sleep 0.1; done
    [ -s "$work/bootstrap" ] || fail "opstream-broker did not start"
    BROKERS=$(head -n 1 "$work/bootstrap")
    say "embedded broker (in memory, demo only): $BROKERS"
else
    say "Kafka: $BROKERS"
fi

# --- Redis: a throwaway redis-server unless REDIS is given --------------------
if [ -z "$REDIS" ]; then
    for _ in $(seq 1 20); do
        port=$((20000 + RANDOM % 40000))
        redis-server --port "$port" --bind 127.0.0.1 --dir "$work" --save "" \
            --appendonly no --hash-max-listpack-entries 128 --daemonize no \
            --logfile "$work/redis.log" &
        rpid=$!
        ok=0
        for _ in $(seq 1 50); do
            if redis-cli -p "$port" ping 2>/dev/null | grep -q PONG; then ok=1; break; fi
            kill -0 "$rpid" 2>/dev/null || break
            sleep 0.1
        done
        if [ "$ok" = 1 ]; then pids+=("$rpid"); redis_port=$port; break; fi
        kill -KILL "$rpid" 2>/dev/null
    done
    [ -n "$redis_port" ] || fail "could not start redis-server"
    REDIS="redis://127.0.0.1:$redis_port/0"
    say "redis-server (temp dir, port $redis_port): $REDIS"
else
    say "Redis: $REDIS"
fi
rcli() {
    if [ -n "$redis_port" ]; then redis-cli -p "$redis_port" "$@"; else redis-cli -u "$REDIS" "$@"; fi
}

# --- consumers --------------------------------------------------------------
start count "$BIN/opstream-count" -b "$BROKERS" --redis "$REDIS" --stats-interval 10
start alert "$BIN/opstream-alert" -b "$BROKERS" --redis "$REDIS" --rules "$RULES"
# The subscriber prints straight to this terminal: one line per alert of
# severity WARNING or higher (opstream-stats lists the INFO ones too).
"$BIN/opstream-alerts" -b "$BROKERS" --operation "$OP" --min-severity "${DEMO_MIN_SEVERITY:-WARNING}" \
    2>"$work/alerts.log" &
pids+=($!)
sleep 1
for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null || fail "a consumer did not start"; done

# --- traffic ------------------------------------------------------------------
say "simulating operation $OP ($SCENARIO) for ${SECONDS_TO_RUN}s at ~${RATE} events/s, seed $SEED"
"$BIN/opstream-simulate" -b "$BROKERS" --operation "$OP" --scenario "$SCENARIO" \
    --duration "$SECONDS_TO_RUN" --rate "$RATE" --seed "$SEED" \
    --totals "$work/totals.json" >"$work/simulate.out" 2>"$work/simulate.log" &
sim=$!
pids+=("$sim")

key="opstream:{$OP}:total"
before=$(rcli --raw hget "$key" events 2>/dev/null)
before=${before:-0}
live() {
    local v
    v=$(rcli --raw hmget "$key" events arrests victims minor_victims migrants seized_items 2>/dev/null | tr '\n' ' ')
    read -r e a v1 m mg s <<<"$v"
    printf '[live] events %-7s arrests %-6s victims %-6s (minors %-5s) migrants %-6s seized %s\n' \
        "${e:-0}" "${a:-0}" "${v1:-0}" "${m:-0}" "${mg:-0}" "${s:-0}"
}
# A third of the way in, the Philippine desk sends its national export: a
# scam-centre raid freeing 250 people (modelled on Liberterra II), through
# opstream-produce like any national system would.
raid_at=$((SECONDS_TO_RUN / 3))
[ "$raid_at" -lt 2 ] && raid_at=2
raid_sent=0
produced=0
t0=$(date +%s)
while kill -0 "$sim" 2>/dev/null; do
    sleep 1
    now=$(date +%s)
    if [ "$raid_sent" = 0 ] && [ $((now - t0)) -ge "$raid_at" ]; then
        raid_sent=1
        cat >"$work/ph-export.csv" <<EOT
kind,operation,country,occurred_at,source_ref,location,victims,minors,exploitation,site,victim_nationalities
rescue,$OP,PH,$(date -u +%Y-%m-%dT%H:%M:%SZ),PNP-ACG-DEMO-$SEED-$t0,Pasay City,250,0,FORCED_CRIMINALITY,SCAM_CENTRE,CN;VN;ID;MY
EOT
        say "the Philippine desk reports a scam-centre raid (opstream-produce --country PH)"
        "$BIN/opstream-produce" -b "$BROKERS" --country PH --operation "$OP" "$work/ph-export.csv" \
            >"$work/produce.out" 2>"$work/produce.log" || fail "opstream-produce failed"
        produced=$(sed -n 's/.*delivered \([0-9][0-9]*\).*/\1/p' "$work/produce.log" | tail -n 1)
        produced=${produced:-0}
    fi
    [ $(((now - t0) % 3)) = 0 ] && live
done
wait "$sim"
sim_rc=$?
[ "$sim_rc" = 0 ] || fail "opstream-simulate exited $sim_rc"

# --- let the counter catch up with what was delivered --------------------------
simulated=$(sed -n 's/.*"events"[[:space:]]*:[[:space:]]*\([0-9][0-9]*\).*/\1/p' "$work/totals.json" | head -n 1)
[ -n "$simulated" ] || fail "opstream-simulate wrote no totals"
expected=$((simulated + produced))
say "delivered: $simulated simulated events + $produced from the national export; waiting for the counts"
# The counter owns its partitions within seconds, also in a group whose
# previous members (an earlier demo) left: they leave cleanly on exit, and
# on the embedded broker the consumers use a short session timeout
# (docs/embedded-broker.md).
wait_s=30
for _ in $(seq 1 $((wait_s * 5))); do
    got=$(rcli --raw hget "$key" events 2>/dev/null)
    got=$((${got:-0} - before))
    [ "$got" = "$expected" ] && break
    sleep 0.2
done
sleep 1
live

echo
say "final figures (opstream-stats $OP):"
"$BIN/opstream-stats" --redis "$REDIS" "$OP" || status=1
# Every alert raised, and those of the severity the subscriber showed above.
min_sev=$(echo "${DEMO_MIN_SEVERITY:-WARNING}" | tr '[:lower:]' '[:upper:]')
case "$min_sev" in
CRITICAL) shown_sev="CRITICAL" ;;
WARNING) shown_sev="WARNING CRITICAL" ;;
*) shown_sev="INFO WARNING CRITICAL" ;;
esac
alerts=$(rcli --raw xlen "opstream:{$OP}:alerts" 2>/dev/null)
shown=$(rcli --raw xrange "opstream:{$OP}:alerts" - + 2>/dev/null |
    awk -v sev=" $shown_sev " 'prev == "severity" && index(sev, " " $0 " ") { n++ } { prev = $0 } END { print n + 0 }')
echo
say "${alerts:-0} alerts raised, ${shown:-0} of them $min_sev or above (shown above); counted $got of $expected events"
[ "$got" = "$expected" ] || { say "error: the counts do not match what was delivered"; status=1; }

# redis-cli commands only for a Redis that outlives the demo.
if [ -n "$redis_port" ]; then
    cat <<EOT

The demo's Redis stops with it. To query a running pipeline with redis-cli,
follow the README's tour, or run the demo against your own Redis:
  make demo REDIS=redis://127.0.0.1:6379/0
EOT
else
    rc_cmd="redis-cli -u $REDIS"
    cat <<EOT

Look for yourself with redis-cli:
  $rc_cmd hgetall 'opstream:{$OP}:total'
  $rc_cmd smembers 'opstream:{$OP}:countries'
  $rc_cmd hgetall 'opstream:{$OP}:country:PH'
  $rc_cmd xrevrange 'opstream:{$OP}:alerts' + - count 5
  $rc_cmd hgetall 'opstream:offsets:opstream-count'
EOT
fi
exit "$status"
