/*
 * opstream consumer runtime: the one consume loop every opstream consumer
 * runs on. It builds the Kafka consumer (ops_kafka_consumer_build),
 * subscribes to the event topics, assigns partitions at the offsets stored
 * in Redis (opstream:offsets:{GROUP}, the fenced compare-and-set store of
 * counter_redis.h), decodes and validates each message at one place, routes
 * what fails to the DLQ (its copy confirmed before an offset passes it),
 * pauses while Redis is down with capped backoff, reports offsets that went
 * backwards (opstream:gaps:{GROUP}, "skipped"), and hands the decoded events
 * to a handler in batches that are applied atomically with their offsets.
 *
 * A program is a handler (consumers/opstream-count, consumers/opstream-alert)
 * plus options. The rules that need no server are pure functions below and
 * are unit-tested in tests/unit/test_consumer.c.
 */
#ifndef OPSTREAM_CONSUMER_H
#define OPSTREAM_CONSUMER_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "opstream/config.h"
#include "opstream/counter.h"
#include "opstream/counter_redis.h"
#include "opstream/event.h"
#include "opstream/health.h"
#include "opstream/metrics.h"

#ifdef __cplusplus
extern "C" {
#endif

#define OPS_CONSUMER_BACKOFF_MIN_MS 50
#define OPS_CONSUMER_BACKOFF_MAX_MS 2000
#define OPS_CONSUMER_MEMBER_TTL_MS 10000 /* a member heartbeat older than this is dead */

/* ---- pure rules ------------------------------------------------------------ */

/* Where one partition stands for the runtime: the offset Redis holds
 * (stored, -1: none), the offset consumption was asked to start at (start,
 * -1: the beginning; below stored when the handler re-reads for state), and
 * the next offset expected from the fetcher (next, -1: any). */
typedef struct ops_consumer_pos {
    int64_t stored;
    int64_t start;
    int64_t next;
    int64_t skip_below; /* offsets below this were reported as skipped (-1: none) */
} ops_consumer_pos_t;

typedef enum ops_consumer_class {
    OPS_CONSUMER_LIVE = 0,  /* at or past the stored offset: into the batch */
    OPS_CONSUMER_REPLAY,    /* below the stored offset, asked for: state only */
    OPS_CONSUMER_REGRESSED, /* the log went backwards (offset below where this
                             * partition stood): report, record, skip */
    OPS_CONSUMER_SKIPPED    /* below the stored offset within a range already
                             * reported as skipped */
} ops_consumer_class_t;

/* Classifies a message at offset for a partition at pos. Pure. */
ops_consumer_class_t ops_consumer_classify(const ops_consumer_pos_t *pos, int64_t offset);

/* The offsets a regression skips: from the first offset seen after the log
 * went backwards to the stored offset - 1. Returns 1 and sets *from, *to
 * when there is such a range (offset < stored), 0 otherwise. Pure. */
int ops_consumer_regressed_range(int64_t stored, int64_t offset, int64_t *from, int64_t *to);

/* A partition's lag: messages from where consumption stands to the high
 * watermark hi. Where it stands is the fetch position (position, -1: no
 * message consumed since the partition was assigned or sought), else the
 * offset stored in Redis that consumption resumes from (stored, -1: none),
 * else the low watermark lo. 0 when nothing is known. Pure. */
int64_t ops_consumer_partition_lag(int64_t position, int64_t stored, int64_t lo, int64_t hi);

/* librdkafka's prefetch bound (queued.min.messages) for batches of
 * batch_max: two batches, at least 10000 and at most librdkafka's default
 * of 100000. Pure. */
size_t ops_consumer_prefetch_messages(size_t batch_max);
/* The prefetch wake-up's rule, after each burst of polls: true when the
 * consumer queue (queued messages, of bound) has drained to a quarter of
 * its bound since it came near it (three quarters); *high carries that
 * between calls. Pure. */
bool ops_consumer_prefetch_drained(size_t queued, size_t bound, bool *high);
/* The fetch.max.bytes the runtime gives its client unless the user set it:
 * fetch responses, and so the prefetch's memory, stay bounded. */
#define OPS_CONSUMER_FETCH_BYTES (2 * 1024 * 1024)

/* Whether the pending batch is flushed now: something pending, and it is
 * full, or it is older than flush_ms, or nothing more is waiting (drained)
 * and it is at least drained_ms old (drained_ms 0: never early); and Redis
 * is not failing, or its retry time has come. Pure. */
bool ops_consumer_flush_due(size_t pending, bool full, bool drained, int64_t age_ms, int flush_ms,
                            int drained_ms, bool redis_failing, bool retry_due);

/* Whether a batch with DLQ copies may pass their offsets: only when every
 * copy sent for it is confirmed (dlq_sent: copies queued for the batch;
 * dlq_confirmed: the last ops_dlq_flush succeeded after them). Pure. */
bool ops_consumer_batch_may_pass(size_t dlq_sent, bool dlq_confirmed);

/* Next capped exponential backoff after cur ms (0: the first retry). */
int ops_consumer_backoff_next(int cur_ms);

typedef enum ops_consumer_reset {
    OPS_CONSUMER_RESET_EARLIEST,
    OPS_CONSUMER_RESET_LATEST
} ops_consumer_reset_t;

/* Parses "earliest" / "latest". 0, or -1 with errstr. */
int ops_consumer_reset_parse(const char *s, ops_consumer_reset_t *out, char *errstr,
                             size_t errstr_size);
/* The offset --reset-offsets stores for a partition with watermarks lo..hi. */
int64_t ops_consumer_reset_target(ops_consumer_reset_t how, int64_t lo, int64_t hi);

/* The value of an opstream:gaps:{GROUP} field for offsets skipped because
 * the log went backwards: "skipped:<ms>" (a gap lost to retention holds the
 * plain time found, "<ms>"). Returns buf. */
const char *ops_consumer_gap_value_skipped(int64_t now_ms, char *buf, size_t size);

/* Whether an opstream:members:{GROUP} value (the member's expiry, ms) is a
 * live member at now_ms. Pure. */
bool ops_consumer_member_live(const char *value, int64_t now_ms);

/* A redis:// URL fit for a log line: the user and password left out. */
const char *ops_consumer_redis_display(const char *url, char *buf, size_t size);

/* ---- the runtime ----------------------------------------------------------- */

/* Without -v a consumer program speaks in its own words: librdkafka's log
 * lines (every client built from cfg: consumer, DLQ and alert producers,
 * readers) are kept to critical ones by setting log_level=2, unless the
 * user set log_level. 0, or -1 with errstr. */
int ops_consumer_quiet_kafka(ops_config_t *cfg, int verbose, char *errstr, size_t errstr_size);

typedef enum ops_consumer_level {
    OPS_CONSUMER_LOG_ERROR = 0,
    OPS_CONSUMER_LOG_WARN,
    OPS_CONSUMER_LOG_INFO,
    OPS_CONSUMER_LOG_DEBUG /* only when verbose */
} ops_consumer_level_t;

/* One consumed message, as the handler sees it. */
typedef struct ops_consumer_msg {
    const char *topic;
    int32_t partition;
    int64_t offset;
    const rd_kafka_message_t *raw;
} ops_consumer_msg_t;

/* A program's part. Every callback is called on the thread that runs
 * ops_consumer_run. batch is the runtime's pending batch (counter.h): it
 * holds the positions and the handler's counts. */
typedef struct ops_consumer_handler {
    void *opaque;
    /* Required. A decoded, valid event at or past the stored offset: add it
     * to the batch (ops_counter_add_event; ops_counter_add_skip when the
     * handler keeps no counts in Redis) and do whatever else the handler
     * does with it. Returns the add result; NO_MEMORY drops the batch, which
     * is then consumed again. */
    ops_counter_add_result_t (*event)(void *opaque, ops_counter_t *batch,
                                      const ops_consumer_msg_t *m, const ops_event_t *ev);
    /* Optional. An event below the stored offset that assigned() asked to
     * re-read: state only, never counted and never its offset stored. */
    void (*replay)(void *opaque, const ops_consumer_msg_t *m, const ops_event_t *ev);
    /* Optional. Partitions about to be assigned, each at its stored offset
     * (RD_KAFKA_OFFSET_BEGINNING when none); the handler may lower an offset
     * to re-read messages for state (replay). Return 0, or -1 to stop
     * (the runtime then stops as if signalled). */
    int (*assigned)(void *opaque, rd_kafka_t *rk, rd_kafka_topic_partition_list_t *parts);
    /* Optional. The batch is about to be applied (its DLQ copies are
     * confirmed): 0, or -1 to keep it and retry later (errstr says why). */
    int (*before_apply)(void *opaque, ops_counter_t *batch, char *errstr, size_t errstr_size);
    /* Optional. Applies the batch atomically with its offsets; NULL:
     * ops_counter_redis_apply on the runtime's store. */
    ops_counter_step_t (*apply)(void *opaque, ops_counter_redis_t *store, ops_counter_t *batch,
                                int64_t now_ms, size_t *seenp, char *errstr, size_t errstr_size);
    /* Optional. redis-sentinel://: the store found a new primary after a
     * failover (said in the log as "redis: primary M now ... (was ...)").
     * Writes the old primary had not yet passed to its replica are gone
     * there; the handler may write again what it keeps outside the step.
     * Return 0, or -1 to stop (the runtime then stops as if signalled). */
    int (*primary_changed)(void *opaque);
} ops_consumer_handler_t;

typedef struct ops_consumer_options {
    const ops_config_t *cfg;     /* borrowed; outlives the consumer */
    const char *group;           /* required */
    const char *const *topics;   /* NULL: the four event topics under opstream.topic.prefix */
    size_t batch_max;            /* messages that make a batch full (0: 5000) */
    int flush_ms;                /* a batch is applied at least this often (0: 10) */
    int drained_flush_ms;        /* applied this early once nothing more is waiting (0: never) */
    int stats_interval_s;        /* status line (INFO) this often when something changed; 0: off */
    int shutdown_flush_ms;       /* final flush attempts after a stop (0: 1000) */
    volatile sig_atomic_t *stop; /* set by the program's signal handler */
    int verbose;                 /* librdkafka's log lines and DEBUG lines */
    void (*log)(void *opaque, ops_consumer_level_t level, const char *line); /* required */
    void *log_opaque;
    /* Observability (observe.h), both borrowed and optional: the runtime
     * updates the consumer metrics (consumer_metrics.h: opstream_events_total
     * with program as its program label, lag, the Redis step, fenced steps,
     * gaps, DLQ reasons), beats health every turn of its loop and says it is
     * ready while it holds partitions and Redis answers. */
    ops_metrics_t *metrics;
    ops_health_t *health;
    const char *program; /* NULL: "opstream-consumer" */
} ops_consumer_options_t;

typedef struct ops_consumer ops_consumer_t;

/* Builds the codec, the batch (ops_counter_new with the dedupe and bucket
 * settings of cfg), the offset store, the DLQ producer and the Kafka
 * consumer, and subscribes. Nothing is contacted yet. handler is copied.
 * NULL with errstr on a configuration error. */
ops_consumer_t *ops_consumer_new(const ops_consumer_options_t *opts,
                                 const ops_consumer_handler_t *handler, char *errstr,
                                 size_t errstr_size);
void ops_consumer_destroy(ops_consumer_t *c); /* accepts NULL; leaves the group */

typedef enum ops_consumer_exit {
    OPS_CONSUMER_STOPPED = 0,  /* stopped; the last batch written */
    OPS_CONSUMER_FATAL = 1,    /* a fatal Kafka error */
    OPS_CONSUMER_UNFLUSHED = 3 /* stopped; the last batch could not be written (it is
                                * consumed again from the stored offsets) */
} ops_consumer_exit_t;

/* Runs until *opts->stop or a fatal error, then flushes the last batch (for
 * up to shutdown_flush_ms) and leaves the group. */
ops_consumer_exit_t ops_consumer_run(ops_consumer_t *c);

/* The Kafka consumer (for the handler's own queries, e.g. offsets by time). */
rd_kafka_t *ops_consumer_kafka(ops_consumer_t *c);

typedef struct ops_consumer_stats {
    uint64_t events;   /* events applied (counted) */
    uint64_t batches;  /* batches applied */
    uint64_t dlq;      /* messages sent to the DLQ and passed */
    uint64_t fenced;   /* batches refused by the fence */
    uint64_t gaps;     /* gaps recorded (retention) */
    uint64_t skipped;  /* ranges recorded as skipped (offsets went backwards) */
    uint64_t replayed; /* events re-read for state */
} ops_consumer_stats_t;

void ops_consumer_get_stats(const ops_consumer_t *c, ops_consumer_stats_t *st);

/* ---- reading a topic to its end ------------------------------------------- */

/* Reads every partition of topic from its beginning up to the high
 * watermark it had when the call started (no group, no commits) and calls
 * fn for each message (NULL value included); fn returning non-zero stops
 * with -1. Gives up after timeout_ms without progress (no answer from the
 * broker, no message; 0: no limit) or when *stop (may be NULL) is set;
 * every broker request is made in steps of at most 1 s, so a stop is
 * honoured within about a second. Brokers that never answered are named
 * in errstr ("cannot reach the brokers at B within N s"); a client that
 * cannot be built (e.g. "no brokers: ...") gives ops_kafka_consumer_build's
 * errstr unchanged. 0, or -1 with errstr. */
int ops_consumer_read_to_end(const ops_config_t *cfg, const char *topic,
                             int (*fn)(const rd_kafka_message_t *m, void *opaque), void *opaque,
                             int timeout_ms, volatile sig_atomic_t *stop, char *errstr,
                             size_t errstr_size);

/* ---- recovery ----------------------------------------------------------------- */

/* Rewrites opstream:offsets:{GROUP} for every partition of topics (NULL:
 * the event topics) to the earliest or latest offset the broker has. Refuses
 * (-2, errstr naming why) while the group has live members: members the
 * broker lists for the group (where the broker answers), or runtime
 * heartbeats in opstream:members:{GROUP} younger than their expiry. Returns
 * the number of partitions written, or -1 with errstr. */
int ops_consumer_reset_offsets(const ops_config_t *cfg, const char *group,
                               const char *const *topics, ops_consumer_reset_t how, char *errstr,
                               size_t errstr_size);

#ifdef __cplusplus
}
#endif
#endif
