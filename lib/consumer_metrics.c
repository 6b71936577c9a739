/*
 * opstream consumer metrics (consumer_metrics.h): tallies of
 * the pending batch turned into counters when the batch is applied, the
 * Redis step's latency, and the partitions' lag.
 */
#include "opstream/consumer_metrics.h"
#include "opstream/consumer.h"
#include "opstream/clock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err_priv.h"

#define ASK_TIMEOUT_MS 200 /* one watermark query */
#define ASK_BUDGET_MS 1000 /* all of them, per update */

static const char *const REASONS[OPS_CONSUMER_METRICS_REASONS] = {
    "magic",     "unknown_schema", "truncated", "malformed",
    "too_large", "wrong_type",     "internal",  "invalid"};

int ops_consumer_metrics_init(ops_consumer_metrics_t *cm, ops_metrics_t *reg, const char *program,
                              const char *group, const char (*topics)[256], size_t ntopics,
                              char *errstr, size_t errstr_size) {
    memset(cm, 0, sizeof(*cm));
    cm->group = group;
    cm->lag_sum = -1;
    for (int k = 0; k < OPS_KIND_COUNT; k++)
        cm->kind_topic[k] = cm->h_kind_topic[k] = -1;
    if (!(cm->topics = calloc(ntopics ? ntopics : 1, sizeof(*cm->topics)))) {
        ops_err_format(errstr, errstr_size, "out of memory");
        return -1;
    }
    cm->ntopics = ntopics;
    for (size_t i = 0; i < ntopics; i++)
        snprintf(cm->topics[i].name, sizeof cm->topics[i].name, "%s", topics[i]);
    if (reg == NULL)
        return 0;
    if (ops_metrics_consumer_init(reg, group, &cm->m, errstr, errstr_size) != 0)
        return -1;
    for (size_t i = 0; i < ntopics; i++) {
        ops_consumer_metrics_topic_t *t = &cm->topics[i];
        if (!(t->counted =
                  ops_metrics_events(reg, program, t->name, "counted", errstr, errstr_size)) ||
            !(t->duplicate =
                  ops_metrics_events(reg, program, t->name, "duplicate", errstr, errstr_size)) ||
            !(t->dlq = ops_metrics_events(reg, program, t->name, "dlq", errstr, errstr_size)))
            return -1;
    }
    for (int r = 0; r < OPS_CONSUMER_METRICS_REASONS; r++) {
        const char *v[] = {REASONS[r]};
        if (!(cm->reason_series[r] = ops_metrics_series(cm->m.dlq, v, errstr, errstr_size)))
            return -1;
    }
    return 0;
}

void ops_consumer_metrics_free(ops_consumer_metrics_t *cm) {
    if (cm == NULL)
        return;
    free(cm->topics);
    free(cm->lags);
    memset(cm, 0, sizeof(*cm));
}

static ops_consumer_metrics_topic_t *topic_of(ops_consumer_metrics_t *cm, const char *topic) {
    for (size_t i = 0; i < cm->ntopics; i++)
        if (strcmp(cm->topics[i].name, topic) == 0)
            return &cm->topics[i];
    return NULL;
}

void ops_consumer_metrics_batch_start(ops_consumer_metrics_t *cm, const ops_counter_t *batch) {
    for (size_t i = 0; i < cm->ntopics; i++)
        cm->topics[i].added = cm->topics[i].dupes = cm->topics[i].dlqs = cm->topics[i].seen = 0;
    for (int k = 0; k < OPS_KIND_COUNT; k++) {
        cm->kind_topic[k] = -1;
        cm->seen_base[k] = ops_counter_seen_of_kind(batch, (ops_kind_t)k);
    }
    memset(cm->reasons, 0, sizeof cm->reasons);
}

void ops_consumer_metrics_added(ops_consumer_metrics_t *cm, const char *topic, ops_kind_t kind) {
    ops_consumer_metrics_topic_t *t = topic_of(cm, topic);
    if (t == NULL)
        return;
    t->added++;
    if ((unsigned)kind < OPS_KIND_COUNT)
        cm->kind_topic[kind] = (int)(t - cm->topics);
}

void ops_consumer_metrics_duplicate(ops_consumer_metrics_t *cm, const char *topic) {
    ops_consumer_metrics_topic_t *t = topic_of(cm, topic);
    if (t != NULL)
        t->dupes++;
}

void ops_consumer_metrics_dlq(ops_consumer_metrics_t *cm, const char *topic, const char *reason) {
    ops_consumer_metrics_topic_t *t = topic_of(cm, topic);
    if (t != NULL)
        t->dlqs++;
    for (int r = 0; r < OPS_CONSUMER_METRICS_REASONS; r++)
        if (strcmp(REASONS[r], reason) == 0) {
            cm->reasons[r]++;
            return;
        }
    cm->reasons[6]++; /* internal */
}

void ops_consumer_metrics_step(ops_consumer_metrics_t *cm, const ops_counter_t *batch,
                               double seconds, ops_counter_step_t step) {
    ops_metrics_observe(cm->m.step_seconds, seconds);
    if (step == OPS_COUNTER_STEP_FAILED || step == OPS_COUNTER_STEP_REFUSED) {
        /* the batch is kept for its retry: its tallies stay pending */
        ops_metrics_add(cm->m.redis_errors, 1);
        return;
    }
    if (step == OPS_COUNTER_STEP_FENCED) {
        ops_metrics_add(cm->m.fenced, 1);
        ops_consumer_metrics_batch_start(cm, batch);
        return;
    }
    /* Applied: events Redis already knew (by kind) move from counted to
     * duplicate, on the topic their kind came from in this batch. */
    for (int k = 0; k < OPS_KIND_COUNT; k++) {
        uint64_t s = ops_counter_seen_of_kind(batch, (ops_kind_t)k) - cm->seen_base[k];
        if (s > 0 && cm->kind_topic[k] >= 0)
            cm->topics[cm->kind_topic[k]].seen += s;
    }
    for (size_t i = 0; i < cm->ntopics; i++) {
        ops_consumer_metrics_topic_t *t = &cm->topics[i];
        uint64_t s = t->seen;
        if (s > t->added)
            s = t->added;
        ops_metrics_add(t->counted, t->added - s);
        ops_metrics_add(t->duplicate, t->dupes + s);
        ops_metrics_add(t->dlq, t->dlqs);
    }
    for (int r = 0; r < OPS_CONSUMER_METRICS_REASONS; r++)
        ops_metrics_add(cm->reason_series[r], cm->reasons[r]);
    ops_consumer_metrics_batch_start(cm, batch);
}

/* Exchanges the pending tallies with the held ones. */
static void swap_held(ops_consumer_metrics_t *cm) {
#define SWAP_U64(a, b)                                                                             \
    do {                                                                                           \
        uint64_t t_ = (a);                                                                         \
        (a) = (b);                                                                                 \
        (b) = t_;                                                                                  \
    } while (0)
    for (size_t i = 0; i < cm->ntopics; i++) {
        ops_consumer_metrics_topic_t *t = &cm->topics[i];
        SWAP_U64(t->added, t->h_added);
        SWAP_U64(t->dupes, t->h_dupes);
        SWAP_U64(t->dlqs, t->h_dlqs);
        SWAP_U64(t->seen, t->h_seen);
    }
    for (int k = 0; k < OPS_KIND_COUNT; k++) {
        int kt = cm->kind_topic[k];
        cm->kind_topic[k] = cm->h_kind_topic[k];
        cm->h_kind_topic[k] = kt;
        SWAP_U64(cm->seen_base[k], cm->h_seen_base[k]);
    }
    for (int r = 0; r < OPS_CONSUMER_METRICS_REASONS; r++)
        SWAP_U64(cm->reasons[r], cm->h_reasons[r]);
#undef SWAP_U64
}

void ops_consumer_metrics_hold(ops_consumer_metrics_t *cm) {
    swap_held(cm);
    for (size_t i = 0; i < cm->ntopics; i++)
        cm->topics[i].added = cm->topics[i].dupes = cm->topics[i].dlqs = cm->topics[i].seen = 0;
    for (int k = 0; k < OPS_KIND_COUNT; k++) {
        cm->kind_topic[k] = -1;
        cm->seen_base[k] = 0;
    }
    memset(cm->reasons, 0, sizeof cm->reasons);
}

void ops_consumer_metrics_step_held(ops_consumer_metrics_t *cm, const ops_counter_t *batch,
                                    double seconds, ops_counter_step_t step) {
    swap_held(cm);
    ops_consumer_metrics_step(cm, batch, seconds, step);
    swap_held(cm);
}

void ops_consumer_metrics_redis_error(ops_consumer_metrics_t *cm) {
    ops_metrics_add(cm->m.redis_errors, 1);
}

void ops_consumer_metrics_gap(ops_consumer_metrics_t *cm) {
    ops_metrics_add(cm->m.gaps, 1);
}

/* The lag series of a partition, resolved once. */
static ops_consumer_metrics_lag_t *lag_of(ops_consumer_metrics_t *cm, const char *topic,
                                          int32_t partition) {
    char pbuf[16];
    for (size_t i = 0; i < cm->nlags; i++)
        if (cm->lags[i].partition == partition && strcmp(cm->lags[i].topic, topic) == 0)
            return &cm->lags[i];
    if (cm->m.lag == NULL)
        return NULL;
    if (cm->nlags == cm->lags_cap) {
        size_t cap = cm->lags_cap ? cm->lags_cap * 2 : 32;
        ops_consumer_metrics_lag_t *v = realloc(cm->lags, cap * sizeof(*v));
        if (v == NULL)
            return NULL;
        cm->lags = v;
        cm->lags_cap = cap;
    }
    ops_consumer_metrics_lag_t *l = &cm->lags[cm->nlags];
    snprintf(l->topic, sizeof l->topic, "%s", topic);
    l->partition = partition;
    l->round = 0;
    snprintf(pbuf, sizeof pbuf, "%d", (int)partition);
    const char *v[] = {cm->group, topic, pbuf};
    /* beyond the family's bound: not shown per partition, still summed */
    l->series = ops_metrics_series(cm->m.lag, v, NULL, 0);
    cm->nlags++;
    return l;
}

/* The offset Redis holds for a partition of batch, -1: none or unknown. */
static int64_t stored_in(const ops_counter_t *batch, const char *topic, int32_t partition) {
    size_t n = batch != NULL ? ops_counter_partitions(batch) : 0;
    for (size_t i = 0; i < n; i++) {
        const char *t;
        int32_t p;
        int64_t stored;
        ops_counter_partition(batch, i, &t, &p, &stored);
        if (p == partition && strcmp(t, topic) == 0)
            return stored;
    }
    return -1;
}

int64_t ops_consumer_metrics_lag(ops_consumer_metrics_t *cm, rd_kafka_t *rk, bool ask_broker,
                                 const ops_counter_t *batch) {
    rd_kafka_topic_partition_list_t *l = NULL;
    int64_t total = 0;
    int asked_ms = 0;

    if (rd_kafka_assignment(rk, &l) != RD_KAFKA_RESP_ERR_NO_ERROR || l == NULL)
        return -1;
    rd_kafka_position(rk, l);
    cm->round++;
    for (int i = 0; i < l->cnt; i++) {
        int64_t lo = -1, hi = -1, lag = 0;
        rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR__STATE;
        if (ask_broker && asked_ms < ASK_BUDGET_MS) {
            /* paused partitions are not fetched: their cached high
             * watermark stands still while the log grows */
            int64_t t0 = ops_clock_mono_ms();
            e = rd_kafka_query_watermark_offsets(rk, l->elems[i].topic, l->elems[i].partition, &lo,
                                                 &hi, ASK_TIMEOUT_MS);
            asked_ms += (int)(ops_clock_mono_ms() - t0);
        }
        if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
            e = rd_kafka_get_watermark_offsets(rk, l->elems[i].topic, l->elems[i].partition, &lo,
                                               &hi);
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
            lag = ops_consumer_partition_lag(
                l->elems[i].offset, stored_in(batch, l->elems[i].topic, l->elems[i].partition), lo,
                hi);
        total += lag;
        ops_consumer_metrics_lag_t *cl = lag_of(cm, l->elems[i].topic, l->elems[i].partition);
        if (cl != NULL) {
            ops_metrics_set(cl->series, (double)lag);
            cl->round = cm->round;
        }
    }
    rd_kafka_topic_partition_list_destroy(l);
    for (size_t i = 0; i < cm->nlags; i++)
        if (cm->lags[i].round != cm->round)
            ops_metrics_set(cm->lags[i].series, 0); /* owned no more */
    ops_metrics_set(cm->m.lag_sum, (double)total);
    cm->lag_sum = total;
    return total;
}
