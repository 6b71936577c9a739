/*
 * Helpers shared by the opstream-alert integration tests: one embedded
 * broker and one redis-server per binary, events produced in order, a
 * steady background stream, opstream-alert started and stopped, and the
 * alert topic and Redis stream read back. Static functions, included by
 * each test file.
 */
#ifndef OPSTREAM_TEST_ALERT_COMMON_H
#define OPSTREAM_TEST_ALERT_COMMON_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"
#include "opstream/codec.h"
#include "opstream/config.h"
#include "opstream/kafka.h"
#include "opstream/keys.h"
#include "opstream/rules.h"
#include "opstream/validate.h"
#include "test_producer_common.h"

#define TA_HELPER __attribute__((unused)) static

#define T0 1727654400000LL /* 2024-09-30T00:00:00Z */
#define MIN OPS_MINUTE_MS

static char g_rules[HARNESS_PATH_MAX];

/* ---- producing events ------------------------------------------------------- */

/* The broker, a redis-server (appendonly: with AOF, for restarts), the
 * producer and the shipped rules. */
TA_HELPER int group_setup_with(void **state, bool appendonly) {
    char err[512];
    if (harness_group_setup(state) != 0)
        return -1;
    g_broker = harness_broker_start(NULL);
    g_redis = harness_redis_start(appendonly);
    if (g_broker == NULL || g_redis == NULL || tp_producer_start() != 0)
        return -1;
    g_codec = ops_codec_new(NULL, err, sizeof(err));
    snprintf(g_rules, sizeof(g_rules), "%s/config/alerts.conf", harness_src_dir());
    return g_codec != NULL ? 0 : -1;
}

TA_HELPER int group_setup(void **state) {
    return group_setup_with(state, false);
}

TA_HELPER int group_teardown(void **state) {
    tp_producer_stop();
    ops_codec_destroy(g_codec);
    harness_broker_free(g_broker);
    harness_redis_free(g_redis);
    return harness_group_teardown(state);
}

TA_HELPER ops_event_t make_event(const char *op, ops_kind_t kind, const char *cc, int64_t t,
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
TA_HELPER void produce(const ops_event_t *evs, size_t n) {
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
TA_HELPER size_t gen_steady(const char *op, uint32_t seed, size_t n, int64_t from, int minutes,
                            ops_event_t *out) {
    TA_HELPER const char *const ccs[] = {"NG", "GH", "CM", "SN", "ML",
                                         "CI", "GR", "AR", "MK", "PH"};
    TA_HELPER const ops_site_t sites[] = {OPS_SITE_HOTEL, OPS_SITE_NIGHTCLUB, OPS_SITE_FARM,
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

/* The n steady events copied to evs with a mass rescue (victims people, at
 * a hotel, in ccs[r], source_ref "<ref_prefix>-<r>") after every `every`
 * of them; raid r's expected mass-rescue alert id goes to expected[r].
 * Returns the number of events in evs. */
TA_HELPER size_t add_raids(const char *op, const ops_event_t *steady, size_t n, size_t every,
                           const char *const *ccs, const char *ref_prefix, int32_t victims,
                           ops_event_t *evs, char expected[][OPS_EVENT_ID_LEN + 1]) {
    size_t out = 0;
    for (size_t i = 0; i < n; i++) {
        evs[out++] = steady[i];
        if ((i + 1) % every == 0) {
            size_t r = (i + 1) / every - 1;
            char ref[64];
            snprintf(ref, sizeof(ref), "%s-%zu", ref_prefix, r);
            evs[out] =
                make_event(op, OPS_KIND_RESCUE, ccs[r], T0 + (int64_t)(i + 1) * MIN, victims, ref);
            ops_alert_id_derive("mass-rescue", op, ccs[r], evs[out].event_id, expected[r]);
            out++;
        }
    }
    return out;
}

/* Every broker of the embedded cluster answers ms later (0: at once). */
TA_HELPER void set_rtt(int ms) {
    assert_int_equal(harness_broker_rtt(g_broker, ms), 0);
}

/* ---- observing the consumer -------------------------------------------------- */

TA_HELPER int64_t events_on_topics(void) {
    TA_HELPER const char *const topics[] = {"opstream.arrests", "opstream.rescues",
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
TA_HELPER bool consumed_all(void *arg) {
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

TA_HELPER void wait_consumed(const char *group) {
    consumed_arg_t c = {group, events_on_topics()};
    assert_int_equal(harness_wait_until(consumed_all, &c, 60000), 0);
}

TA_HELPER bool proc_assigned(void *arg) {
    return harness_proc_stderr_has(arg, "assigned");
}

/* Starts opstream-alert with the shipped rules and extra (NULL-terminated
 * more arguments, or NULL); does not wait for it. */
TA_HELPER harness_proc_t *spawn_alert_with(const char *group, const char *const *extra) {
    const char *argv[32] = {"opstream-alert", "-b",         g_broker->bootstrap,
                            "--redis",        g_redis->url, "--rules",
                            g_rules,          "-g",         group};
    size_t n = 9;
    for (; extra != NULL && *extra != NULL && n < 31; extra++)
        argv[n++] = *extra;
    argv[n] = NULL;
    harness_proc_t *p = harness_spawn(argv, NULL, 0);
    assert_non_null(p);
    return p;
}

/* spawn_alert_with, then waits for its partitions. */
TA_HELPER harness_proc_t *start_alert_with(const char *group, const char *const *extra) {
    harness_proc_t *p = spawn_alert_with(group, extra);
    if (harness_wait_until(proc_assigned, p, 60000) != 0) {
        char *err = harness_proc_stderr(p);
        fail_msg("opstream-alert got no partitions; stderr:\n%s", err != NULL ? err : "");
    }
    return p;
}

TA_HELPER harness_proc_t *start_alert(const char *group) {
    return start_alert_with(group, NULL);
}

TA_HELPER void stop_alert(harness_proc_t *p) {
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
TA_HELPER void read_alerts(const char *op, alerts_t *out) {
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

TA_HELPER void assert_unique_ids(const alerts_t *a) {
    for (size_t i = 0; i < a->n; i++) {
        for (size_t j = i + 1; j < a->n; j++) {
            if (strcmp(a->v[i].alert_id, a->v[j].alert_id) == 0)
                fail_msg("alert %s (%s) published twice", a->v[i].alert_id, a->v[i].rule);
        }
    }
}

/* Every alert of op on the alert topic has a unique id, and each of the n
 * expected ids is there exactly once. Returns how many alerts of op the
 * topic holds. */
TA_HELPER size_t assert_each_published_once(const char *op, char expected[][OPS_EVENT_ID_LEN + 1],
                                            size_t n) {
    alerts_t got;
    read_alerts(op, &got);
    assert_unique_ids(&got);
    for (size_t r = 0; r < n; r++) {
        int times = 0;
        for (size_t i = 0; i < got.n; i++)
            times += strcmp(got.v[i].alert_id, expected[r]) == 0;
        if (times != 1)
            fail_msg("alert %s (raid %zu) is on the topic %d times", expected[r], r, times);
    }
    free(got.v);
    return got.n;
}

/* The alert ids of the Redis stream of op, checked unique; returns count. */
TA_HELPER size_t stream_ids(const char *op, char ids[][OPS_EVENT_ID_LEN + 1], size_t max) {
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

/* The Redis stream of op holds the n expected alert ids, each once, and
 * no other. */
TA_HELPER void assert_each_mirrored_once(const char *op, char expected[][OPS_EVENT_ID_LEN + 1],
                                         size_t n) {
    char(*ids)[OPS_EVENT_ID_LEN + 1] = calloc(n + 1, sizeof(*ids));
    assert_non_null(ids);
    size_t got = stream_ids(op, ids, n + 1); /* asserts them unique */
    assert_int_equal(got, n);
    for (size_t r = 0; r < n; r++) {
        bool found = false;
        for (size_t i = 0; i < got && !found; i++)
            found = strcmp(ids[i], expected[r]) == 0;
        if (!found)
            fail_msg("alert %s (raid %zu) is not in the mirror", expected[r], r);
    }
    free(ids);
}

#endif
