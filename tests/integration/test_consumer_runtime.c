/*
 * The consumer runtime (lib/consumer.c) through opstream-count and
 * opstream-alert against the embedded broker and a real redis-server:
 * offsets that went backwards (the broker restarted while Redis kept the
 * offsets) are reported, recorded as skipped and recovered with
 * --reset-offsets, which is refused while the group has a live member; and
 * first contact: an unreachable broker or Redis is named once, and SIGTERM
 * stops the program in every waiting state.
 */
#include <signal.h>

#include "test_count_common.h"

#define OP "RUNTIME-OP"
#define STOP_DEADLINE_MS 5000

/* ---- helpers ---------------------------------------------------------------- */

/* A new embedded broker (fresh, empty log) and a producer to it. */
static void restart_broker(void) {
    char err[256];

    rd_kafka_destroy(g_rk);
    g_rk = NULL;
    harness_broker_free(g_broker);
    g_broker = harness_broker_start(NULL);
    assert_non_null(g_broker);
    assert_int_equal(
        ops_config_set(g_cfg, "bootstrap.servers", g_broker->bootstrap, err, sizeof err), 0);
    g_rk = ops_kafka_producer_new(g_cfg, tp_dr_cb, NULL, err, sizeof err);
    assert_non_null(g_rk);
}

/* Arrest event i of OP at time at (rng as tc_event takes it), encoded
 * into buf (its length into *len). */
static ops_event_t arrest_frame(uint64_t *rng, int i, int64_t at,
                                unsigned char buf[OPS_CODEC_MAX_FRAME], size_t *len) {
    char err[256];
    ops_event_t ev = tc_event(rng, OP, i, at);
    ev.kind = OPS_KIND_ARREST;
    ops_event_id_derive(ev.operation, ev.country, ev.kind, ev.source_ref, ev.event_id);
    assert_int_equal(
        ops_codec_encode_event(g_codec, &ev, buf, OPS_CODEC_MAX_FRAME, len, err, sizeof err), 0);
    return ev;
}

/* n arrest events numbered from first, all to opstream.arrests [0]. */
static void produce_arrests(int first, int n) {
    uint64_t rng = 42;
    for (int i = first; i < first + n; i++) {
        unsigned char buf[OPS_CODEC_MAX_FRAME];
        size_t len;
        ops_event_t ev = arrest_frame(&rng, i, tc_wall_ms() - 60000, buf, &len);
        assert_int_equal(harness_produce(g_broker->bootstrap, "opstream.arrests", 0, ev.country, 2,
                                         buf, len, NULL),
                         0);
    }
}

static long long redis_int(const char *fmt, const char *a, const char *b) {
    redisReply *r = harness_redis_command(g_redis, fmt, a, b);
    long long v = -1;
    assert_non_null(r);
    if (r->type == REDIS_REPLY_STRING)
        v = strtoll(r->str, NULL, 10);
    else if (r->type == REDIS_REPLY_INTEGER)
        v = r->integer;
    freeReplyObject(r);
    return v;
}

typedef struct says {
    harness_proc_t *p;
    const char *what;
} says_t;

static bool proc_says(void *arg) {
    const says_t *s = arg;
    return harness_proc_stderr_has(s->p, s->what);
}

static int occurrences(harness_proc_t *p, const char *what) {
    char *err = harness_proc_stderr(p);
    int n = 0;
    for (const char *s = err; s != NULL && (s = strstr(s, what)) != NULL; s += strlen(what))
        n++;
    free(err);
    return n;
}

static void dump_stderr(harness_proc_t *p) {
    char *err = harness_proc_stderr(p);
    fprintf(stderr, "--- %s stderr:\n%s---\n", p->name, err ? err : "");
    free(err);
}

/* SIGTERM, then the exit within the deadline with the given code. */
static void sigterm_exits(harness_proc_t *p, int code) {
    assert_int_equal(harness_proc_signal(p, SIGTERM), 0);
    if (harness_proc_wait(p, STOP_DEADLINE_MS) != 0) {
        dump_stderr(p);
        fail_msg("%s did not exit within %d ms of SIGTERM", p->name, STOP_DEADLINE_MS);
    }
    if (harness_proc_exit_code(p) != code)
        dump_stderr(p);
    assert_int_equal(harness_proc_exit_code(p), code);
}

static harness_proc_t *run_tool(const char *prog, const char *group, const char *extra) {
    const char *argv[] = {prog, "-b",  g_broker->bootstrap, "--redis", g_redis->url,
                          "-g", group, "--reset-offsets",   extra,     NULL};
    harness_proc_t *p = harness_spawn(argv, NULL, 0);
    assert_non_null(p);
    assert_int_equal(harness_proc_wait(p, 30000), 0);
    return p;
}

/* ---- offsets gone backwards ---------------------------------------------------- */

/* After the log went back below the stored offset 20 of opstream.arrests
 * [0]: offsets 0..19 are recorded for the group as skipped (not as lost to
 * retention), and the stored offset stays 20. */
static void assert_gap_skipped_to(const char *group, long long stored) {
    redisReply *r = harness_redis_command(g_redis, "HGET opstream:gaps:%s %s", group,
                                          "opstream.arrests:0:0-19");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_memory_equal(r->str, "skipped:", 8);
    freeReplyObject(r);
    assert_int_equal(redis_int("HGET opstream:offsets:%s %s", group, "opstream.arrests:0"), stored);
}

static void assert_gap_skipped(const char *group) {
    assert_gap_skipped_to(group, 20);
}

static void offsets_gone_backwards_are_reported_recorded_and_recovered_by_reset(void **state) {
    (void)state;
    const char *group = "regress";
    harness_proc_t *p, *t;

    /* 20 events counted: Redis holds offset 20 for opstream.arrests [0] */
    produce_arrests(0, 20);
    p = tc_spawn_count(group, NULL);
    assert_int_equal(tc_wait_consumed(group, 30000), 0);
    tc_stop(p);
    assert_int_equal(redis_int("HGET opstream:{%s}:total %s", OP, "events"), 20);

    /* the broker restarts empty while Redis keeps the offsets; 5 new events */
    restart_broker();
    produce_arrests(100, 5);
    p = tc_spawn_count(group, NULL);
    says_t s = {p, "below the stored offset 20"};
    assert_int_equal(harness_wait_until(proc_says, &s, 30000), 0);
    /* named: group, topic, partition and the range */
    s.what = "group regress: opstream.arrests [0]";
    assert_true(proc_says(&s));
    s.what = "offsets 0..19 are skipped";
    assert_true(proc_says(&s));
    assert_gap_skipped(group);
    /* skipped, as documented: nothing counted */
    assert_int_equal(redis_int("HGET opstream:{%s}:total %s", OP, "events"), 20);

    /* the recovery is refused while a member is live */
    t = run_tool("opstream-count", group, "earliest");
    assert_int_equal(harness_proc_exit_code(t), 3);
    s.p = t;
    s.what = "live member";
    assert_true(proc_says(&s));
    harness_proc_free(t);
    assert_int_equal(redis_int("HGET opstream:offsets:%s %s", group, "opstream.arrests:0"), 20);

    /* stopped: the reset goes through and the five events count */
    tc_stop(p);
    t = run_tool("opstream-count", group, "earliest");
    if (harness_proc_exit_code(t) != 0)
        dump_stderr(t);
    assert_int_equal(harness_proc_exit_code(t), 0);
    harness_proc_free(t);
    assert_int_equal(redis_int("HGET opstream:offsets:%s %s", group, "opstream.arrests:0"), 0);
    p = tc_spawn_count(group, NULL);
    assert_int_equal(tc_wait_consumed(group, 30000), 0);
    tc_stop(p);
    assert_int_equal(redis_int("HGET opstream:{%s}:total %s", OP, "events"), 25);
}

typedef struct stored_arg {
    const char *group;
    long long want;
} stored_arg_t;

static bool arrests_0_stored(void *arg) {
    const stored_arg_t *a = arg;
    return redis_int("HGET opstream:offsets:%s %s", a->group, "opstream.arrests:0") == a->want;
}

static harness_proc_t *spawn_prog(const char *prog, const char *brokers, const char *redis,
                                  const char *group);

/* n arrest events numbered from first, at time at, queued at once to
 * opstream.arrests [0] through the test's producer and flushed. */
static void produce_arrests_at_once(int first, int n, int64_t at) {
    uint64_t rng = 43;
    for (int i = first; i < first + n; i++) {
        unsigned char buf[OPS_CODEC_MAX_FRAME];
        size_t len;
        ops_event_t ev = arrest_frame(&rng, i, at, buf, &len);
        tc_produce_raw_to("opstream.arrests", 0, ev.country, buf, len);
    }
    tc_flush();
}

/* An offset that went backwards makes a burst of polls wait: its gap is
 * recorded in Redis, here held up 3 s by CLIENT PAUSE WRITE. The events
 * after it in the same burst are checked against the clock read after
 * that wait: with opstream.event.time.max.future.s=0, five events stamped
 * 1.5 s after they were sent count (against the clock read when the burst
 * began, they were in the future and went to the DLQ). */
static void
events_after_a_wait_inside_a_burst_are_checked_against_the_clock_after_it(void **state) {
    (void)state;
    const char *group = "fresh-clock";
    const char *const future_0[] = {"-X", "opstream.event.time.max.future.s=0", NULL};
    stored_arg_t a = {group, 20};
    redisReply *r;

    produce_arrests(0, 20);
    harness_proc_t *p = tc_spawn_count(group, NULL);
    assert_int_equal(harness_wait_until(arrests_0_stored, &a, 30000), 0);
    tc_stop(p);

    restart_broker();
    p = tc_spawn_count(group, future_0);
    says_t s = {p, "assigned 24 partitions"};
    assert_int_equal(harness_wait_until(proc_says, &s, 30000), 0);
    r = harness_redis_command(g_redis, "CLIENT PAUSE 3000 WRITE");
    assert_non_null(r);
    freeReplyObject(r);
    int64_t sent = tc_wall_ms();
    produce_arrests_at_once(100, 25, sent + 1500); /* offsets 0..24: 0..19 skipped */
    a.want = 25;
    if (harness_wait_until(arrests_0_stored, &a, 30000) != 0) {
        dump_stderr(p);
        fail_msg("opstream.arrests [0] not stored at 25");
    }
    assert_gap_skipped_to(group, 25);
    long long counted = redis_int("HGET opstream:{%s}:total %s", OP, "events");
    if (counted != 25)
        dump_stderr(p);
    assert_int_equal(counted, 25);
    tc_stop(p);
}

/* opstream-alert on the same runtime: its re-read of earlier messages for
 * the spike baselines does not hide a log that went back. */
static void alert_reports_and_records_offsets_gone_backwards(void **state) {
    (void)state;
    const char *group = "regress-alert-run";
    stored_arg_t a = {group, 20};

    produce_arrests(0, 20);
    harness_proc_t *p = spawn_prog("opstream-alert", g_broker->bootstrap, g_redis->url, group);
    assert_int_equal(harness_wait_until(arrests_0_stored, &a, 30000), 0);
    sigterm_exits(p, 0);
    harness_proc_free(p);

    restart_broker();
    produce_arrests(100, 5);
    p = spawn_prog("opstream-alert", g_broker->bootstrap, g_redis->url, group);
    says_t s = {p, "below the stored offset 20"};
    if (harness_wait_until(proc_says, &s, 30000) != 0) {
        dump_stderr(p);
        fail_msg("no ERROR about offsets gone backwards");
    }
    s.what = "group regress-alert-run: opstream.arrests [0]";
    assert_true(proc_says(&s));
    assert_gap_skipped(group);
    sigterm_exits(p, 0);
    harness_proc_free(p);
}

/* The same recovery for opstream-alert's group: latest puts every
 * partition at its end. */
static void alert_reset_offsets_latest_puts_the_group_at_the_end(void **state) {
    (void)state;
    produce_arrests(0, 7);
    harness_proc_t *t = run_tool("opstream-alert", "regress-alert", "latest");
    if (harness_proc_exit_code(t) != 0)
        dump_stderr(t);
    assert_int_equal(harness_proc_exit_code(t), 0);
    harness_proc_free(t);
    assert_int_equal(
        redis_int("HGET opstream:offsets:%s %s", "regress-alert", "opstream.arrests:0"), 7);
    assert_int_equal(
        redis_int("HGET opstream:offsets:%s %s", "regress-alert", "opstream.rescues:5"), 0);
    assert_int_equal(redis_int("HLEN opstream:offsets:%s%s", "regress-alert", ""), 24);
}

/* ---- first contact ---------------------------------------------------------------- */

static harness_proc_t *spawn_prog(const char *prog, const char *brokers, const char *redis,
                                  const char *group) {
    char rules[HARNESS_PATH_MAX];
    snprintf(rules, sizeof rules, "%s/config/alerts.conf", harness_src_dir());
    const char *count_argv[] = {"opstream-count",   "-b", brokers, "--redis", redis, "-g", group,
                                "--stats-interval", "1",  NULL};
    const char *alert_argv[] = {"opstream-alert", "-b",  brokers, "--redis", redis, "-g", group,
                                "--rules",        rules, NULL};
    harness_proc_t *p =
        harness_spawn(strcmp(prog, "opstream-count") == 0 ? count_argv : alert_argv, NULL, 0);
    assert_non_null(p);
    return p;
}

/* Waits for the line, then a while more: it is said once, the program
 * keeps waiting, no librdkafka lines and no idle status lines. */
static void says_once_and_waits(harness_proc_t *p, const char *what) {
    says_t s = {p, what};
    if (harness_wait_until(proc_says, &s, 12000) != 0) {
        dump_stderr(p);
        fail_msg("no '%s' within 12 s", what);
    }
    struct timespec ts = {3, 0};
    nanosleep(&ts, NULL);
    assert_true(harness_proc_running(p));
    assert_int_equal(occurrences(p, what), 1);
    assert_int_equal(occurrences(p, "%3|"), 0);
    assert_int_equal(occurrences(p, "%4|"), 0);
    assert_int_equal(occurrences(p, "events/s"), 0);
}

/* The first-contact tests run for both consumers: the program's name is
 * the test's initial state (see BOTH_CONSUMERS in main). */
static void names_an_unreachable_broker_once_and_stops_on_sigterm(void **state) {
    harness_proc_t *p = spawn_prog(*state, "127.0.0.1:9", g_redis->url, "fc-broker");
    says_once_and_waits(p, "waiting for broker 127.0.0.1:9");
    sigterm_exits(p, 0);
    harness_proc_free(p);
}

static void names_an_unreachable_redis_once_and_stops_on_sigterm(void **state) {
    /* the broker assigns; Redis refuses: stuck inside the assignment */
    harness_proc_t *p =
        spawn_prog(*state, g_broker->bootstrap, "redis://127.0.0.1:9/0", "fc-redis");
    says_once_and_waits(p, "waiting for Redis redis://127.0.0.1:9/0");
    sigterm_exits(p, 0);
    harness_proc_free(p);
}

/* Waiting for the group: the broker answers but refuses to coordinate. */
static void stops_on_sigterm_while_waiting_for_the_group(void **state) {
    assert_int_equal(harness_broker_command(g_broker,
                                            "push-errors FindCoordinator 60 "
                                            "COORDINATOR_NOT_AVAILABLE COORDINATOR_NOT_AVAILABLE",
                                            NULL, 0),
                     0);
    harness_proc_t *p = spawn_prog(*state, g_broker->bootstrap, g_redis->url, "fc-group");
    struct timespec ts = {2, 0};
    nanosleep(&ts, NULL);
    assert_true(harness_proc_running(p));
    assert_int_equal(occurrences(p, "assigned"), 0);
    sigterm_exits(p, 0);
    harness_proc_free(p);
    harness_broker_command(g_broker, "clear-errors FindCoordinator", NULL, 0);
}

/* Redis goes away with a batch pending: the final flush is tried, then the
 * program exits with 1 (the batch is consumed again next time), and says
 * when Redis is back. */
static void count_with_redis_gone_stops_on_sigterm_after_the_final_flush_attempt(void **state) {
    (void)state;
    harness_redis_t *r = harness_redis_start(true);
    assert_non_null(r);
    harness_proc_t *p = spawn_prog("opstream-count", g_broker->bootstrap, r->url, "fc-flush");
    says_t s = {p, "assigned"};
    assert_int_equal(harness_wait_until(proc_says, &s, 30000), 0);
    produce_arrests(0, 3);
    s.what = "3 events";
    assert_int_equal(harness_wait_until(proc_says, &s, 30000), 0);
    assert_int_equal(harness_redis_kill(r), 0);
    produce_arrests(3, 3);
    s.what = "waiting for Redis";
    assert_int_equal(harness_wait_until(proc_says, &s, 15000), 0);
    assert_int_equal(harness_redis_restart(r), 0);
    s.what = "Redis reachable again";
    assert_int_equal(harness_wait_until(proc_says, &s, 15000), 0);
    assert_int_equal(harness_redis_kill(r), 0);
    produce_arrests(6, 3);
    s.what = "waiting for Redis";
    struct timespec ts = {1, 0};
    nanosleep(&ts, NULL);
    /* the second outage noticed before SIGTERM (the side connection of the
     * heartbeats may say an outage of its own as well: at least two) */
    assert_true(occurrences(p, "waiting for Redis") >= 2);
    sigterm_exits(p, 1);
    s.what = "was not written";
    assert_true(proc_says(&s));
    harness_proc_free(p);
    harness_redis_free(r);
}

static char count_prog[] = "opstream-count";
static char alert_prog[] = "opstream-alert";

/* The test fn twice, named count_<fn> and alert_<fn>, with the program's
 * name as its initial state. */
#define BOTH_CONSUMERS(fn)                                                                         \
    {"count_" #fn, fn, tc_setup, tc_teardown, count_prog}, {                                       \
        "alert_" #fn, fn, tc_setup, tc_teardown, alert_prog                                        \
    }

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            offsets_gone_backwards_are_reported_recorded_and_recovered_by_reset, tc_setup,
            tc_teardown),
        cmocka_unit_test_setup_teardown(
            events_after_a_wait_inside_a_burst_are_checked_against_the_clock_after_it, tc_setup,
            tc_teardown),
        cmocka_unit_test_setup_teardown(alert_reports_and_records_offsets_gone_backwards, tc_setup,
                                        tc_teardown),
        cmocka_unit_test_setup_teardown(alert_reset_offsets_latest_puts_the_group_at_the_end,
                                        tc_setup, tc_teardown),
        BOTH_CONSUMERS(names_an_unreachable_broker_once_and_stops_on_sigterm),
        BOTH_CONSUMERS(names_an_unreachable_redis_once_and_stops_on_sigterm),
        BOTH_CONSUMERS(stops_on_sigterm_while_waiting_for_the_group),
        cmocka_unit_test_setup_teardown(
            count_with_redis_gone_stops_on_sigterm_after_the_final_flush_attempt, tc_setup,
            tc_teardown),
    };
    return cmocka_run_group_tests(tests, tc_group_setup, tc_group_teardown);
}
