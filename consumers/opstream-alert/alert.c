/*
 * opstream-alert's handler on the consumer runtime (consumer.h): runs the
 * rule engine over the decoded events and publishes each alert once. The
 * runtime stores the offsets in Redis (opstream:offsets:{GROUP}, the same
 * fenced store as opstream-count's). On each assignment the alert topic is
 * read to its end (alert ids already published, by any instance of the
 * group, and cooldowns) and each partition is re-read a span back from its
 * stored offset to rebuild the spike baselines. A publish whose outcome is
 * unknown (timeout, producer recreated) is checked against the alert topic
 * before it is tried again.
 */
#include "alert.h"

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
#include "opstream/consumer.h"
#include "opstream/idset.h"
#include "opstream/keys.h"
#include "opstream/observe.h"
#include "opstream/redis_link.h"
#include "opstream/clock.h"
#include "startup.h"

#define PROG "opstream-alert"
#define READBACK_MS 30000

static volatile sig_atomic_t g_stop;

static void sleep_ms(int ms) {
    while (ms > 0 && !g_stop) {
        int step = ms < 50 ? ms : 50;
        struct timespec ts = {0, (long)step * 1000000L};
        nanosleep(&ts, NULL);
        ms -= step;
    }
}

static void logmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void logmsg(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, PROG ": ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static void log_line(void *opaque, ops_consumer_level_t level, const char *line) {
    (void)opaque;
    (void)level;
    fprintf(stderr, PROG ": %s\n", line);
}

/* ---- state ------------------------------------------------------------ */

/* One partition of an event topic, remembered across rebalances. */
typedef struct tp {
    char topic[256];
    int32_t partition;
    int64_t fed; /* highest offset fed into the engine, -1 none */
} tp_t;

/* An alert raised lately, with the position of the event that raised it.
 * After a Redis failover the new primary may lack the mirror writes of the
 * last steps (replication is asynchronous); the runtime then seeks back to
 * the offsets the new primary holds, and each event met again mirrors its
 * alerts again (the mirror skips ids it already holds). */
#define RECENT_ALERTS 256
typedef struct recent {
    char topic[256];
    int32_t partition;
    int64_t offset;
    ops_alert_t alert;
} recent_t;

/* An alert raised by a live event whose batch is not stored yet: sent to
 * the alert topic at once (unless known as published), confirmed, mirrored
 * and logged before the batch's offsets are stored (drain). */
typedef struct pending {
    ops_alert_t alert;
    size_t tp;      /* the raising event's partition (index into tps) */
    int64_t offset; /* and offset */
    size_t slot;    /* in the alert output's round, when sent */
    bool sent;      /* sent in the current round */
    bool known;     /* published before (read back, or raised twice): not sent */
    bool delivered; /* its delivery report said so */
    int64_t delivery_ms;
} pending_t;

typedef struct alerter {
    const alert_opts_t *opts;
    recent_t *recent; /* ring of RECENT_ALERTS */
    size_t n_recent, recent_next;
    ops_redis_link_t *redis; /* the alert stream mirror */
    ops_rule_engine_t *eng;
    ops_alert_out_t *out;
    ops_idset_t published;
    tp_t *tps;
    size_t n_tps, cap_tps;
    ops_alert_t *alerts;
    size_t max_alerts;
    pending_t *pending; /* raised since the last drain, in order */
    size_t n_pending, cap_pending;
    ops_idset_t queued;           /* their ids, sent or not */
    const ops_alert_t **mirror_v; /* drain's list for the mirror */
    size_t cap_mirror;
    char send_err[512]; /* why the last send failed */
    int64_t last_redis_log_ms;
    bool readback_said;
    /* counters for the closing line */
    uint64_t n_live, n_replayed, n_published, n_already;
    ops_observe_t obs; /* metrics, health, the --metrics endpoint */
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
    t->fed = -1;
    return t;
}

/* ---- Redis (the alert stream mirror) ------------------------------------ */

/* A Redis failure, logged at most every 5 s so that an outage does not
 * flood the log. */
static void redis_log(alerter_t *al, const char *err) {
    if (ops_clock_mono_ms() - al->last_redis_log_ms >= 5000) {
        logmsg("%s (retrying)", err);
        al->last_redis_log_ms = ops_clock_mono_ms();
    }
}

/* The link, made when first needed (it connects, and reconnects after a
 * lost connection or a failover, by itself). */
static ops_redis_link_t *redis_get(alerter_t *al) {
    char err[512];
    if (al->redis != NULL)
        return al->redis;
    al->redis = ops_redis_link_new(ops_config_get(al->opts->cfg, "opstream.redis.url"),
                                   ops_config_get(al->opts->cfg, "opstream.redis.password.file"),
                                   5000, err, sizeof(err));
    if (al->redis == NULL)
        redis_log(al, err);
    return al->redis;
}

/* ---- what the alert topic holds ------------------------------------------ */

static int restore_one(const ops_alert_t *a, void *opaque) {
    alerter_t *al = opaque;
    int added = ops_idset_add(&al->published, a->alert_id);
    if (added <= 0)
        return added; /* known already or without an id (0), or out of memory (-1) */
    return ops_rule_engine_restore(al->eng, a);
}

/* Reads the alert topic to its end into the published ids (and cooldowns),
 * retrying while the broker cannot be read, until done or stopped. Every
 * alert any instance of the group published before this point is then
 * known: on an assignment, the previous owner of a partition is gone. */
static int read_back(alerter_t *al) {
    char err[512];
    size_t undecodable = 0, before = al->published.n;
    bool said = false;

    while (ops_alert_topic_read(al->opts->cfg, restore_one, al, READBACK_MS, &g_stop, &undecodable,
                                err, sizeof(err)) != 0) {
        if (g_stop)
            return -1;
        if (!said)
            logmsg("reading back %s: %s; retrying", ops_alert_out_topic(al->out), err);
        said = true;
        sleep_ms(1000);
        if (g_stop)
            return -1;
    }
    if (said)
        logmsg("read back %s", ops_alert_out_topic(al->out));
    if (al->opts->verbose || (!al->readback_said && undecodable > 0))
        logmsg("%zu alerts already published (%zu new)%s", al->published.n,
               al->published.n - before,
               undecodable > 0 ? " (some records of the alert topic did not decode)" : "");
    al->readback_said = true;
    return 0;
}

/* ---- partition assignment ---------------------------------------------- */

static int drain(alerter_t *al);

/*
 * The runtime's assignment hook. First the alert topic is read to its end,
 * so that alerts the previous owner of a partition published (and had no
 * time to pass the offsets of) are known. Then each partition's start is
 * chosen: offsets below the stored one were handled by an earlier run and
 * are re-read only to rebuild the spike state (the runtime hands them to
 * on_replay), from the offset the broker finds for "now - span" (offsets by
 * time), or, when it cannot (the development broker), from a fixed number
 * of messages back. Messages this process already fed into the engine are
 * never fed twice.
 */
static int on_assigned(void *opaque, rd_kafka_t *rk, rd_kafka_topic_partition_list_t *parts) {
    alerter_t *al = opaque;
    int64_t span = ops_rules_span_ms(al->opts->rules);

    /* alerts raised before the rebalance are published before anything
     * is read again (the events met again only mirror them again) */
    if (drain(al) != 0 || read_back(al) != 0)
        return -1;
    rd_kafka_topic_partition_list_t *times = rd_kafka_topic_partition_list_copy(parts);
    bool by_time = false;
    if (times != NULL && span > 0) {
        for (int i = 0; i < times->cnt; i++)
            times->elems[i].offset = ops_clock_wall_ms() - span - OPS_MINUTE_MS;
        by_time = rd_kafka_offsets_for_times(rk, times, 5000) == RD_KAFKA_RESP_ERR_NO_ERROR;
    }
    for (int i = 0; i < parts->cnt; i++) {
        rd_kafka_topic_partition_t *p = &parts->elems[i];
        tp_t *t = tp_get(al, p->topic, p->partition, true);
        int64_t stored = p->offset >= 0 ? p->offset : -1;
        if (t == NULL || stored < 0)
            continue; /* never handled: everything is live, from the beginning */
        int64_t start = stored, lo = 0, hi = -1;
        if (rd_kafka_query_watermark_offsets(rk, p->topic, p->partition, &lo, &hi, 5000) !=
            RD_KAFKA_RESP_ERR_NO_ERROR) {
            lo = 0;
            hi = -1;
        }
        if (hi >= 0 && hi < stored) {
            /* the log went back (topic recreated, broker restarted): no
             * re-read, so that the runtime sees the offsets below the
             * stored one as skipped, says so and records them */
        } else if (t->fed >= 0) {
            if (t->fed + 1 < start)
                start = t->fed + 1;
        } else if (span > 0) {
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
                   p->partition, stored, start);
    }
    if (times != NULL)
        rd_kafka_topic_partition_list_destroy(times);
    return 0;
}

/* ---- alerts -------------------------------------------------------------- */

/* Writes a into the Redis stream mirror, retrying until done or stopped
 * (-1). */
static int mirror(alerter_t *al, const ops_alert_t *a) {
    char err[512];

    for (;;) {
        ops_redis_link_t *l = redis_get(al);
        if (l != NULL) {
            /* a connection gone since the last alert is made afresh
             * inside (through the sentinels, or with a new slot map) */
            if (ops_alert_out_mirror(l, a, err, sizeof(err)) >= 0)
                return 0;
            redis_log(al, err);
        }
        if (g_stop)
            return -1;
        sleep_ms(500);
    }
}

static void remember(alerter_t *al, const char *topic, int32_t partition, int64_t offset,
                     const ops_alert_t *a) {
    if (al->recent == NULL)
        return;
    recent_t *r = &al->recent[al->recent_next];
    snprintf(r->topic, sizeof(r->topic), "%s", topic);
    r->partition = partition;
    r->offset = offset;
    r->alert = *a;
    al->recent_next = (al->recent_next + 1) % RECENT_ALERTS;
    if (al->n_recent < RECENT_ALERTS)
        al->n_recent++;
}

/* An event fed before and met again: its alerts mirrored again. */
static int remirror(alerter_t *al, const ops_consumer_msg_t *m) {
    for (size_t i = 0; i < al->n_recent; i++) {
        const recent_t *r = &al->recent[i];
        if (r->offset == m->offset && r->partition == m->partition &&
            strcmp(r->topic, m->topic) == 0 && mirror(al, &r->alert) != 0)
            return -1;
    }
    return 0;
}

/* Sends one alert raised by a live event, unless its id is known as
 * published or already raised since the last drain (then it is only
 * mirrored again). A send that fails is tried again by the drain, after
 * the alert topic was checked. */
static int queue_alert(alerter_t *al, size_t tp, const ops_consumer_msg_t *m,
                       const ops_alert_t *a) {
    if (al->n_pending == al->cap_pending) {
        size_t ncap = al->cap_pending == 0 ? 16 : al->cap_pending * 2;
        pending_t *nv = realloc(al->pending, ncap * sizeof(*nv));
        if (nv == NULL)
            return -1;
        al->pending = nv;
        al->cap_pending = ncap;
    }
    pending_t *p = &al->pending[al->n_pending];
    memset(p, 0, sizeof(*p));
    p->alert = *a;
    p->tp = tp;
    p->offset = m->offset;
    p->known =
        ops_idset_has(&al->published, a->alert_id) || ops_idset_has(&al->queued, a->alert_id);
    if (!p->known) {
        if (ops_idset_add(&al->queued, a->alert_id) < 0)
            return -1;
        p->sent = ops_alert_out_send(al->out, &p->alert, &p->slot, al->send_err,
                                     sizeof(al->send_err)) == 0;
    }
    al->n_pending++;
    return 0;
}

/* Waits for the delivery reports of the pending alerts. An alert not
 * delivered (a timeout, a producer recreated: its outcome is unknown) may
 * still be on the topic: the topic is read to its end before it is sent
 * again, so that no id is published twice. 0 once every pending alert is
 * on the topic; -1 when stopping. */
static int confirm_pending(alerter_t *al) {
    char err[512];

    for (;;) {
        int w = ops_alert_out_wait(al->out, &g_stop, ALERT_STOP_GRACE_MS, err, sizeof(err));
        if (w < 0)
            return -1;
        bool all = true;
        for (size_t i = 0; i < al->n_pending; i++) {
            pending_t *p = &al->pending[i];
            if (p->known || p->delivered)
                continue;
            if (p->sent &&
                ops_alert_out_state(al->out, p->slot, &p->delivery_ms) == OPS_ALERT_OUT_DELIVERED) {
                p->delivered = true;
                if (ops_idset_add(&al->published, p->alert.alert_id) < 0)
                    logmsg("out of memory remembering alert %s", p->alert.alert_id);
            } else {
                all = false;
            }
        }
        if (all)
            break;
        logmsg("%s; checking %s before trying again", w > 0 ? err : al->send_err,
               ops_alert_out_topic(al->out));
        if (g_stop)
            return -1;
        sleep_ms(200);
        if (read_back(al) != 0)
            return -1;
        ops_alert_out_round(al->out);
        for (size_t i = 0; i < al->n_pending; i++) {
            pending_t *p = &al->pending[i];
            p->sent = false;
            if (p->known || p->delivered)
                continue;
            if (ops_idset_has(&al->published, p->alert.alert_id)) {
                p->known = true; /* it had reached the topic */
                continue;
            }
            p->sent = ops_alert_out_send(al->out, &p->alert, &p->slot, al->send_err,
                                         sizeof(al->send_err)) == 0;
        }
    }
    ops_alert_out_round(al->out);
    return 0;
}

/* Mirrors the pending alerts into Redis in their order, retrying until
 * done or stopped (-1). */
static int mirror_pending(alerter_t *al) {
    char err[512];

    if (al->cap_mirror < al->n_pending) {
        const ops_alert_t **nv = realloc(al->mirror_v, al->n_pending * sizeof(*nv));
        if (nv == NULL) {
            logmsg("out of memory mirroring %zu alerts", al->n_pending);
            return -1;
        }
        al->mirror_v = nv;
        al->cap_mirror = al->n_pending;
    }
    for (size_t i = 0; i < al->n_pending; i++)
        al->mirror_v[i] = &al->pending[i].alert;
    for (;;) {
        ops_redis_link_t *l = redis_get(al);
        if (l != NULL &&
            ops_alert_out_mirror_many(l, al->mirror_v, al->n_pending, err, sizeof(err)) >= 0)
            return 0;
        if (l != NULL)
            redis_log(al, err);
        if (g_stop)
            return -1;
        sleep_ms(500);
    }
}

/*
 * The alerts raised since the last drain: every one confirmed on the alert
 * topic, then mirrored into Redis, logged and remembered. Runs before a
 * batch's offsets are stored (the runtime's before_apply) and before a new
 * assignment, so an offset is stored only once the alerts of the events
 * below it are published. -1 when stopping: the batch is then not stored,
 * and its events are read again on the next start (their alerts checked
 * against the topic).
 */
static int drain(alerter_t *al) {
    if (al->n_pending == 0)
        return 0;
    if (confirm_pending(al) != 0 || mirror_pending(al) != 0)
        return -1;
    for (size_t i = 0; i < al->n_pending; i++) {
        pending_t *p = &al->pending[i];
        const ops_alert_t *a = &p->alert;
        const tp_t *t = &al->tps[p->tp];
        if (p->delivered) {
            al->n_published++;
            /* rule names come from the rules file: a bounded set */
            ops_metrics_add(ops_metrics_alerts(al->obs.metrics, a->rule,
                                               ops_severity_name(a->severity), NULL, 0),
                            1);
            logmsg("alert %s %s %s %s%s%s (delivered in %" PRId64 " ms): %s", a->alert_id,
                   ops_severity_name(a->severity), a->rule, a->operation, a->has_country ? " " : "",
                   a->has_country ? a->country : "", p->delivery_ms, a->summary);
        } else {
            al->n_already++;
        }
        remember(al, t->topic, t->partition, p->offset, a);
    }
    al->n_pending = 0;
    ops_idset_clear(&al->queued);
    return 0;
}

/* The runtime's before_apply: the batch's alerts first. */
static int before_apply(void *opaque, ops_counter_t *batch, char *errstr, size_t errstr_size) {
    alerter_t *al = opaque;
    (void)batch;
    if (drain(al) == 0)
        return 0;
    snprintf(errstr, errstr_size, "the alerts of the batch are not all confirmed");
    return -1;
}

/* A live event: rules, alerts sent, and its offset into the batch (the
 * alert consumer keeps no counts: the batch carries positions only). */
static ops_counter_add_result_t on_event(void *opaque, ops_counter_t *batch,
                                         const ops_consumer_msg_t *m, const ops_event_t *ev) {
    alerter_t *al = opaque;
    char err[512];
    tp_t *t = tp_get(al, m->topic, m->partition, true);

    ops_alert_out_poll(al->out);            /* delivery reports of earlier alerts */
    if (t != NULL && m->offset <= t->fed) { /* fed before a rebalance or a failover */
        if (remirror(al, m) != 0)
            return OPS_COUNTER_STALE; /* stopping: this offset is not passed */
        return ops_counter_add_skip(batch, m->topic, m->partition, m->offset);
    }
    int n = ops_rule_engine_process(al->eng, ev, ops_clock_wall_ms(), al->alerts, al->max_alerts,
                                    err, sizeof(err));
    if (n < 0)
        logmsg("%s [%" PRId32 "] offset %" PRId64 ": %s", m->topic, m->partition, m->offset, err);
    for (int i = 0; i < n && (size_t)i < al->max_alerts; i++) {
        if (t == NULL || queue_alert(al, (size_t)(t - al->tps), m, &al->alerts[i]) != 0)
            return OPS_COUNTER_NO_MEMORY; /* the batch is dropped and consumed again */
    }
    if (n > 0)
        ops_metrics_add(
            ops_metrics_events(al->obs.metrics, "opstream-alert", m->topic, "alerted", NULL, 0), 1);
    if (t != NULL)
        t->fed = m->offset;
    al->n_live++;
    return ops_counter_add_skip(batch, m->topic, m->partition, m->offset);
}

/* An event below the stored offset: spike state only, no alert. */
static void on_replay(void *opaque, const ops_consumer_msg_t *m, const ops_event_t *ev) {
    alerter_t *al = opaque;
    char err[512];
    tp_t *t = tp_get(al, m->topic, m->partition, true);

    if (t != NULL && m->offset <= t->fed)
        return;
    if (ops_rule_engine_process(al->eng, ev, ops_clock_wall_ms(), NULL, 0, err, sizeof(err)) < 0)
        logmsg("%s [%" PRId32 "] offset %" PRId64 ": %s", m->topic, m->partition, m->offset, err);
    if (t != NULL)
        t->fed = m->offset;
    al->n_replayed++;
}

/* ---- after a failover ------------------------------------------------------ */

/* How far back the alert topic is mirrored again after a failover: far more
 * than a replica lags behind its primary. */
#define REMIRROR_SPAN_MS (10 * OPS_MINUTE_MS)

typedef struct remirror_ctx {
    alerter_t *al;
    int64_t since; /* raised_at from which alerts are mirrored again */
    size_t n;
} remirror_ctx_t;

static int remirror_one(const ops_alert_t *a, void *opaque) {
    remirror_ctx_t *rc = opaque;
    if (a->raised_at < rc->since)
        return 0;
    if (mirror(rc->al, a) != 0)
        return -1;
    rc->n++;
    return 0;
}

/*
 * The runtime found a new primary (redis-sentinel://). Replication is
 * asynchronous: mirror writes the old primary took in its last moments may
 * be missing on the new one, and nothing else brings them back when the
 * offsets write that followed them was not lost too (the runtime is then
 * not fenced and never re-reads those events). So every alert the topic
 * holds from the last REMIRROR_SPAN_MS, by any instance of the group, is
 * mirrored again; the mirror skips ids the stream already holds.
 */
static int on_primary_changed(void *opaque) {
    alerter_t *al = opaque;
    char err[512];
    remirror_ctx_t rc = {al, ops_clock_wall_ms() - REMIRROR_SPAN_MS, 0};

    while (ops_alert_topic_read(al->opts->cfg, remirror_one, &rc, READBACK_MS, &g_stop, NULL, err,
                                sizeof(err)) != 0) {
        if (g_stop)
            return -1;
        logmsg("mirroring again after the failover: %s: %s; retrying", ops_alert_out_topic(al->out),
               err);
        sleep_ms(1000);
        if (g_stop)
            return -1;
        rc.n = 0;
    }
    logmsg("after the failover: %zu alerts of the last %d minutes checked against the mirror "
           "(those the new primary lacked added again)",
           rc.n, (int)(REMIRROR_SPAN_MS / OPS_MINUTE_MS));
    return 0;
}

/* ---- start and run --------------------------------------------------------- */

int alert_run(const alert_opts_t *opts) {
    int rc = ALERT_EXIT_FATAL;
    char err[512];
    alerter_t al;
    ops_consumer_t *c = NULL;
    memset(&al, 0, sizeof(al));
    al.opts = opts;
    /* --metrics: a busy or invalid address is a usage error, at once */
    if (startup_observe(PROG, opts->cfg, 0, &al.obs) != 0)
        return ALERT_EXIT_USAGE;
    startup_catch_stop_signals(&g_stop, NULL);
    startup_ignore_sigpipe(); /* a mirror written to a lost connection is retried */

    al.max_alerts = ops_rules_count(opts->rules) + 1;
    al.alerts = calloc(al.max_alerts, sizeof(*al.alerts));
    al.recent = calloc(RECENT_ALERTS, sizeof(*al.recent));
    al.eng = ops_rule_engine_new(opts->rules, err, sizeof(err));
    if (al.alerts == NULL || al.recent == NULL || al.eng == NULL) {
        logmsg("%s", al.alerts == NULL || al.recent == NULL ? "out of memory" : err);
        goto cleanup;
    }
    al.out = ops_alert_out_new(opts->cfg, err, sizeof(err));
    if (al.out == NULL) {
        /* no brokers, or a producer property librdkafka refuses */
        logmsg("%s", err);
        rc = ALERT_EXIT_USAGE;
        goto cleanup;
    }
    ops_consumer_handler_t h = {.opaque = &al,
                                .event = on_event,
                                .replay = on_replay,
                                .assigned = on_assigned,
                                .before_apply = before_apply,
                                .primary_changed = on_primary_changed};
    ops_consumer_options_t co = {.cfg = opts->cfg,
                                 .group = opts->group,
                                 .batch_max = ALERT_STORE_EVERY,
                                 .flush_ms = ALERT_STORE_MS,
                                 .shutdown_flush_ms = 1000,
                                 .stop = &g_stop,
                                 .verbose = opts->verbose,
                                 .log = log_line,
                                 .metrics = al.obs.metrics,
                                 .health = al.obs.health,
                                 .program = "opstream-alert"};
    c = ops_consumer_new(&co, &h, err, sizeof(err));
    if (c == NULL) {
        logmsg("%s", err);
        rc = ALERT_EXIT_USAGE;
        goto cleanup;
    }
    logmsg("group %s, %zu rules, alerts to %s", opts->group, ops_rules_count(opts->rules),
           ops_alert_out_topic(al.out));
    /* Stopped with the last batch not stored (its alerts not all confirmed
     * within the grace, or Redis away): nothing is lost, the next start
     * reads it again and publishes each of its alerts once. A stop, as
     * --help says: 0. */
    ops_consumer_exit_t x = ops_consumer_run(c);
    rc = x == OPS_CONSUMER_FATAL ? ALERT_EXIT_FATAL : ALERT_EXIT_OK;
    ops_consumer_stats_t st;
    ops_consumer_get_stats(c, &st);
    logmsg("stopped: %" PRIu64 " events, %" PRIu64 " replayed for state, %" PRIu64
           " alerts published, %" PRIu64 " already published, %" PRIu64 " to the DLQ",
           al.n_live, al.n_replayed, al.n_published, al.n_already, st.dlq);
cleanup:
    ops_consumer_destroy(c);
    ops_alert_out_destroy(al.out);
    ops_redis_link_destroy(al.redis);
    ops_rule_engine_destroy(al.eng);
    free(al.alerts);
    free(al.recent);
    free(al.pending);
    free(al.mirror_v);
    ops_idset_clear(&al.published);
    ops_idset_clear(&al.queued);
    free(al.tps);
    ops_observe_stop(&al.obs);
    return rc;
}

int alert_reset_offsets(const ops_config_t *cfg, const char *group, const char *how_s) {
    char err[512];
    ops_consumer_reset_t how;
    int n;

    if (ops_consumer_reset_parse(how_s, &how, err, sizeof err) != 0) {
        logmsg("%s", err);
        return ALERT_EXIT_USAGE;
    }
    n = ops_consumer_reset_offsets(cfg, group, NULL, how, err, sizeof err);
    if (n < 0) {
        logmsg("--reset-offsets refused: %s", err);
        return n == -2 ? ALERT_EXIT_REFUSED : ALERT_EXIT_FATAL;
    }
    logmsg("group %s: %d partitions set to their %s offset", group, n, how_s);
    return ALERT_EXIT_OK;
}
