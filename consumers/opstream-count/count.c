/*
 * opstream-count's handler on the consumer runtime (consumer.h): each
 * decoded, valid event goes into the runtime's batch (counter.h), which the
 * runtime writes with its next offsets in one atomic Redis step
 * (counter_redis.h). Everything else (assignment from the stored offsets,
 * fencing, the DLQ, Redis outages, offsets that went backwards) is the
 * runtime's.
 */
#include "count.h"

#include <signal.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <stdio.h>
#include <string.h>

#include "opstream/consumer.h"
#include "opstream/observe.h"
#include "startup.h"

static volatile sig_atomic_t g_stop;

static void log_line(void *opaque, ops_consumer_level_t level, const char *line) {
    (void)opaque;
    (void)level;
    fprintf(stderr, "opstream-count: %s\n", line);
}

/* The whole handler: count it. */
static ops_counter_add_result_t on_event(void *opaque, ops_counter_t *batch,
                                         const ops_consumer_msg_t *m, const ops_event_t *ev) {
    (void)opaque;
    return ops_counter_add_event(batch, m->topic, m->partition, m->offset, ev);
}

int count_run(const count_opts_t *o) {
    char err[512];
    int rc = COUNT_EXIT_USAGE;
    ops_consumer_handler_t h = {.event = on_event};
    ops_consumer_options_t co = {.cfg = o->cfg,
                                 .group = o->group,
                                 .batch_max = o->batch_max,
                                 .flush_ms = o->flush_ms,
                                 .drained_flush_ms = COUNT_DRAINED_FLUSH_MS,
                                 .stats_interval_s = o->stats_interval_s,
                                 .shutdown_flush_ms = COUNT_SHUTDOWN_FLUSH_MS,
                                 .stop = &g_stop,
                                 .verbose = o->verbose,
                                 .log = log_line};
    ops_consumer_t *c;
    ops_observe_t obs;

#ifdef __GLIBC__
    /* A batch's buffers (up to a few MiB each, grown while Redis is behind)
     * come from mmap and go back when freed: with glibc's sliding threshold
     * they would settle in the heaps of both threads and keep the peak. Set
     * here, before the first batch, so that whatever runs the counter gets
     * it. */
    mallopt(M_MMAP_THRESHOLD, 256 * 1024);
#endif
    startup_catch_stop_signals(&g_stop, NULL);
    startup_ignore_sigpipe(); /* a step written to a lost connection is retried */
    /* --metrics: a busy or invalid address is a usage error, before any
     * connection is made */
    if (startup_observe("opstream-count", o->cfg, 0, &obs) != 0)
        return rc;
    co.metrics = obs.metrics;
    co.health = obs.health;
    co.program = "opstream-count";
    c = ops_consumer_new(&co, &h, err, sizeof err);
    if (c == NULL) {
        fprintf(stderr, "opstream-count: %s\n", err);
        ops_observe_stop(&obs);
        return rc;
    }
    fprintf(
        stderr, "opstream-count: counting %s into %s as group %s\n",
        ops_config_get(o->cfg, "bootstrap.servers"),
        ops_consumer_redis_display(ops_config_get(o->cfg, "opstream.redis.url"), err, sizeof err),
        o->group);
    switch (ops_consumer_run(c)) {
    case OPS_CONSUMER_STOPPED:
        rc = COUNT_EXIT_OK;
        break;
    case OPS_CONSUMER_FATAL:
    case OPS_CONSUMER_UNFLUSHED:
        rc = COUNT_EXIT_FATAL;
        break;
    }
    ops_consumer_destroy(c);
    ops_observe_stop(&obs);
    return rc;
}

int count_reset_offsets(const ops_config_t *cfg, const char *group, const char *how_s) {
    char err[512];
    ops_consumer_reset_t how;
    int n;

    if (ops_consumer_reset_parse(how_s, &how, err, sizeof err) != 0) {
        fprintf(stderr, "opstream-count: %s\n", err);
        return COUNT_EXIT_USAGE;
    }
    n = ops_consumer_reset_offsets(cfg, group, NULL, how, err, sizeof err);
    if (n < 0) {
        fprintf(stderr, "opstream-count: --reset-offsets refused: %s\n", err);
        return n == -2 ? COUNT_EXIT_REFUSED : COUNT_EXIT_FATAL;
    }
    fprintf(stderr, "opstream-count: group %s: %d partitions set to their %s offset\n", group, n,
            how_s);
    return COUNT_EXIT_OK;
}
