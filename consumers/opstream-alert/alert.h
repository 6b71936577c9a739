/*
 * opstream-alert internals: the consume loop that runs the rule engine
 * (rules.h) over the event topics and publishes alerts exactly once
 * (alert_out.h), shared between main.c (options) and alert.c (the loop).
 */
#ifndef OPSTREAM_ALERT_PROG_H
#define OPSTREAM_ALERT_PROG_H

#include <stddef.h>
#include <stdint.h>

#include "opstream/config.h"
#include "opstream/rules.h"

#define ALERT_DEFAULT_GROUP "opstream-alert"
#define ALERT_DEFAULT_LOOKBACK 50000 /* messages per partition re-read on start */
#define ALERT_STORE_EVERY 1000       /* store offsets after this many messages... */
#define ALERT_STORE_MS 200           /* ...or this often, whichever comes first */
#define ALERT_STOP_GRACE_MS 500      /* alerts in flight waited for after a stop */

/* Exit codes. */
enum {
    ALERT_EXIT_OK = 0,      /* stopped by SIGINT/SIGTERM, offsets stored */
    ALERT_EXIT_FATAL = 1,   /* a fatal Kafka error, --reset-offsets failed */
    ALERT_EXIT_USAGE = 2,   /* bad option, configuration or rules file */
    ALERT_EXIT_REFUSED = 3, /* --reset-offsets refused: the group has live members */
};

typedef struct alert_opts {
    const ops_config_t *cfg;  /* borrowed */
    const ops_rules_t *rules; /* borrowed */
    const char *group;
    int64_t lookback_messages; /* fallback re-read per partition when the broker
                                * cannot find offsets by time */
    int verbose;
} alert_opts_t;

/* Runs until SIGINT/SIGTERM (installed here). Returns an exit code. */
int alert_run(const alert_opts_t *opts);

/* --reset-offsets earliest|latest: rewrites opstream:offsets:GROUP unless
 * the group has live members. Returns an exit code. */
int alert_reset_offsets(const ops_config_t *cfg, const char *group, const char *how);

#endif
