/*
 * opstream-alert and opstream-alerts against the embedded broker and a real
 * redis-server: a scam-centre raid among ordinary traffic, a steady stream
 * with no raids, a burst of rescues with its cooldown, kill -9 and restart
 * during a stream with raids, baselines rebuilt on restart, and the
 * subscriber's line and JSON output.
 */
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
static harness_proc_t *start_alert(const char *group) {
    const char *argv[] = {"opstream-alert",
                          "-b",
                          g_broker->bootstrap,
                          "--redis",
                          g_redis->url,
                          "--rules",
                          g_rules,
                          "-g",
                          group,
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
static size_t stream_ids(const char *op, char ids[][OPS_EVENT_ID_LEN + 1], size_t max) {
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

/* ---- tests --------------------------------------------------------------------- */

static void scam_centre_raid_among_ordinary_traffic_gives_one_critical_alert(void **state) {
    (void)state;
    const char *op = "LIBERTERRA-II";
    static ops_event_t evs[301];
    gen_steady(op, 7, 300, T0, 180, evs);
    ops_event_t raid = make_event(op, OPS_KIND_RESCUE, "PH", T0 + 90 * MIN, 250, "PH-SCAM-0930");
    raid.site = OPS_SITE_SCAM_CENTRE;
    raid.exploitation = OPS_EXPLOITATION_FORCED_CRIMINALITY;
    memmove(&evs[151], &evs[150], 150 * sizeof(evs[0]));
    evs[150] = raid;

    harness_proc_t *p = start_alert("alert-raid");
    produce(evs, 150);
    /* bytes that are no event: to the DLQ, and the stream goes on */
    static const char junk[] = "\x00\x00\x00\x00\x63not avro at all";
    assert_int_equal(harness_produce(g_broker->bootstrap, "opstream.rescues", RD_KAFKA_PARTITION_UA,
                                     "PH", 2, junk, sizeof(junk) - 1, NULL),
                     0);
    produce(evs + 150, 151);
    wait_consumed("alert-raid");
    stop_alert(p);

    alerts_t got;
    read_alerts(op, &got);
    assert_int_equal(got.n, 1); /* not also a scam-centre WARNING, nor a spike */
    ops_alert_t *a = &got.v[0];
    assert_int_equal(a->severity, OPS_SEVERITY_CRITICAL);
    assert_string_equal(a->rule, "mass-rescue");
    assert_int_equal(a->n_event_ids, 1);
    assert_string_equal(a->event_ids[0], raid.event_id);
    assert_string_equal(a->summary, "PH: 250 victims rescued in one SCAM_CENTRE raid, "
                                    "LIBERTERRA-II");
    assert_int_equal(a->observed, 250);
    char id[OPS_EVENT_ID_LEN + 1];
    ops_alert_id_derive("mass-rescue", op, "PH", raid.event_id, id);
    assert_string_equal(a->alert_id, id);

    char ids[4][OPS_EVENT_ID_LEN + 1];
    assert_int_equal(stream_ids(op, ids, 4), 1);
    assert_string_equal(ids[0], id);
    free(got.v);

    harness_msgs_t dlq = {0};
    assert_int_equal(harness_consume_all(g_broker->bootstrap, "opstream.dlq", 300, 30000, &dlq), 0);
    int found = 0;
    for (size_t i = 0; i < dlq.n; i++) {
        char src[64];
        if (dlq.v[i].value_len == sizeof(junk) - 1 &&
            memcmp(dlq.v[i].value, junk, sizeof(junk) - 1) == 0 &&
            harness_msg_header(&dlq.v[i], "opstream.source.topic", src, sizeof(src)) == 0 &&
            strcmp(src, "opstream.rescues") == 0)
            found++;
    }
    assert_int_equal(found, 1);
    harness_msgs_free(&dlq);
}

static void steady_stream_without_raids_raises_no_alert(void **state) {
    (void)state;
    const char *op = "STEADY-OP";
    static ops_event_t evs[400];
    gen_steady(op, 2024, 400, T0, 240, evs);
    harness_proc_t *p = start_alert("alert-steady");
    produce(evs, 400);
    wait_consumed("alert-steady");
    stop_alert(p);
    alerts_t got;
    read_alerts(op, &got);
    if (got.n != 0)
        fail_msg("%zu alerts, first: %s", got.n, got.v[0].summary);
    char ids[1][OPS_EVENT_ID_LEN + 1];
    assert_int_equal(stream_ids(op, ids, 1), 0);
    free(got.v);
}

static void burst_of_rescues_gives_one_spike_alert_and_cooldown_suppresses_repeats(void **state) {
    (void)state;
    const char *op = "SPIKE-OP";
    static ops_event_t evs[64];
    size_t n = 0;
    char ref[32];
    /* an hour of 2 victims every 5 minutes in NG */
    for (int m = 0; m < 60; m += 5) {
        snprintf(ref, sizeof(ref), "bg-%d", m);
        evs[n++] = make_event(op, OPS_KIND_RESCUE, "NG", T0 + m * MIN, 2, ref);
    }
    /* the burst: 12 rescues of 8 victims within 6 minutes, then 8 more while
     * the spike goes on, inside the cooldown */
    for (int i = 0; i < 12; i++) {
        snprintf(ref, sizeof(ref), "burst-%d", i);
        evs[n++] = make_event(op, OPS_KIND_RESCUE, "NG", T0 + (61 + i / 2) * MIN, 8, ref);
    }
    for (int i = 0; i < 8; i++) {
        snprintf(ref, sizeof(ref), "more-%d", i);
        evs[n++] = make_event(op, OPS_KIND_RESCUE, "NG", T0 + (70 + i) * MIN, 8, ref);
    }
    /* four quiet hours later, a second burst is a second alert */
    for (int i = 0; i < 6; i++) {
        snprintf(ref, sizeof(ref), "second-%d", i);
        evs[n++] = make_event(op, OPS_KIND_RESCUE, "NG", T0 + (320 + i / 3) * MIN, 10, ref);
    }
    harness_proc_t *p = start_alert("alert-spike");
    produce(evs, n);
    wait_consumed("alert-spike");
    stop_alert(p);

    alerts_t got;
    read_alerts(op, &got);
    assert_int_equal(got.n, 2);
    for (size_t i = 0; i < 2; i++) {
        ops_alert_t *a = &got.v[i];
        assert_string_equal(a->rule, "country-victims-spike");
        assert_int_equal(a->severity, OPS_SEVERITY_WARNING);
        assert_true(a->has_country);
        assert_string_equal(a->country, "NG");
        assert_string_equal(a->metric, "victims");
        assert_int_equal(a->window_end - a->window_start, 10 * MIN);
        assert_true(a->threshold >= 40.0);
        assert_true(a->threshold >= 3 * a->baseline);
        assert_true((double)a->observed >= a->threshold);
        assert_true(a->n_event_ids >= 3);
    }
    /* the first one had an hour of background behind it */
    assert_true(got.v[0].baseline > 0);
    assert_true(got.v[0].window_end <= T0 + 67 * MIN);
    assert_true(got.v[1].window_start >= T0 + 300 * MIN);
    assert_unique_ids(&got);
    free(got.v);
}

typedef struct count_arg {
    int64_t want;
} count_arg_t;

static bool alerts_reached(void *arg) {
    const count_arg_t *c = arg;
    return harness_topic_count(g_broker->bootstrap, "opstream.alerts", 5000) >= c->want;
}

static void kill_9_and_replays_during_a_stream_with_raids_publish_every_alert_once(void **state) {
    (void)state;
    const char *op = "KILL-OP";
    /* raids in countries without ordinary traffic, so no spike joins in */
    static const char *const ccs[] = {"TH", "VN", "KH", "MY", "ID", "LA", "MM", "BD", "LK", "NP"};
    static ops_event_t steady[600], evs[610];
    char expected[10][OPS_EVENT_ID_LEN + 1];
    gen_steady(op, 99, 600, T0, 600, steady);
    /* a mass rescue (60 victims, hotel) after every 60 ordinary events */
    size_t n = 0;
    for (int i = 0; i < 600; i++) {
        evs[n++] = steady[i];
        if ((i + 1) % 60 == 0) {
            int r = (i + 1) / 60 - 1;
            char ref[32];
            snprintf(ref, sizeof(ref), "raid-%d", r);
            evs[n] = make_event(op, OPS_KIND_RESCUE, ccs[r], T0 + (int64_t)(i + 1) * MIN, 60, ref);
            ops_alert_id_derive("mass-rescue", op, ccs[r], evs[n].event_id, expected[r]);
            n++;
        }
    }
    assert_int_equal(n, 610);
    int64_t before = harness_topic_count(g_broker->bootstrap, "opstream.alerts", 5000);
    harness_proc_t *p = start_alert("alert-kill");
    produce(evs, 305); /* five raids */
    count_arg_t c = {before + 3};
    assert_int_equal(harness_wait_until(alerts_reached, &c, 60000), 0);
    assert_int_equal(harness_proc_kill(p), 0); /* kill -9 mid-stream */
    harness_proc_free(p);

    p = start_alert("alert-kill");
    produce(evs + 305, 610 - 305);
    wait_consumed("alert-kill");
    stop_alert(p);

    /* the worst moment for a crash: every offset lost, so the whole stream
     * is replayed; what was published is not published again */
    int64_t published = harness_topic_count(g_broker->bootstrap, "opstream.alerts", 5000);
    redisReply *del = harness_redis_command(g_redis, "DEL opstream:offsets:alert-kill");
    assert_non_null(del);
    freeReplyObject(del);
    p = start_alert("alert-kill");
    wait_consumed("alert-kill");
    stop_alert(p);
    assert_int_equal(harness_topic_count(g_broker->bootstrap, "opstream.alerts", 5000), published);

    alerts_t got;
    read_alerts(op, &got);
    assert_unique_ids(&got);
    for (int r = 0; r < 10; r++) {
        bool found = false;
        for (size_t i = 0; i < got.n; i++)
            found |= strcmp(got.v[i].alert_id, expected[r]) == 0;
        if (!found)
            fail_msg("the alert of raid %d (%s) is missing", r, expected[r]);
    }
    assert_int_equal(got.n, 10);
    char ids[16][OPS_EVENT_ID_LEN + 1];
    assert_int_equal(stream_ids(op, ids, 16), 10);
    free(got.v);
}

static void restart_rebuilds_the_spike_baseline_instead_of_starting_at_zero(void **state) {
    (void)state;
    const char *op = "BASE-OP";
    static ops_event_t evs[64];
    size_t n = 0;
    char ref[32];
    /* run 1: an hour of 3 victims a minute in NG (30 per 10 minutes) */
    for (int m = 0; m < 60; m++) {
        snprintf(ref, sizeof(ref), "bg-%d", m);
        evs[n++] = make_event(op, OPS_KIND_RESCUE, "NG", T0 + m * MIN, 3, ref);
    }
    harness_proc_t *p = start_alert("alert-base");
    produce(evs, n);
    wait_consumed("alert-base");
    stop_alert(p);

    /* run 2: 60 victims in 3 rescues at minute 75, in NG (baseline 27,
     * threshold 81: no spike) and in GH (no history: threshold 40, spike) */
    n = 0;
    for (int i = 0; i < 3; i++) {
        snprintf(ref, sizeof(ref), "ng-%d", i);
        evs[n++] = make_event(op, OPS_KIND_RESCUE, "NG", T0 + 75 * MIN, 20, ref);
        snprintf(ref, sizeof(ref), "gh-%d", i);
        evs[n++] = make_event(op, OPS_KIND_RESCUE, "GH", T0 + 75 * MIN, 20, ref);
    }
    p = start_alert("alert-base");
    produce(evs, n);
    wait_consumed("alert-base");
    stop_alert(p);

    alerts_t got;
    read_alerts(op, &got);
    assert_int_equal(got.n, 1);
    assert_string_equal(got.v[0].country, "GH");
    assert_int_equal(got.v[0].observed, 60);
    free(got.v);
}

static char *run_alerts(const char *const *args) {
    const char *argv[16] = {"opstream-alerts", "-b", g_broker->bootstrap};
    size_t k = 3;
    for (; *args != NULL && k < 15; args++)
        argv[k++] = *args;
    argv[k] = NULL;
    harness_proc_t *p = harness_spawn(argv, (const char *const[]){"NO_COLOR", NULL}, 0);
    assert_non_null(p);
    assert_int_equal(harness_proc_wait(p, 30000), 0);
    assert_int_equal(harness_proc_exit_code(p), 0);
    char *out = harness_proc_stdout(p);
    harness_proc_free(p);
    assert_non_null(out);
    return out;
}

static size_t count_lines(const char *s) {
    size_t n = 0;
    for (; *s != '\0'; s++)
        n += *s == '\n';
    return n;
}

static void opstream_alerts_prints_what_was_published_as_lines_and_json(void **state) {
    (void)state;
    const char *op = "FLASH-WEKA";
    ops_event_t evs[3];
    evs[0] = make_event(op, OPS_KIND_RESCUE, "CM", T0 + 14 * 60 * MIN + 5 * MIN, 120, "CM-1");
    evs[1] = make_event(op, OPS_KIND_RESCUE, "GH", T0 + 15 * 60 * MIN, 12, "GH-\"quoted\"");
    evs[1].site = OPS_SITE_SCAM_CENTRE;
    evs[1].has_location = true;
    snprintf(evs[1].location, sizeof(evs[1].location), "Accra \"Ring Road\"");
    evs[2] = make_event("OTHER-OP", OPS_KIND_RESCUE, "CM", T0, 99, "other");
    harness_proc_t *p = start_alert("alert-print");
    produce(evs, 3);
    wait_consumed("alert-print");
    stop_alert(p);

    const char *lines_args[] = {"--from-beginning", "--exit-at-end", "--operation", op, NULL};
    char *lines = run_alerts(lines_args);
    assert_int_equal(count_lines(lines), 2);
    assert_non_null(strstr(lines, "2024-09-30T14:05:00Z CRITICAL FLASH-WEKA CM  CM: 120 victims "
                                  "rescued in one HOTEL raid, FLASH-WEKA\n"));
    assert_non_null(strstr(lines, "2024-09-30T15:00:00Z WARNING  FLASH-WEKA GH  GH: 12 victims "
                                  "rescued in one SCAM_CENTRE raid at Accra \"Ring Road\", "
                                  "FLASH-WEKA\n"));
    assert_null(strchr(lines, '\033')); /* not a terminal: no colour */
    assert_null(strstr(lines, "OTHER-OP"));

    const char *json_args[] = {"--json", "--from-beginning", "--exit-at-end", "--operation",
                               op,       "--min-severity",   "warning",       NULL};
    char *json = run_alerts(json_args);
    assert_int_equal(count_lines(json), 2);
    char want[256];
    char id[OPS_EVENT_ID_LEN + 1];
    ops_alert_id_derive("mass-rescue", op, "CM", evs[0].event_id, id);
    snprintf(want, sizeof(want), "{\"alert_id\":\"%s\",\"operation\":\"FLASH-WEKA\"", id);
    assert_non_null(strstr(json, want));
    snprintf(want, sizeof(want), "\"event_ids\":[\"%s\"]", evs[0].event_id);
    assert_non_null(strstr(json, want));
    assert_non_null(strstr(json, "\"summary\":\"GH: 12 victims rescued in one SCAM_CENTRE raid "
                                 "at Accra \\\"Ring Road\\\", FLASH-WEKA\""));

    const char *crit_args[] = {"--json", "--from-beginning", "--exit-at-end", "--operation",
                               op,       "--min-severity",   "CRITICAL",      NULL};
    char *crit = run_alerts(crit_args);
    assert_int_equal(count_lines(crit), 1);
    assert_non_null(strstr(crit, "\"severity\":\"CRITICAL\""));
    free(lines);
    free(json);
    free(crit);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(scam_centre_raid_among_ordinary_traffic_gives_one_critical_alert),
        cmocka_unit_test(steady_stream_without_raids_raises_no_alert),
        cmocka_unit_test(burst_of_rescues_gives_one_spike_alert_and_cooldown_suppresses_repeats),
        cmocka_unit_test(kill_9_and_replays_during_a_stream_with_raids_publish_every_alert_once),
        cmocka_unit_test(restart_rebuilds_the_spike_baseline_instead_of_starting_at_zero),
        cmocka_unit_test(opstream_alerts_prints_what_was_published_as_lines_and_json),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
