/*
 * opstream consumer metrics: per topic, what each batch holds
 * (events added, in-batch duplicates, DLQ copies by reason class), added to
 * opstream_events_total and opstream_dlq_total only when the batch is
 * applied, so the counters say what Redis holds; the Redis step's latency
 * and outcome; the lag of each owned partition from the watermarks
 * librdkafka caches (or the broker's, for paused partitions). The consume
 * loop calls these as its batch fills and is applied. Never prints.
 */
#ifndef OPSTREAM_CONSUMER_METRICS_H
#define OPSTREAM_CONSUMER_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "opstream/counter.h"
#include "opstream/counter_redis.h"
#include "opstream/event.h"
#include "opstream/metrics.h"

#define OPS_CONSUMER_METRICS_REASONS 8 /* the classes of ops_metrics_dlq_reason */

typedef struct ops_consumer_metrics_topic {
    char name[256];
    ops_metrics_series_t *counted, *duplicate, *dlq;
    uint64_t added, dupes, dlqs; /* in the pending batch */
    uint64_t seen;               /* of added, known to Redis already (at apply) */
    uint64_t h_added, h_dupes, h_dlqs, h_seen; /* the same of the batch held for its step */
} ops_consumer_metrics_topic_t;

typedef struct ops_consumer_metrics_lag {
    char topic[256];
    int32_t partition;
    ops_metrics_series_t *series;
    unsigned round; /* the last update that found it assigned */
} ops_consumer_metrics_lag_t;

typedef struct ops_consumer_metrics {
    ops_metrics_consumer_t m;
    const char *group;
    ops_consumer_metrics_topic_t *topics;
    size_t ntopics;
    int kind_topic[OPS_KIND_COUNT]; /* topic index of each kind's events in the batch */
    uint64_t seen_base[OPS_KIND_COUNT];
    uint64_t reasons[OPS_CONSUMER_METRICS_REASONS]; /* DLQ copies of the pending batch by class */
    /* the tallies of the batch handed to a step that runs beside the next
     * batch (ops_consumer_metrics_hold) */
    int h_kind_topic[OPS_KIND_COUNT];
    uint64_t h_seen_base[OPS_KIND_COUNT];
    uint64_t h_reasons[OPS_CONSUMER_METRICS_REASONS];
    ops_metrics_series_t *reason_series[OPS_CONSUMER_METRICS_REASONS];
    ops_consumer_metrics_lag_t *lags; /* every partition ever owned, its lag series */
    size_t nlags, lags_cap;
    int64_t lag_sum; /* the last sum computed, -1: none yet */
    unsigned round;
} ops_consumer_metrics_t;

/* Declares the families in reg (NULL: every update is a no-op) and
 * resolves the series of each topic. 0, or -1 with errstr. */
int ops_consumer_metrics_init(ops_consumer_metrics_t *cm, ops_metrics_t *reg, const char *program,
                              const char *group, const char (*topics)[256], size_t ntopics,
                              char *errstr, size_t errstr_size);
void ops_consumer_metrics_free(ops_consumer_metrics_t *cm);

/* A new batch starts (the last one was applied or dropped). */
void ops_consumer_metrics_batch_start(ops_consumer_metrics_t *cm, const ops_counter_t *batch);
/* One message of the pending batch, by what the batch made of it. */
void ops_consumer_metrics_added(ops_consumer_metrics_t *cm, const char *topic, ops_kind_t kind);
void ops_consumer_metrics_duplicate(ops_consumer_metrics_t *cm, const char *topic);
void ops_consumer_metrics_dlq(ops_consumer_metrics_t *cm, const char *topic, const char *reason);
/* One Redis step took seconds and ended with step; on APPLIED the pending
 * tallies are added to the counters (events Redis knew already count as
 * duplicates) and a new batch starts; on FAILED and REFUSED (the batch is
 * retried) they stay, and a Redis error is counted. */
void ops_consumer_metrics_step(ops_consumer_metrics_t *cm, const ops_counter_t *batch,
                               double seconds, ops_counter_step_t step);
/* The pending batch is handed to a step that runs while the next batch
 * fills: its tallies are held apart (the pending ones start empty) until
 * ops_consumer_metrics_step_held reports that step. One batch at most is
 * held at a time. */
void ops_consumer_metrics_hold(ops_consumer_metrics_t *cm);
/* ops_consumer_metrics_step for the held batch (batch: that batch's
 * counter); on FAILED and REFUSED its tallies stay held for the retry. */
void ops_consumer_metrics_step_held(ops_consumer_metrics_t *cm, const ops_counter_t *batch,
                                    double seconds, ops_counter_step_t step);
/* A Redis call outside the step failed (gaps, offsets, the handler's). */
void ops_consumer_metrics_redis_error(ops_consumer_metrics_t *cm);
/* A range was recorded in opstream:gaps. */
void ops_consumer_metrics_gap(ops_consumer_metrics_t *cm);
/* Recomputes the lag of each assigned partition (high watermark minus
 * position) and their sum; owned no more: 0. The watermarks come from
 * librdkafka's cache (no round trip), or, with ask_broker (partitions
 * paused, so not fetched), from the broker within a bounded time. batch
 * (may be NULL) gives the stored offsets of partitions with no position
 * yet (ops_consumer_partition_lag). Returns the sum, -1 when the
 * assignment is unknown. */
int64_t ops_consumer_metrics_lag(ops_consumer_metrics_t *cm, rd_kafka_t *rk, bool ask_broker,
                                 const ops_counter_t *batch);

#endif
