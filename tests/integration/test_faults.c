/*
 * Faults around the real opstream-count and opstream-alert, each with the
 * embedded broker in its own process and a real redis-server (AOF,
 * appendfsync always): produce errors and the leader's broker down for 5 s
 * during a stream; both consumers killed with SIGKILL over and over while
 * members join and leave; redis-server unreachable for 10 s; Redis out of
 * memory (noeviction); a consumer that fell behind the broker's retention.
 * Counts must be exact, alerts published once, and a lost range never
 * skipped silently. OPSTREAM_LONG=1 runs more kill rounds on a longer
 * stream.
 */
#include "test_count_common.h"

#include <pthread.h>
#include <signal.h>

#include "opstream/rules.h"

#define GROUP "opstream-count"
#define ALERT_GROUP "opstream-alert"

static bool long_form(void) {
    const char *v = getenv("OPSTREAM_LONG");
    return v != NULL && strcmp(v, "1") == 0;
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- a paced stream of pre-generated events ------------------------------ */

typedef tc_stream_t stream_t;

/* n events of op within the last two hours, modelled into m; every
 * raid_every-th one (0: none) a rescue of 60 victims that the mass-rescue
 * rule fires on, counted into *raids. */
static void stream_start(stream_t *s, tc_model_t *m, const char *op, int n, int per_tick,
                         uint64_t seed, int raid_every, int *raids) {
    int64_t now = tc_wall_ms();

    tc_stream_fill(s, op, n, per_tick, seed, now);
    for (int i = 0; i < n; i++) {
        if (s->ev[i].kind == OPS_KIND_RESCUE && s->ev[i].count >= 50) {
            s->ev[i].count = 49; /* raids only where the test puts them */
            if (s->ev[i].minors > 49)
                s->ev[i].minors = 49;
        }
        if (raid_every > 0 && i % raid_every == raid_every - 1) {
            s->ev[i].kind = OPS_KIND_RESCUE;
            s->ev[i].count = 60;
            s->ev[i].minors = 5;
            s->ev[i].site = OPS_SITE_HOTEL;
            ops_event_id_derive(s->ev[i].operation, s->ev[i].country, s->ev[i].kind,
                                s->ev[i].source_ref, s->ev[i].event_id);
            (*raids)++;
        }
        tc_model_event(m, &s->ev[i], now);
    }
    tc_stream_run(s);
}

static void stream_wait(stream_t *s, int produced) {
    while (s->produced < produced)
        sleep_ms(20);
}

static int cmp_id(const void *a, const void *b) {
    return strcmp((const char *)a, (const char *)b);
}

/* Every event_id of the stream is on the event topics, none missing and
 * nothing else; returns how many copies are there beyond one. A real broker
 * drops a retried batch it already appended (idempotent producer: sequence
 * numbers); the embedded broker does not check them, so a batch whose
 * response a downed broker lost can land twice there. */
static int assert_each_event_on_the_topics(const stream_t *s) {
    char topic[64], err[256];
    int found = 0, cap = s->n * 2 + 1, extra = 0;
    char(*ids)[OPS_EVENT_ID_LEN + 1] = calloc((size_t)cap, sizeof(*ids));

    assert_non_null(ids);

    for (int k = 0; k < OPS_KIND_COUNT; k++) {
        harness_msgs_t msgs = {0};
        ops_topic_name(NULL, (ops_kind_t)k, topic, sizeof topic);
        assert_int_equal(harness_consume_all(g_broker->bootstrap, topic, 500, 60000, &msgs), 0);
        for (size_t j = 0; j < msgs.n; j++) {
            ops_event_t ev;
            assert_int_equal(ops_codec_decode_event(g_codec, msgs.v[j].value, msgs.v[j].value_len,
                                                    &ev, err, sizeof err),
                             OPS_CODEC_OK);
            assert_true(found < cap);
            memcpy(ids[found++], ev.event_id, sizeof(ids[0]));
        }
        harness_msgs_free(&msgs);
    }
    qsort(ids, (size_t)found, sizeof(ids[0]), cmp_id);
    int distinct = found > 0 ? 1 : 0;
    for (int i = 1; i < found; i++) {
        if (strcmp(ids[i - 1], ids[i]) == 0)
            extra++;
        else
            distinct++;
    }
    assert_int_equal(distinct, s->n); /* each event there, and no other */
    free(ids);
    return extra;
}

/* ---- Kafka faults -------------------------------------------------------- */

static void broker_errors_and_leader_down_5s_during_a_stream_count_exactly(void **state) {
    tc_model_t m = {0};
    stream_t s;
    char err[256], cmd[128];
    int raids = 0;

    (void)state;
    /* One produce request in flight: the embedded broker does not check
     * idempotent sequence numbers, so a retried pipelined batch could land
     * twice there (a real broker drops it). A batch whose response a downed
     * broker lost can still land twice: that is a re-sent record, which the
     * counter's dedupe is for, so this case counts with dedupe on. */
    const char *const dedupe[] = {"-X", "opstream.dedupe.window.s=604800", NULL};
    rd_kafka_destroy(g_rk);
    assert_int_equal(
        ops_config_set(g_cfg, "max.in.flight.requests.per.connection", "1", err, sizeof err), 0);
    g_rk = ops_kafka_producer_new(g_cfg, tp_dr_cb, NULL, err, sizeof err);
    assert_non_null(g_rk);
    assert_int_equal(harness_broker_command(g_broker, "leader opstream.arrests 0 2", NULL, 0), 0);
    harness_proc_t *p = tc_spawn_count(GROUP, dedupe);
    assert_non_null(p);
    stream_start(&s, &m, "FLASH-WEKA", 4000, 20, 11, 0, &raids);
    stream_wait(&s, s.n / 4);
    assert_int_equal(harness_broker_command(g_broker,
                                            "push-errors Produce 6 NOT_LEADER_FOR_PARTITION "
                                            "REQUEST_TIMED_OUT NOT_ENOUGH_REPLICAS",
                                            NULL, 0),
                     0);
    stream_wait(&s, s.n / 3);
    /* The leader of opstream.arrests [0] (and of whatever else it leads)
     * goes away for 5 s while events keep coming. */
    snprintf(cmd, sizeof cmd, "broker-down %d", 2);
    assert_int_equal(harness_broker_command(g_broker, cmd, NULL, 0), 0);
    sleep_ms(5000);
    snprintf(cmd, sizeof cmd, "broker-up %d", 2);
    assert_int_equal(harness_broker_command(g_broker, cmd, NULL, 0), 0);
    tc_stream_finish(&s); /* every delivery report ok */
    assert_int_equal(harness_broker_command(g_broker, "clear-errors Produce", NULL, 0), 0);
    assert_int_equal(tc_wait_consumed(GROUP, 60000), 0);
    tc_stop(p);
    int twice = assert_each_event_on_the_topics(&s);
    if (twice > 0)
        print_message("%d events landed twice on the embedded broker (no sequence checks); "
                      "dedupe counted them once\n", twice);
    assert_int_equal(tc_model_compare(&m, true), 0);
    tc_model_free(&m);
}

static void count_and_alert_killed_again_and_again_count_exactly_and_alert_once(void **state) {
    tc_model_t m = {0};
    stream_t s;
    char rules[HARNESS_PATH_MAX], err[256];
    uint64_t rng = 2024;
    int raids = 0, rounds = long_form() ? 20 : 6, n = long_form() ? 20000 : 5000;
    harness_msgs_t alerts = {0};

    (void)state;
    harness_path(rules, sizeof rules, "faults-rules.conf");
    assert_int_equal(harness_write_file(rules,
                                        "[rule mass-rescue]\nkind = rescue\nwhen = victims >= 50\n"
                                        "severity = CRITICAL\n",
                                        (size_t)-1),
                     0);
    stream_start(&s, &m, "LIBERTERRA-II", n, 10, 99, 97, &raids);
    for (int round = 0; round < rounds; round++) {
        /* One or two of each: members join, and leave by dying. */
        harness_proc_t *procs[4] = {tc_spawn_count(GROUP, NULL), tc_spawn_alert(rules), NULL, NULL};
        if (round % 2 == 1) {
            procs[2] = tc_spawn_count(GROUP, NULL);
            procs[3] = tc_spawn_alert(rules);
        }
        sleep_ms(300 + (long)(tc_rand(&rng) % 1500));
        for (int i = 0; i < 4; i++) {
            if (procs[i] == NULL)
                continue;
            if (tc_rand(&rng) % 4 == 0 && round + 1 < rounds) {
                harness_proc_stop(procs[i], 20000); /* a clean leave now and then */
            } else {
                harness_proc_kill(procs[i]);
            }
            harness_proc_free(procs[i]);
        }
    }
    tc_stream_finish(&s);
    harness_proc_t *c = tc_spawn_count(GROUP, NULL);
    harness_proc_t *a = tc_spawn_alert(rules);
    assert_non_null(c);
    assert_non_null(a);
    assert_int_equal(tc_wait_consumed(GROUP, 90000), 0);
    assert_int_equal(tc_wait_consumed(ALERT_GROUP, 90000), 0);
    tc_stop(c);
    assert_int_equal(harness_proc_stop(a, 20000), 0);
    harness_proc_free(a);
    assert_int_equal(tc_model_compare(&m, true), 0);

    /* Each raid alerted exactly once, on the topic and in the Redis stream. */
    assert_int_equal(
        harness_consume_all(g_broker->bootstrap, "opstream.alerts", 500, 60000, &alerts), 0);
    assert_int_equal(alerts.n, raids);
    for (size_t i = 0; i < alerts.n; i++) {
        ops_alert_t x, y;
        assert_int_equal(ops_codec_decode_alert(g_codec, alerts.v[i].value, alerts.v[i].value_len,
                                                &x, err, sizeof err),
                         OPS_CODEC_OK);
        for (size_t j = i + 1; j < alerts.n; j++) {
            assert_int_equal(ops_codec_decode_alert(g_codec, alerts.v[j].value,
                                                    alerts.v[j].value_len, &y, err, sizeof err),
                             OPS_CODEC_OK);
            if (strcmp(x.alert_id, y.alert_id) == 0)
                fail_msg("alert %s published twice", x.alert_id);
        }
    }
    harness_msgs_free(&alerts);
    redisReply *r = harness_redis_command(g_redis, "XLEN opstream:{LIBERTERRA-II}:alerts");
    assert_non_null(r);
    assert_int_equal(r->integer, raids);
    freeReplyObject(r);
    tc_model_free(&m);
}

/* ---- Redis faults -------------------------------------------------------- */

static bool offsets_stored(void *arg) {
    (void)arg;
    return tc_offsets_sum(GROUP) > 0;
}

static void redis_unreachable_for_10s_holds_the_stream_then_counts_exactly(void **state) {
    tc_model_t m = {0};
    stream_t s;
    int raids = 0;

    (void)state;
    harness_proc_t *p = tc_spawn_count(GROUP, NULL);
    assert_non_null(p);
    stream_start(&s, &m, "WEKA-II", 3000, 10, 5, 0, &raids);
    stream_wait(&s, s.n / 4);
    assert_int_equal(harness_wait_until(offsets_stored, NULL, 30000), 0); /* counting */
    /* Frozen, not dead: connections hang until the client's timeouts. */
    assert_int_equal(harness_proc_signal(g_redis->proc, SIGSTOP), 0);
    int64_t frozen_at = harness_now_ms();
    void *a[] = {p, "retrying"};
    assert_int_equal(harness_wait_until(tc_says, a, 15000), 0); /* it holds and says so */
    sleep_ms(10000 - (long)(harness_now_ms() - frozen_at));
    assert_true(harness_proc_running(p));
    assert_int_equal(harness_proc_signal(g_redis->proc, SIGCONT), 0);
    tc_stream_finish(&s);
    assert_int_equal(tc_wait_consumed(GROUP, 60000), 0);
    tc_stop(p);
    assert_int_equal(tc_model_compare(&m, true), 0);
    tc_model_free(&m);
}

static long long redis_info_ll(const char *field) {
    redisReply *r = harness_redis_command(g_redis, "INFO memory");
    const char *at;
    long long v = -1;

    assert_non_null(r);
    at = strstr(r->str, field);
    if (at != NULL)
        v = strtoll(at + strlen(field) + 1, NULL, 10);
    freeReplyObject(r);
    return v;
}

/* EVALSHA calls Redis has seen, rejected ones (OOM) included. */
static long long evalsha_calls(void) {
    redisReply *r = harness_redis_command(g_redis, "INFO commandstats");
    long long n = -1;
    const char *at;

    if (r != NULL && r->type == REDIS_REPLY_STRING &&
        (at = strstr(r->str, "cmdstat_evalsha:")) != NULL) {
        const char *c = strstr(at, "calls="), *rej = strstr(at, "rejected_calls=");
        n = (c != NULL ? strtoll(c + 6, NULL, 10) : 0) +
            (rej != NULL ? strtoll(rej + 15, NULL, 10) : 0);
    }
    if (r != NULL)
        freeReplyObject(r);
    return n;
}

static bool evalsha_calls_reach(void *arg) {
    return evalsha_calls() >= *(const long long *)arg;
}

static void redis_out_of_memory_applies_no_partial_batch_and_resumes_when_raised(void **state) {
    tc_model_t before = {0}, all = {0};
    uint64_t rng = 8;
    int64_t now = tc_wall_ms();
    redisReply *r;
    const char *const args[] = {"--batch", "100", NULL};

    (void)state;
    harness_proc_t *p = tc_spawn_count(GROUP, args);
    assert_non_null(p);
    for (int i = 0; i < 500; i++) {
        ops_event_t ev = tc_event(&rng, "FLASH-WEKA", i, now - 60000);
        tc_model_event(&before, &ev, now);
        tc_model_event(&all, &ev, now);
        tc_produce_event(&ev);
    }
    tc_flush();
    assert_int_equal(tc_wait_consumed(GROUP, 30000), 0);
    int64_t stored = tc_offsets_sum(GROUP);

    /* Memory full: below what Redis already uses, nothing can be written. */
    long long used = redis_info_ll("used_memory");
    assert_true(used > 0);
    r = harness_redis_command(g_redis, "CONFIG SET maxmemory-policy noeviction");
    freeReplyObject(r);
    r = harness_redis_command(g_redis, "CONFIG SET maxmemory %lld", used / 2);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STATUS);
    freeReplyObject(r);
    for (int i = 500; i < 1500; i++) {
        ops_event_t ev = tc_event(&rng, "FLASH-WEKA", i, now - 30000);
        tc_model_event(&all, &ev, now);
        tc_produce_event(&ev);
    }
    tc_flush();
    void *a[] = {p, "OOM"};
    assert_int_equal(harness_wait_until(tc_says, a, 30000), 0); /* it holds and says why */
    long long retries_done = evalsha_calls() + 3;               /* several retries */
    assert_int_equal(harness_wait_until(evalsha_calls_reach, &retries_done, 30000), 0);
    assert_true(harness_proc_running(p));
    assert_int_equal(tc_offsets_sum(GROUP), stored);      /* no offset moved */
    assert_int_equal(tc_model_compare(&before, true), 0); /* no partial batch */

    r = harness_redis_command(g_redis, "CONFIG SET maxmemory 0");
    freeReplyObject(r);
    assert_int_equal(tc_wait_consumed(GROUP, 60000), 0);
    tc_stop(p);
    assert_int_equal(tc_model_compare(&all, true), 0);
    tc_model_free(&before);
    tc_model_free(&all);
}

/* ---- retention -------------------------------------------------------- */

static void consumer_behind_retention_reports_and_records_the_lost_range(void **state) {
    tc_model_t m = {0};
    int64_t now = tc_wall_ms(), lo = -1, hi = -1;
    char want[128];

    (void)state;
    tc_behind_retention(GROUP, &m, &lo, &hi);
    harness_proc_t *p = tc_spawn_count(GROUP, NULL);
    assert_non_null(p);
    assert_int_equal(tc_wait_consumed(GROUP, 30000), 0);
    /* Loud: the partition and the lost range, in an ERROR line (written
     * before the batch that passes the gap). */
    char *stderr_text = harness_proc_stderr(p);
    tc_stop(p);
    snprintf(want, sizeof want, "ERROR: opstream.arrests [0]: offsets 100..%lld (%lld messages)",
             (long long)lo - 1, (long long)lo - 100);
    if (stderr_text == NULL || strstr(stderr_text, want) == NULL)
        fail_msg("expected '%s' in:\n%s", want, stderr_text ? stderr_text : "");
    free(stderr_text);
    /* Recorded where the coordination centre can see it. */
    redisReply *r = harness_redis_command(g_redis, "HGETALL opstream:gaps:%s", GROUP);
    assert_non_null(r);
    assert_int_equal(r->elements, 2);
    snprintf(want, sizeof want, "opstream.arrests:0:100-%lld", (long long)lo - 1);
    assert_string_equal(r->element[0]->str, want);
    assert_true(strtoll(r->element[1]->str, NULL, 10) >= now);
    freeReplyObject(r);
    /* What the broker still had is counted exactly: the 100 from before and
     * the 50 after the junk. */
    assert_int_equal(tc_model_compare(&m, true), 0);
    assert_int_equal(tc_offsets_sum(GROUP), hi);
    tc_model_free(&m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            consumer_behind_retention_reports_and_records_the_lost_range, tc_setup, tc_teardown),
        cmocka_unit_test_setup_teardown(
            redis_out_of_memory_applies_no_partial_batch_and_resumes_when_raised, tc_setup,
            tc_teardown),
        cmocka_unit_test_setup_teardown(
            redis_unreachable_for_10s_holds_the_stream_then_counts_exactly, tc_setup,
            tc_thaw_teardown),
        cmocka_unit_test_setup_teardown(
            broker_errors_and_leader_down_5s_during_a_stream_count_exactly, tc_setup, tc_teardown),
        cmocka_unit_test_setup_teardown(
            count_and_alert_killed_again_and_again_count_exactly_and_alert_once, tc_setup,
            tc_teardown),
    };
    return cmocka_run_group_tests(tests, tc_group_setup, tc_group_teardown);
}
