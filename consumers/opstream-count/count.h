/*
 * opstream-count internals: the consume loop that turns Kafka events into
 * exactly-once Redis counters (counter.h, counter_redis.h, dlq.h), shared
 * between main.c (options) and count.c (the loop).
 */
#ifndef OPSTREAM_COUNT_H
#define OPSTREAM_COUNT_H

#include <stddef.h>

#include "opstream/config.h"

#define COUNT_DEFAULT_GROUP "opstream-count"
#define COUNT_DEFAULT_BATCH 5000
#define COUNT_DEFAULT_FLUSH_MS 10
#define COUNT_DEFAULT_STATS_S 10
#define COUNT_SHUTDOWN_FLUSH_MS 1000 /* final flush attempts after a stop */
#define COUNT_DRAINED_FLUSH_MS 2     /* a batch this old is flushed once nothing more waits */

/* Exit codes. */
enum {
    COUNT_EXIT_OK = 0,      /* stopped by SIGINT/SIGTERM after a final flush */
    COUNT_EXIT_FATAL = 1,   /* a fatal Kafka error, or the last batch could not be written */
    COUNT_EXIT_USAGE = 2,   /* bad option or configuration */
    COUNT_EXIT_REFUSED = 3, /* --reset-offsets refused: the group has live members */
};

typedef struct count_opts {
    const ops_config_t *cfg; /* borrowed */
    const char *group;
    size_t batch_max;
    int flush_ms;
    int stats_interval_s; /* 0: no status line */
    int verbose;
    const char *reset_offsets; /* --reset-offsets earliest|latest, or NULL */
} count_opts_t;

/* Runs until SIGINT/SIGTERM (installed here). Returns an exit code. */
int count_run(const count_opts_t *opts);

/* --reset-offsets earliest|latest: rewrites opstream:offsets:GROUP unless
 * the group has live members. Returns an exit code. */
int count_reset_offsets(const ops_config_t *cfg, const char *group, const char *how);

#endif
