/*
 * opstream metrics: a registry of counters, gauges and histograms with
 * bounded label sets, rendered in the Prometheus text exposition format
 * 0.0.4. Updating a series costs one atomic operation and no lock; only
 * creating a series and rendering take the registry's lock. Never prints,
 * never exits; rendering is pure apart from the collectors a caller adds
 * (the process collector reads /proc/self).
 */
#ifndef OPSTREAM_METRICS_H
#define OPSTREAM_METRICS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define OPS_METRICS_MAX_LABELS 4   /* label names per family */
#define OPS_METRICS_MAX_VALUE 128  /* bytes of one label value */
#define OPS_METRICS_MAX_BUCKETS 32 /* histogram buckets, +Inf excluded */

typedef struct ops_metrics ops_metrics_t;               /* the registry */
typedef struct ops_metrics_family ops_metrics_family_t; /* one metric name */
typedef struct ops_metrics_series ops_metrics_series_t; /* one series (label values) */

typedef enum ops_metrics_type {
    OPS_METRICS_COUNTER = 0, /* unsigned integer that only goes up */
    OPS_METRICS_GAUGE,       /* a value that is set */
    OPS_METRICS_HISTOGRAM    /* observations counted in fixed buckets */
} ops_metrics_type_t;

ops_metrics_t *ops_metrics_new(void);
/* Frees the registry, its families and series (every handle becomes
 * invalid). Accepts NULL. */
void ops_metrics_destroy(ops_metrics_t *reg);

/* Declares a metric family. name: [a-zA-Z_:][a-zA-Z0-9_:]*; labels: NULL or a
 * NULL-terminated list of at most OPS_METRICS_MAX_LABELS names
 * ([a-zA-Z_][a-zA-Z0-9_]*, not "le", not starting with "__"); max_series:
 * how many distinct label-value combinations the family may ever hold (the
 * cardinality bound; 1 for a family without labels). Histograms take
 * nbuckets strictly ascending finite upper bounds (+Inf is implied).
 * Declaring a name again with the same type, labels and bound returns the
 * family already declared. NULL with errstr otherwise. The registry owns
 * the family. */
ops_metrics_family_t *ops_metrics_family(ops_metrics_t *reg, ops_metrics_type_t type,
                                         const char *name, const char *help,
                                         const char *const *labels, size_t max_series,
                                         const double *buckets, size_t nbuckets, char *errstr,
                                         size_t errstr_size);

/* The series of family f with these label values (as many as f has labels;
 * NULL when it has none), created on first use. A value is at most
 * OPS_METRICS_MAX_VALUE bytes of printable text (no control bytes). NULL
 * with errstr when a value is refused or f already holds max_series series:
 * callers resolve a series once and keep the handle. */
ops_metrics_series_t *ops_metrics_series(ops_metrics_family_t *f, const char *const *values,
                                         char *errstr, size_t errstr_size);

/* Shorthands: declare a family without labels and return its one series. */
ops_metrics_series_t *ops_metrics_counter(ops_metrics_t *reg, const char *name, const char *help,
                                          char *errstr, size_t errstr_size);
ops_metrics_series_t *ops_metrics_gauge(ops_metrics_t *reg, const char *name, const char *help,
                                        char *errstr, size_t errstr_size);

/* Hot-path updates: one atomic operation each, no lock, safe from any
 * thread. m may be NULL (metrics off): nothing happens. A call on a series
 * of another type does nothing. */
void ops_metrics_add(ops_metrics_series_t *m, uint64_t n); /* counter += n */
/* gauge = v; on a counter, sets the part of its value read from elsewhere
 * (a collector's running total such as CPU seconds, which must not go
 * down); the counter renders as that plus what ops_metrics_add added. */
void ops_metrics_set(ops_metrics_series_t *m, double v);
void ops_metrics_observe(ops_metrics_series_t *m, double v);

/* Reads a series back (counter value, gauge value, histogram count). */
double ops_metrics_value(const ops_metrics_series_t *m);

/* A collector runs at the start of every render, before any series is
 * read, to set gauges whose value is read on demand (process metrics).
 * Collectors run on the rendering thread under the registry's lock, one
 * render at a time: they set series resolved beforehand and must not
 * declare families or series. 0, or -1 with errstr when out of memory. */
typedef void (*ops_metrics_collect_fn)(void *opaque);
/* release (may be NULL) is called with opaque when the registry is
 * destroyed, also when this call fails: opaque is owned by reg either way. */
int ops_metrics_add_collector(ops_metrics_t *reg, ops_metrics_collect_fn fn, void *opaque,
                              void (*release)(void *opaque), char *errstr, size_t errstr_size);

/* Renders every family in declaration order, each series in creation
 * order, as text exposition format 0.0.4 ("# HELP", "# TYPE", samples;
 * histograms as _bucket{le=...} cumulative, _sum and _count). A family
 * without series renders nothing. *out is malloc'd and NUL-terminated (the
 * caller frees it), *outlen its length. 0, or -1 with errstr. */
int ops_metrics_render(ops_metrics_t *reg, char **out, size_t *outlen, char *errstr,
                       size_t errstr_size);

/* The Content-Type of the rendered text. */
#define OPS_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* Formats a sample value the way Prometheus reads it: integers without a
 * fraction, other values with the fewest digits that read back the same,
 * "+Inf", "-Inf", "NaN". Returns buf. */
const char *ops_metrics_format_value(double v, char *buf, size_t size);

/* ---- process metrics ---------------------------------------------------- */

/* What the process collector reads from /proc/self/stat, /proc/self/statm
 * and /proc/stat. */
typedef struct ops_metrics_proc {
    double cpu_seconds;        /* user + system */
    double start_time_seconds; /* since the Unix epoch */
    double resident_bytes;
    double virtual_bytes;
    double open_fds;
} ops_metrics_proc_t;

/* Parses the text of /proc/self/stat (the command name may hold spaces and
 * parentheses), with the clock ticks per second and the boot time
 * (/proc/stat's btime, seconds since the epoch). Pure. 0, or -1 with errstr. */
int ops_metrics_parse_proc_stat(const char *stat, long ticks_per_s, int64_t boot_time_s,
                                double *cpu_seconds, double *start_time_seconds, char *errstr,
                                size_t errstr_size);
/* Parses /proc/self/statm ("size resident ...", pages). Pure. */
int ops_metrics_parse_proc_statm(const char *statm, long page_size, double *virtual_bytes,
                                 double *resident_bytes, char *errstr, size_t errstr_size);
/* The "btime N" line of /proc/stat's text. Pure. */
int ops_metrics_parse_boot_time(const char *proc_stat, int64_t *boot_time_s, char *errstr,
                                size_t errstr_size);

/* Declares process_cpu_seconds_total, process_start_time_seconds,
 * process_resident_memory_bytes, process_virtual_memory_bytes and
 * process_open_fds, and a collector that reads them from /proc/self at
 * every render. 0, or -1 with errstr. */
int ops_metrics_add_process(ops_metrics_t *reg, char *errstr, size_t errstr_size);

/* Declares opstream_build_info{version} = 1. 0, or -1 with errstr. */
int ops_metrics_add_build_info(ops_metrics_t *reg, const char *version, char *errstr,
                               size_t errstr_size);

/* ---- opstream's own families ----------------------------------------------
 * Declared here once, with their help text and cardinality bound, so that
 * every program and module that updates one declares it the same way.
 * Label values come from bounded sets only (README, "Operating it"):
 *   program   the program's name (7 programs)
 *   topic     the topics a program reads (the four event topics, the alerts)
 *   result    counted, duplicate, dlq, alerted (events); delivered,
 *             rejected, failed (produced)
 *   group     consumer group names given by -g (one or two per process)
 *   partition partition numbers of the topics read
 *   reason    the DLQ reason class (ops_metrics_dlq_reason), never the text
 *   rule, severity  names from the rules file and INFO/WARNING/CRITICAL
 */
#define OPS_METRICS_EVENTS_MAX 64 /* program x topic x result */
#define OPS_METRICS_LAG_MAX 4096  /* group x topic x partition */
#define OPS_METRICS_GROUPS_MAX 8
#define OPS_METRICS_DLQ_REASONS_MAX 16
#define OPS_METRICS_ALERT_SERIES_MAX 1024 /* rule x severity */

typedef struct ops_metrics_produced {
    ops_metrics_series_t *delivered, *rejected, *failed; /* opstream_produced_total{result} */
} ops_metrics_produced_t;

/* Declares opstream_produced_total{result} and resolves its three series
 * (all zero until updated). reg NULL: every handle NULL (no-ops). 0, or -1
 * with errstr. */
int ops_metrics_produced_init(ops_metrics_t *reg, ops_metrics_produced_t *out, char *errstr,
                              size_t errstr_size);

/* The opstream_events_total{program,topic,result} series of one
 * combination (resolve once, keep the handle). NULL with errstr. */
ops_metrics_series_t *ops_metrics_events(ops_metrics_t *reg, const char *program, const char *topic,
                                         const char *result, char *errstr, size_t errstr_size);

/* The consumer runtime's families. */
typedef struct ops_metrics_consumer {
    ops_metrics_family_t *events;       /* opstream_events_total{program,topic,result} */
    ops_metrics_family_t *lag;          /* opstream_consumer_lag{group,topic,partition} */
    ops_metrics_series_t *lag_sum;      /* opstream_consumer_lag_sum{group} */
    ops_metrics_series_t *step_seconds; /* opstream_redis_step_seconds (histogram) */
    ops_metrics_series_t *redis_errors; /* opstream_redis_errors_total */
    ops_metrics_series_t *fenced;       /* opstream_fenced_total */
    ops_metrics_series_t *gaps;         /* opstream_gaps_total */
    ops_metrics_family_t *dlq;          /* opstream_dlq_total{reason} */
} ops_metrics_consumer_t;

/* Declares the consumer families for a group and resolves its unlabeled
 * series. reg NULL: every handle NULL. 0, or -1 with errstr. */
int ops_metrics_consumer_init(ops_metrics_t *reg, const char *group, ops_metrics_consumer_t *out,
                              char *errstr, size_t errstr_size);

/* opstream_alerts_total{rule,severity}. NULL with errstr. */
ops_metrics_series_t *ops_metrics_alerts(ops_metrics_t *reg, const char *rule, const char *severity,
                                         char *errstr, size_t errstr_size);

/* The bounded DLQ reason class of a decode or validation failure: "magic",
 * "unknown_schema", "truncated", "malformed", "too_large", "wrong_type",
 * "internal" for the codec's errors (by their ops_codec_err_t value),
 * "invalid" for an event that breaks the validation rules. */
const char *ops_metrics_dlq_reason(int codec_err, int invalid);

#ifdef __cplusplus
}
#endif
#endif
