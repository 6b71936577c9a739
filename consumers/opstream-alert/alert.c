/*
 * opstream-alert consume loop: reads the event topics in a consumer group,
 * runs the rule engine and publishes each alert once. Offsets live in Redis
 * (opstream:offsets:{GROUP}); on start the alert topic is read back (alert
 * ids already published, cooldowns) and each partition is re-read a span
 * back from its stored offset to rebuild the spike baselines.
 */
#include "alert.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>
#include <librdkafka/rdkafka.h>

#include "opstream/alert_out.h"
#include "opstream/codec.h"
#include "opstream/consumer_metrics.h"
#include "opstream/dlq.h"
#include "opstream/idset.h"
#include "opstream/kafka.h"
#include "opstream/keys.h"
#include "opstream/observe.h"
#include "opstream/redis.h"
#include "startup.h"

#define PROG "opstream-alert"

static volatile sig_atomic_t g_stop;

static void on_signal(int sig) {
    (void)sig;
    g_stop = 1;
}

static int64_t wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void logmsg(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, PROG ": ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* ---- state ------------------------------------------------------------ */

/* One partition of an event topic, remembered across rebalances. */
typedef struct tp {
    char topic[256];
    int32_t partition;
    int64_t live_from; /* offsets below were handled by an earlier run */
    int64_t fed;       /* highest offset fed into the engine, -1 none */
    int64_t next;      /* next offset to store, -1 nothing consumed */
    int64_t stored;    /* what Redis holds, -1 none */
} tp_t;

typedef struct alerter {
    const alert_opts_t *opts;
    rd_kafka_t *rk;
    redisContext *redis;
    ops_codec_t *codec;
    ops_rule_engine_t *eng;
    ops_alert_out_t *out;
    ops_dlq_t *dlq;
    ops_idset_t published;
    tp_t *tps;
    size_t n_tps, cap_tps;
    char offsets_key[OPS_KEY_MAX];
    size_t pending;
    int64_t last_store_ms;
    bool dlq_pending;
    ops_alert_t *alerts;
    size_t max_alerts;
    int64_t last_redis_log_ms;
    /* counters for the closing line */
    uint64_t n_live, n_replayed, n_published, n_already, n_dlq;
    /* observability: metrics, health, the --metrics endpoint */
    ops_observe_t obs;
    ops_consumer_metrics_t cm; /* lag, DLQ reasons */
    int64_t lag_at;
} alerter_t;

static tp_t *tp_get(alerter_t *al, const char *topic, int32_t partition, bool create) {
    for (size_t i = 0; i < al->n_tps; i++) {
        if (al->tps[i].partition == partition && strcmp(al->tps[i].topic, topic) == 0)
            return &al->tps[i];
    }
    if (!create)
        return NULL;
    if (al->n_tps == al->cap_tps) {
        size_t ncap = al->cap_tps == 0 ? 32 : al->cap_tps * 2;
        tp_t *nv = realloc(al->tps, ncap * sizeof(*nv));
        if (nv == NULL)
            return NULL;
        al->tps = nv;
        al->cap_tps = ncap;
    }
    tp_t *t = &al->tps[al->n_tps++];
    memset(t, 0, sizeof(*t));
    snprintf(t->topic, sizeof(t->topic), "%s", topic);
    t->partition = partition;
    t->fed = t->next = t->stored = -1;
    return t;
}

/* ---- Redis -------------------------------------------------------------- */

/* The connection, made (again) when needed. A failure is logged at most
 * every 5 s so that a Redis outage does not flood the log. */
static redisContext *redis_get(alerter_t *al) {
    char err[512];
    if (al->redis != NULL)
        return al->redis;
    al->redis = ops_redis_connect(ops_config_get(al->opts->cfg, "opstream.redis.url"),
                                  ops_config_get(al->opts->cfg, "opstream.redis.password.file"),
                                  5000, err, sizeof(err));
    if (al->redis == NULL && mono_ms() - al->last_redis_log_ms >= 5000) {
        logmsg("%s (retrying)", err);
        al->last_redis_log_ms = mono_ms();
    }
    return al->redis;
}

static void redis_drop(alerter_t *al) {
    if (al->redis != NULL)
        redisFree(al->redis);
    al->redis = NULL;
}

static void tp_field(const tp_t *t, char *buf, size_t size) {
    snprintf(buf, size, "%s:%" PRId32, t->topic, t->partition);
}

/* Reads the stored offsets of the partitions in parts into their tp_t.
 * Returns 0, or -1 when Redis cannot answer. */
static int load_offsets(alerter_t *al, const rd_kafka_topic_partition_list_t *parts) {
    int rc = -1;
    size_t n = (size_t)parts->cnt;
    const char **argv = calloc(n + 2, sizeof(*argv));
    char(*fields)[300] = calloc(n + 1, sizeof(*fields));
    redisReply *r = NULL;
    redisContext *c = redis_get(al);
    if (argv == NULL || fields == NULL || c == NULL)
        goto cleanup;
    argv[0] = "HMGET";
    argv[1] = al->offsets_key;
    for (size_t i = 0; i < n; i++) {
        snprintf(fields[i], sizeof(fields[i]), "%s:%" PRId32, parts->elems[i].topic,
                 parts->elems[i].partition);
        argv[i + 2] = fields[i];
    }
    r = redisCommandArgv(c, (int)n + 2, argv, NULL);
    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != n) {
        logmsg("redis: HMGET %s: %s", al->offsets_key,
               r == NULL                      ? c->errstr
               : r->type == REDIS_REPLY_ERROR ? r->str
                                              : "unexpected reply");
        if (r == NULL)
            redis_drop(al);
        goto cleanup;
    }
    for (size_t i = 0; i < n; i++) {
        tp_t *t = tp_get(al, parts->elems[i].topic, parts->elems[i].partition, true);
        if (t == NULL)
            goto cleanup;
        t->stored = -1;
        if (r->element[i]->type == REDIS_REPLY_STRING) {
            char *end = NULL;
            long long v = strtoll(r->element[i]->str, &end, 10);
            if (end != r->element[i]->str && *end == '\0' && v >= 0)
                t->stored = v;
        }
    }
    rc = 0;
cleanup:
    if (r != NULL)
        freeReplyObject(r);
    free(fields);
    free(argv);
    return rc;
}

/* Writes the next offsets of every partition that moved. The DLQ copies of
 * skipped messages are confirmed first: an offset passes a bad message only
 * once its copy is safe. Returns 0, or -1 (nothing lost: retried later). */
static int store_offsets(alerter_t *al) {
    int rc = -1;
    char err[512];
    const char **argv = NULL;
    char(*vals)[2][300] = NULL;
    redisReply *r = NULL;
    size_t n = 0;
    for (size_t i = 0; i < al->n_tps; i++)
        n += al->tps[i].next >= 0 && al->tps[i].next != al->tps[i].stored;
    if (n == 0) {
        al->pending = 0;
        al->last_store_ms = mono_ms();
        return 0;
    }
    if (al->dlq_pending) {
        if (ops_dlq_flush(al->dlq, 10000, err, sizeof(err)) != 0) {
            logmsg("%s; offsets not stored", err);
            return -1;
        }
        al->dlq_pending = false;
    }
    redisContext *c = redis_get(al);
    argv = calloc(2 * n + 2, sizeof(*argv));
    vals = calloc(n, sizeof(*vals));
    if (c == NULL || argv == NULL || vals == NULL)
        goto cleanup;
    argv[0] = "HSET";
    argv[1] = al->offsets_key;
    size_t k = 0;
    for (size_t i = 0; i < al->n_tps; i++) {
        tp_t *t = &al->tps[i];
        if (t->next < 0 || t->next == t->stored)
            continue;
        tp_field(t, vals[k][0], sizeof(vals[k][0]));
        snprintf(vals[k][1], sizeof(vals[k][1]), "%" PRId64, t->next);
        argv[2 + 2 * k] = vals[k][0];
        argv[3 + 2 * k] = vals[k][1];
        k++;
    }
    r = redisCommandArgv(c, (int)(2 * n + 2), argv, NULL);
    if (r == NULL || r->type == REDIS_REPLY_ERROR) {
        if (mono_ms() - al->last_redis_log_ms >= 5000) {
            logmsg("redis: storing offsets: %s (retrying)", r == NULL ? c->errstr : r->str);
            al->last_redis_log_ms = mono_ms();
        }
        if (r == NULL)
            redis_drop(al);
        goto cleanup;
    }
    for (size_t i = 0; i < al->n_tps; i++) {
        if (al->tps[i].next >= 0)
            al->tps[i].stored = al->tps[i].next;
    }
    al->pending = 0;
    al->last_store_ms = mono_ms();
    rc = 0;
cleanup:
    if (r != NULL)
        freeReplyObject(r);
    free(vals);
    free(argv);
    return rc;
}

/* ---- partition assignment ---------------------------------------------- */

/*
 * Chooses where each assigned partition starts. Offsets below the stored
 * one were handled by an earlier run: they are re-read only to rebuild the
 * spike state (no alert is raised for them), from the offset the broker
 * finds for "now - span" (offsets by time), or, when it cannot (the
 * development broker), from a fixed number of messages back. Messages this
 * process already fed into the engine are never fed twice.
 */
static void choose_starts(alerter_t *al, rd_kafka_topic_partition_list_t *parts) {
    int64_t span = ops_rules_span_ms(al->opts->rules);
    rd_kafka_topic_partition_list_t *times = rd_kafka_topic_partition_list_copy(parts);
    bool by_time = false;
    if (times != NULL && span > 0) {
        for (int i = 0; i < times->cnt; i++)
            times->elems[i].offset = wall_ms() - span - OPS_MINUTE_MS;
        by_time = rd_kafka_offsets_for_times(al->rk, times, 5000) == RD_KAFKA_RESP_ERR_NO_ERROR;
    }
    for (int i = 0; i < parts->cnt; i++) {
        rd_kafka_topic_partition_t *p = &parts->elems[i];
        tp_t *t = tp_get(al, p->topic, p->partition, true);
        if (t == NULL) {
            p->offset = RD_KAFKA_OFFSET_INVALID;
            continue;
        }
        t->next = -1;
        if (t->stored < 0) {
            /* never handled: everything is live, from the beginning */
            t->live_from = 0;
            p->offset = t->fed >= 0 ? t->fed + 1 : RD_KAFKA_OFFSET_BEGINNING;
            continue;
        }
        t->live_from = t->stored;
        int64_t start = t->stored;
        if (t->fed >= 0) {
            if (t->fed + 1 < start)
                start = t->fed + 1;
        } else if (span > 0) {
            int64_t lo = 0, hi = 0;
            if (rd_kafka_query_watermark_offsets(al->rk, p->topic, p->partition, &lo, &hi, 5000) !=
                RD_KAFKA_RESP_ERR_NO_ERROR)
                lo = 0;
            int64_t t_off = by_time && times->elems[i].err == RD_KAFKA_RESP_ERR_NO_ERROR
                                ? times->elems[i].offset
                                : -1;
            if (t_off >= 0)
                start = t_off < start ? t_off : start;
            else
                start = start - al->opts->lookback_messages;
            if (start < lo)
                start = lo;
        }
        p->offset = start;
        if (al->opts->verbose)
            logmsg("%s [%" PRId32 "]: stored offset %" PRId64 ", reading from %" PRId64, p->topic,
                   p->partition, t->stored, start);
    }
    if (times != NULL)
        rd_kafka_topic_partition_list_destroy(times);
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque) {
    alerter_t *al = opaque;
    bool cooperative = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        while (load_offsets(al, parts) != 0 && !g_stop)
            sleep_ms(500);
        choose_starts(al, parts);
        logmsg("assigned %d partitions", parts->cnt);
        if (cooperative) {
            rd_kafka_error_t *e = rd_kafka_incremental_assign(rk, parts);
            if (e != NULL) {
                logmsg("assign: %s", rd_kafka_error_string(e));
                rd_kafka_error_destroy(e);
            }
        } else {
            rd_kafka_assign(rk, parts);
        }
        return;
    }
    /* revoked or lost: pass on what was handled, then let go */
    if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS)
        store_offsets(al);
    for (int i = 0; i < parts->cnt; i++) {
        tp_t *t = tp_get(al, parts->elems[i].topic, parts->elems[i].partition, false);
        if (t != NULL)
            t->next = -1;
    }
    if (cooperative) {
        rd_kafka_error_t *e = rd_kafka_incremental_unassign(rk, parts);
        if (e != NULL)
            rd_kafka_error_destroy(e);
    } else {
        rd_kafka_assign(rk, NULL);
    }
}

/* ---- alerts -------------------------------------------------------------- */

/* Publishes one alert unless the topic already has its id, then mirrors it
 * into Redis (the mirror skips ids it already holds). Retries until done or
 * stopped: -1 only when stopping, with the message not passed. */
static int emit(alerter_t *al, const ops_alert_t *a) {
    char err[512];
    if (!ops_idset_has(&al->published, a->alert_id)) {
        int64_t t0 = mono_ms();
        while (ops_alert_out_publish(al->out, a, &g_stop, err, sizeof(err)) != 0) {
            logmsg("%s", err);
            if (g_stop)
                return -1;
            sleep_ms(500);
        }
        if (ops_idset_add(&al->published, a->alert_id) < 0)
            logmsg("out of memory remembering alert %s", a->alert_id);
        al->n_published++;
        /* rule names come from the rules file: a bounded set */
        ops_metrics_add(
            ops_metrics_alerts(al->obs.metrics, a->rule, ops_severity_name(a->severity), NULL, 0),
            1);
        logmsg("alert %s %s %s %s%s%s (delivered in %" PRId64 " ms): %s", a->alert_id,
               ops_severity_name(a->severity), a->rule, a->operation, a->has_country ? " " : "",
               a->has_country ? a->country : "", mono_ms() - t0, a->summary);
    } else {
        al->n_already++;
    }
    for (;;) {
        redisContext *c = redis_get(al);
        if (c != NULL) {
            if (ops_alert_out_mirror(c, a, err, sizeof(err)) >= 0)
                return 0;
            logmsg("%s", err);
            if (c->err)
                redis_drop(al);
        }
        if (g_stop)
            return -1;
        sleep_ms(500);
    }
}

/* Handles one event message. Returns -1 only when stopping part-way. */
static int handle_message(alerter_t *al, const rd_kafka_message_t *m) {
    char err[512];
    const char *topic = rd_kafka_topic_name(m->rkt);
    tp_t *t = tp_get(al, topic, m->partition, false);
    if (t == NULL)
        return 0;
    if (m->offset <= t->fed) {
        t->next = m->offset + 1; /* fed and handled before a rebalance */
        al->pending++;
        return 0;
    }
    bool live = m->offset >= t->live_from;
    ops_event_t ev;
    ops_codec_err_t cerr =
        ops_codec_decode_event(al->codec, m->payload, m->len, &ev, err, sizeof(err));
    if (cerr != OPS_CODEC_OK) {
        if (live) {
            char reason[512];
            snprintf(reason, sizeof(reason), "%s", err);
            /* not even queued (queue full, producer being replaced): retry,
             * the offset must not pass a message whose copy is not on its way */
            while (ops_dlq_send(al->dlq, m, reason, err, sizeof(err)) != 0) {
                logmsg("%s [%" PRId32 "] offset %" PRId64 ": DLQ: %s", topic, m->partition,
                       m->offset, err);
                if (g_stop)
                    return -1;
                ops_dlq_poll(al->dlq);
                sleep_ms(200);
            }
            al->dlq_pending = true;
            al->n_dlq++;
            const char *cls[] = {ops_metrics_dlq_reason(cerr, 0)};
            ops_metrics_add(ops_metrics_series(al->cm.m.dlq, cls, NULL, 0), 1);
            ops_metrics_add(ops_metrics_events(al->obs.metrics, PROG, topic, "dlq", NULL, 0), 1);
            if (al->opts->verbose)
                logmsg("%s [%" PRId32 "] offset %" PRId64 " to the DLQ: %s", topic, m->partition,
                       m->offset, err);
        }
    } else {
        int n = ops_rule_engine_process(al->eng, &ev, wall_ms(), live ? al->alerts : NULL,
                                        live ? al->max_alerts : 0, err, sizeof(err));
        if (n < 0)
            logmsg("%s [%" PRId32 "] offset %" PRId64 ": %s", topic, m->partition, m->offset, err);
        for (int i = 0; live && i < n && (size_t)i < al->max_alerts; i++) {
            if (emit(al, &al->alerts[i]) != 0)
                return -1;
        }
        if (live && n > 0)
            ops_metrics_add(ops_metrics_events(al->obs.metrics, PROG, topic, "alerted", NULL, 0),
                            1);
        if (live)
            al->n_live++;
        else
            al->n_replayed++;
    }
    t->fed = m->offset;
    t->next = m->offset + 1;
    al->pending++;
    return 0;
}

/* ---- start and run --------------------------------------------------------- */

/* /healthz: the loop turned; /readyz: partitions held and Redis answering;
 * the lag once a second. */
static void observe(alerter_t *al) {
    int64_t now = mono_ms();
    ops_health_beat(al->obs.health);
    rd_kafka_topic_partition_list_t *l = NULL;
    int assigned = 0;
    if (rd_kafka_assignment(al->rk, &l) == RD_KAFKA_RESP_ERR_NO_ERROR && l != NULL) {
        assigned = l->cnt;
        rd_kafka_topic_partition_list_destroy(l);
    }
    if (al->redis == NULL)
        ops_health_set_ready(al->obs.health, "Redis unreachable");
    else if (assigned == 0)
        ops_health_set_ready(al->obs.health, "no partitions assigned");
    else
        ops_health_set_ready(al->obs.health, NULL);
    if (al->obs.metrics != NULL && now >= al->lag_at) {
        ops_consumer_metrics_lag(&al->cm, al->rk, false);
        al->lag_at = now + 1000;
    }
}

/* The consumer metrics of the four event topics. */
static int init_metrics(alerter_t *al, char *err, size_t errsize) {
    const char *prefix = ops_config_get(al->opts->cfg, "opstream.topic.prefix");
    char topics[OPS_KIND_COUNT][256];
    for (int k = 0; k < OPS_KIND_COUNT; k++)
        if (ops_topic_name(prefix, (ops_kind_t)k, topics[k], sizeof topics[k]) != 0) {
            snprintf(err, errsize, "topic prefix too long");
            return -1;
        }
    return ops_consumer_metrics_init(&al->cm, al->obs.metrics, PROG, al->opts->group,
                                     (const char(*)[256])topics, OPS_KIND_COUNT, err, errsize);
}

static int restore_one(const ops_alert_t *a, void *opaque) {
    alerter_t *al = opaque;
    if (ops_idset_add(&al->published, a->alert_id) < 0)
        return -1;
    return ops_rule_engine_restore(al->eng, a);
}

static int subscribe(alerter_t *al, char *err, size_t err_size) {
    const char *prefix = ops_config_get(al->opts->cfg, "opstream.topic.prefix");
    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(OPS_KIND_COUNT);
    if (topics == NULL) {
        snprintf(err, err_size, "out of memory");
        return -1;
    }
    for (int k = 0; k < OPS_KIND_COUNT; k++) {
        char name[256];
        if (ops_topic_name(prefix, (ops_kind_t)k, name, sizeof(name)) != 0) {
            snprintf(err, err_size, "topic prefix too long");
            rd_kafka_topic_partition_list_destroy(topics);
            return -1;
        }
        rd_kafka_topic_partition_list_add(topics, name, RD_KAFKA_PARTITION_UA);
    }
    rd_kafka_resp_err_t e = rd_kafka_subscribe(al->rk, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (e) {
        snprintf(err, err_size, "subscribe: %s", rd_kafka_err2str(e));
        return -1;
    }
    return 0;
}

static void install_signals(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

int alert_run(const alert_opts_t *opts) {
    int rc = ALERT_EXIT_FATAL;
    char err[512];
    size_t undecodable = 0;
    alerter_t al;
    memset(&al, 0, sizeof(al));
    al.opts = opts;
    /* --metrics: a busy or invalid address is a usage error, at once */
    if (startup_observe(PROG, opts->cfg, 0, &al.obs) != 0)
        return ALERT_EXIT_USAGE;
    if (init_metrics(&al, err, sizeof(err)) != 0) {
        logmsg("%s", err);
        ops_observe_stop(&al.obs);
        return ALERT_EXIT_USAGE;
    }
    install_signals();

    if (ops_key_offsets(opts->group, al.offsets_key, sizeof(al.offsets_key)) < 0) {
        logmsg("group name too long");
        rc = ALERT_EXIT_USAGE;
        goto cleanup;
    }
    al.max_alerts = ops_rules_count(opts->rules) + 1;
    al.alerts = calloc(al.max_alerts, sizeof(*al.alerts));
    al.codec = ops_codec_new(NULL, err, sizeof(err));
    al.eng = ops_rule_engine_new(opts->rules, err, sizeof(err));
    if (al.alerts == NULL || al.codec == NULL || al.eng == NULL) {
        logmsg("%s", al.alerts == NULL ? "out of memory" : err);
        goto cleanup;
    }
    al.redis = ops_redis_connect(ops_config_get(opts->cfg, "opstream.redis.url"),
                                 ops_config_get(opts->cfg, "opstream.redis.password.file"), 5000,
                                 err, sizeof(err));
    if (al.redis == NULL) {
        logmsg("%s", err);
        goto cleanup;
    }
    al.out = ops_alert_out_new(opts->cfg, err, sizeof(err));
    if (al.out == NULL) {
        logmsg("%s", err);
        goto cleanup;
    }
    al.dlq = ops_dlq_new(opts->cfg, err, sizeof(err));
    if (al.dlq == NULL) {
        logmsg("%s", err);
        goto cleanup;
    }
    /* what is already on the alert topic: ids and cooldowns */
    if (ops_alert_topic_read(opts->cfg, restore_one, &al, 30000, &undecodable, err, sizeof(err)) !=
        0) {
        logmsg("reading back the alert topic: %s", err);
        goto cleanup;
    }
    if (opts->verbose || undecodable > 0)
        logmsg("%zu alerts already published%s", al.published.n,
               undecodable > 0 ? " (some records of the alert topic did not decode)" : "");
    al.rk = ops_kafka_consumer_new(opts->cfg, opts->group, rebalance_cb, &al, err, sizeof(err));
    if (al.rk == NULL) {
        logmsg("%s", err);
        goto cleanup;
    }
    if (subscribe(&al, err, sizeof(err)) != 0) {
        logmsg("%s", err);
        goto cleanup;
    }
    logmsg("group %s, %zu rules, alerts to %s", opts->group, ops_rules_count(opts->rules),
           ops_alert_out_topic(al.out));
    al.last_store_ms = mono_ms();
    int64_t last_kafka_log = 0;
    while (!g_stop) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(al.rk, 100);
        if (m != NULL) {
            if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
                int hr = handle_message(&al, m);
                rd_kafka_message_destroy(m);
                if (hr != 0)
                    break;
            } else {
                if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF &&
                    mono_ms() - last_kafka_log >= 5000) {
                    logmsg("kafka: %s", rd_kafka_message_errstr(m));
                    last_kafka_log = mono_ms();
                }
                rd_kafka_message_destroy(m);
            }
        }
        if (al.pending > 0 &&
            (al.pending >= ALERT_STORE_EVERY || mono_ms() - al.last_store_ms >= ALERT_STORE_MS))
            store_offsets(&al);
        ops_dlq_poll(al.dlq);
        observe(&al);
        char ferr[256];
        if (rd_kafka_fatal_error(al.rk, ferr, sizeof(ferr)) != RD_KAFKA_RESP_ERR_NO_ERROR) {
            logmsg("fatal consumer error: %s", ferr);
            goto cleanup;
        }
    }
    /* final: pass on what was handled (a second signal gives up) */
    {
        int64_t deadline = mono_ms() + 10000;
        g_stop = 0;
        while (store_offsets(&al) != 0 && mono_ms() < deadline && !g_stop)
            sleep_ms(200);
        g_stop = 1;
    }
    rc = ALERT_EXIT_OK;
    logmsg("stopped: %" PRIu64 " events, %" PRIu64 " replayed for state, %" PRIu64
           " alerts published, %" PRIu64 " already published, %" PRIu64 " to the DLQ",
           al.n_live, al.n_replayed, al.n_published, al.n_already, al.n_dlq);
cleanup:
    if (al.rk != NULL) {
        rd_kafka_consumer_close(al.rk);
        rd_kafka_destroy(al.rk);
    }
    ops_dlq_destroy(al.dlq);
    ops_alert_out_destroy(al.out);
    if (al.redis != NULL)
        redisFree(al.redis);
    ops_rule_engine_destroy(al.eng);
    ops_codec_destroy(al.codec);
    free(al.alerts);
    ops_idset_clear(&al.published);
    free(al.tps);
    ops_consumer_metrics_free(&al.cm);
    ops_observe_stop(&al.obs);
    return rc;
}
