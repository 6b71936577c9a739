/*
 * Helpers shared by the opstream-count and opstream-stats integration tests:
 * a fresh embedded broker per test and one redis-server (AOF) per binary,
 * seeded event generation and production, an in-test model of every Redis
 * key the events must produce (computed independently of lib/counter.c), and
 * the comparison of that model with what Redis holds. Static functions,
 * included by each test file.
 */
#ifndef OPSTREAM_TEST_COUNT_COMMON_H
#define OPSTREAM_TEST_COUNT_COMMON_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <pthread.h>
#include <signal.h>

#include <cmocka.h>

#include "harness.h"
#include "opstream/codec.h"
#include "opstream/config.h"
#include "opstream/event.h"
#include "opstream/kafka.h"
#include "opstream/keys.h"
#include "opstream/validate.h"
#include "test_producer_common.h"

#define TC_HELPER __attribute__((unused)) static

/* The dedupe window the counter tests run opstream-count with: off, so that
 * only the offsets stored with the counts keep them exact. Building the
 * tests with -DTC_DEDUPE_WINDOW='"604800"' shows what dedupe would hide
 * (a broken offset store passes the crash tests then). */
#ifndef TC_DEDUPE_WINDOW
#define TC_DEDUPE_WINDOW "0"
#endif

#define MINUTE_TTL_S 172800LL
#define HOUR_TTL_S 3024000LL

/* ---- set-up --------------------------------------------------------------- */

/* One redis-server (AOF, appendfsync always) and one codec for the binary. */
TC_HELPER int tc_group_setup(void **state) {
    char err[256];

    if (harness_group_setup(state) != 0)
        return -1;
    g_redis = harness_redis_start(true);
    g_codec = ops_codec_new(NULL, err, sizeof err);
    return g_redis != NULL && g_codec != NULL ? 0 : -1;
}

TC_HELPER int tc_group_teardown(void **state) {
    ops_codec_destroy(g_codec);
    harness_redis_free(g_redis);
    return harness_group_teardown(state);
}

/* Each test: a fresh broker (so no test sees another's messages), an empty
 * Redis and a producer. */
TC_HELPER int tc_setup(void **state) {
    redisReply *r;

    (void)state;
    g_broker = harness_broker_start(NULL);
    if (g_broker == NULL)
        return -1;
    r = harness_redis_command(g_redis, "FLUSHALL");
    if (r == NULL)
        return -1;
    freeReplyObject(r);
    return tp_producer_start();
}

TC_HELPER int tc_teardown(void **state) {
    (void)state;
    tp_producer_stop();
    harness_broker_free(g_broker);
    g_broker = NULL;
    return 0;
}

TC_HELPER int64_t tc_wall_ms(void) {
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- events ------------------------------------------------------------- */

TC_HELPER uint64_t tc_rand(uint64_t *s) {
    /* xorshift64* */
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ULL;
}

static const char *const tc_countries[] = {"NG", "CM", "GH", "PH", "TH", "BR",
                                           "ES", "IT", "LY", "SN", "KE", "CO"};

/* A valid event of operation op, number i (its source_ref), at time at. */
TC_HELPER ops_event_t tc_event(uint64_t *rng, const char *op, int i, int64_t at) {
    ops_event_t ev;
    uint64_t r = tc_rand(rng);

    ops_event_init(&ev);
    ev.kind = (ops_kind_t)(r % OPS_KIND_COUNT);
    snprintf(ev.operation, sizeof ev.operation, "%s", op);
    snprintf(ev.country, sizeof ev.country, "%s",
             tc_countries[(r >> 8) % (sizeof tc_countries / sizeof tc_countries[0])]);
    snprintf(ev.source_ref, sizeof ev.source_ref, "%s-%d", op, i);
    ops_event_id_derive(ev.operation, ev.country, ev.kind, ev.source_ref, ev.event_id);
    ev.occurred_at = at;
    ev.reported_at = at;
    ev.count = 1 + (int32_t)((r >> 16) % 40);
    if ((r >> 32) % 97 == 0)
        ev.count = 250; /* a raid */
    if (ev.kind == OPS_KIND_RESCUE || ev.kind == OPS_KIND_MIGRANT)
        ev.minors = (int32_t)((r >> 40) % (uint64_t)(ev.count + 1));
    if (ev.kind == OPS_KIND_RESCUE)
        ev.site = OPS_SITE_HOTEL;
    return ev;
}

/* Queues one message on partition of topic (RD_KAFKA_PARTITION_UA: the
 * partitioner's choice by key; key may be NULL). */
TC_HELPER void tc_produce_raw_to(const char *topic, int32_t partition, const char *key,
                                 const void *val, size_t len) {
    rd_kafka_resp_err_t e;

    do {
        e = rd_kafka_producev(g_rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition),
                              RD_KAFKA_V_KEY((void *)key, key ? strlen(key) : 0),
                              RD_KAFKA_V_VALUE((void *)val, len),
                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
        if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL)
            rd_kafka_poll(g_rk, 10);
    } while (e == RD_KAFKA_RESP_ERR__QUEUE_FULL);
    assert_int_equal(e, RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_poll(g_rk, 0);
}

TC_HELPER void tc_produce_raw(const char *topic, const char *key, const void *val, size_t len) {
    tc_produce_raw_to(topic, RD_KAFKA_PARTITION_UA, key, val, len);
}

/* Queues one event on its kind's topic, keyed by country. */
TC_HELPER void tc_produce_event(const ops_event_t *ev) {
    unsigned char buf[OPS_CODEC_MAX_FRAME];
    char err[256], topic[64];
    size_t len;

    assert_int_equal(ops_codec_encode_event(g_codec, ev, buf, sizeof buf, &len, err, sizeof err),
                     0);
    assert_int_equal(ops_topic_name(NULL, ev->kind, topic, sizeof topic), 0);
    tc_produce_raw(topic, ev->country, buf, len);
}

TC_HELPER void tc_flush(void) {
    rd_kafka_flush(g_rk, 20000);
    assert_int_equal(rd_kafka_outq_len(g_rk), 0);
    assert_int_equal(g_dr_failed, 0);
}

/* ---- the expected Redis contents ------------------------------------------ */

typedef struct tc_field {
    char key[OPS_KEY_MAX];
    char field[48];
    long long v;
} tc_field_t;

typedef struct tc_model {
    tc_field_t *f;
    size_t n, cap;
    uint32_t *slots; /* index + 1 */
    size_t nslots;
    char members[64][8]; /* countries of the operation */
    size_t nmembers;
    char op[OPS_OPERATION_MAX + 1];
} tc_model_t;

static uint64_t tc_hash(const char *a, const char *b) {
    uint64_t h = 1469598103934665603ULL;

    for (; *a; a++)
        h = (h ^ (unsigned char)*a) * 1099511628211ULL;
    h = (h ^ 0x1f) * 1099511628211ULL;
    for (; *b; b++)
        h = (h ^ (unsigned char)*b) * 1099511628211ULL;
    return h;
}

static void tc_model_grow(tc_model_t *m) {
    size_t ns = m->nslots ? m->nslots * 2 : 1024;
    uint32_t *slots = calloc(ns, sizeof(*slots));

    assert_non_null(slots);
    for (size_t i = 0; i < m->n; i++) {
        size_t s = tc_hash(m->f[i].key, m->f[i].field) & (ns - 1);
        while (slots[s])
            s = (s + 1) & (ns - 1);
        slots[s] = (uint32_t)(i + 1);
    }
    free(m->slots);
    m->slots = slots;
    m->nslots = ns;
}

/* Adds d to (key, field), creating the field (also with d = 0). */
static void tc_model_add(tc_model_t *m, const char *key, const char *field, long long d) {
    size_t s;

    if ((m->n + 1) * 2 > m->nslots)
        tc_model_grow(m);
    s = tc_hash(key, field) & (m->nslots - 1);
    while (m->slots[s]) {
        tc_field_t *f = &m->f[m->slots[s] - 1];
        if (strcmp(f->key, key) == 0 && strcmp(f->field, field) == 0) {
            f->v += d;
            return;
        }
        s = (s + 1) & (m->nslots - 1);
    }
    if (m->n == m->cap) {
        m->cap = m->cap ? m->cap * 2 : 1024;
        m->f = realloc(m->f, m->cap * sizeof(*m->f));
        assert_non_null(m->f);
    }
    tc_field_t *f = &m->f[m->n];
    snprintf(f->key, sizeof f->key, "%s", key);
    snprintf(f->field, sizeof f->field, "%s", field);
    f->v = d;
    m->slots[s] = (uint32_t)(++m->n);
}

TC_HELPER void tc_model_free(tc_model_t *m) {
    free(m->f);
    free(m->slots);
    memset(m, 0, sizeof(*m));
}

/* The contract, restated: totals and per-country hashes carry all six
 * metrics; bucket hashes carry non-zero `metric` and `CC:metric` fields;
 * a bucket past its TTL at now_ms is not written. */
TC_HELPER void tc_model_event(tc_model_t *m, const ops_event_t *ev, int64_t now_ms) {
    int64_t v[OPS_METRIC_COUNT];
    char key[OPS_KEY_MAX], field[48];
    bool found = false;

    snprintf(m->op, sizeof m->op, "%s", ev->operation);
    ops_event_metrics(ev, v);
    for (int k = 0; k < OPS_METRIC_COUNT; k++) {
        const char *name = ops_metric_name((ops_metric_t)k);
        snprintf(key, sizeof key, "opstream:{%s}:total", ev->operation);
        tc_model_add(m, key, name, v[k]);
        snprintf(key, sizeof key, "opstream:{%s}:country:%s", ev->operation, ev->country);
        tc_model_add(m, key, name, v[k]);
        if (v[k] == 0)
            continue;
        snprintf(field, sizeof field, "%s:%s", ev->country, name);
        if (ops_minute_floor(ev->occurred_at) / 1000 + MINUTE_TTL_S > now_ms / 1000) {
            ops_key_minute(ev->operation, ev->occurred_at, key, sizeof key);
            tc_model_add(m, key, name, v[k]);
            tc_model_add(m, key, field, v[k]);
        }
        if (ops_hour_floor(ev->occurred_at) / 1000 + HOUR_TTL_S > now_ms / 1000) {
            ops_key_hour(ev->operation, ev->occurred_at, key, sizeof key);
            tc_model_add(m, key, name, v[k]);
            tc_model_add(m, key, field, v[k]);
        }
    }
    for (size_t i = 0; i < m->nmembers; i++)
        found = found || strcmp(m->members[i], ev->country) == 0;
    if (!found && m->nmembers < 64)
        snprintf(m->members[m->nmembers++], sizeof m->members[0], "%s", ev->country);
}

TC_HELPER long long tc_model_get(const tc_model_t *m, const char *key, const char *field) {
    for (size_t i = 0; i < m->n; i++)
        if (strcmp(m->f[i].key, key) == 0 && strcmp(m->f[i].field, field) == 0)
            return m->f[i].v;
    return -1;
}

static int tc_cmp_field(const void *a, const void *b) {
    const tc_field_t *x = a, *y = b;
    int c = strcmp(x->key, y->key);

    return c != 0 ? c : strcmp(x->field, y->field);
}

/* Every key of the model equals Redis exactly (same fields, same values),
 * Redis has no other hash of the operation, and the sets match. c holds
 * the operation's keys, ops_c the opstream:operations set (on a cluster:
 * the primaries serving their slots). Returns the number of mismatches,
 * each printed. */
TC_HELPER int tc_model_compare_on(const tc_model_t *m, bool print, redisContext *c,
                                  redisContext *ops_c) {
    int bad = 0;
    size_t keys_seen = 0;
    char pattern[OPS_KEY_MAX];

    assert_non_null(c);
    assert_non_null(ops_c);
    /* Per key: fetch once, compare all its fields (fields sorted by key). */
    tc_field_t *sorted = malloc((m->n ? m->n : 1) * sizeof(*sorted));
    assert_non_null(sorted);
    memcpy(sorted, m->f, m->n * sizeof(*sorted));
    qsort(sorted, m->n, sizeof(*sorted), tc_cmp_field);
    for (size_t i = 0; i < m->n;) {
        size_t j = i;
        while (j < m->n && strcmp(sorted[j].key, sorted[i].key) == 0)
            j++;
        keys_seen++;
        redisReply *r = redisCommand(c, "HGETALL %s", sorted[i].key);
        assert_non_null(r);
        for (size_t k = i; k < j; k++) {
            long long got = -1;
            for (size_t e = 0; e + 1 < r->elements; e += 2)
                if (strcmp(r->element[e]->str, sorted[k].field) == 0)
                    got = strtoll(r->element[e + 1]->str, NULL, 10);
            if (got != sorted[k].v) {
                if (print && bad < 20)
                    fprintf(stderr, "mismatch: %s %s: redis %lld, expected %lld\n", sorted[k].key,
                            sorted[k].field, got, sorted[k].v);
                bad++;
            }
        }
        if (r->elements / 2 != j - i) {
            if (print)
                fprintf(stderr, "mismatch: %s has %zu fields, expected %zu\n", sorted[i].key,
                        r->elements / 2, j - i);
            bad++;
        }
        freeReplyObject(r);
        i = j;
    }
    free(sorted);
    /* No hash of the operation that the model does not know (seen: keys are
     * the dedupe marks, checked elsewhere; applied: keys the watermarks). */
    snprintf(pattern, sizeof pattern, "opstream:{%s}:*", m->op);
    redisReply *r = redisCommand(c, "KEYS %s", pattern);
    assert_non_null(r);
    size_t hashes = 0;
    for (size_t e = 0; e < r->elements; e++) {
        const char *k = r->element[e]->str;
        if (strstr(k, ":seen:") || strstr(k, ":applied:") || strstr(k, ":countries") ||
            strstr(k, ":alerts"))
            continue;
        hashes++;
    }
    if (hashes != keys_seen) {
        if (print)
            fprintf(stderr, "mismatch: redis has %zu hashes of %s, expected %zu\n", hashes, m->op,
                    keys_seen);
        bad++;
    }
    freeReplyObject(r);
    r = redisCommand(c, "SCARD opstream:{%s}:countries", m->op);
    assert_non_null(r);
    if ((size_t)r->integer != m->nmembers) {
        if (print)
            fprintf(stderr, "mismatch: %lld countries, expected %zu\n", r->integer, m->nmembers);
        bad++;
    }
    freeReplyObject(r);
    for (size_t i = 0; i < m->nmembers; i++) {
        r = redisCommand(c, "SISMEMBER opstream:{%s}:countries %s", m->op, m->members[i]);
        bad += r->integer != 1;
        freeReplyObject(r);
    }
    r = redisCommand(ops_c, "SISMEMBER opstream:operations %s", m->op);
    assert_non_null(r);
    bad += r->integer != 1;
    freeReplyObject(r);
    return bad;
}

/* tc_model_compare_on the test's redis-server. */
TC_HELPER int tc_model_compare(const tc_model_t *m, bool print) {
    redisContext *c = harness_redis_connect(g_redis);
    int bad = tc_model_compare_on(m, print, c, c);

    redisFree(c);
    return bad;
}

/* ---- the consumer ------------------------------------------------------- */

/* Starts opstream-count in group (extra: NULL-terminated more args, or
 * NULL), with the group settings it uses on the embedded broker (a short
 * session timeout: a killed member is replaced within seconds).
 * Dedupe is off (opstream.dedupe.window.s=0), so that only the offsets
 * stored with the counts keep them exact: a re-counted batch would show.
 * A test of dedupe itself passes "-X opstream.dedupe.window.s=N" in extra
 * (the later setting wins). */
TC_HELPER harness_proc_t *tc_spawn_count(const char *group, const char *const *extra) {
    const char *argv[32] = {"opstream-count",
                            "-b",
                            g_broker->bootstrap,
                            "--redis",
                            g_redis->url,
                            "-g",
                            group,
                            "--stats-interval",
                            "1",
                            "-X",
                            "opstream.dedupe.window.s=" TC_DEDUPE_WINDOW};
    size_t n = 11;

    for (; extra != NULL && *extra != NULL && n < 31; extra++)
        argv[n++] = *extra;
    argv[n] = NULL;
    return harness_spawn(argv, NULL, 0);
}

/* Starts opstream-alert with a rules file in its default group
 * (opstream-alert), with the embedded broker's group settings. */
TC_HELPER harness_proc_t *tc_spawn_alert(const char *rules) {
    const char *argv[] = {"opstream-alert",
                          "-b",
                          g_broker->bootstrap,
                          "--redis",
                          g_redis->url,
                          "--rules",
                          rules,
                          NULL};
    return harness_spawn(argv, NULL, 0);
}

/* tc_teardown, with a Redis frozen (SIGSTOP) or paused (CLIENT PAUSE) by a
 * failed test thawed. */
TC_HELPER int tc_thaw_teardown(void **state) {
    if (g_redis->proc != NULL) {
        harness_proc_signal(g_redis->proc, SIGCONT);
        redisReply *r = harness_redis_command(g_redis, "CLIENT UNPAUSE");
        if (r != NULL)
            freeReplyObject(r);
    }
    return tc_teardown(state);
}

typedef struct tc_progress {
    const char *group;
    int64_t want; /* messages on the four topics */
} tc_progress_t;

/* Sum of the next offsets stored for the group. */
TC_HELPER int64_t tc_offsets_sum(const char *group) {
    redisReply *r = harness_redis_command(g_redis, "HVALS opstream:offsets:%s", group);
    int64_t sum = 0;

    if (r == NULL)
        return -1;
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++)
        sum += strtoll(r->element[i]->str, NULL, 10);
    freeReplyObject(r);
    return sum;
}

static bool tc_all_consumed(void *arg) {
    const tc_progress_t *p = arg;

    return tc_offsets_sum(p->group) == p->want;
}

/* Messages on the four event topics (high watermarks). */
TC_HELPER int64_t tc_topic_messages(void) {
    int64_t n = 0;
    char topic[64];

    for (int k = 0; k < OPS_KIND_COUNT; k++) {
        ops_topic_name(NULL, (ops_kind_t)k, topic, sizeof topic);
        int64_t c = harness_topic_count(g_broker->bootstrap, topic, 10000);
        assert_true(c >= 0);
        n += c;
    }
    return n;
}

/* Waits until the group's stored offsets cover every message produced. */
TC_HELPER int tc_wait_consumed(const char *group, int timeout_ms) {
    tc_progress_t p = {group, tc_topic_messages()};

    return harness_wait_until(tc_all_consumed, &p, timeout_ms);
}

/* SIGTERM and a clean exit (0). */
TC_HELPER void tc_stop(harness_proc_t *p) {
    int code = harness_proc_stop(p, 20000);
    if (code != 0) {
        char *err = harness_proc_stderr(p);
        fprintf(stderr, "opstream-count exit %d, stderr:\n%s\n", code, err ? err : "");
        free(err);
    }
    assert_int_equal(code, 0);
    harness_proc_free(p);
}

/* ---- a consumer behind the broker's retention ----------------------------- */

/* 100 arrests of WEKA-II on opstream.arrests [0] counted by group (its
 * stored offset is then 100); with the consumer away, more junk than the
 * embedded broker keeps (130 messages of 48 KiB, 6.1 MiB), then 50 more
 * arrests. The broker drops offsets 100..*lo-1 (junk only); *hi is the end
 * of the partition. Every arrest goes into m (all survive). */
TC_HELPER void tc_behind_retention(const char *group, tc_model_t *m, int64_t *lo, int64_t *hi) {
    uint64_t rng = 3;
    int64_t now = tc_wall_ms();
    unsigned char frame[OPS_CODEC_MAX_FRAME];
    char err[256];
    size_t len;
    const int junk = 130, junk_size = 48 * 1024; /* 6.1 MiB: more than the broker keeps */
    unsigned char *pad = malloc((size_t)junk_size);

    assert_non_null(pad);
    for (int i = 0; i < 150; i++) {
        ops_event_t ev = tc_event(&rng, "WEKA-II", i, now - 60000);
        ev.kind = OPS_KIND_ARREST;
        ev.minors = 0;
        ev.site = 0;
        ops_event_id_derive(ev.operation, ev.country, ev.kind, ev.source_ref, ev.event_id);
        assert_int_equal(
            ops_codec_encode_event(g_codec, &ev, frame, sizeof frame, &len, err, sizeof err), 0);
        if (i == 100) {
            /* The consumer is away: the broker receives more than it keeps. */
            harness_proc_t *p = tc_spawn_count(group, NULL);
            assert_non_null(p);
            assert_int_equal(tc_wait_consumed(group, 30000), 0);
            tc_stop(p);
            assert_int_equal(tc_offsets_sum(group), 100);
            memset(pad, 'x', (size_t)junk_size);
            pad[0] = 0x01; /* not a frame: the survivors of it go to the DLQ */
            for (int j = 0; j < junk; j++)
                tc_produce_raw_to("opstream.arrests", 0, NULL, pad, (size_t)junk_size);
            tc_flush();
        }
        tc_model_event(m, &ev, now); /* before the gap, or after it: all survive */
        tc_produce_raw_to("opstream.arrests", 0, "NG", frame, len);
        tc_flush();
    }
    free(pad);
    assert_int_equal(rd_kafka_query_watermark_offsets(g_rk, "opstream.arrests", 0, lo, hi, 10000),
                     0);
    assert_true(*lo > 100);         /* the broker dropped offsets 100..lo-1 */
    assert_true(*lo <= 100 + junk); /* only junk: the last 50 events survive */
    assert_int_equal(*hi, 150 + junk);
}

/* ---- memory of a consumer ------------------------------------------------ */

/* A /proc/PID/status field in kB, or -1. */
TC_HELPER long tc_proc_status_kb(pid_t pid, const char *field) {
    char path[64], *text, *at;
    long kb = -1;

    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    text = harness_read_file(path, NULL);
    if (text == NULL)
        return -1;
    at = strstr(text, field);
    if (at != NULL)
        kb = strtol(at + strlen(field) + 1, NULL, 10);
    free(text);
    return kb;
}

/* AddressSanitizer keeps freed memory in quarantine and shadows the rest,
 * so resident size says little about leaks there: LeakSanitizer does. */
TC_HELPER bool tc_proc_is_sanitized(pid_t pid) {
    char path[64], *maps;
    bool yes;

    snprintf(path, sizeof path, "/proc/%d/maps", (int)pid);
    maps = harness_read_file(path, NULL);
    yes = maps != NULL && strstr(maps, "libasan") != NULL;
    free(maps);
    return yes;
}

/* ---- a paced stream -------------------------------------------------------- */

/* A stream of pre-generated events produced by a thread at a steady pace
 * (per_tick events every 20 ms) through g_rk, so that faults land while
 * events are flowing. Set stop to end it early; produced counts what was
 * handed to the producer. */
typedef struct tc_stream {
    ops_event_t *ev;
    int n;
    int per_tick;
    volatile int produced;
    volatile int stop;
    pthread_t thread;
} tc_stream_t;

TC_HELPER void *tc_stream_main(void *arg) {
    tc_stream_t *s = arg;
    unsigned char buf[OPS_CODEC_MAX_FRAME];
    char err[256], topic[64];
    size_t len;
    ops_codec_t *codec = ops_codec_new(NULL, err, sizeof err); /* one per thread */

    for (int i = 0; i < s->n && !s->stop && codec != NULL; i++) {
        if (ops_codec_encode_event(codec, &s->ev[i], buf, sizeof buf, &len, err, sizeof err) != 0)
            break;
        ops_topic_name(NULL, s->ev[i].kind, topic, sizeof topic);
        while (rd_kafka_producev(g_rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(s->ev[i].country, 2),
                                 RD_KAFKA_V_VALUE(buf, len),
                                 RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                 RD_KAFKA_V_END) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
            rd_kafka_poll(g_rk, 10);
        s->produced = i + 1;
        if ((i + 1) % s->per_tick == 0) {
            rd_kafka_poll(g_rk, 0);
            struct timespec ts = {0, 20 * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    ops_codec_destroy(codec);
    return NULL;
}

/* Fills s with n events of op (number i its source_ref, times within the
 * two hours before now) to be produced per_tick at a time; not started. */
TC_HELPER void tc_stream_fill(tc_stream_t *s, const char *op, int n, int per_tick, uint64_t seed,
                              int64_t now) {
    uint64_t rng = seed;

    memset(s, 0, sizeof(*s));
    s->ev = calloc((size_t)n, sizeof(*s->ev));
    assert_non_null(s->ev);
    s->n = n;
    s->per_tick = per_tick;
    for (int i = 0; i < n; i++)
        s->ev[i] = tc_event(&rng, op, i, now - (int64_t)(tc_rand(&rng) % 7200000ULL));
}

/* Starts producing the events of s in a thread. */
TC_HELPER void tc_stream_run(tc_stream_t *s) {
    assert_int_equal(pthread_create(&s->thread, NULL, tc_stream_main, s), 0);
}

/* Waits for the whole stream, every event handed over and delivered. */
TC_HELPER void tc_stream_finish(tc_stream_t *s) {
    pthread_join(s->thread, NULL);
    assert_int_equal(s->produced, s->n);
    tc_flush();
    free(s->ev);
}

/* harness_wait_until predicate: arg is {harness_proc_t *, const char *};
 * true once the process's stderr holds the text. */
TC_HELPER bool tc_says(void *arg) {
    void **a = arg;

    return harness_proc_stderr_has(a[0], a[1]);
}

#endif
