/*
 * opstream consumer runtime: one consume loop for every opstream consumer
 * (rd_kafka_consumer_poll only). Offsets live in Redis in the fenced store
 * of counter_redis.c; the program's handler adds decoded, valid events to
 * the batch and the runtime applies the batch with its offsets in one
 * atomic step. Pure rules first, then the loop, then read-to-end and the
 * offset reset.
 */
#include "opstream/consumer.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "opstream/codec.h"
#include "opstream/consumer_metrics.h"
#include "opstream/dlq.h"
#include "opstream/kafka.h"
#include "opstream/keys.h"
#include "opstream/redis.h"
#include "opstream/redis_link.h"
#include "opstream/validate.h"
#include "opstream/clock.h"
#include "err_priv.h"

#define DLQ_FLUSH_MS 10000
#define SEEK_MS 5000
#define BURST_MAX 1000 /* messages handled between two housekeeping rounds */
#define BEAT_MS 2000   /* member heartbeat period */
#define TOPIC_MAX 256
/* While Redis is behind, a batch grows to GROW_BEHIND times batch_max, a
 * doubling per step. In a catch-up (a backlog of more than four batches of
 * its size waiting) it fills on while the step runs, up to GROW_MAX times
 * (but no further than CATCHUP_EVENTS, unless GROW_BEHIND times is more):
 * an operation's script costs per counter hash, so more events per
 * operation and step cost less each. A live stream that fell behind for a
 * moment keeps its steps, and its latency, short. */
#define GROW_BEHIND 4
#define GROW_MAX 16
#define CATCHUP_EVENTS 80000

/* The largest batch limit of a catch-up for this batch size. */
static size_t catchup_limit(size_t batch_max) {
    size_t most = GROW_MAX * batch_max < CATCHUP_EVENTS ? GROW_MAX * batch_max : CATCHUP_EVENTS;
    return most > GROW_BEHIND * batch_max ? most : GROW_BEHIND * batch_max;
}

/* ---- pure rules ------------------------------------------------------------ */

ops_consumer_class_t ops_consumer_classify(const ops_consumer_pos_t *pos, int64_t offset) {
    if (pos->next >= 0 && offset < pos->next)
        return OPS_CONSUMER_REGRESSED;
    if (pos->skip_below >= 0 && offset < pos->skip_below)
        return OPS_CONSUMER_SKIPPED;
    if (pos->stored >= 0 && offset < pos->stored)
        return pos->start >= 0 && offset >= pos->start ? OPS_CONSUMER_REPLAY
                                                       : OPS_CONSUMER_REGRESSED;
    return OPS_CONSUMER_LIVE;
}

int ops_consumer_regressed_range(int64_t stored, int64_t offset, int64_t *from, int64_t *to) {
    if (stored < 0 || offset < 0 || offset >= stored)
        return 0;
    *from = offset;
    *to = stored - 1;
    return 1;
}

int64_t ops_consumer_partition_lag(int64_t position, int64_t stored, int64_t lo, int64_t hi) {
    /* After an assignment or a seek librdkafka knows no position until a
     * message is consumed: consumption resumes from the stored offset. */
    int64_t pos = position >= 0 ? position : (stored >= 0 ? stored : lo);
    return hi >= 0 && pos >= 0 && hi > pos ? hi - pos : 0;
}

bool ops_consumer_flush_due(size_t pending, bool full, bool drained, int64_t age_ms, int flush_ms,
                            int drained_ms, bool redis_failing, bool retry_due) {
    if (pending == 0)
        return false;
    if (redis_failing && !retry_due)
        return false;
    return full || age_ms >= flush_ms || (drained && drained_ms > 0 && age_ms >= drained_ms);
}

bool ops_consumer_batch_may_pass(size_t dlq_sent, bool dlq_confirmed) {
    return dlq_sent == 0 || dlq_confirmed;
}

int ops_consumer_backoff_next(int cur_ms) {
    int next = cur_ms <= 0 ? OPS_CONSUMER_BACKOFF_MIN_MS : cur_ms * 2;
    return next > OPS_CONSUMER_BACKOFF_MAX_MS ? OPS_CONSUMER_BACKOFF_MAX_MS : next;
}

int ops_consumer_reset_parse(const char *s, ops_consumer_reset_t *out, char *errstr,
                             size_t errstr_size) {
    if (s != NULL && strcmp(s, "earliest") == 0) {
        *out = OPS_CONSUMER_RESET_EARLIEST;
        return 0;
    }
    if (s != NULL && strcmp(s, "latest") == 0) {
        *out = OPS_CONSUMER_RESET_LATEST;
        return 0;
    }
    ops_err_format(errstr, errstr_size, "--reset-offsets: '%s' is neither earliest nor latest",
                   s != NULL ? s : "");
    return -1;
}

int64_t ops_consumer_reset_target(ops_consumer_reset_t how, int64_t lo, int64_t hi) {
    if (lo < 0)
        lo = 0;
    if (hi < lo)
        hi = lo;
    return how == OPS_CONSUMER_RESET_EARLIEST ? lo : hi;
}

const char *ops_consumer_gap_value_skipped(int64_t now_ms, char *buf, size_t size) {
    snprintf(buf, size, "skipped:%" PRId64, now_ms);
    return buf;
}

bool ops_consumer_member_live(const char *value, int64_t now_ms) {
    char *end = NULL;
    long long v;

    if (value == NULL || *value == '\0')
        return false;
    v = strtoll(value, &end, 10);
    return end != value && *end == '\0' && v > now_ms;
}

const char *ops_consumer_redis_display(const char *url, char *buf, size_t size) {
    const char *scheme = strstr(url, "://");
    const char *at, *rest;

    if (scheme == NULL) {
        snprintf(buf, size, "%s", url);
        return buf;
    }
    rest = scheme + 3;
    at = strchr(rest, '@');
    if (at != NULL && (strchr(rest, '/') == NULL || at < strchr(rest, '/')))
        rest = at + 1;
    snprintf(buf, size, "%.*s%s", (int)(scheme + 3 - url), url, rest);
    /* a ?password=... or ?user=... query is left out too */
    char *q = strchr(buf, '?');
    if (q != NULL && strstr(q, "pass") != NULL)
        *q = '\0';
    return buf;
}

/* ---- the runtime ----------------------------------------------------------- */

int ops_consumer_quiet_kafka(ops_config_t *cfg, int verbose, char *errstr, size_t errstr_size) {
    if (verbose > 0 || ops_config_get(cfg, "log_level") != NULL)
        return 0;
    return ops_config_set(cfg, "log_level", "2", errstr, errstr_size);
}

/* The thread that runs the Redis step of one batch while the loop fills
 * the next one. It owns the store only between a hand-over and the
 * loop's taking of the result. */
typedef struct stepper {
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool started, quit, job, done;
    ops_counter_redis_t *store;
    ops_counter_t *batch;
    ops_counter_step_t step;
    size_t seen;
    int64_t us; /* the step's duration */
    char err[512];
} stepper_t;

static void *stepper_main(void *arg) {
    stepper_t *s = arg;

    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->job && !s->quit)
            pthread_cond_wait(&s->cv, &s->mu);
        if (!s->job)
            break;
        ops_counter_t *b = s->batch;
        pthread_mutex_unlock(&s->mu);
        size_t seen = 0;
        char err[512] = "";
        int64_t t0 = ops_clock_mono_us();
        ops_counter_step_t step =
            ops_counter_redis_apply(s->store, b, ops_clock_wall_ms(), &seen, err, sizeof err);
        int64_t us = ops_clock_mono_us() - t0;
        pthread_mutex_lock(&s->mu);
        s->step = step;
        s->seen = seen;
        s->us = us;
        memcpy(s->err, err, sizeof err);
        s->job = false;
        s->done = true;
        pthread_cond_broadcast(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

typedef struct rpart {
    char topic[TOPIC_MAX];
    int32_t partition;
    ops_consumer_pos_t pos;
} rpart_t;

struct ops_consumer {
    ops_consumer_options_t o;
    ops_consumer_handler_t h;
    char *group;
    char (*topics)[TOPIC_MAX];
    size_t ntopics;
    rd_kafka_t *rk;
    ops_codec_t *codec;
    ops_counter_t *batch; /* the pending batch, being filled */
    ops_counter_redis_t *store;
    ops_dlq_t *dlq;
    ops_event_limits_t limits; /* the producer's validation rules */
    ops_redis_link_t *aux;     /* gap records and member heartbeats */
    char redis_shown[300];
    char master[128];  /* redis-sentinel://: the master's name, else "" */
    char primary[300]; /* redis-sentinel://: where the store found it last */
    char brokers[512];
    char last_kafka_err[512]; /* the last client error, for the "waiting" line */
    int connect_ms;

    rpart_t *parts;
    size_t nparts, parts_cap, last_part;

    /* Prefetch (see prefetch_watch): librdkafka's consumer queue and its
     * bound in messages. */
    rd_kafka_queue_t *cq;
    size_t prefetch;
    bool prefetch_high;      /* the queue came near its bound since the last wake */
    bool wake_said;          /* the first wake-up since the assignment was said */
    uint64_t wakes, unwoken; /* wake-ups; those librdkafka refused at once (no
                              * leader known, no broker up): nothing sent */

    int64_t batch_started; /* monotonic ms of the batch's first message */
    size_t dlq_sent;       /* copies queued for the pending batch */
    size_t batch_limit;    /* messages that make the pending batch full (grows when behind) */

    /* The batch before the pending one, handed to its Redis step: the
     * pending batch's partitions stand at its next offsets
     * (ops_counter_follow), so it is applied only after this one was. */
    ops_counter_t *held;  /* NULL: none */
    ops_counter_t *spare; /* the second batch object while none is held */
    bool held_running;    /* its step runs on the step thread; else it waits for its retry */
    size_t held_dlq, held_events, held_skips;
    size_t held_dupes; /* ops_counter_dupes of the held batch when its step started */
    uint64_t steps_run, steps_beside; /* steps on the step thread; those during
                                       * which the next batch took messages */
    stepper_t stepper;
    bool redis_failing;    /* the last step failed: partitions paused */
    bool need_reload;      /* offsets must be re-read and sought to */
    bool stopping;
    bool stop_said; /* the handler's reason to keep the batch at a stop, said */
    int backoff_ms;
    int64_t retry_at;

    /* first contact: each state change said once */
    bool redis_down;
    bool broker_down;
    bool assigned_once;
    bool group_wait_said;
    int wait_replicas, wait_ms; /* opstream.redis.wait.*: WAIT after each step */
    bool wait_short;            /* the last WAIT had fewer replicas (said once) */
    int64_t started;
    int64_t burst_wall_ms; /* wall clock when the current burst of polls began, or
                            * when it last came back from a wait (burst_clock) */

    char member[128];
    int64_t beat_at;

    ops_consumer_metrics_t cm; /* metrics of batches, steps and lag */
    char redis_err[256];       /* why Redis failed last, for /readyz */
    int64_t lag_at;            /* monotonic ms of the next lag update */
    ops_consumer_stats_t st, st_shown;
    size_t dupes_shown;
    unsigned long long resends_said; /* ops_counter_redis_resends already logged */
    int64_t last_status;
};

static bool stop_asked(const ops_consumer_t *c) {
    return c->stopping || (c->o.stop != NULL && *c->o.stop);
}

static void say(const ops_consumer_t *c, ops_consumer_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void say(const ops_consumer_t *c, ops_consumer_level_t level, const char *fmt, ...) {
    char line[1024];
    va_list ap;

    if (level == OPS_CONSUMER_LOG_DEBUG && !c->o.verbose)
        return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    c->o.log(c->o.log_opaque, level, line);
}

/* Sleeps up to ms in small steps, returning early on a stop. */
static void nap(const ops_consumer_t *c, int ms) {
    int64_t until = ops_clock_mono_ms() + ms;
    while (!stop_asked(c)) {
        ops_health_beat(c->o.health); /* waiting on purpose is being alive */
        int64_t left = until - ops_clock_mono_ms();
        if (left <= 0)
            break;
        struct timespec ts = {0, (long)(left < 50 ? left : 50) * 1000000L};
        nanosleep(&ts, NULL);
    }
}

/* "now" for the event-time checks of a burst of polls: read once when the
 * burst begins (not per event: a burst lasts milliseconds), and again where
 * a burst can wait (a rebalance callback inside a poll, an offset that went
 * backwards: steps, Redis, backoff), so that no event is checked against a
 * clock older than the last wait. */
static void burst_clock(ops_consumer_t *c) {
    c->burst_wall_ms = ops_clock_wall_ms();
}

/* Redis failed: said once when it starts failing, then retried with capped
 * backoff in silence until it answers again. */
static void redis_failed(ops_consumer_t *c, const char *what, const char *err) {
    snprintf(c->redis_err, sizeof(c->redis_err), "%s: %s", what, err);
    if (!c->redis_down) {
        say(c, OPS_CONSUMER_LOG_WARN, "waiting for Redis %s: %s: %s; retrying with backoff",
            c->redis_shown, what, err);
        c->redis_down = true;
    } else {
        say(c, OPS_CONSUMER_LOG_DEBUG, "%s: %s", what, err);
    }
    c->backoff_ms = ops_consumer_backoff_next(c->backoff_ms);
    c->retry_at = ops_clock_mono_ms() + c->backoff_ms;
}

/* redis-sentinel://: a new primary, found after a failover (or the first
 * one), said once. */
static void note_primary(ops_consumer_t *c) {
    char now[300];

    if (c->master[0] == '\0' || c->held_running)
        return; /* the store is the step thread's while a step runs */
    ops_counter_redis_where(c->store, now, sizeof(now));
    if (now[0] == '\0' || strcmp(now, c->primary) == 0)
        return;
    if (c->primary[0] == '\0')
        say(c, OPS_CONSUMER_LOG_INFO, "redis: primary %s is %s", c->master, now);
    else
        say(c, OPS_CONSUMER_LOG_WARN, "redis: primary %s now %s (was %s)", c->master, now,
            c->primary);
    bool changed = c->primary[0] != '\0';
    snprintf(c->primary, sizeof(c->primary), "%s", now);
    if (changed && c->h.primary_changed != NULL && c->h.primary_changed(c->h.opaque) != 0)
        c->stopping = true;
}

static void redis_ok(ops_consumer_t *c) {
    note_primary(c);
    if (c->redis_down)
        say(c, OPS_CONSUMER_LOG_INFO, "Redis reachable again");
    c->redis_down = false;
    c->backoff_ms = 0;
    c->retry_at = 0;
}

static void broker_alive(ops_consumer_t *c) {
    if (c->broker_down)
        say(c, OPS_CONSUMER_LOG_INFO, "broker %s reachable again", c->brokers);
    c->broker_down = false;
}

static bool broker_error(int err) {
    return err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN || err == RD_KAFKA_RESP_ERR__TRANSPORT ||
           err == RD_KAFKA_RESP_ERR__RESOLVE || err == RD_KAFKA_RESP_ERR__TIMED_OUT ||
           err == RD_KAFKA_RESP_ERR__AUTHENTICATION || err == RD_KAFKA_RESP_ERR__SSL;
}

/* Client errors (librdkafka retries by itself): a broker that cannot be
 * reached is said once until it answers again; the rest with -v. */
static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque) {
    ops_consumer_t *c = opaque;

    if (rd_kafka_fatal_error(rk, NULL, 0) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        say(c, OPS_CONSUMER_LOG_ERROR, "kafka: fatal: %s", reason);
        return;
    }
    /* one broker of several down is librdkafka's business; none reachable,
     * or an address or credentials that cannot work, is the user's */
    if (!c->broker_down &&
        (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN || err == RD_KAFKA_RESP_ERR__RESOLVE ||
         err == RD_KAFKA_RESP_ERR__AUTHENTICATION || err == RD_KAFKA_RESP_ERR__SSL)) {
        if (c->last_kafka_err[0] != '\0')
            say(c, OPS_CONSUMER_LOG_WARN, "waiting for broker %s: %s (%s)", c->brokers, reason,
                c->last_kafka_err);
        else
            say(c, OPS_CONSUMER_LOG_WARN, "waiting for broker %s: %s", c->brokers, reason);
        c->broker_down = true;
        return;
    }
    snprintf(c->last_kafka_err, sizeof(c->last_kafka_err), "%s", reason);
    say(c, OPS_CONSUMER_LOG_DEBUG, "kafka: %s (%s)", reason,
        rd_kafka_err2name((rd_kafka_resp_err_t)err));
}

/* librdkafka's own log lines only with -v. */
static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
    const ops_consumer_t *c = rd_kafka_opaque(rk);
    char line[1024];

    if (c == NULL || !c->o.verbose)
        return;
    snprintf(line, sizeof(line), "kafka %s: %s", fac, buf);
    (void)level;
    c->o.log(c->o.log_opaque, OPS_CONSUMER_LOG_DEBUG, line);
}

static bool batch_full(const ops_consumer_t *c) {
    return ops_counter_pending(c->batch) >= c->batch_limit;
}

/* Full, or (grown while Redis was behind) at least batch_max with no step
 * in flight: handed over at once rather than filled up while Redis idles. */
static bool batch_ready(const ops_consumer_t *c) {
    return batch_full(c) ||
           (c->held == NULL && ops_counter_pending(c->batch) >= c->o.batch_max);
}

/* Runs of messages come from one partition: the last hit is tried first. */
static rpart_t *rpart_find(ops_consumer_t *c, const char *topic, int32_t partition) {
    if (c->last_part < c->nparts && c->parts[c->last_part].partition == partition &&
        strcmp(c->parts[c->last_part].topic, topic) == 0)
        return &c->parts[c->last_part];
    for (size_t i = 0; i < c->nparts; i++)
        if (c->parts[i].partition == partition && strcmp(c->parts[i].topic, topic) == 0) {
            c->last_part = i;
            return &c->parts[i];
        }
    return NULL;
}

static rpart_t *rpart_add(ops_consumer_t *c, const char *topic, int32_t partition) {
    rpart_t *p = rpart_find(c, topic, partition);
    if (p != NULL)
        return p;
    if (c->nparts == c->parts_cap) {
        size_t cap = c->parts_cap ? c->parts_cap * 2 : 32;
        rpart_t *v = realloc(c->parts, cap * sizeof(*v));
        if (v == NULL)
            return NULL;
        c->parts = v;
        c->parts_cap = cap;
    }
    p = &c->parts[c->nparts++];
    memset(p, 0, sizeof(*p));
    snprintf(p->topic, sizeof(p->topic), "%s", topic);
    p->partition = partition;
    p->pos.stored = p->pos.start = p->pos.next = p->pos.skip_below = -1;
    return p;
}

/* Prefetch. librdkafka stops fetching once its consumer queue holds
 * queued.min.messages (or queued.max.messages.kbytes), and a broker thread
 * with nothing left to fetch looks at its partitions again only when
 * something wakes it: in librdkafka 2.0 up to a second later. A counter
 * slower than its broker (Redis is the slower half) would drain the queue
 * and then idle for most of that second, on every fill. So the queue is
 * bounded from the batch (two batches, PREFETCH_MIN..MAX messages, and
 * fetch responses of OPS_CONSUMER_FETCH_BYTES: memory stays bounded) and, once it
 * has come near its bound and drained to a quarter of it, the leaders of the
 * assigned partitions each get a request that is not waited for: its
 * arrival on the leader's broker thread wakes it, and it fetches again. */
#define PREFETCH_MIN 10000
#define PREFETCH_MAX 100000 /* librdkafka's default */

size_t ops_consumer_prefetch_messages(size_t batch_max) {
    size_t n = batch_max * 2;
    return n < PREFETCH_MIN ? PREFETCH_MIN : (n > PREFETCH_MAX ? PREFETCH_MAX : n);
}

/* The wake-up (ops_kafka_wake_fetchers): a ListOffsets request (timestamp
 * "latest") for every assigned partition through rd_kafka_offsets_for_times
 * with timeout 0. In librdkafka 2.0.2 that groups the partitions by the
 * leaders its metadata cache knows, hands one request per leader to that
 * broker's thread (the wake-up) and returns at once with TIMED_OUT, the
 * answers dropped; a leader it does not know only starts a metadata
 * refresh. Never a wait on the poll thread: rd_kafka_query_watermark_offsets,
 * even with timeout 0, waits for its answer (a round trip, and for as long
 * as the leader is unreachable), and rd_kafka_metadata for its timeout. */
static void wake_fetchers(ops_consumer_t *c) {
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)c->nparts);

    for (size_t i = 0; i < c->nparts; i++)
        rd_kafka_topic_partition_list_add(l, c->parts[i].topic, c->parts[i].partition);
    rd_kafka_resp_err_t why;
    bool sent = ops_kafka_wake_fetchers(c->rk, l, &why);
    rd_kafka_topic_partition_list_destroy(l);
    c->wakes++;
    if (!sent)
        c->unwoken++;
    if (!c->wake_said) {
        say(c, OPS_CONSUMER_LOG_DEBUG, "prefetch: waking the leaders of %zu partitions: %s%s",
            c->nparts, sent ? "sent" : "nothing sent: ", sent ? "" : rd_kafka_err2str(why));
        c->wake_said = true;
    }
}

bool ops_consumer_prefetch_drained(size_t queued, size_t bound, bool *high) {
    if (queued >= bound - bound / 4) {
        *high = true;
        return false;
    }
    if (!*high || queued > bound / 4)
        return false;
    *high = false;
    return true;
}

/* Called after each burst of polls: wakes the leaders' broker threads when
 * the queue has drained to a quarter of its bound after being near it. */
static void prefetch_watch(ops_consumer_t *c) {
    if (c->cq == NULL || c->nparts == 0 || c->prefetch == 0)
        return;
    if (ops_consumer_prefetch_drained(rd_kafka_queue_length(c->cq), c->prefetch,
                                      &c->prefetch_high))
        wake_fetchers(c);
}

static int64_t stored_of(const ops_consumer_t *c, const char *topic, int32_t partition) {
    size_t n = ops_counter_partitions(c->batch);
    for (size_t i = 0; i < n; i++) {
        const char *t;
        int32_t p;
        int64_t stored;
        ops_counter_partition(c->batch, i, &t, &p, &stored);
        if (p == partition && strcmp(t, topic) == 0)
            return stored;
    }
    return -1;
}

static void set_paused(ops_consumer_t *c, bool pause) {
    rd_kafka_topic_partition_list_t *l = NULL;

    if (rd_kafka_assignment(c->rk, &l) == RD_KAFKA_RESP_ERR_NO_ERROR && l != NULL) {
        if (pause)
            rd_kafka_pause_partitions(c->rk, l);
        else
            rd_kafka_resume_partitions(c->rk, l);
    }
    if (l != NULL)
        rd_kafka_topic_partition_list_destroy(l);
}

static void redis_failing(ops_consumer_t *c, bool failing) {
    if (failing != c->redis_failing)
        set_paused(c, failing);
    c->redis_failing = failing;
}

/* The side connection for rare writes (skipped ranges, heartbeats). */
static ops_redis_link_t *aux_get(ops_consumer_t *c, char *err, size_t errsize) {
    if (c->aux != NULL)
        return c->aux; /* it reconnects by itself */
    c->aux = ops_redis_link_new(ops_config_get(c->o.cfg, "opstream.redis.url"),
                                ops_config_get(c->o.cfg, "opstream.redis.password.file"),
                                c->connect_ms < 5000 ? c->connect_ms : 5000, err, errsize);
    return c->aux;
}

/* HSET key field value on the side connection: 1 new, 0 updated, -1. */
static int aux_hset(ops_consumer_t *c, const char *key, const char *field, const char *value,
                    char *err, size_t errsize) {
    ops_redis_link_t *rc = aux_get(c, err, errsize);
    const char *argv[] = {"HSET", key, field, value};
    redisReply *r;
    int out = -1;

    if (rc == NULL)
        return -1;
    r = ops_redis_link_command_again(rc, key, 4, argv, NULL, err, errsize);
    if (r == NULL)
        return -1;
    if (r->type == REDIS_REPLY_INTEGER)
        out = r->integer > 0 ? 1 : 0;
    else
        ops_err_format(err, errsize, "redis: HSET %s: %s", key,
                       r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
    freeReplyObject(r); /* a replica now: the link finds the primary again by itself */
    return out;
}

/* Member heartbeat: opstream:members:{GROUP} field host:pid -> expiry (ms),
 * so that --reset-offsets can tell a live group where the broker cannot
 * list its members. Best effort: a Redis outage is handled by the step. */
static void heartbeat(ops_consumer_t *c, bool leaving) {
    char key[OPS_KEY_MAX], val[32], err[256];
    int64_t now = ops_clock_mono_ms();

    if (!leaving && now < c->beat_at)
        return;
    c->beat_at = now + BEAT_MS;
    if ((size_t)snprintf(key, sizeof(key), "opstream:members:%s", c->group) >= sizeof(key))
        return;
    if (leaving) {
        /* expired at once (HSET, not HDEL: the commands the Redis ACL of
         * config/redis-acl.conf grants the consumers) */
        const char *argv[] = {"HSET", key, c->member, "0"};
        if (c->aux != NULL) {
            redisReply *r = ops_redis_link_command(c->aux, key, 4, argv, NULL, err, sizeof(err));
            if (r != NULL)
                freeReplyObject(r);
        }
        return;
    }
    snprintf(val, sizeof(val), "%" PRId64, ops_clock_wall_ms() + OPS_CONSUMER_MEMBER_TTL_MS);
    if (aux_hset(c, key, c->member, val, err, sizeof(err)) < 0) {
        /* first contact: Redis is named before any batch needs it */
        snprintf(c->redis_err, sizeof(c->redis_err), "%s", err);
        if (!c->redis_down) {
            say(c, OPS_CONSUMER_LOG_WARN, "waiting for Redis %s: %s; retrying", c->redis_shown,
                err);
            c->redis_down = true;
        }
        return;
    }
    if (c->redis_down && !c->redis_failing)
        redis_ok(c);
    char ttl[16];
    snprintf(ttl, sizeof(ttl), "%d", 6 * OPS_CONSUMER_MEMBER_TTL_MS / 1000);
    const char *expire[] = {"EXPIRE", key, ttl};
    redisReply *r = ops_redis_link_command(c->aux, key, 3, expire, NULL, err, sizeof(err));
    if (r != NULL)
        freeReplyObject(r);
}

/* The partitions of the batch at their stored offsets (none: the
 * beginning). */
static rd_kafka_topic_partition_list_t *stored_positions(const ops_consumer_t *c) {
    size_t n = ops_counter_partitions(c->batch);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)(n ? n : 1));

    for (size_t i = 0; i < n; i++) {
        const char *topic;
        int32_t part;
        int64_t stored;
        ops_counter_partition(c->batch, i, &topic, &part, &stored);
        rd_kafka_topic_partition_list_add(l, topic, part)->offset =
            stored >= 0 ? stored : RD_KAFKA_OFFSET_BEGINNING;
    }
    return l;
}

static void pos_at(rpart_t *rp, int64_t stored, int64_t start) {
    rp->pos.stored = stored;
    rp->pos.start = start;
    rp->pos.next = start;
    rp->pos.skip_below = -1;
}

/* After a fenced batch: re-read what Redis holds and seek there, dropping
 * whatever was fetched from the old positions. */
static int reload_and_seek(ops_consumer_t *c) {
    char err[512];
    rd_kafka_topic_partition_list_t *l;
    rd_kafka_error_t *e;
    int rc = 0;

    if (ops_counter_redis_load_offsets(c->store, c->batch, c->group, err, sizeof err) != 0) {
        redis_failed(c, "reading offsets", err);
        return -1;
    }
    redis_ok(c);
    l = stored_positions(c);
    e = rd_kafka_seek_partitions(c->rk, l, SEEK_MS);
    if (e != NULL) {
        say(c, OPS_CONSUMER_LOG_WARN, "kafka: seek: %s; retrying", rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
        rc = -1;
    }
    for (int i = 0; i < l->cnt; i++) {
        rpart_t *rp = rpart_add(c, l->elems[i].topic, l->elems[i].partition);
        if (l->elems[i].err) {
            if (rc == 0)
                say(c, OPS_CONSUMER_LOG_WARN, "kafka: seek %s [%d]: %s; retrying",
                    l->elems[i].topic, (int)l->elems[i].partition,
                    rd_kafka_err2str(l->elems[i].err));
            rc = -1;
        }
        if (rp != NULL) {
            int64_t s = l->elems[i].offset >= 0 ? l->elems[i].offset : -1;
            pos_at(rp, s, s);
        }
    }
    rd_kafka_topic_partition_list_destroy(l);
    if (rc != 0)
        c->retry_at = ops_clock_mono_ms() + OPS_CONSUMER_BACKOFF_MAX_MS;
    c->need_reload = rc != 0;
    return rc;
}

/* Retention gaps (counter.h): recorded in opstream:gaps:{GROUP} before the
 * batch that passes them is applied, and said once. */
static int record_gaps(ops_consumer_t *c, const ops_counter_t *b, char *err, size_t errsize) {
    size_t n = ops_counter_pending_gaps(b, NULL, 0);
    ops_counter_gap_t *gaps;
    int rc = -1;

    if (n == 0)
        return 0;
    if ((gaps = calloc(n, sizeof(*gaps))) == NULL) {
        ops_err_format(err, errsize, "out of memory");
        return -1;
    }
    ops_counter_pending_gaps(b, gaps, n);
    for (size_t i = 0; i < n; i++) {
        int r = ops_counter_redis_record_gap(c->store, c->group, &gaps[i], ops_clock_wall_ms(), err,
                                             errsize);
        if (r < 0)
            goto cleanup;
        if (r == 1) {
            c->st.gaps++;
            ops_consumer_metrics_gap(&c->cm);
            say(c, OPS_CONSUMER_LOG_ERROR,
                "ERROR: %s [%d]: offsets %lld..%lld (%lld messages) are gone from the broker "
                "(retention) and were never handled by group %s. Recorded in opstream:gaps:%s; "
                "going on from offset %lld",
                gaps[i].topic, (int)gaps[i].partition, (long long)gaps[i].from,
                (long long)gaps[i].to, (long long)(gaps[i].to - gaps[i].from + 1), c->group,
                c->group, (long long)gaps[i].to + 1);
        }
    }
    rc = 0;
cleanup:
    free(gaps);
    return rc;
}

/* After an applied step with opstream.redis.wait.replicas set: says once
 * when fewer replicas acknowledged it than asked, and once when enough do
 * again. Not an error: replication stays asynchronous. */
static void wait_said(ops_consumer_t *c) {
    long long acked = ops_counter_redis_wait_acked(c->store);

    if (c->wait_replicas <= 0 || acked < 0)
        return;
    if (acked < c->wait_replicas && !c->wait_short)
        say(c, OPS_CONSUMER_LOG_WARN,
            "Redis WAIT: %lld of %d replicas acknowledged the step within %d ms; counting goes "
            "on (a failover now may replay steps, counts stay exact)",
            acked, c->wait_replicas, c->wait_ms);
    else if (acked >= c->wait_replicas && c->wait_short)
        say(c, OPS_CONSUMER_LOG_INFO, "Redis WAIT: %lld replicas acknowledge the steps again",
            acked);
    c->wait_short = acked < c->wait_replicas;
}

/* Before a batch's step (b: the pending batch, or the held one with its
 * DLQ count *dlq): its DLQ copies confirmed (the step passes their
 * offsets), retention gaps recorded, the handler's before_apply. Returns
 * APPLIED when the step may run, FENCED when the batch was dropped (to be
 * consumed again), FAILED when it is kept for a retry. */
static ops_counter_step_t step_prepare(ops_consumer_t *c, ops_counter_t *b, size_t *dlq) {
    char err[512];

    if (*dlq > 0) {
        bool confirmed = ops_dlq_flush(c->dlq, DLQ_FLUSH_MS, err, sizeof err) == 0;
        if (!ops_consumer_batch_may_pass(*dlq, confirmed)) {
            say(c, OPS_CONSUMER_LOG_WARN, "%s; the batch is dropped and consumed again", err);
            ops_counter_discard(b);
            *dlq = 0;
            c->need_reload = true;
            return OPS_COUNTER_STEP_FENCED;
        }
    }
    if (record_gaps(c, b, err, sizeof err) != 0) {
        ops_consumer_metrics_redis_error(&c->cm);
        redis_failing(c, true);
        redis_failed(c, "recording lost offsets", err);
        return OPS_COUNTER_STEP_FAILED;
    }
    if (c->h.before_apply != NULL && c->h.before_apply(c->h.opaque, b, err, sizeof err) != 0) {
        if (stop_asked(c)) {
            /* the handler keeps the batch because of the stop (opstream-
             * alert: its alerts not confirmed within the grace): no Redis
             * failure, said once; the batch is consumed again */
            if (!c->stop_said)
                say(c, OPS_CONSUMER_LOG_WARN, "stopping: %s", err);
            c->stop_said = true;
            return OPS_COUNTER_STEP_FAILED;
        }
        ops_consumer_metrics_redis_error(&c->cm);
        redis_failing(c, true);
        redis_failed(c, "before the step", err);
        return OPS_COUNTER_STEP_FAILED;
    }
    return OPS_COUNTER_STEP_APPLIED;
}

/* The held batch is done with (applied, fenced or dropped): emptied, it
 * becomes the spare object again. */
static void release_held(ops_consumer_t *c) {
    ops_counter_discard(c->held);
    c->spare = c->held;
    c->held = NULL;
    c->held_dlq = 0;
}

/* What a step's result means for the runtime (b: the batch it ran for;
 * held: b is the held batch, with *dlq its DLQ count). */
static void step_finish(ops_consumer_t *c, ops_counter_t *b, bool held, ops_counter_step_t step,
                        size_t seen, size_t events, size_t skips, size_t *dlq, int64_t us,
                        const char *err) {
    unsigned long long resends = ops_counter_redis_resends(c->store);

    if (held)
        ops_consumer_metrics_step_held(&c->cm, b, (double)us / 1e6, step);
    else
        ops_consumer_metrics_step(&c->cm, b, (double)us / 1e6, step);
    if (resends != c->resends_said) {
        say(c, OPS_CONSUMER_LOG_DEBUG,
            "redis: a connection was lost with a step sent on it; the step was sent again at once "
            "on a new one (%llu times so far)",
            resends);
        c->resends_said = resends;
    }
    switch (step) {
    case OPS_COUNTER_STEP_APPLIED:
        c->st.events += events - seen;
        c->st.dlq += skips > 0 && *dlq > 0 ? *dlq : 0;
        c->st.batches++;
        *dlq = 0;
        redis_failing(c, false);
        redis_ok(c);
        wait_said(c);
        break;
    case OPS_COUNTER_STEP_FENCED:
        c->st.fenced++;
        *dlq = 0;
        say(c, OPS_CONSUMER_LOG_WARN, "batch not applied: %s; seeking to the stored offsets", err);
        redis_failing(c, false);
        redis_ok(c);
        c->need_reload = true;
        break;
    case OPS_COUNTER_STEP_FAILED:
        redis_failing(c, true);
        redis_failed(c, "applying a batch", err);
        break;
    case OPS_COUNTER_STEP_REFUSED:
        /* A key the step writes cannot take the write: nothing was
         * written; said as an ERROR at every retry until it is fixed. */
        redis_failing(c, true);
        say(c, OPS_CONSUMER_LOG_ERROR, "ERROR: %s", err);
        c->backoff_ms = ops_consumer_backoff_next(c->backoff_ms);
        c->retry_at = ops_clock_mono_ms() + c->backoff_ms;
        break;
    }
    /* applied or fenced: after a fence the pending batch, which followed
     * it, is dropped with the reload */
    if (held && step != OPS_COUNTER_STEP_FAILED && step != OPS_COUNTER_STEP_REFUSED)
        release_held(c);
}

/* Runs the step of batch b here, on the loop's thread. */
static ops_counter_step_t step_here(ops_consumer_t *c, ops_counter_t *b, bool held) {
    char err[512] = "";
    size_t seen = 0, *dlq = held ? &c->held_dlq : &c->dlq_sent;
    ops_counter_step_t step;

    if (ops_counter_pending(b) == 0) {
        if (held)
            release_held(c);
        return OPS_COUNTER_STEP_APPLIED;
    }
    size_t skips = ops_counter_pending_skips(b);
    if ((step = step_prepare(c, b, dlq)) != OPS_COUNTER_STEP_APPLIED) {
        if (held && step == OPS_COUNTER_STEP_FENCED)
            release_held(c);
        return step;
    }
    size_t events = ops_counter_pending_events(b);
    int64_t t0 = ops_clock_mono_us();
    if (c->h.apply != NULL)
        step = c->h.apply(c->h.opaque, c->store, b, ops_clock_wall_ms(), &seen, err, sizeof err);
    else
        step = ops_counter_redis_apply(c->store, b, ops_clock_wall_ms(), &seen, err, sizeof err);
    step_finish(c, b, held, step, seen, events, skips, dlq, ops_clock_mono_us() - t0, err);
    return step;
}

/* Hands the held batch to the step thread. */
static void step_start(ops_consumer_t *c) {
    stepper_t *s = &c->stepper;

    c->held_events = ops_counter_pending_events(c->held);
    c->held_skips = ops_counter_pending_skips(c->held);
    c->held_dupes = ops_counter_dupes(c->held);
    pthread_mutex_lock(&s->mu);
    s->store = c->store;
    s->batch = c->held;
    s->done = false;
    s->job = true;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    c->held_running = true;
}

/* Takes the result of the held batch's step when it is there (wait: waits
 * for it). Returns whether a step ended. */
static bool step_collect(ops_consumer_t *c, bool wait) {
    stepper_t *s = &c->stepper;
    ops_counter_step_t step;
    size_t seen;
    int64_t us;
    char err[512];

    if (!c->held_running)
        return false;
    pthread_mutex_lock(&s->mu);
    while (wait && !s->done)
        pthread_cond_wait(&s->cv, &s->mu);
    bool done = s->done;
    if (done) {
        s->done = false;
        step = s->step;
        seen = s->seen;
        us = s->us;
        memcpy(err, s->err, sizeof err);
    }
    pthread_mutex_unlock(&s->mu);
    if (!done)
        return false;
    c->held_running = false;
    c->steps_run++;
    c->steps_beside += ops_counter_pending(c->batch) > 0;
    step_finish(c, c->held, true, step, seen, c->held_events, c->held_skips, &c->held_dlq, us,
                err);
    return true;
}

/* The held batch's retry (its step failed): prepared again here, then run
 * on the step thread. */
static void step_retry(ops_consumer_t *c) {
    ops_counter_step_t step = step_prepare(c, c->held, &c->held_dlq);

    if (step == OPS_COUNTER_STEP_APPLIED)
        step_start(c);
    else if (step == OPS_COUNTER_STEP_FENCED)
        release_held(c);
}

/* Drops the pending and the held batch; a step that runs is waited for
 * first. What is dropped is consumed again: when anything was, the offsets
 * are re-read and sought to (need_reload), since the pending batch's
 * positions follow the held one's and the fetch positions are past both. */
static void drop_batches(ops_consumer_t *c) {
    step_collect(c, true);
    if (ops_counter_pending(c->batch) > 0 || (c->held != NULL && ops_counter_pending(c->held) > 0))
        c->need_reload = true;
    ops_counter_discard(c->batch);
    c->dlq_sent = 0;
    if (c->held != NULL)
        release_held(c);
}

/* Writes the held batch, then the pending one, here and now (rebalance,
 * regression, shutdown). APPLIED when both are written. */
static ops_counter_step_t flush_batch(ops_consumer_t *c) {
    ops_counter_step_t step;

    step_collect(c, true);
    if (c->need_reload)
        return OPS_COUNTER_STEP_FENCED;
    if (c->held != NULL && (step = step_here(c, c->held, true)) != OPS_COUNTER_STEP_APPLIED)
        return step;
    return step_here(c, c->batch, false);
}

static int64_t lag(const ops_consumer_t *c);

/* The pending batch is due. While the held batch's step runs, the pending
 * one keeps filling while more is waiting, up to its limit (reached: it
 * waits for the step, and the limit doubles, up to GROW_BEHIND times
 * batch_max); once nothing more is waiting it waits for the step and is
 * handed over as soon as the step ends (a batch less than half its limit
 * halves the limit back). The step runs on the step thread unless the
 * handler applies batches itself. In a catch-up the limit doubles while
 * the step runs instead (see GROW_MAX). */
static void flush_due_batch(ops_consumer_t *c, bool drained) {
    char err[512];
    size_t pending = ops_counter_pending(c->batch);
    bool full = pending >= c->batch_limit;

    if (c->held_running) {
        if (!full && !drained)
            return; /* more is waiting: filling on until the step ends */
        if (full && c->batch_limit * 2 <= catchup_limit(c->o.batch_max) &&
            lag(c) > (int64_t)(4 * c->batch_limit)) {
            c->batch_limit *= 2; /* a catch-up: filling on while the step runs */
            return;
        }
        step_collect(c, true);
        if (full && c->held == NULL && c->batch_limit < GROW_BEHIND * c->o.batch_max)
            c->batch_limit *= 2; /* filled up before the step ended: Redis is behind */
    }
    if (c->held != NULL || c->need_reload)
        return; /* the held batch first (waiting for its retry), or a reload */
    if (!full && pending * 2 < c->batch_limit && c->batch_limit > c->o.batch_max)
        c->batch_limit /= 2;
    if (c->h.apply != NULL || c->spare == NULL) {
        step_here(c, c->batch, false);
        return;
    }
    if (step_prepare(c, c->batch, &c->dlq_sent) != OPS_COUNTER_STEP_APPLIED)
        return;
    if (!c->stepper.started) {
        if (pthread_create(&c->stepper.th, NULL, stepper_main, &c->stepper) != 0) {
            step_here(c, c->batch, false);
            return;
        }
        c->stepper.started = true;
    }
    if (ops_counter_follow(c->spare, c->batch, err, sizeof err) != 0) {
        say(c, OPS_CONSUMER_LOG_DEBUG, "%s; the step runs before the next batch", err);
        step_here(c, c->batch, false);
        return;
    }
    c->held = c->batch;
    c->batch = c->spare;
    c->spare = NULL;
    c->held_dlq = c->dlq_sent;
    c->dlq_sent = 0;
    ops_consumer_metrics_hold(&c->cm);
    step_start(c);
}

/* Eager rebalancing. ASSIGN: read the stored offsets (retrying while Redis
 * is down, until a stop: assigning anywhere else could skip or repeat
 * events), let the handler lower them for replay, and assign there.
 * REVOKE: one attempt to write the pending batch, then let go; an unwritten
 * batch is consumed again by the next owner. */
static void rebalance(ops_consumer_t *c, rd_kafka_t *rk, rd_kafka_resp_err_t err,
                      rd_kafka_topic_partition_list_t *parts) {
    char e[512];

    broker_alive(c);
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        drop_batches(c); /* a step in flight ends first */
        ops_counter_unassign_all(c->batch);
        for (int i = 0; i < parts->cnt; i++)
            if (ops_counter_assign(c->batch, parts->elems[i].topic, parts->elems[i].partition, -1,
                                   e, sizeof e) != 0)
                say(c, OPS_CONSUMER_LOG_ERROR, "%s", e);
        while (ops_counter_redis_load_offsets(c->store, c->batch, c->group, e, sizeof e) != 0) {
            redis_failed(c, "reading offsets on assignment", e);
            if (stop_asked(c))
                break;
            nap(c, c->backoff_ms);
            if (stop_asked(c))
                break;
        }
        if (stop_asked(c)) {
            /* stopping before the offsets are known: assign nothing */
            ops_counter_unassign_all(c->batch);
            rd_kafka_assign(rk, NULL);
            return;
        }
        redis_ok(c);
        for (int i = 0; i < parts->cnt; i++) {
            int64_t s = stored_of(c, parts->elems[i].topic, parts->elems[i].partition);
            parts->elems[i].offset = s >= 0 ? s : RD_KAFKA_OFFSET_BEGINNING;
        }
        if (c->h.assigned != NULL && c->h.assigned(c->h.opaque, rk, parts) != 0)
            c->stopping = true;
        for (int i = 0; i < parts->cnt; i++) {
            rpart_t *rp = rpart_add(c, parts->elems[i].topic, parts->elems[i].partition);
            int64_t s = stored_of(c, parts->elems[i].topic, parts->elems[i].partition);
            if (rp != NULL)
                pos_at(rp, s, parts->elems[i].offset >= 0 ? parts->elems[i].offset : -1);
        }
        if (!c->assigned_once || c->o.verbose)
            say(c, OPS_CONSUMER_LOG_INFO, "assigned %d partitions", parts->cnt);
        c->assigned_once = true;
        c->wake_said = false;
        rd_kafka_assign(rk, parts);
        rd_kafka_resume_partitions(rk, parts);
        c->redis_failing = false;
        c->need_reload = false;
    } else {
        if (flush_batch(c) != OPS_COUNTER_STEP_APPLIED)
            drop_batches(c);
        ops_counter_unassign_all(c->batch);
        c->dlq_sent = 0;
        c->nparts = 0;
        c->redis_failing = false;
        c->need_reload = false;
        say(c, OPS_CONSUMER_LOG_DEBUG, "revoked %d partitions", parts->cnt);
        rd_kafka_assign(rk, NULL);
    }
}

/* Served inside a poll, which may be in the middle of a burst: the burst's
 * clock is read again after it, since it may have waited for steps and
 * Redis. */
static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque) {
    ops_consumer_t *c = opaque;

    rebalance(c, rk, err, parts);
    burst_clock(c);
}

/* The one call site of consumer-side validation: an event that decodes
 * but breaks the producer's rules (absurd counts or times, bad keys, no
 * dedupe id) is refused like an undecodable one, by the same function the
 * producer uses, so producer and consumers never disagree. */
static int check_event(const ops_consumer_t *c, const ops_event_t *ev, char *err, size_t errsize) {
    return ops_event_validate(ev, &c->limits, c->burst_wall_ms, err, errsize);
}

/* Decodes and checks one message; on failure *reason is its DLQ reason
 * class (ops_metrics_dlq_reason). */
static int decode(ops_consumer_t *c, const rd_kafka_message_t *m, ops_event_t *ev, char *err,
                  size_t errsize, const char **reason) {
    ops_codec_err_t ce;
    if (m->payload == NULL) {
        ops_err_format(err, errsize, "truncated: the message has no value");
        *reason = ops_metrics_dlq_reason(OPS_CODEC_ERR_TRUNCATED, 0);
        return -1;
    }
    ce = ops_codec_decode_event(c->codec, m->payload, m->len, ev, err, errsize);
    if (ce != OPS_CODEC_OK) {
        *reason = ops_metrics_dlq_reason(ce, 0);
        return -1;
    }
    *reason = ops_metrics_dlq_reason(OPS_CODEC_OK, 1);
    return check_event(c, ev, err, errsize);
}

/* The log of a partition went backwards (topic recreated, broker restarted
 * while Redis kept the offsets): what is pending is written first (it came
 * from the log as it was), then the offsets below the stored one that the
 * broker now serves are recorded as skipped and said as an ERROR. */
static void regressed(ops_consumer_t *c, rpart_t *rp, int64_t offset) {
    char key[OPS_KEY_MAX], field[TOPIC_MAX + 64], val[48], err[512];
    int64_t from, to, stored;

    if ((ops_counter_pending(c->batch) > 0 || c->held != NULL) &&
        flush_batch(c) != OPS_COUNTER_STEP_APPLIED)
        drop_batches(c);
    if (c->need_reload)
        return; /* back to the stored offsets first; the message comes again */
    stored = stored_of(c, rp->topic, rp->partition);
    rp->pos.next = offset; /* in order again from here */
    if (!ops_consumer_regressed_range(stored, offset, &from, &to))
        return;
    snprintf(key, sizeof(key), "opstream:gaps:%s", c->group);
    snprintf(field, sizeof(field), "%s:%d:%" PRId64 "-%" PRId64, rp->topic, (int)rp->partition,
             from, to);
    ops_consumer_gap_value_skipped(ops_clock_wall_ms(), val, sizeof(val));
    if (aux_hset(c, key, field, val, err, sizeof(err)) < 0) {
        /* not recorded: come back to it from the stored offset */
        redis_failed(c, "recording skipped offsets", err);
        c->need_reload = true;
        return;
    }
    rp->pos.skip_below = stored;
    c->st.skipped++;
    ops_consumer_metrics_gap(&c->cm);
    say(c, OPS_CONSUMER_LOG_ERROR,
        "ERROR: group %s: %s [%d]: the broker serves offset %" PRId64 " below the stored offset "
        "%" PRId64 " (topic recreated, or broker restarted while Redis kept the offsets): "
        "offsets %" PRId64 "..%" PRId64 " are skipped and not handled, recorded in "
        "opstream:gaps:%s as skipped; handling resumes at offset %" PRId64 ". To handle them: "
        "stop every member of the group, then --reset-offsets earliest -g %s",
        c->group, rp->topic, (int)rp->partition, offset, stored, from, to, c->group, stored,
        c->group);
}

static void handle_message(ops_consumer_t *c, rd_kafka_message_t *m) {
    char err[512];
    ops_event_t ev;
    ops_consumer_msg_t cm;
    ops_counter_add_result_t r;
    rpart_t *rp;

    if (m->err) {
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
            return;
        if (m->err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN && !c->broker_down) {
            say(c, OPS_CONSUMER_LOG_WARN, "waiting for broker %s: %s", c->brokers,
                rd_kafka_message_errstr(m));
            c->broker_down = true;
            return;
        }
        say(c, OPS_CONSUMER_LOG_DEBUG, "kafka: %s", rd_kafka_message_errstr(m));
        return;
    }
    broker_alive(c);
    if (c->need_reload)
        return; /* fetched from positions that are about to be replaced */
    cm.topic = rd_kafka_topic_name(m->rkt);
    cm.partition = m->partition;
    cm.offset = m->offset;
    cm.raw = m;
    rp = rpart_find(c, cm.topic, m->partition);
    if (rp == NULL)
        return;
    ops_consumer_class_t cls = ops_consumer_classify(&rp->pos, m->offset);
    if (cls == OPS_CONSUMER_REGRESSED) {
        regressed(c, rp, m->offset);
        burst_clock(c); /* it may have waited for steps and Redis */
        if (c->need_reload)
            return;
        cls = ops_consumer_classify(&rp->pos, m->offset);
    }
    rp->pos.next = m->offset + 1;
    if (cls == OPS_CONSUMER_SKIPPED || cls == OPS_CONSUMER_REGRESSED)
        return;
    const char *reason = NULL;
    bool valid = decode(c, m, &ev, err, sizeof err, &reason) == 0;
    if (cls == OPS_CONSUMER_REPLAY) {
        if (valid && c->h.replay != NULL)
            c->h.replay(c->h.opaque, &cm, &ev);
        c->st.replayed++;
        return;
    }
    if (ops_counter_pending(c->batch) == 0)
        ops_consumer_metrics_batch_start(&c->cm, c->batch); /* this message starts one */
    if (valid) {
        r = c->h.event(c->h.opaque, c->batch, &cm, &ev);
        if (r == OPS_COUNTER_ADDED)
            ops_consumer_metrics_added(&c->cm, cm.topic, ev.kind);
        else if (r == OPS_COUNTER_DUPLICATE)
            ops_consumer_metrics_duplicate(&c->cm, cm.topic);
    } else {
        r = ops_counter_add_skip(c->batch, cm.topic, m->partition, m->offset);
        if (r == OPS_COUNTER_SKIPPED) {
            char e2[512];
            say(c, OPS_CONSUMER_LOG_DEBUG, "%s [%d] @%" PRId64 " to the DLQ: %s", cm.topic,
                (int)m->partition, m->offset, err);
            if (ops_dlq_send(c->dlq, m, err, e2, sizeof e2) != 0) {
                /* not even queued: the batch must not pass this offset */
                say(c, OPS_CONSUMER_LOG_WARN, "%s; the batch is dropped and consumed again", e2);
                ops_counter_discard(c->batch);
                c->dlq_sent = 0;
                c->need_reload = true;
                return;
            }
            c->dlq_sent++;
            ops_consumer_metrics_dlq(&c->cm, cm.topic, reason);
        }
    }
    if (r == OPS_COUNTER_NO_MEMORY) {
        say(c, OPS_CONSUMER_LOG_WARN, "out of memory; the batch is dropped and consumed again");
        ops_counter_discard(c->batch);
        c->dlq_sent = 0;
        c->need_reload = true;
        return;
    }
    if ((r == OPS_COUNTER_ADDED || r == OPS_COUNTER_SKIPPED || r == OPS_COUNTER_DUPLICATE) &&
        ops_counter_pending(c->batch) == 1)
        c->batch_started = ops_clock_mono_ms();
}

/* Consumer lag from the watermarks librdkafka caches from fetch responses
 * (no extra round trip). */
static int64_t lag(const ops_consumer_t *c) {
    rd_kafka_topic_partition_list_t *l = NULL;
    int64_t total = 0;

    if (rd_kafka_assignment(c->rk, &l) != RD_KAFKA_RESP_ERR_NO_ERROR || l == NULL)
        return -1;
    rd_kafka_position(c->rk, l);
    for (int i = 0; i < l->cnt; i++) {
        int64_t lo = -1, hi = -1;
        if (rd_kafka_get_watermark_offsets(c->rk, l->elems[i].topic, l->elems[i].partition, &lo,
                                           &hi) != RD_KAFKA_RESP_ERR_NO_ERROR)
            continue;
        total += ops_consumer_partition_lag(
            l->elems[i].offset, stored_of(c, l->elems[i].topic, l->elems[i].partition), lo, hi);
    }
    rd_kafka_topic_partition_list_destroy(l);
    return total;
}

/* A status line every stats_interval_s, only when something changed. */
static void status_line(ops_consumer_t *c, int64_t now, bool last) {
    int64_t interval = (int64_t)c->o.stats_interval_s * 1000;
    /* the held batch belongs to the step thread while its step runs */
    size_t dupes = ops_counter_dupes(c->batch) +
                   (c->held_running ? c->held_dupes
                                    : ops_counter_dupes(c->held != NULL ? c->held : c->spare));
    double secs;

    if (interval <= 0 || (!last && now - c->last_status < interval))
        return;
    if (memcmp(&c->st, &c->st_shown, sizeof(c->st)) == 0 && dupes == c->dupes_shown) {
        c->last_status = now;
        return;
    }
    secs = (double)(now - c->last_status) / 1000.0;
    say(c, OPS_CONSUMER_LOG_INFO,
        "%.1f events/s, %llu events, %llu batches, %llu dlq, %zu duplicates, %llu fenced, "
        "%llu gaps, %llu skipped ranges, lag %lld, %zu partitions%s",
        secs > 0 ? (double)(c->st.events - c->st_shown.events) / secs : 0.0,
        (unsigned long long)c->st.events, (unsigned long long)c->st.batches,
        (unsigned long long)c->st.dlq, dupes, (unsigned long long)c->st.fenced,
        (unsigned long long)c->st.gaps, (unsigned long long)c->st.skipped, (long long)lag(c),
        ops_counter_partitions(c->batch), c->redis_failing ? ", Redis unreachable" : "");
    c->st_shown = c->st;
    c->dupes_shown = dupes;
    c->last_status = now;
}

static int subscribe(ops_consumer_t *c, char *err, size_t errsize) {
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)c->ntopics);
    rd_kafka_resp_err_t kerr;

    for (size_t i = 0; i < c->ntopics; i++)
        rd_kafka_topic_partition_list_add(l, c->topics[i], RD_KAFKA_PARTITION_UA);
    kerr = rd_kafka_subscribe(c->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (kerr) {
        ops_err_format(err, errsize, "subscribe: %s", rd_kafka_err2str(kerr));
        return -1;
    }
    return 0;
}

/* The event topics (or the given ones) into a fresh array. */
static int topic_names(const ops_config_t *cfg, const char *const *given, char (**out)[TOPIC_MAX],
                       size_t *n, char *err, size_t errsize) {
    const char *prefix = ops_config_get(cfg, "opstream.topic.prefix");
    size_t cnt = 0;

    if (given != NULL)
        while (given[cnt] != NULL)
            cnt++;
    else
        cnt = OPS_KIND_COUNT;
    *out = calloc(cnt ? cnt : 1, sizeof(**out));
    if (*out == NULL) {
        ops_err_format(err, errsize, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < cnt; i++) {
        if (given != NULL) {
            if ((size_t)snprintf((*out)[i], TOPIC_MAX, "%s", given[i]) >= TOPIC_MAX)
                goto too_long;
        } else if (ops_topic_name(prefix, (ops_kind_t)i, (*out)[i], TOPIC_MAX) != 0) {
            goto too_long;
        }
    }
    *n = cnt;
    return 0;
too_long:
    ops_err_format(err, errsize, "topic name too long");
    free(*out);
    *out = NULL;
    return -1;
}

ops_consumer_t *ops_consumer_new(const ops_consumer_options_t *opts,
                                 const ops_consumer_handler_t *handler, char *errstr,
                                 size_t errstr_size) {
    ops_consumer_t *c = NULL;
    ops_codec_options_t copts = {0};
    ops_counter_options_t kopts = {0};
    char host[64] = "";

    if (opts == NULL || handler == NULL || handler->event == NULL || opts->log == NULL ||
        opts->group == NULL || opts->group[0] == '\0') {
        ops_err_format(errstr, errstr_size, "consumer: group, log and event handler are required");
        return NULL;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL || (c->group = strdup(opts->group)) == NULL) {
        ops_err_format(errstr, errstr_size, "out of memory");
        goto fail;
    }
    c->o = *opts;
    c->o.group = c->group;
    c->h = *handler;
    pthread_mutex_init(&c->stepper.mu, NULL);
    pthread_cond_init(&c->stepper.cv, NULL);
    if (c->o.batch_max == 0)
        c->o.batch_max = OPS_COUNTER_DEFAULT_MAX_EVENTS;
    c->batch_limit = c->o.batch_max;
    if (c->o.flush_ms <= 0)
        c->o.flush_ms = 10;
    if (c->o.shutdown_flush_ms <= 0)
        c->o.shutdown_flush_ms = 1000;
    c->connect_ms = (int)ops_config_get_int(opts->cfg, "opstream.connect.timeout.s") * 1000;
    if (c->connect_ms <= 0)
        c->connect_ms = 10000;
    snprintf(c->brokers, sizeof(c->brokers), "%s",
             ops_config_get(opts->cfg, "bootstrap.servers") != NULL
                 ? ops_config_get(opts->cfg, "bootstrap.servers")
                 : "(none)");
    ops_consumer_redis_display(ops_config_get(opts->cfg, "opstream.redis.url"), c->redis_shown,
                               sizeof(c->redis_shown));
    {
        ops_redis_url_t u;
        char ignored[256];
        if (ops_redis_url_parse(ops_config_get(opts->cfg, "opstream.redis.url"), &u, ignored,
                                sizeof(ignored)) == 0 &&
            u.sentinel)
            snprintf(c->master, sizeof(c->master), "%s", u.master);
        memset(&u, 0, sizeof(u)); /* may hold a password */
    }
    gethostname(host, sizeof(host) - 1);
    snprintf(c->member, sizeof(c->member), "%s:%ld:%lld", host, (long)getpid(),
             (long long)ops_clock_wall_ms());
    copts.max_message_bytes = (size_t)ops_config_get_int(opts->cfg, "opstream.max.message.bytes");
    kopts.group = c->group;
    kopts.max_events = opts->batch_max;
    kopts.dedupe_window_s = ops_config_get_int(opts->cfg, "opstream.dedupe.window.s");
    kopts.minute_ttl_s = ops_config_get_int(opts->cfg, "opstream.bucket.minute.ttl.s");
    kopts.hour_ttl_s = ops_config_get_int(opts->cfg, "opstream.bucket.hour.ttl.s");
    if (ops_event_limits_from_config(opts->cfg, &c->limits, errstr, errstr_size) != 0 ||
        topic_names(opts->cfg, opts->topics, &c->topics, &c->ntopics, errstr, errstr_size) != 0 ||
        (c->codec = ops_codec_new(&copts, errstr, errstr_size)) == NULL ||
        (c->batch = ops_counter_new(&kopts, errstr, errstr_size)) == NULL ||
        (c->spare = ops_counter_new(&kopts, errstr, errstr_size)) == NULL ||
        (c->store = ops_counter_redis_new(ops_config_get(opts->cfg, "opstream.redis.url"),
                                          ops_config_get(opts->cfg, "opstream.redis.password.file"),
                                          c->connect_ms < 5000 ? c->connect_ms : 5000, errstr,
                                          errstr_size)) == NULL ||
        (c->dlq = ops_dlq_new(opts->cfg, errstr, errstr_size)) == NULL ||
        ops_consumer_metrics_init(
            &c->cm, opts->metrics, opts->program ? opts->program : "opstream-consumer", c->group,
            (const char(*)[256])c->topics, c->ntopics, errstr, errstr_size) != 0)
        goto fail;
    c->wait_replicas = (int)ops_config_get_int(opts->cfg, "opstream.redis.wait.replicas");
    c->wait_ms = (int)ops_config_get_int(opts->cfg, "opstream.redis.wait.ms");
    if (c->wait_ms <= 0)
        c->wait_ms = 1000;
    ops_counter_redis_set_wait(c->store, c->wait_replicas, c->wait_ms);
    ops_kafka_consumer_opts_t ko = {.group = c->group,
                                    .rebalance_cb = rebalance_cb,
                                    .error_cb = error_cb,
                                    .log_cb = log_cb,
                                    .opaque = c,
                                    .prefetch_messages = ops_consumer_prefetch_messages(
                                        c->o.batch_max),
                                    .prefetch_given = &c->prefetch, /* ours or the user's */
                                    .fetch_bytes = OPS_CONSUMER_FETCH_BYTES};
    if ((c->rk = ops_kafka_consumer_build(opts->cfg, &ko, errstr, errstr_size)) == NULL ||
        subscribe(c, errstr, errstr_size) != 0)
        goto fail;
    c->cq = rd_kafka_queue_get_consumer(c->rk);
    return c;
fail:
    ops_consumer_destroy(c);
    return NULL;
}

void ops_consumer_destroy(ops_consumer_t *c) {
    if (c == NULL)
        return;
    if (c->cq != NULL)
        rd_kafka_queue_destroy(c->cq);
    if (c->rk != NULL) {
        if (c->broker_down || !c->assigned_once) {
            /* nobody to say goodbye to: leaving would wait for the broker */
            rd_kafka_destroy_flags(c->rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
        } else {
            rd_kafka_consumer_close(c->rk);
            rd_kafka_destroy(c->rk);
        }
    }
    if (c->stepper.started) {
        /* a step still running ends first: it uses the store */
        pthread_mutex_lock(&c->stepper.mu);
        c->stepper.quit = true;
        pthread_cond_broadcast(&c->stepper.cv);
        pthread_mutex_unlock(&c->stepper.mu);
        pthread_join(c->stepper.th, NULL);
    }
    ops_dlq_destroy(c->dlq);
    ops_counter_redis_destroy(c->store);
    pthread_mutex_destroy(&c->stepper.mu);
    pthread_cond_destroy(&c->stepper.cv);
    ops_counter_destroy(c->batch);
    ops_counter_destroy(c->spare);
    ops_counter_destroy(c->held);
    ops_codec_destroy(c->codec);
    ops_redis_link_destroy(c->aux);
    ops_consumer_metrics_free(&c->cm);
    free(c->parts);
    free(c->topics);
    free(c->group);
    free(c);
}

rd_kafka_t *ops_consumer_kafka(ops_consumer_t *c) {
    return c->rk;
}

void ops_consumer_get_stats(const ops_consumer_t *c, ops_consumer_stats_t *st) {
    *st = c->st;
}

/* Final flush after a stop: retried for shutdown_flush_ms; what is not
 * written is not lost, it is consumed again from the stored offsets. */
static int final_flush(ops_consumer_t *c) {
    int64_t deadline = ops_clock_mono_ms() + c->o.shutdown_flush_ms;

    for (;;) {
        ops_counter_step_t s = flush_batch(c);
        if (s == OPS_COUNTER_STEP_APPLIED || s == OPS_COUNTER_STEP_FENCED)
            return 0; /* written, or another consumer owns it */
        int64_t left = deadline - ops_clock_mono_ms();
        if (left <= 0)
            break;
        rd_kafka_poll(c->rk, (int)(left < c->backoff_ms ? left : c->backoff_ms));
    }
    say(c, OPS_CONSUMER_LOG_WARN,
        "the last batch (%zu messages) was not written; it will be consumed again",
        ops_counter_pending(c->batch) + (c->held != NULL ? ops_counter_pending(c->held) : 0));
    drop_batches(c);
    return -1;
}

/* /healthz: the loop turned; /readyz: partitions held and Redis answering.
 * The lag metrics are refreshed once a second from librdkafka's cache, or
 * every 5 s from the broker while the partitions are paused. */
static void observe(ops_consumer_t *c, int64_t now) {
    char why[1024]; /* cut to OPS_HEALTH_REASON_MAX by the health state */

    ops_health_beat(c->o.health);
    if (c->o.health != NULL) {
        if (c->redis_down || c->redis_failing)
            snprintf(why, sizeof why, "Redis %s unreachable: %s", c->redis_shown, c->redis_err);
        else if (ops_counter_partitions(c->batch) == 0)
            snprintf(why, sizeof why, "no partitions assigned%s",
                     c->broker_down ? " (broker unreachable)" : "");
        else
            why[0] = '\0';
        ops_health_set_ready(c->o.health, why);
    }
    if (c->o.metrics != NULL && now >= c->lag_at) {
        bool ask = c->redis_failing && !c->broker_down;
        ops_consumer_metrics_lag(&c->cm, c->rk, ask, c->batch);
        c->lag_at = now + (ask ? 5000 : 1000);
    }
}

ops_consumer_exit_t ops_consumer_run(ops_consumer_t *c) {
    ops_consumer_exit_t rc = OPS_CONSUMER_STOPPED;
    const ops_consumer_options_t *o = &c->o;

    c->started = c->last_status = ops_clock_mono_ms();
    while (!stop_asked(c)) {
        int64_t now = ops_clock_mono_ms();
        int timeout = 100;
        step_collect(c, false);
        if (c->held != NULL && !c->held_running && !c->need_reload && now >= c->retry_at)
            step_retry(c);
        if (ops_counter_pending(c->batch) > 0) {
            int64_t due = c->batch_started + o->flush_ms - now;
            if (c->redis_failing && c->retry_at - now > due)
                due = c->retry_at - now;
            if (!c->redis_failing && o->drained_flush_ms > 0 &&
                c->batch_started + o->drained_flush_ms - now < due)
                due = c->batch_started + o->drained_flush_ms - now;
            timeout = due <= 0 ? 0 : (due < 100 ? (int)due : 100);
        }
        if (c->held_running && timeout > 10)
            timeout = 10; /* its result is taken soon after it ends */
        if (c->redis_failing && batch_full(c))
            timeout = 10; /* paused: only keep the group membership alive */
        /* A burst: everything already fetched, up to a full batch, before
         * the housekeeping below. A batch at least drained_flush_ms old is
         * flushed when the burst runs dry, so at low rates events wait
         * ~2 ms instead of flush_ms, while at high rates batches still grow
         * (more arrives while Redis is busy). */
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c->rk, timeout);
        bool drained = m == NULL;
        burst_clock(c);
        for (int burst = 0; m != NULL; burst++) {
            handle_message(c, m);
            rd_kafka_message_destroy(m);
            if (burst >= BURST_MAX || batch_full(c) || c->need_reload || stop_asked(c))
                break;
            m = rd_kafka_consumer_poll(c->rk, 0);
            drained = m == NULL;
        }
        now = ops_clock_mono_ms();
        prefetch_watch(c);
        ops_dlq_poll(c->dlq);
        char ferr[512];
        if (rd_kafka_fatal_error(c->rk, ferr, sizeof ferr) != RD_KAFKA_RESP_ERR_NO_ERROR) {
            say(c, OPS_CONSUMER_LOG_ERROR, "kafka: fatal error: %s", ferr);
            rc = OPS_CONSUMER_FATAL;
            break;
        }
        if (c->need_reload) {
            if (now >= c->retry_at) {
                drop_batches(c);
                reload_and_seek(c);
            }
        } else if (ops_consumer_flush_due(ops_counter_pending(c->batch), batch_ready(c), drained,
                                          now - c->batch_started, o->flush_ms, o->drained_flush_ms,
                                          c->redis_failing, now >= c->retry_at)) {
            flush_due_batch(c, drained);
        }
        if (!c->assigned_once && !c->group_wait_said && !c->broker_down &&
            now - c->started >= c->connect_ms) {
            say(c, OPS_CONSUMER_LOG_WARN, "waiting for broker %s to assign partitions to group %s",
                c->brokers, c->group);
            c->group_wait_said = true;
        }
        heartbeat(c, false);
        status_line(c, now, false);
        observe(c, now);
    }
    if (final_flush(c) != 0 && rc == OPS_CONSUMER_STOPPED)
        rc = OPS_CONSUMER_UNFLUSHED;
    status_line(c, ops_clock_mono_ms(), true);
    say(c, OPS_CONSUMER_LOG_DEBUG, "%llu of %llu steps ran while the next batch took messages",
        (unsigned long long)c->steps_beside, (unsigned long long)c->steps_run);
    say(c, OPS_CONSUMER_LOG_DEBUG,
        "prefetch: %llu wake-ups of the partitions' leaders, %llu sent nothing",
        (unsigned long long)c->wakes, (unsigned long long)c->unwoken);
    heartbeat(c, true);
    return rc;
}

/* ---- reading a topic to its end ------------------------------------------- */

int ops_consumer_read_to_end(const ops_config_t *cfg, const char *topic,
                             int (*fn)(const rd_kafka_message_t *m, void *opaque), void *opaque,
                             int timeout_ms, volatile sig_atomic_t *stop, char *errstr,
                             size_t errstr_size) {
    int rc = -1;
    rd_kafka_t *rk = NULL;
    const rd_kafka_metadata_t *md = NULL;
    rd_kafka_topic_partition_list_t *parts = NULL;
    int64_t *high = NULL;
    int64_t deadline = timeout_ms > 0 ? ops_clock_mono_ms() + timeout_ms : INT64_MAX;
    int step_ms = timeout_ms > 0 && timeout_ms < 10000 ? timeout_ms : 10000;
    /* a reader with assign(): librdkafka wants a group.id, nothing is
     * ever committed under it */
    ops_kafka_consumer_opts_t ko = {.group = "opstream-reader", .partition_eof = true};

    rk = ops_kafka_consumer_build(cfg, &ko, errstr, errstr_size);
    if (rk == NULL)
        goto cleanup;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR__TIMED_OUT;
    while (ops_clock_mono_ms() < deadline && !(stop != NULL && *stop)) {
        err = rd_kafka_metadata(rk, 0, rkt, &md, step_ms < 1000 ? step_ms : 1000);
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR && md->topic_cnt == 1 && md->topics[0].err == 0)
            break;
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            err = md->topic_cnt == 1 ? md->topics[0].err : RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC;
            rd_kafka_metadata_destroy(md);
            md = NULL;
        }
    }
    rd_kafka_topic_destroy(rkt);
    char bs[512] = "";
    size_t bs_size = sizeof(bs);
    if (rd_kafka_conf_get(rd_kafka_conf(rk), "bootstrap.servers", bs, &bs_size) != RD_KAFKA_CONF_OK)
        bs[0] = '\0';
    if (md == NULL) {
        if (stop != NULL && *stop)
            ops_err_format(errstr, errstr_size, "metadata of %s: interrupted", topic);
        else if (broker_error(err))
            ops_err_format(errstr, errstr_size, "cannot reach the brokers at %s within %d s (%s)",
                           bs, (timeout_ms + 999) / 1000, rd_kafka_err2str(err));
        else
            ops_err_format(errstr, errstr_size, "metadata of %s: %s", topic, rd_kafka_err2str(err));
        goto cleanup;
    }
    if (timeout_ms > 0)
        deadline = ops_clock_mono_ms() + timeout_ms; /* the brokers answered */
    int np = md->topics[0].partition_cnt;
    parts = rd_kafka_topic_partition_list_new(np > 0 ? np : 1);
    high = calloc((size_t)(np > 0 ? np : 1), sizeof(*high));
    if (parts == NULL || high == NULL) {
        ops_err_format(errstr, errstr_size, "out of memory");
        goto cleanup;
    }
    int remaining = 0;
    for (int i = 0; i < np; i++) {
        int32_t p = md->topics[0].partitions[i].id;
        int64_t lo = 0, hi = 0;
        /* asked in short steps: a stop is honoured at once, and a broker
         * that went away is given up on at the deadline */
        for (;;) {
            int64_t asked = ops_clock_mono_ms();
            int64_t left = deadline - asked;
            int wait_ms = left < 500 ? (int)(left > 0 ? left : 1) : 500;
            err = rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi, wait_ms);
            if (!broker_error(err) || ops_clock_mono_ms() >= deadline || (stop != NULL && *stop))
                break;
            if (ops_clock_mono_ms() - asked < 100) /* refused at once: no busy loop */
                nanosleep(&(struct timespec){.tv_nsec = 100 * 1000000L}, NULL);
        }
        if (stop != NULL && *stop) {
            ops_err_format(errstr, errstr_size, "reading %s: interrupted", topic);
            goto cleanup;
        }
        if (err && broker_error(err)) {
            ops_err_format(errstr, errstr_size,
                           "watermarks of %s [%" PRId32 "]: no answer from the brokers at %s "
                           "within %d s (%s)",
                           topic, p, bs, (timeout_ms + 999) / 1000, rd_kafka_err2str(err));
            goto cleanup;
        }
        if (err) {
            ops_err_format(errstr, errstr_size, "watermarks of %s [%" PRId32 "]: %s", topic, p,
                           rd_kafka_err2str(err));
            goto cleanup;
        }
        high[i] = hi > lo ? hi : -1;
        if (hi > lo) {
            rd_kafka_topic_partition_list_add(parts, topic, p)->offset = lo;
            remaining++;
        }
    }
    if (remaining == 0) {
        rc = 0;
        goto cleanup;
    }
    err = rd_kafka_assign(rk, parts);
    if (err) {
        ops_err_format(errstr, errstr_size, "assign %s: %s", topic, rd_kafka_err2str(err));
        goto cleanup;
    }
    while (remaining > 0) {
        if (stop != NULL && *stop) {
            ops_err_format(errstr, errstr_size, "reading %s: interrupted", topic);
            goto cleanup;
        }
        if (ops_clock_mono_ms() >= deadline) {
            ops_err_format(errstr, errstr_size,
                           "reading %s: no answer from the brokers at %s for %d s", topic, bs,
                           (timeout_ms + 999) / 1000);
            goto cleanup;
        }
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (m == NULL)
            continue;
        if (timeout_ms > 0)
            deadline = ops_clock_mono_ms() + timeout_ms; /* progress: the limit is on silence */
        int idx = -1;
        for (int i = 0; i < np; i++)
            if (md->topics[0].partitions[i].id == m->partition)
                idx = i;
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            if (idx >= 0 && high[idx] >= 0 && m->offset >= high[idx]) {
                high[idx] = -1;
                remaining--;
            }
        } else if (m->err) {
            if (!broker_error(m->err)) {
                ops_err_format(errstr, errstr_size, "reading %s: %s", topic,
                               rd_kafka_message_errstr(m));
                rd_kafka_message_destroy(m);
                goto cleanup;
            }
        } else {
            if (idx >= 0 && high[idx] >= 0 && m->offset < high[idx] && fn(m, opaque) != 0) {
                ops_err_format(errstr, errstr_size, "reading %s: stopped by the caller", topic);
                rd_kafka_message_destroy(m);
                goto cleanup;
            }
            if (idx >= 0 && high[idx] >= 0 && m->offset + 1 >= high[idx]) {
                high[idx] = -1;
                remaining--;
            }
        }
        rd_kafka_message_destroy(m);
    }
    rc = 0;
cleanup:
    free(high);
    if (parts != NULL)
        rd_kafka_topic_partition_list_destroy(parts);
    if (md != NULL)
        rd_kafka_metadata_destroy(md);
    if (rk != NULL) {
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
    }
    return rc;
}

/* ---- recovery ----------------------------------------------------------------- */

/* Live members of the group: the broker's list where it answers, and the
 * runtime's heartbeats in Redis. 0 none, 1 some (errstr names them), -1. */
static int live_members(rd_kafka_t *rk, ops_redis_link_t *rc, const char *group, char *errstr,
                        size_t errstr_size) {
    const struct rd_kafka_group_list *gl = NULL;
    char key[OPS_KEY_MAX];
    int out = 0;
    rd_kafka_resp_err_t err = rd_kafka_list_groups(rk, group, &gl, 10000);

    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        for (int i = 0; i < gl->group_cnt; i++) {
            if (strcmp(gl->groups[i].group, group) == 0 && gl->groups[i].member_cnt > 0) {
                ops_err_format(errstr, errstr_size,
                               "group %s has %d live members (state %s); stop them first", group,
                               gl->groups[i].member_cnt, gl->groups[i].state);
                out = 1;
            }
        }
        rd_kafka_group_list_destroy(gl);
        if (out)
            return out;
    } else if (err != RD_KAFKA_RESP_ERR__UNSUPPORTED_FEATURE) {
        ops_err_format(errstr, errstr_size, "listing the members of group %s: %s", group,
                       rd_kafka_err2str(err));
        return -1;
    }
    snprintf(key, sizeof(key), "opstream:members:%s", group);
    const char *hgetall[] = {"HGETALL", key};
    char inner[256];
    redisReply *r = ops_redis_link_command(rc, key, 2, hgetall, NULL, inner, sizeof(inner));
    if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
        ops_err_format(errstr, errstr_size, "redis: HGETALL %s: %s", key,
                       r == NULL                      ? inner
                       : r->type == REDIS_REPLY_ERROR ? r->str
                                                      : "unexpected reply");
        if (r != NULL)
            freeReplyObject(r);
        return -1;
    }
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        if (ops_consumer_member_live(r->element[i + 1]->str, ops_clock_wall_ms())) {
            ops_err_format(errstr, errstr_size,
                           "group %s has a live member (%s, in %s); stop every member first", group,
                           r->element[i]->str, key);
            out = 1;
            break;
        }
    }
    freeReplyObject(r);
    return out;
}

/* A reset says where the group's positions start over, so the counter's
 * applied-offset watermarks of those partitions (opstream:{OP}:applied:GROUP
 * of every operation listed in opstream:operations) go with the old
 * positions: a watermark left in place would refuse the events a reset to
 * earliest means to count again. fields/nfields: the reset "topic:partition"
 * fields. */
static int clear_watermarks(ops_redis_link_t *redis, const char *group, const char **fields,
                            size_t nfields, char *errstr, size_t errstr_size) {
    const char *smembers[] = {"SMEMBERS", "opstream:operations"};
    char inner[256] = "";
    redisReply *ops =
        ops_redis_link_command(redis, smembers[1], 2, smembers, NULL, inner, sizeof(inner));
    const char **argv = calloc(nfields + 2, sizeof(*argv));
    char key[OPS_KEY_MAX + 256];
    int rc = -1;

    if (ops == NULL || ops->type != REDIS_REPLY_ARRAY || argv == NULL) {
        ops_err_format(errstr, errstr_size, "redis: SMEMBERS opstream:operations: %s",
                       ops == NULL                      ? inner
                       : ops->type == REDIS_REPLY_ERROR ? ops->str
                                                        : "unexpected reply or out of memory");
        goto cleanup;
    }
    argv[0] = "HDEL";
    argv[1] = key;
    memcpy(argv + 2, fields, nfields * sizeof(*argv));
    for (size_t i = 0; i < ops->elements; i++) {
        if (ops->element[i]->type != REDIS_REPLY_STRING)
            continue;
        snprintf(key, sizeof key, "opstream:{%s}:applied:%s", ops->element[i]->str, group);
        redisReply *r =
            ops_redis_link_command(redis, key, (int)nfields + 2, argv, NULL, inner, sizeof(inner));
        if (r == NULL || r->type == REDIS_REPLY_ERROR) {
            ops_err_format(errstr, errstr_size, "redis: HDEL %s: %s", key,
                           r == NULL ? inner : r->str);
            if (r != NULL)
                freeReplyObject(r);
            goto cleanup;
        }
        freeReplyObject(r);
    }
    rc = 0;
cleanup:
    if (ops != NULL)
        freeReplyObject(ops);
    free(argv);
    return rc;
}

int ops_consumer_reset_offsets(const ops_config_t *cfg, const char *group,
                               const char *const *topics, ops_consumer_reset_t how, char *errstr,
                               size_t errstr_size) {
    int rc = -1, n = 0;
    rd_kafka_t *rk = NULL;
    ops_redis_link_t *redis = NULL;
    char(*names)[TOPIC_MAX] = NULL;
    size_t ntopics = 0;
    char key[OPS_KEY_MAX];
    const char **argv = NULL;
    char(*vals)[2][TOPIC_MAX + 32] = NULL;
    size_t argc = 2, cap = 0;
    redisReply *r = NULL;
    int timeout_ms = (int)ops_config_get_int(cfg, "opstream.connect.timeout.s") * 1000;
    ops_kafka_consumer_opts_t ko = {.group = "opstream-reader"};

    if (ops_key_offsets(group, key, sizeof(key)) < 0) {
        ops_err_format(errstr, errstr_size, "group name too long for a key");
        goto cleanup;
    }
    if (topic_names(cfg, topics, &names, &ntopics, errstr, errstr_size) != 0)
        goto cleanup;
    redis = ops_redis_link_new(ops_config_get(cfg, "opstream.redis.url"),
                               ops_config_get(cfg, "opstream.redis.password.file"), timeout_ms,
                               errstr, errstr_size);
    if (redis == NULL)
        goto cleanup;
    if ((rk = ops_kafka_consumer_build(cfg, &ko, errstr, errstr_size)) == NULL)
        goto cleanup;
    int live = live_members(rk, redis, group, errstr, errstr_size);
    if (live != 0) {
        rc = live > 0 ? -2 : -1;
        goto cleanup;
    }
    for (size_t t = 0; t < ntopics; t++) {
        const rd_kafka_metadata_t *md = NULL;
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, names[t], NULL);
        rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, rkt, &md, timeout_ms);
        rd_kafka_topic_destroy(rkt);
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR && (md->topic_cnt != 1 || md->topics[0].err))
            err = md->topic_cnt == 1 ? md->topics[0].err : RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC;
        if (err) {
            ops_err_format(errstr, errstr_size, "metadata of %s: %s", names[t],
                           rd_kafka_err2str(err));
            if (md != NULL)
                rd_kafka_metadata_destroy(md);
            goto cleanup;
        }
        for (int i = 0; i < md->topics[0].partition_cnt; i++) {
            int32_t p = md->topics[0].partitions[i].id;
            int64_t lo = 0, hi = 0;
            err = rd_kafka_query_watermark_offsets(rk, names[t], p, &lo, &hi, timeout_ms);
            if (err) {
                ops_err_format(errstr, errstr_size, "watermarks of %s [%d]: %s", names[t], (int)p,
                               rd_kafka_err2str(err));
                rd_kafka_metadata_destroy(md);
                goto cleanup;
            }
            if ((size_t)n == cap) {
                cap = cap ? cap * 2 : 64;
                void *nv = realloc(vals, cap * sizeof(*vals));
                void *na = nv != NULL ? realloc(argv, (2 * cap + 2) * sizeof(*argv)) : NULL;
                if (nv != NULL)
                    vals = nv;
                if (na == NULL) {
                    ops_err_format(errstr, errstr_size, "out of memory");
                    rd_kafka_metadata_destroy(md);
                    goto cleanup;
                }
                argv = na;
            }
            snprintf(vals[n][0], sizeof(vals[n][0]), "%s:%d", names[t], (int)p);
            snprintf(vals[n][1], sizeof(vals[n][1]), "%" PRId64,
                     ops_consumer_reset_target(how, lo, hi));
            n++;
        }
        rd_kafka_metadata_destroy(md);
    }
    if (n == 0) {
        rc = 0;
        goto cleanup;
    }
    argv[0] = "HSET";
    argv[1] = key;
    for (int i = 0; i < n; i++) {
        argv[argc++] = vals[i][0];
        argv[argc++] = vals[i][1];
    }
    char inner[256];
    r = ops_redis_link_command(redis, key, (int)argc, argv, NULL, inner, sizeof(inner));
    if (r == NULL || r->type == REDIS_REPLY_ERROR) {
        ops_err_format(errstr, errstr_size, "redis: HSET %s: %s", key, r == NULL ? inner : r->str);
        goto cleanup;
    }
    for (int i = 0; i < n; i++)
        argv[i] = vals[i][0];
    if (clear_watermarks(redis, group, argv, (size_t)n, errstr, errstr_size) != 0)
        goto cleanup;
    rc = n;
cleanup:
    if (r != NULL)
        freeReplyObject(r);
    free(argv);
    free(vals);
    free(names);
    if (rk != NULL)
        rd_kafka_destroy(rk);
    ops_redis_link_destroy(redis);
    return rc;
}
