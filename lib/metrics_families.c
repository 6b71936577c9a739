/*
 * opstream's metric families: names, help texts, labels and cardinality
 * bounds in one place, so that the runtime, the handlers and the programs
 * that update a family all declare it identically.
 */
#include "opstream/metrics.h"

#include <string.h>

#include "err_priv.h"
#include "opstream/codec.h"

static const char *const EVENTS_LABELS[] = {"program", "topic", "result", NULL};
static const char *const LAG_LABELS[] = {"group", "topic", "partition", NULL};
static const char *const GROUP_LABELS[] = {"group", NULL};
static const char *const RESULT_LABELS[] = {"result", NULL};
static const char *const REASON_LABELS[] = {"reason", NULL};
static const char *const ALERT_LABELS[] = {"rule", "severity", NULL};

/* Redis step latency: 0.5 ms (a local Redis, a small batch) to 10 s (a
 * Redis that stalls); the step's retry backoff is capped at 2 s. */
static const double STEP_BUCKETS[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                      0.1,    0.25,  0.5,    1,     2.5,  5,     10};

int ops_metrics_produced_init(ops_metrics_t *reg, ops_metrics_produced_t *out, char *errstr,
                              size_t errstr_size) {
    ops_metrics_family_t *f;
    const char *d[] = {"delivered"}, *r[] = {"rejected"}, *x[] = {"failed"};
    memset(out, 0, sizeof(*out));
    if (!reg)
        return 0;
    f = ops_metrics_family(reg, OPS_METRICS_COUNTER, "opstream_produced_total",
                           "Input records by outcome: delivered (confirmed by Kafka), rejected "
                           "(bad input, reported with FILE:LINE) or failed (not delivered).",
                           RESULT_LABELS, 3, NULL, 0, errstr, errstr_size);
    if (!f || !(out->delivered = ops_metrics_series(f, d, errstr, errstr_size)) ||
        !(out->rejected = ops_metrics_series(f, r, errstr, errstr_size)) ||
        !(out->failed = ops_metrics_series(f, x, errstr, errstr_size)))
        return -1;
    return 0;
}

static ops_metrics_family_t *events_family(ops_metrics_t *reg, char *errstr, size_t errstr_size) {
    return ops_metrics_family(reg, OPS_METRICS_COUNTER, "opstream_events_total",
                              "Events handled by a consumer, by topic and result: counted, "
                              "duplicate (already counted), dlq (sent to the DLQ), alerted.",
                              EVENTS_LABELS, OPS_METRICS_EVENTS_MAX, NULL, 0, errstr, errstr_size);
}

ops_metrics_series_t *ops_metrics_events(ops_metrics_t *reg, const char *program, const char *topic,
                                         const char *result, char *errstr, size_t errstr_size) {
    const char *v[] = {program, topic, result};
    ops_metrics_family_t *f = events_family(reg, errstr, errstr_size);
    return f ? ops_metrics_series(f, v, errstr, errstr_size) : NULL;
}

static ops_metrics_series_t *single(ops_metrics_t *reg, ops_metrics_type_t type, const char *name,
                                    const char *help, char *errstr, size_t errstr_size) {
    ops_metrics_family_t *f =
        ops_metrics_family(reg, type, name, help, NULL, 1, NULL, 0, errstr, errstr_size);
    return f ? ops_metrics_series(f, NULL, errstr, errstr_size) : NULL;
}

int ops_metrics_consumer_init(ops_metrics_t *reg, const char *group, ops_metrics_consumer_t *out,
                              char *errstr, size_t errstr_size) {
    ops_metrics_family_t *sum, *step;
    const char *g[] = {group};
    memset(out, 0, sizeof(*out));
    if (!reg)
        return 0;
    if (!(out->events = events_family(reg, errstr, errstr_size)) ||
        !(out->lag = ops_metrics_family(
              reg, OPS_METRICS_GAUGE, "opstream_consumer_lag",
              "Messages of a partition not yet consumed: the high watermark minus the "
              "position, for the partitions this instance owns.",
              LAG_LABELS, OPS_METRICS_LAG_MAX, NULL, 0, errstr, errstr_size)) ||
        !(sum = ops_metrics_family(reg, OPS_METRICS_GAUGE, "opstream_consumer_lag_sum",
                                   "Sum of opstream_consumer_lag over the partitions this "
                                   "instance owns.",
                                   GROUP_LABELS, OPS_METRICS_GROUPS_MAX, NULL, 0, errstr,
                                   errstr_size)) ||
        !(out->lag_sum = ops_metrics_series(sum, g, errstr, errstr_size)) ||
        !(step = ops_metrics_family(
              reg, OPS_METRICS_HISTOGRAM, "opstream_redis_step_seconds",
              "Duration of one atomic Redis step (a batch's counters, dedupe marks and "
              "offsets), successful or not.",
              NULL, 1, STEP_BUCKETS, sizeof STEP_BUCKETS / sizeof STEP_BUCKETS[0], errstr,
              errstr_size)) ||
        !(out->step_seconds = ops_metrics_series(step, NULL, errstr, errstr_size)) ||
        !(out->redis_errors = single(reg, OPS_METRICS_COUNTER, "opstream_redis_errors_total",
                                     "Redis steps that failed (unreachable, refused, timed "
                                     "out) and were retried.",
                                     errstr, errstr_size)) ||
        !(out->fenced = single(reg, OPS_METRICS_COUNTER, "opstream_fenced_total",
                               "Redis steps refused by the fence: the partitions' offsets "
                               "were written by another member.",
                               errstr, errstr_size)) ||
        !(out->gaps = single(reg, OPS_METRICS_COUNTER, "opstream_gaps_total",
                             "Offset ranges recorded in opstream:gaps (lost to retention or "
                             "skipped).",
                             errstr, errstr_size)) ||
        !(out->dlq = ops_metrics_family(reg, OPS_METRICS_COUNTER, "opstream_dlq_total",
                                        "Messages sent to the DLQ, by reason class.", REASON_LABELS,
                                        OPS_METRICS_DLQ_REASONS_MAX, NULL, 0, errstr, errstr_size)))
        return -1;
    return 0;
}

ops_metrics_series_t *ops_metrics_alerts(ops_metrics_t *reg, const char *rule, const char *severity,
                                         char *errstr, size_t errstr_size) {
    const char *v[] = {rule, severity};
    ops_metrics_family_t *f = ops_metrics_family(
        reg, OPS_METRICS_COUNTER, "opstream_alerts_total", "Alerts raised, by rule and severity.",
        ALERT_LABELS, OPS_METRICS_ALERT_SERIES_MAX, NULL, 0, errstr, errstr_size);
    return f ? ops_metrics_series(f, v, errstr, errstr_size) : NULL;
}

const char *ops_metrics_dlq_reason(int codec_err, int invalid) {
    if (invalid)
        return "invalid";
    switch ((ops_codec_err_t)codec_err) {
    case OPS_CODEC_ERR_MAGIC:
        return "magic";
    case OPS_CODEC_ERR_UNKNOWN_ID:
        return "unknown_schema";
    case OPS_CODEC_ERR_TRUNCATED:
        return "truncated";
    case OPS_CODEC_ERR_MALFORMED:
        return "malformed";
    case OPS_CODEC_ERR_TOO_LARGE:
        return "too_large";
    case OPS_CODEC_ERR_WRONG_TYPE:
        return "wrong_type";
    case OPS_CODEC_ERR_INTERNAL:
    case OPS_CODEC_OK:
    default:
        return "internal";
    }
}
