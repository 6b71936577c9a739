/*
 * opstream-count consume loop: polls the event topics (rd_kafka_consumer_poll
 * only), decodes, sends undecodable messages to the DLQ, and writes each
 * batch with its next offsets in one atomic Redis step. Offsets live in Redis:
 * partitions are assigned at the offsets stored there, and a batch only
 * applies while Redis still holds the offsets it started from.
 */
#include "count.h"

#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>
#include <librdkafka/rdkafka.h>

#include "opstream/codec.h"
#include "opstream/consumer_metrics.h"
#include "opstream/counter.h"
#include "opstream/counter_redis.h"
#include "opstream/dlq.h"
#include "opstream/kafka.h"
#include "opstream/observe.h"
#include "opstream/redis.h"
#include "opstream/validate.h"
#include "startup.h"

#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 2000
#define DLQ_FLUSH_MS 10000
#define SEEK_MS 5000
#define BURST_MAX 1000     /* messages handled between two housekeeping rounds */
#define DRAINED_FLUSH_MS 2 /* a batch this old is flushed once nothing more is waiting */

static volatile sig_atomic_t g_signals;

static void on_signal(int sig) {
    (void)sig;
    g_signals++;
}

typedef struct count {
    const count_opts_t *o;
    rd_kafka_t *rk;
    ops_codec_t *codec;
    ops_counter_t *counter;
    ops_counter_redis_t *redis;
    ops_dlq_t *dlq;

    int64_t batch_started; /* monotonic ms of the batch's first message */
    bool redis_failing;    /* the last step failed: partitions paused */
    bool need_reload;      /* offsets must be re-read and sought to */
    int backoff_ms;
    int64_t retry_at;
    char last_redis_err[256];

    /* observability: metrics, health, the --metrics endpoint */
    ops_observe_t obs;
    ops_consumer_metrics_t cm;
    int64_t lag_at;      /* monotonic ms of the next lag update */
    redisContext *probe; /* /readyz asks Redis while no batch does */
    int64_t probe_at;
    char probe_err[256]; /* why the last probe failed, "" when it answered */

    /* status */
    uint64_t events, batches, dlq_msgs, fenced, events_at_last_status;
    size_t gaps_reported;
    int64_t last_status, last_broker_msg;
} count_t;

static int64_t now_mono_ms(void) {
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t now_mono_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t now_wall_ms(void) {
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void say(const char *fmt, ...) {
    va_list ap;

    fputs("opstream-count: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* Capped exponential backoff for Redis retries; says so when the error
 * changes, not on every attempt. */
static void redis_failed(count_t *ct, const char *what, const char *err) {
    if (strcmp(err, ct->last_redis_err) != 0 || ct->backoff_ms >= BACKOFF_MAX_MS) {
        say("%s: %s; retrying in %d ms", what, err,
            ct->backoff_ms ? ct->backoff_ms : BACKOFF_MIN_MS);
        snprintf(ct->last_redis_err, sizeof ct->last_redis_err, "%s", err);
    }
    ct->backoff_ms = ct->backoff_ms ? ct->backoff_ms * 2 : BACKOFF_MIN_MS;
    if (ct->backoff_ms > BACKOFF_MAX_MS)
        ct->backoff_ms = BACKOFF_MAX_MS;
    ct->retry_at = now_mono_ms() + ct->backoff_ms;
}

static void redis_ok(count_t *ct) {
    if (ct->last_redis_err[0] != '\0')
        say("redis: reachable again");
    ct->last_redis_err[0] = '\0';
    ct->backoff_ms = 0;
    ct->retry_at = 0;
}

/* The counter's partitions as a librdkafka list at their stored offsets
 * (none stored: the beginning). */
static rd_kafka_topic_partition_list_t *stored_positions(const count_t *ct) {
    size_t n = ops_counter_partitions(ct->counter);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)(n ? n : 1));

    for (size_t i = 0; i < n; i++) {
        const char *topic;
        int32_t part;
        int64_t stored;
        ops_counter_partition(ct->counter, i, &topic, &part, &stored);
        rd_kafka_topic_partition_list_add(l, topic, part)->offset =
            stored >= 0 ? stored : RD_KAFKA_OFFSET_BEGINNING;
    }
    return l;
}

static void set_paused(count_t *ct, bool pause) {
    rd_kafka_topic_partition_list_t *l = NULL;

    if (rd_kafka_assignment(ct->rk, &l) == RD_KAFKA_RESP_ERR_NO_ERROR && l != NULL) {
        if (pause)
            rd_kafka_pause_partitions(ct->rk, l);
        else
            rd_kafka_resume_partitions(ct->rk, l);
    }
    if (l != NULL)
        rd_kafka_topic_partition_list_destroy(l);
}

/* After a fenced batch: re-read what Redis holds and seek there, dropping
 * whatever was fetched from the old positions. */
static int reload_and_seek(count_t *ct) {
    char err[512];
    rd_kafka_topic_partition_list_t *l;
    rd_kafka_error_t *e;
    int rc = 0;

    if (ops_counter_redis_load_offsets(ct->redis, ct->counter, ct->o->group, err, sizeof err) !=
        0) {
        redis_failed(ct, "redis: reading offsets", err);
        return -1;
    }
    redis_ok(ct);
    l = stored_positions(ct);
    e = rd_kafka_seek_partitions(ct->rk, l, SEEK_MS);
    if (e != NULL) {
        say("kafka: seek: %s; retrying", rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
        rc = -1;
    }
    for (int i = 0; rc == 0 && i < l->cnt; i++) {
        if (l->elems[i].err) {
            say("kafka: seek %s [%d]: %s; retrying", l->elems[i].topic, (int)l->elems[i].partition,
                rd_kafka_err2str(l->elems[i].err));
            rc = -1;
        }
    }
    rd_kafka_topic_partition_list_destroy(l);
    if (rc != 0)
        ct->retry_at = now_mono_ms() + BACKOFF_MAX_MS;
    ct->need_reload = rc != 0;
    return rc;
}

/* Messages the broker dropped (retention) before they were counted: the
 * batch would pass their offsets. Each gap is recorded in Redis
 * (opstream:gaps:GROUP) before the batch is applied, and said loudly once,
 * naming the partition and the lost range; counting goes on with what the
 * broker still has. 0, or -1 when the record could not be written (the
 * batch is then kept and retried like any Redis failure). */
static int record_gaps(count_t *ct, char *err, size_t errsize) {
    size_t n = ops_counter_pending_gaps(ct->counter, NULL, 0);
    ops_counter_gap_t *gaps;
    int rc = -1;

    if (n == 0)
        return 0;
    if ((gaps = calloc(n, sizeof(*gaps))) == NULL) {
        snprintf(err, errsize, "out of memory");
        return -1;
    }
    ops_counter_pending_gaps(ct->counter, gaps, n);
    for (size_t i = 0; i < n; i++) {
        int r = ops_counter_redis_record_gap(ct->redis, ct->o->group, &gaps[i], now_wall_ms(), err,
                                             errsize);
        if (r < 0)
            goto cleanup;
        if (r == 1) {
            ct->gaps_reported++;
            ops_consumer_metrics_gap(&ct->cm);
            say("ERROR: %s [%d]: offsets %lld..%lld (%lld messages) are gone from the broker "
                "(retention) and were never counted; the counts miss them. Recorded in "
                "opstream:gaps:%s; counting goes on from offset %lld",
                gaps[i].topic, (int)gaps[i].partition, (long long)gaps[i].from,
                (long long)gaps[i].to, (long long)(gaps[i].to - gaps[i].from + 1), ct->o->group,
                (long long)gaps[i].to + 1);
        }
    }
    rc = 0;
cleanup:
    free(gaps);
    return rc;
}

/* Writes the pending batch. DLQ copies of messages in it are confirmed
 * first, since the step passes their offsets. Returns the step's outcome;
 * FAILED keeps the batch for a retry. */
static ops_counter_step_t flush_batch(count_t *ct) {
    char err[512];
    size_t seen = 0, events, skips;
    ops_counter_step_t step;

    if (ops_counter_pending(ct->counter) == 0)
        return OPS_COUNTER_STEP_APPLIED;
    skips = ops_counter_pending_skips(ct->counter);
    if (skips > 0 && ops_dlq_flush(ct->dlq, DLQ_FLUSH_MS, err, sizeof err) != 0) {
        say("%s; the batch is dropped and consumed again", err);
        ops_counter_discard(ct->counter);
        ct->need_reload = true;
        return OPS_COUNTER_STEP_FENCED;
    }
    if (record_gaps(ct, err, sizeof err) != 0) {
        ops_consumer_metrics_redis_error(&ct->cm);
        if (!ct->redis_failing) {
            set_paused(ct, true);
            ct->redis_failing = true;
        }
        redis_failed(ct, "redis: recording lost offsets", err);
        return OPS_COUNTER_STEP_FAILED;
    }
    events = ops_counter_pending_events(ct->counter);
    int64_t step_start = now_mono_us();
    step = ops_counter_redis_apply(ct->redis, ct->counter, now_wall_ms(), &seen, err, sizeof err);
    ops_consumer_metrics_step(&ct->cm, ct->counter, (double)(now_mono_us() - step_start) / 1e6,
                              step);
    switch (step) {
    case OPS_COUNTER_STEP_APPLIED:
        ct->events += events - seen;
        ct->dlq_msgs += skips;
        ct->batches++;
        if (ct->redis_failing) {
            set_paused(ct, false);
            ct->redis_failing = false;
        }
        redis_ok(ct);
        break;
    case OPS_COUNTER_STEP_FENCED:
        ct->fenced++;
        say("batch not applied: %s; seeking to the stored offsets", err);
        if (ct->redis_failing) {
            set_paused(ct, false);
            ct->redis_failing = false;
        }
        redis_ok(ct);
        ct->need_reload = true;
        break;
    case OPS_COUNTER_STEP_FAILED:
        if (!ct->redis_failing) {
            set_paused(ct, true);
            ct->redis_failing = true;
        }
        redis_failed(ct, "redis", err);
        break;
    }
    return step;
}

/* Eager rebalancing. ASSIGN: read the stored offsets (retrying while Redis
 * is down: assigning anywhere else could skip or repeat events) and assign
 * there. REVOKE: one attempt to write the pending batch, then let go; an
 * unwritten batch is simply consumed again by the next owner. */
static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque) {
    count_t *ct = opaque;
    char e[512];

    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        ops_counter_unassign_all(ct->counter);
        for (int i = 0; i < parts->cnt; i++)
            if (ops_counter_assign(ct->counter, parts->elems[i].topic, parts->elems[i].partition,
                                   -1, e, sizeof e) != 0)
                say("%s", e);
        while (ops_counter_redis_load_offsets(ct->redis, ct->counter, ct->o->group, e, sizeof e) !=
               0) {
            redis_failed(ct, "redis: reading offsets on assignment", e);
            if (g_signals > 0)
                break;
            ops_health_beat(ct->obs.health); /* waiting on purpose is being alive */
            struct timespec ts = {ct->backoff_ms / 1000, (ct->backoff_ms % 1000) * 1000000L};
            nanosleep(&ts, NULL);
        }
        for (int i = 0; i < parts->cnt; i++) {
            size_t n = ops_counter_partitions(ct->counter);
            for (size_t k = 0; k < n; k++) {
                const char *topic;
                int32_t part;
                int64_t stored;
                ops_counter_partition(ct->counter, k, &topic, &part, &stored);
                if (part == parts->elems[i].partition && strcmp(topic, parts->elems[i].topic) == 0)
                    parts->elems[i].offset = stored >= 0 ? stored : RD_KAFKA_OFFSET_BEGINNING;
            }
        }
        if (ct->o->verbose)
            say("assigned %d partitions", parts->cnt);
        rd_kafka_assign(rk, parts);
        rd_kafka_resume_partitions(rk, parts);
        ct->redis_failing = false;
        ct->need_reload = false;
    } else {
        if (flush_batch(ct) != OPS_COUNTER_STEP_APPLIED)
            ops_counter_discard(ct->counter);
        ops_counter_unassign_all(ct->counter);
        ct->redis_failing = false;
        ct->need_reload = false;
        if (ct->o->verbose)
            say("revoked %d partitions", parts->cnt);
        rd_kafka_assign(rk, NULL);
    }
}

/* Events that pass the codec but would make bad keys (or no dedupe) are
 * refused like undecodable ones. */
static int check_event(const ops_event_t *ev, char *err, size_t errsize) {
    if (!ops_valid_operation(ev->operation)) {
        snprintf(err, errsize, "invalid: operation '%.40s'", ev->operation);
        return -1;
    }
    if (!ops_valid_country(ev->country)) {
        snprintf(err, errsize, "invalid: country '%.8s'", ev->country);
        return -1;
    }
    if (!ops_valid_uuid(ev->event_id)) {
        snprintf(err, errsize, "invalid: event_id '%.40s'", ev->event_id);
        return -1;
    }
    return 0;
}

static void handle_message(count_t *ct, rd_kafka_message_t *m) {
    char err[512];
    const char *topic;
    ops_event_t ev;
    ops_counter_add_result_t r;

    if (m->err) {
        int64_t now = now_mono_ms();
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
            return;
        if (now - ct->last_broker_msg >= 10000 || ct->o->verbose) {
            say("kafka: %s; waiting for the broker", rd_kafka_message_errstr(m));
            ct->last_broker_msg = now;
        }
        return;
    }
    if (ct->need_reload)
        return; /* fetched from positions that are about to be replaced */
    topic = rd_kafka_topic_name(m->rkt);
    ops_codec_err_t cerr =
        m->payload == NULL
            ? OPS_CODEC_ERR_TRUNCATED
            : ops_codec_decode_event(ct->codec, m->payload, m->len, &ev, err, sizeof err);
    if (m->payload == NULL)
        snprintf(err, sizeof err, "truncated: the message has no value");
    bool invalid = false;
    if (cerr == OPS_CODEC_OK && check_event(&ev, err, sizeof err) != 0) {
        cerr = OPS_CODEC_ERR_MALFORMED;
        invalid = true;
    }
    if (ops_counter_pending(ct->counter) == 0)
        ops_consumer_metrics_batch_start(&ct->cm, ct->counter); /* this message starts one */
    if (cerr == OPS_CODEC_OK) {
        r = ops_counter_add_event(ct->counter, topic, m->partition, m->offset, &ev);
        if (r == OPS_COUNTER_ADDED)
            ops_consumer_metrics_added(&ct->cm, topic, ev.kind);
        else if (r == OPS_COUNTER_DUPLICATE)
            ops_consumer_metrics_duplicate(&ct->cm, topic);
    } else {
        r = ops_counter_add_skip(ct->counter, topic, m->partition, m->offset);
        if (r == OPS_COUNTER_SKIPPED) {
            char e2[512];
            if (ct->o->verbose)
                say("%s [%d] @%lld to the DLQ: %s", topic, (int)m->partition, (long long)m->offset,
                    err);
            if (ops_dlq_send(ct->dlq, m, err, e2, sizeof e2) != 0) {
                /* Not even queued: the batch must not pass this offset. */
                say("%s; the batch is dropped and consumed again", e2);
                ops_counter_discard(ct->counter);
                ct->need_reload = true;
                return;
            }
            ops_consumer_metrics_dlq(&ct->cm, topic, ops_metrics_dlq_reason(cerr, invalid));
        }
    }
    if (r == OPS_COUNTER_NO_MEMORY) {
        say("out of memory; the batch is dropped and consumed again");
        ct->need_reload = true;
        return;
    }
    if ((r == OPS_COUNTER_ADDED || r == OPS_COUNTER_SKIPPED || r == OPS_COUNTER_DUPLICATE) &&
        ops_counter_pending(ct->counter) == 1)
        ct->batch_started = now_mono_ms();
}

/* Consumer lag from the watermarks librdkafka caches from fetch responses
 * (no extra round trip). */
static int64_t lag(const count_t *ct) {
    rd_kafka_topic_partition_list_t *l = NULL;
    int64_t total = 0;

    if (rd_kafka_assignment(ct->rk, &l) != RD_KAFKA_RESP_ERR_NO_ERROR || l == NULL)
        return -1;
    rd_kafka_position(ct->rk, l);
    for (int i = 0; i < l->cnt; i++) {
        int64_t lo = -1, hi = -1;
        if (rd_kafka_get_watermark_offsets(ct->rk, l->elems[i].topic, l->elems[i].partition, &lo,
                                           &hi) != RD_KAFKA_RESP_ERR_NO_ERROR ||
            hi < 0)
            continue;
        int64_t pos = l->elems[i].offset >= 0 ? l->elems[i].offset : lo;
        if (pos >= 0 && hi > pos)
            total += hi - pos;
    }
    rd_kafka_topic_partition_list_destroy(l);
    return total;
}

static void status_line(count_t *ct, int64_t now, bool force) {
    int64_t interval = (int64_t)ct->o->stats_interval_s * 1000;
    double secs;

    if (!force && (interval <= 0 || now - ct->last_status < interval))
        return;
    secs = (double)(now - ct->last_status) / 1000.0;
    say("%.1f events/s, %llu events, %llu batches, %llu dlq, %llu duplicates, %llu fenced, "
        "%zu gaps, lag %lld, %zu partitions%s",
        secs > 0 ? (double)(ct->events - ct->events_at_last_status) / secs : 0.0,
        (unsigned long long)ct->events, (unsigned long long)ct->batches,
        (unsigned long long)ct->dlq_msgs, (unsigned long long)ops_counter_dupes(ct->counter),
        (unsigned long long)ct->fenced, ct->gaps_reported, (long long)lag(ct),
        ops_counter_partitions(ct->counter), ct->redis_failing ? ", redis unreachable" : "");
    ct->events_at_last_status = ct->events;
    ct->last_status = now;
}

/* /healthz: the loop turned; /readyz: partitions held and Redis answering.
 * The lag metrics are refreshed once a second from librdkafka's cache, or
 * every 5 s from the broker while the partitions are paused. */
static void probe_redis(count_t *ct, int64_t now) {
    char err[256];
    if (ct->obs.endpoint == NULL || now < ct->probe_at)
        return;
    ct->probe_at = now + 2000;
    if (ct->probe == NULL &&
        (ct->probe = ops_redis_connect(ops_config_get(ct->o->cfg, "opstream.redis.url"),
                                       ops_config_get(ct->o->cfg, "opstream.redis.password.file"),
                                       1000, err, sizeof err)) == NULL) {
        snprintf(ct->probe_err, sizeof ct->probe_err, "%s", err);
        return;
    }
    redisReply *r = redisCommand(ct->probe, "PING");
    if (r == NULL || ct->probe->err) {
        snprintf(ct->probe_err, sizeof ct->probe_err, "%s",
                 ct->probe->err ? ct->probe->errstr : "no answer");
        redisFree(ct->probe);
        ct->probe = NULL;
    } else {
        ct->probe_err[0] = '\0';
    }
    if (r != NULL)
        freeReplyObject(r);
}

static void observe(count_t *ct, int64_t now) {
    char why[512];
    ops_health_beat(ct->obs.health);
    probe_redis(ct, now);
    if (ct->redis_failing || ct->last_redis_err[0] != '\0')
        snprintf(why, sizeof why, "Redis unreachable: %s", ct->last_redis_err);
    else if (ct->probe_err[0] != '\0')
        snprintf(why, sizeof why, "Redis unreachable: %s", ct->probe_err);
    else if (ops_counter_partitions(ct->counter) == 0)
        snprintf(why, sizeof why, "no partitions assigned");
    else
        why[0] = '\0';
    ops_health_set_ready(ct->obs.health, why);
    if (now >= ct->lag_at) {
        ops_consumer_metrics_lag(&ct->cm, ct->rk, ct->redis_failing);
        ct->lag_at = now + (ct->redis_failing ? 5000 : 1000);
    }
}

/* Client errors such as "all brokers down" arrive here (librdkafka retries
 * by itself); say so once in a while rather than on every reconnect. */
static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque) {
    count_t *ct = opaque;
    int64_t now = now_mono_ms();

    (void)rk;
    if (rd_kafka_fatal_error(rk, NULL, 0) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        say("kafka: fatal: %s", reason);
        return;
    }
    if (now - ct->last_broker_msg >= 10000 || ct->o->verbose) {
        say("kafka: %s (%s); waiting for the broker", reason,
            rd_kafka_err2name((rd_kafka_resp_err_t)err));
        ct->last_broker_msg = now;
    }
}

/* librdkafka's own log lines only with -v: without it, error_cb's lines say
 * what matters. */
static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
    const count_t *ct = rd_kafka_opaque(rk);

    if (ct != NULL && (ct->o->verbose > 0 || level <= 2))
        fprintf(stderr, "opstream-count: kafka %s: %s\n", fac, buf);
}

/* The consumer: opstream's consumer defaults (ops_kafka_conf_new), our group
 * and callbacks, the poll queue redirected to the consumer queue. */
static rd_kafka_t *new_consumer(count_t *ct, char *err, size_t errsize) {
    char kerr[512];
    rd_kafka_t *rk = NULL;
    rd_kafka_conf_t *conf = ops_kafka_conf_new(ct->o->cfg, OPS_KAFKA_CONSUMER, err, errsize);

    if (conf == NULL)
        return NULL;
    if (rd_kafka_conf_set(conf, "group.id", ct->o->group, kerr, sizeof kerr) != RD_KAFKA_CONF_OK) {
        snprintf(err, errsize, "group.id: %.400s", kerr);
        goto cleanup;
    }
    rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
    rd_kafka_conf_set_error_cb(conf, error_cb);
    rd_kafka_conf_set_log_cb(conf, log_cb);
    rd_kafka_conf_set_opaque(conf, ct);
    rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, kerr, sizeof kerr);
    if (rk == NULL) {
        snprintf(err, errsize, "cannot create the Kafka consumer: %.400s", kerr);
        goto cleanup;
    }
    conf = NULL; /* now owned by rk */
    rd_kafka_poll_set_consumer(rk);
cleanup:
    if (conf != NULL)
        rd_kafka_conf_destroy(conf);
    return rk;
}

static int subscribe(count_t *ct, char *err, size_t errsize) {
    const char *prefix = ops_config_get(ct->o->cfg, "opstream.topic.prefix");
    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(OPS_KIND_COUNT);
    rd_kafka_resp_err_t kerr;
    char name[256];

    for (int k = 0; k < OPS_KIND_COUNT; k++) {
        if (ops_topic_name(prefix, (ops_kind_t)k, name, sizeof name) != 0) {
            snprintf(err, errsize, "topic prefix too long");
            rd_kafka_topic_partition_list_destroy(topics);
            return -1;
        }
        rd_kafka_topic_partition_list_add(topics, name, RD_KAFKA_PARTITION_UA);
    }
    kerr = rd_kafka_subscribe(ct->rk, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (kerr) {
        snprintf(err, errsize, "subscribe: %s", rd_kafka_err2str(kerr));
        return -1;
    }
    return 0;
}

/* The consumer metrics of the four event topics. */
static int init_metrics(count_t *ct, char *err, size_t errsize) {
    const char *prefix = ops_config_get(ct->o->cfg, "opstream.topic.prefix");
    char topics[OPS_KIND_COUNT][256];
    for (int k = 0; k < OPS_KIND_COUNT; k++)
        if (ops_topic_name(prefix, (ops_kind_t)k, topics[k], sizeof topics[k]) != 0) {
            snprintf(err, errsize, "topic prefix too long");
            return -1;
        }
    return ops_consumer_metrics_init(&ct->cm, ct->obs.metrics, "opstream-count", ct->o->group,
                                     (const char(*)[256])topics, OPS_KIND_COUNT, err, errsize);
}

static void install_signals(void) {
    struct sigaction sa;

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/* Final flush on SIGINT/SIGTERM: keeps retrying a failing Redis for a while
 * (a second signal stops at once); what is not written is not lost, it is
 * consumed again from the stored offsets next time. */
static int final_flush(count_t *ct) {
    int64_t deadline = now_mono_ms() + COUNT_SHUTDOWN_FLUSH_MS;
    int signals = g_signals;

    for (;;) {
        ops_counter_step_t s = flush_batch(ct);
        if (s == OPS_COUNTER_STEP_APPLIED)
            return 0;
        if (s == OPS_COUNTER_STEP_FENCED)
            return 0; /* nothing of ours to write: another consumer owns it */
        if (now_mono_ms() >= deadline || g_signals > signals)
            break;
        rd_kafka_poll(ct->rk, ct->backoff_ms);
    }
    say("the last batch (%zu messages) was not written; it will be consumed again",
        ops_counter_pending(ct->counter));
    ops_counter_discard(ct->counter);
    return -1;
}

int count_run(const count_opts_t *o) {
    count_t ct = {.o = o};
    char err[512];
    int rc = COUNT_EXIT_USAGE;
    ops_codec_options_t copts = {0};
    ops_counter_options_t kopts = {0};

    /* --metrics: a busy or invalid address is a usage error, before any
     * connection is made */
    if (startup_observe("opstream-count", o->cfg, 0, &ct.obs) != 0)
        return rc;
    install_signals();
    copts.max_message_bytes = (size_t)ops_config_get_int(o->cfg, "opstream.max.message.bytes");
    kopts.group = o->group;
    kopts.max_events = o->batch_max;
    kopts.dedupe_window_s = ops_config_get_int(o->cfg, "opstream.dedupe.window.s");
    kopts.minute_ttl_s = ops_config_get_int(o->cfg, "opstream.bucket.minute.ttl.s");
    kopts.hour_ttl_s = ops_config_get_int(o->cfg, "opstream.bucket.hour.ttl.s");
    if ((ct.codec = ops_codec_new(&copts, err, sizeof err)) == NULL ||
        (ct.counter = ops_counter_new(&kopts, err, sizeof err)) == NULL ||
        (ct.redis = ops_counter_redis_new(ops_config_get(o->cfg, "opstream.redis.url"),
                                          ops_config_get(o->cfg, "opstream.redis.password.file"),
                                          5000, err, sizeof err)) == NULL ||
        (ct.dlq = ops_dlq_new(o->cfg, err, sizeof err)) == NULL ||
        (ct.rk = new_consumer(&ct, err, sizeof err)) == NULL ||
        subscribe(&ct, err, sizeof err) != 0 || init_metrics(&ct, err, sizeof err) != 0) {
        say("%s", err);
        goto cleanup;
    }
    say("counting %s into %s as group %s", ops_config_get(o->cfg, "bootstrap.servers"),
        ops_config_get(o->cfg, "opstream.redis.url"), o->group);
    ct.last_status = now_mono_ms();
    rc = COUNT_EXIT_OK;

    while (g_signals == 0) {
        int64_t now = now_mono_ms();
        int timeout = 100;
        if (ops_counter_pending(ct.counter) > 0) {
            int64_t due = ct.batch_started + o->flush_ms - now;
            if (ct.redis_failing && ct.retry_at - now > due)
                due = ct.retry_at - now;
            if (!ct.redis_failing && ct.batch_started + DRAINED_FLUSH_MS - now < due)
                due = ct.batch_started + DRAINED_FLUSH_MS - now;
            timeout = due <= 0 ? 0 : (due < 100 ? (int)due : 100);
        }
        if (ct.redis_failing && ops_counter_full(ct.counter))
            timeout = 10; /* paused: only keep the group membership alive */
        /* A burst: everything already fetched, up to a full batch, before
         * the per-iteration housekeeping below. A batch at least
         * DRAINED_FLUSH_MS old is flushed when the burst runs dry, so at
         * low rates events wait ~2 ms instead of flush_ms, while at high
         * rates batches still grow (more arrives while Redis is busy). */
        rd_kafka_message_t *m = rd_kafka_consumer_poll(ct.rk, timeout);
        bool drained = m == NULL;
        for (int burst = 0; m != NULL; burst++) {
            handle_message(&ct, m);
            rd_kafka_message_destroy(m);
            if (burst >= BURST_MAX || ops_counter_full(ct.counter) || ct.need_reload)
                break;
            m = rd_kafka_consumer_poll(ct.rk, 0);
            drained = m == NULL;
        }
        ops_dlq_poll(ct.dlq);
        now = now_mono_ms();
        char ferr[512];
        if (rd_kafka_fatal_error(ct.rk, ferr, sizeof ferr) != RD_KAFKA_RESP_ERR_NO_ERROR) {
            say("kafka: fatal error: %s", ferr);
            rc = COUNT_EXIT_FATAL;
            break;
        }
        if (ct.need_reload) {
            if (now >= ct.retry_at) {
                ops_counter_discard(ct.counter);
                reload_and_seek(&ct);
            }
        } else if (ops_counter_pending(ct.counter) > 0 &&
                   (ops_counter_full(ct.counter) ||
                    (drained && now - ct.batch_started >= DRAINED_FLUSH_MS) ||
                    now - ct.batch_started >= o->flush_ms) &&
                   (!ct.redis_failing || now >= ct.retry_at)) {
            flush_batch(&ct);
        }
        status_line(&ct, now, false);
        observe(&ct, now);
    }

    if (final_flush(&ct) != 0 && rc == COUNT_EXIT_OK)
        rc = COUNT_EXIT_FATAL;
    status_line(&ct, now_mono_ms(), o->stats_interval_s > 0);
    /* Leaves the group; the revoke callback finds an empty batch. */
    rd_kafka_consumer_close(ct.rk);
cleanup:
    if (ct.rk != NULL)
        rd_kafka_destroy(ct.rk);
    ops_dlq_destroy(ct.dlq);
    ops_counter_redis_destroy(ct.redis);
    ops_counter_destroy(ct.counter);
    ops_codec_destroy(ct.codec);
    ops_consumer_metrics_free(&ct.cm);
    if (ct.probe != NULL)
        redisFree(ct.probe);
    ops_observe_stop(&ct.obs);
    return rc;
}
