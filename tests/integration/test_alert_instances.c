/*
 * Alerts once across instances: three opstream-alert instances in one
 * group against the embedded broker (opstream-broker) and a real
 * redis-server; one is killed with SIGKILL right after it published an
 * alert (partitions move to the others), and the brokers answer slower
 * than the alert producer waits (a publish whose outcome is unknown: the
 * alert is on the topic but the producer reports a timeout). Every expected
 * alert id is on opstream.alerts exactly once.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "harness.h"
#include "opstream/codec.h"
#include "opstream/config.h"
#include "opstream/kafka.h"
#include "opstream/keys.h"
#include "opstream/rules.h"
#include "opstream/validate.h"

#define T0 1727654400000LL /* 2024-09-30T00:00:00Z */
#define MIN OPS_MINUTE_MS

static harness_broker_t *g_broker;
static harness_redis_t *g_redis;
static ops_config_t *g_cfg;
static rd_kafka_t *g_rk;
static ops_codec_t *g_codec;
static int g_dr_failed;
static char g_rules[HARNESS_PATH_MAX];

/* ---- producing events ------------------------------------------------------- */

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    (void)rk;
    (void)opaque;
    if (m->err)
        g_dr_failed++;
}

static int group_setup(void **state) {
    char err[512];
    if (harness_group_setup(state) != 0)
        return -1;
    g_broker = harness_broker_start(NULL);
    g_redis = harness_redis_start(false);
    if (g_broker == NULL || g_redis == NULL)
        return -1;
    g_cfg = ops_config_new();
    if (g_cfg == NULL ||
        ops_config_set(g_cfg, "bootstrap.servers", g_broker->bootstrap, err, sizeof(err)) != 0)
        return -1;
    g_rk = ops_kafka_producer_new(g_cfg, dr_cb, NULL, err, sizeof(err));
    g_codec = ops_codec_new(NULL, err, sizeof(err));
    snprintf(g_rules, sizeof(g_rules), "%s/config/alerts.conf", harness_src_dir());
    return g_rk != NULL && g_codec != NULL ? 0 : -1;
}

static int group_teardown(void **state) {
    if (g_rk != NULL)
        rd_kafka_destroy(g_rk);
    ops_codec_destroy(g_codec);
    ops_config_destroy(g_cfg);
    harness_broker_free(g_broker);
    harness_redis_free(g_redis);
    return harness_group_teardown(state);
}

static ops_event_t make_event(const char *op, ops_kind_t kind, const char *cc, int64_t t,
                              int32_t count, const char *ref) {
    ops_event_t ev;
    ops_event_init(&ev);
    ev.kind = kind;
    snprintf(ev.operation, sizeof(ev.operation), "%s", op);
    snprintf(ev.country, sizeof(ev.country), "%s", cc);
    ev.occurred_at = t;
    ev.reported_at = t + 3600000;
    snprintf(ev.source_ref, sizeof(ev.source_ref), "%s", ref);
    ev.count = count;
    ev.site = OPS_SITE_HOTEL;
    ops_event_id_derive(op, cc, kind, ref, ev.event_id);
    return ev;
}

/* Produces events in order (keyed by country, like opstream-produce) and
 * waits for every delivery report. */
static void produce(const ops_event_t *evs, size_t n) {
    uint8_t buf[OPS_CODEC_MAX_FRAME];
    char err[512], topic[64];
    for (size_t i = 0; i < n; i++) {
        size_t len = 0;
        assert_int_equal(
            ops_codec_encode_event(g_codec, &evs[i], buf, sizeof(buf), &len, err, sizeof(err)), 0);
        assert_int_equal(ops_topic_name("opstream.", evs[i].kind, topic, sizeof(topic)), 0);
        rd_kafka_resp_err_t e;
        while ((e = rd_kafka_producev(g_rk, RD_KAFKA_V_TOPIC(topic),
                                      RD_KAFKA_V_KEY(evs[i].country, 2), RD_KAFKA_V_VALUE(buf, len),
                                      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END)) ==
               RD_KAFKA_RESP_ERR__QUEUE_FULL)
            rd_kafka_poll(g_rk, 50);
        assert_int_equal(e, RD_KAFKA_RESP_ERR_NO_ERROR);
        rd_kafka_poll(g_rk, 0);
    }
    assert_int_equal(rd_kafka_flush(g_rk, 20000), RD_KAFKA_RESP_ERR_NO_ERROR);
    assert_int_equal(g_dr_failed, 0);
}

/* A fixed-seed stream of ordinary events: small counts, no scam centres,
 * spread evenly over `minutes` of event time in 10 countries. */
static size_t gen_steady(const char *op, uint32_t seed, size_t n, int64_t from, int minutes,
                         ops_event_t *out) {
    static const char *const ccs[] = {"NG", "GH", "CM", "SN", "ML", "CI", "GR", "AR", "MK", "PH"};
    static const ops_site_t sites[] = {OPS_SITE_HOTEL, OPS_SITE_NIGHTCLUB, OPS_SITE_FARM,
                                       OPS_SITE_PRIVATE_HOME, OPS_SITE_WORKSITE};
    uint32_t x = seed != 0 ? seed : 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        ops_kind_t kind = (ops_kind_t)(x % OPS_KIND_COUNT);
        const char *cc = ccs[(x >> 4) % 10];
        int32_t count = 1 + (int32_t)((x >> 8) % (kind == OPS_KIND_MIGRANT   ? 20
                                                  : kind == OPS_KIND_SEIZURE ? 10
                                                                             : 4));
        char ref[64];
        snprintf(ref, sizeof(ref), "%s-steady-%u-%zu", op, seed, i);
        int64_t t = from + (int64_t)i * minutes * MIN / (int64_t)n + (x >> 12) % 1000;
        out[i] = make_event(op, kind, cc, t, count, ref);
        out[i].site = sites[(x >> 16) % 5];
    }
    return n;
}

/* ---- observing the consumer -------------------------------------------------- */

static int64_t events_on_topics(void) {
    static const char *const topics[] = {"opstream.arrests", "opstream.rescues",
                                         "opstream.migrants", "opstream.seizures"};
    int64_t sum = 0;
    for (size_t i = 0; i < 4; i++) {
        int64_t n = harness_topic_count(g_broker->bootstrap, topics[i], 10000);
        assert_true(n >= 0);
        sum += n;
    }
    return sum;
}

typedef struct consumed_arg {
    const char *group;
    int64_t want;
} consumed_arg_t;

/* True once the group's stored offsets cover `want` messages. */
static bool consumed_all(void *arg) {
    const consumed_arg_t *c = arg;
    char key[OPS_KEY_MAX];
    ops_key_offsets(c->group, key, sizeof(key));
    redisReply *r = harness_redis_command(g_redis, "HVALS %s", key);
    int64_t sum = 0;
    for (size_t i = 0; r != NULL && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++)
        sum += strtoll(r->element[i]->str, NULL, 10);
    if (r != NULL)
        freeReplyObject(r);
    return sum >= c->want;
}

static void wait_consumed(const char *group) {
    consumed_arg_t c = {group, events_on_topics()};
    assert_int_equal(harness_wait_until(consumed_all, &c, 60000), 0);
}

static bool proc_assigned(void *arg) {
    char *err = harness_proc_stderr(arg);
    bool ok = err != NULL && strstr(err, "assigned") != NULL;
    free(err);
    return ok;
}

/* Starts opstream-alert with the shipped rules and waits for its partitions. */
static harness_proc_t *start_alert_x(const char *group, const char *extra);

static __attribute__((unused)) harness_proc_t *start_alert(const char *group) {
    return start_alert_x(group, NULL);
}

static harness_proc_t *start_alert_x(const char *group, const char *extra) {
    const char *argv[] = {"opstream-alert",
                          "-b",
                          g_broker->bootstrap,
                          "--redis",
                          g_redis->url,
                          "--rules",
                          g_rules,
                          "-g",
                          group,
                          "-X",
                          "session.timeout.ms=3000",
                          "-X",
                          "heartbeat.interval.ms=500",
                          "-X",
                          "session.timeout.ms=10000",
                          extra != NULL ? "-X" : NULL,
                          extra,
                          NULL};
    harness_proc_t *p = harness_spawn(argv, NULL, 0);
    assert_non_null(p);
    if (harness_wait_until(proc_assigned, p, 60000) != 0) {
        char *err = harness_proc_stderr(p);
        fail_msg("opstream-alert got no partitions; stderr:\n%s", err != NULL ? err : "");
    }
    return p;
}

static void stop_alert(harness_proc_t *p) {
    int rc = harness_proc_stop(p, 20000);
    if (rc != 0) {
        char *err = harness_proc_stderr(p);
        fail_msg("opstream-alert exit %d; stderr:\n%s", rc, err != NULL ? err : "");
    }
    harness_proc_free(p);
}

typedef struct alerts {
    ops_alert_t *v;
    size_t n;
} alerts_t;

/* Every alert of operation op on the alert topic, in partition/offset order. */
static void read_alerts(const char *op, alerts_t *out) {
    harness_msgs_t msgs = {0};
    char err[512];
    assert_int_equal(harness_consume_all(g_broker->bootstrap, "opstream.alerts", 300, 30000, &msgs),
                     0);
    out->v = calloc(msgs.n + 1, sizeof(*out->v));
    out->n = 0;
    assert_non_null(out->v);
    for (size_t i = 0; i < msgs.n; i++) {
        ops_alert_t a;
        assert_int_equal(ops_codec_decode_alert(g_codec, msgs.v[i].value, msgs.v[i].value_len, &a,
                                                err, sizeof(err)),
                         OPS_CODEC_OK);
        /* keyed by operation */
        assert_int_equal(msgs.v[i].key_len, strlen(a.operation));
        assert_memory_equal(msgs.v[i].key, a.operation, msgs.v[i].key_len);
        if (strcmp(a.operation, op) == 0)
            out->v[out->n++] = a;
    }
    harness_msgs_free(&msgs);
}

static void assert_unique_ids(const alerts_t *a) {
    for (size_t i = 0; i < a->n; i++) {
        for (size_t j = i + 1; j < a->n; j++) {
            if (strcmp(a->v[i].alert_id, a->v[j].alert_id) == 0)
                fail_msg("alert %s (%s) published twice", a->v[i].alert_id, a->v[i].rule);
        }
    }
}

/* The alert ids of the Redis stream of op, checked unique; returns count. */
static __attribute__((unused)) size_t stream_ids(const char *op, char ids[][OPS_EVENT_ID_LEN + 1], size_t max) {
    char key[OPS_KEY_MAX];
    ops_key_alerts(op, key, sizeof(key));
    redisReply *r = harness_redis_command(g_redis, "XRANGE %s - +", key);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    size_t n = 0;
    for (size_t i = 0; i < r->elements; i++) {
        redisReply *fields = r->element[i]->element[1];
        for (size_t f = 0; f + 1 < fields->elements; f += 2) {
            if (strcmp(fields->element[f]->str, "alert_id") != 0)
                continue;
            for (size_t k = 0; k < n; k++)
                assert_string_not_equal(ids[k], fields->element[f + 1]->str);
            assert_true(n < max);
            snprintf(ids[n++], OPS_EVENT_ID_LEN + 1, "%s", fields->element[f + 1]->str);
        }
    }
    freeReplyObject(r);
    return n;
}

/* ---- the test ---------------------------------------------------------------- */

#define RAIDS 24

static harness_proc_t *g_inst[3];

static int instance_that_published(const char *alert_id) {
    char line[128];
    snprintf(line, sizeof(line), "alert %.100s", alert_id);
    for (int i = 0; i < 3; i++) {
        if (g_inst[i] == NULL)
            continue;
        char *err = harness_proc_stderr(g_inst[i]);
        bool yes = err != NULL && strstr(err, line) != NULL;
        free(err);
        if (yes)
            return i;
    }
    return -1;
}

static bool someone_says(void *arg) {
    for (int i = 0; i < 3; i++) {
        if (g_inst[i] == NULL)
            continue;
        char *err = harness_proc_stderr(g_inst[i]);
        bool yes = err != NULL && strstr(err, (const char *)arg) != NULL;
        free(err);
        if (yes)
            return true;
    }
    return false;
}

static void set_rtt(int ms) {
    char cmd[64];
    for (int b = 1; b <= 3; b++) {
        snprintf(cmd, sizeof(cmd), "rtt %d %d", b, ms);
        assert_int_equal(harness_broker_command(g_broker, cmd, NULL, 0), 0);
    }
}

static void three_instances_a_kill_and_unknown_publish_outcomes_give_every_alert_once(
    void **state) {
    (void)state;
    const char *op = "MULTI-OP";
    const char *group = "alert-multi";
    static const char *const ccs[] = {"TH", "VN", "KH", "MY", "ID", "LA", "MM", "BD",
                                      "LK", "NP", "JP", "KR", "MN", "BT", "MV", "TL",
                                      "FJ", "PG", "WS", "TO", "SB", "VU", "NR", "TV"};
    static ops_event_t steady[RAIDS * 20], evs[RAIDS * 21];
    char expected[RAIDS][OPS_EVENT_ID_LEN + 1];
    gen_steady(op, 5, RAIDS * 20, T0, RAIDS * 20, steady);
    size_t n = 0;
    for (int i = 0; i < RAIDS * 20; i++) {
        evs[n++] = steady[i];
        if ((i + 1) % 20 == 0) {
            int r = (i + 1) / 20 - 1;
            char ref[32];
            snprintf(ref, sizeof(ref), "multi-raid-%d", r);
            evs[n] = make_event(op, OPS_KIND_RESCUE, ccs[r], T0 + (int64_t)(i + 1) * MIN, 70, ref);
            ops_alert_id_derive("mass-rescue", op, ccs[r], evs[n].event_id, expected[r]);
            n++;
        }
    }
    size_t third = n / 3;
    /* the alert producer gives up after 1.5 s: with the brokers answering
     * after 2.5 s, a delivered alert is reported as timed out (a longer
     * session timeout keeps the group together through the slow phase) */
    for (int i = 0; i < 3; i++)
        g_inst[i] = start_alert_x(group, "message.timeout.ms=1500");

    /* part one, then a SIGKILL right after an alert was published, before
     * its offsets were likely stored */
    produce(evs, third);
    int victim = -1;
    for (int tries = 0; victim < 0 && tries < 600; tries++) {
        for (int r = 0; r < RAIDS && victim < 0; r++)
            victim = instance_that_published(expected[r]);
        if (victim < 0)
            nanosleep(&(struct timespec){0, 10000000L}, NULL);
    }
    assert_true(victim >= 0);
    assert_int_equal(harness_proc_kill(g_inst[victim]), 0);
    harness_proc_free(g_inst[victim]);
    g_inst[victim] = NULL;

    /* part two with slow brokers: publishes whose outcome is unknown */
    set_rtt(2500);
    produce(evs + third, third);
    int waited = harness_wait_until(someone_says, "checking opstream.alerts before trying again",
                                    60000);
    set_rtt(0);
    if (waited != 0) {
        for (int i = 0; i < 3; i++) {
            char *err = g_inst[i] != NULL ? harness_proc_stderr(g_inst[i]) : NULL;
            fprintf(stderr, "--- instance %d:\n%s\n", i, err != NULL ? err : "(killed)");
            free(err);
        }
    }
    assert_int_equal(waited, 0);

    /* part three, then everything handled */
    produce(evs + 2 * third, n - 2 * third);
    wait_consumed(group);
    for (int i = 0; i < 3; i++) {
        if (g_inst[i] != NULL)
            stop_alert(g_inst[i]);
        g_inst[i] = NULL;
    }

    alerts_t got;
    read_alerts(op, &got);
    assert_unique_ids(&got);
    for (int r = 0; r < RAIDS; r++) {
        int times = 0;
        for (size_t i = 0; i < got.n; i++)
            times += strcmp(got.v[i].alert_id, expected[r]) == 0;
        if (times != 1)
            fail_msg("alert %s (raid %d) is on the topic %d times", expected[r], r, times);
    }
    free(got.v);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(
            three_instances_a_kill_and_unknown_publish_outcomes_give_every_alert_once),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
