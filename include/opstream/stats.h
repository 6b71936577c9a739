/*
 * opstream stats: reads an operation's live counts back from Redis for
 * opstream-stats (totals, per-country table, rolling windows summed from the
 * event-time buckets, latest alerts) and lists the operations. The window
 * arithmetic is pure and unit-tested; the reads are pipelined HGETALLs.
 */
#ifndef OPSTREAM_STATS_H
#define OPSTREAM_STATS_H

#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "opstream/event.h"
#include "opstream/keys.h"
#include "opstream/redis_link.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Rolling windows. A window is summed from whole buckets ending with the one
 * that holds "now": 10 minutes and 1 hour from minute buckets (the current,
 * partial minute included, so the sum covers between N-1 and N minutes of
 * event time), 24 hours from hour buckets (23 to 24 hours). */
typedef enum ops_stats_window_id {
    OPS_STATS_10M = 0,
    OPS_STATS_1H,
    OPS_STATS_24H,
    OPS_STATS_WINDOW_COUNT
} ops_stats_window_id_t;

const char *ops_stats_window_name(ops_stats_window_id_t w); /* "10m", "1h", "24h" */
int ops_stats_window_from_name(const char *name);           /* -1 when unknown */

/* The bucket keys a window sums, oldest first: minute or hour keys of op.
 * keys must hold ops_stats_window_buckets(w) entries of OPS_KEY_MAX bytes.
 * Returns the number written, or -1 when a key does not fit. */
size_t ops_stats_window_buckets(ops_stats_window_id_t w);
int ops_stats_window_keys(ops_stats_window_id_t w, const char *op, int64_t now_ms,
                          char (*keys)[OPS_KEY_MAX]);

typedef struct ops_stats_country {
    char cc[3];
    int64_t m[OPS_METRIC_COUNT];
} ops_stats_country_t;

typedef struct ops_stats_alert {
    char id[OPS_EVENT_ID_LEN + 1];
    char severity[16];
    char country[3];
    char rule[OPS_ALERT_RULE_MAX + 1];
    char summary[OPS_ALERT_SUMMARY_MAX + 1];
    int64_t raised_at; /* ms */
} ops_stats_alert_t;

typedef struct ops_stats {
    char operation[OPS_OPERATION_MAX + 1];
    char country[3]; /* "" unless filtered by country */
    int64_t now_ms;
    int64_t total[OPS_METRIC_COUNT]; /* of the operation, or of the country */
    int64_t window[OPS_STATS_WINDOW_COUNT][OPS_METRIC_COUNT];
    ops_stats_country_t *countries; /* largest first (events, then code) */
    size_t n_countries;
    ops_stats_alert_t *alerts; /* newest first */
    size_t n_alerts;
} ops_stats_t;

/* Reads everything for op (country: NULL or "" for all) at now_ms, with up
 * to max_alerts alerts, through the Redis link (a single server or a
 * cluster: every key of op shares its slot). Returns 0; 1 when the
 * operation is not in opstream:operations; 2 when country is given and is
 * not in the operation's countries set (it never reported); -1 with errstr
 * on a Redis error. *out is zeroed first; free with ops_stats_free (also
 * after an error). */
int ops_stats_read(ops_redis_link_t *rc, const char *op, const char *country, int64_t now_ms,
                   size_t max_alerts, ops_stats_t *out, char *errstr, size_t errstr_size);
void ops_stats_free(ops_stats_t *s); /* accepts NULL */

/* The operations seen, sorted. *opsp is a malloc'd array of *np malloc'd
 * strings; free with ops_stats_list_free. 0, or -1 with errstr. */
int ops_stats_list(ops_redis_link_t *rc, char ***opsp, size_t *np, char *errstr,
                   size_t errstr_size);
void ops_stats_list_free(char **ops, size_t n);

/* Adds an HGETALL reply of a bucket into m, reading the plain metric fields
 * (cc NULL or "") or the "CC:metric" fields. Unknown fields and values that
 * are not integers are ignored. Exposed for tests. */
void ops_stats_add_fields(const redisReply *hgetall, const char *cc, int64_t m[OPS_METRIC_COUNT]);

#ifdef __cplusplus
}
#endif
#endif
