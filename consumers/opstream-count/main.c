/*
 * opstream-count: the counter consumer. Reads the four event topics in
 * consumer group opstream-count and keeps exactly-once per-operation counters
 * in Redis. This file parses options and builds the configuration; the
 * consume loop is count.c.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "count.h"
#include "opstream/cli.h"
#include "opstream/config.h"
#include "opstream/consumer.h"
#include "startup.h"

enum {
    OPT_BATCH = OPS_CLI_OPT_FIRST_PROGRAM,
    OPT_FLUSH_MS,
    OPT_STATS_INTERVAL,
    OPT_RESET_OFFSETS,
};

static void usage(FILE *out) {
    fprintf(out,
            "Usage: opstream-count -b BROKERS --redis URL [-g GROUP] [options]\n"
            "\n"
            "Consumes opstream.arrests, .rescues, .migrants and .seizures and keeps\n"
            "exactly-once counters per operation in Redis: totals, per country, the\n"
            "countries and operations sets, event-time minute and hour buckets. Each\n"
            "batch's counters and the partitions' next offsets are written in one atomic\n"
            "Redis step; offsets live in Redis (opstream:offsets:GROUP), not in Kafka.\n"
            "An event_id already counted within opstream.dedupe.window.s is not counted\n"
            "again (after the window, a re-sent record counts again; 0 turns dedupe off\n"
            "and only the stored offsets keep the counts exact). Messages that do not\n"
            "decode, and events that break the producer's rules (counts outside\n"
            "1..100000, minors above the count, a bad country, operation or event_id,\n"
            "an event time outside opstream.event.time.min .. now +\n"
            "opstream.event.time.max.future.s), go to opstream.dlq with the reason.\n"
            "\n"
            "Options:\n"
            "  -g, --group GROUP          consumer group (default %s)\n"
            "      --batch N              events per batch (default %d); while Redis is\n"
            "                             behind, batches grow up to 4 times N, and in a\n"
            "                             catch-up (more than 4 batches waiting) up to\n"
            "                             16 times N (at most 80000 events, or 4 times N\n"
            "                             when that is more)\n"
            "      --flush-ms MS          flush a batch at least this often (default %d);\n"
            "                             a batch is also flushed as soon as nothing more\n"
            "                             is waiting, so it only grows while events arrive\n"
            "      --stats-interval S     status line on stderr every S seconds when\n"
            "                             something changed: events/s, batches, DLQ\n"
            "                             count, duplicates, lag (default %d; 0 = off)\n"
            "      --reset-offsets earliest|latest\n"
            "                             recovery: set the group's stored offsets\n"
            "                             (opstream:offsets:GROUP) of every partition of\n"
            "                             the event topics to the oldest or the newest\n"
            "                             offset the broker has, then exit. Refused while\n"
            "                             the group has live members\n" OPS_CLI_METRICS_HELP
            "                             (/readyz: partitions assigned, Redis reachable)\n"
            "\n"
            "Settings (-X or -c): opstream.topic.prefix, opstream.dedupe.window.s\n"
            "(default 604800; 0 = off), opstream.bucket.minute.ttl.s,\n"
            "opstream.bucket.hour.ttl.s, opstream.event.time.min,\n"
            "opstream.event.time.max.future.s,\n"
            "opstream.max.message.bytes, opstream.redis.password.file,\n"
            "opstream.connect.timeout.s (seconds before an unreachable broker or Redis\n"
            "is reported; default 10).\n"
            "\n"
            "%s"
            "\n"
            "Redis unreachable: the batch is kept, consumption pauses and the write is\n"
            "retried with backoff (\"waiting for Redis ...\" once, \"Redis reachable\n"
            "again\" when it answers). Broker unreachable: waits and says so once\n"
            "(\"waiting for broker ...\"); librdkafka's own lines only with -v.\n"
            "A key the step writes that cannot take the write (another type, a counter\n"
            "field that is not an integer or would overflow): nothing is written, an\n"
            "ERROR line names the key, and the batch is retried with backoff until the\n"
            "key is fixed.\n"
            "Fallen behind retention (the broker dropped messages before they were\n"
            "counted): an ERROR line names the partition and the lost offsets, the gap\n"
            "is recorded in the hash opstream:gaps:GROUP (field TOPIC:PARTITION:FROM-TO,\n"
            "value the time found, ms) before any offset passes it, and counting goes\n"
            "on with what the broker still has.\n"
            "Offsets gone backwards (the topic was recreated, or the broker restarted\n"
            "while Redis kept the offsets): the messages below the stored offset are\n"
            "skipped, an ERROR line names the group, partition and range, and the range\n"
            "is recorded in opstream:gaps:GROUP with value \"skipped:<ms>\"; counting\n"
            "resumes once the partition passes the stored offset. To count them, stop\n"
            "every member and run --reset-offsets earliest.\n"
            "SIGINT/SIGTERM: one more attempt (up to 1 s) to write the last batch, then\n"
            "leaves the group, in every state (connecting, waiting for Redis).\n"
            "\n"
            "Exit codes:\n"
            "  0  stopped by SIGINT/SIGTERM after the final flush\n"
            "  1  fatal error (Kafka fatal error, final batch not written; it is\n"
            "     consumed again on the next start), --reset-offsets failed\n"
            "  2  usage or configuration error (also a --metrics address that is busy\n"
            "     or invalid)\n"
            "  3  --reset-offsets refused: the group has live members\n",
            COUNT_DEFAULT_GROUP, COUNT_DEFAULT_BATCH, COUNT_DEFAULT_FLUSH_MS, COUNT_DEFAULT_STATS_S,
            ops_cli_common_help());
}

static const struct option longopts[] = {
    OPS_CLI_COMMON_LONG,
    {"group", required_argument, NULL, 'g'},
    {"batch", required_argument, NULL, OPT_BATCH},
    {"flush-ms", required_argument, NULL, OPT_FLUSH_MS},
    {"stats-interval", required_argument, NULL, OPT_STATS_INTERVAL},
    {"reset-offsets", required_argument, NULL, OPT_RESET_OFFSETS},
    OPS_CLI_METRICS_LONG,
    {NULL, 0, NULL, 0},
};

/* The counter's own options. */
static int count_option(void *opaque, int opt, const char *arg, char *err, size_t err_size) {
    count_opts_t *opts = opaque;
    long v;
    switch (opt) {
    case 'g':
        opts->group = arg;
        return 0;
    case OPT_BATCH:
        if (ops_cli_parse_long("--batch", arg, 1, 1000000, &v, err, err_size) != 0)
            return -1;
        opts->batch_max = (size_t)v;
        return 0;
    case OPT_FLUSH_MS:
        if (ops_cli_parse_long("--flush-ms", arg, 1, 60000, &v, err, err_size) != 0)
            return -1;
        opts->flush_ms = (int)v;
        return 0;
    case OPT_STATS_INTERVAL:
        if (ops_cli_parse_long("--stats-interval", arg, 0, 86400, &v, err, err_size) != 0)
            return -1;
        opts->stats_interval_s = (int)v;
        return 0;
    case OPT_RESET_OFFSETS:
        opts->reset_offsets = arg;
        return 0;
    default:
        return startup_unknown_option(opt, err, err_size);
    }
}

int main(int argc, char **argv) {
    count_opts_t opts = {.group = COUNT_DEFAULT_GROUP,
                         .batch_max = COUNT_DEFAULT_BATCH,
                         .flush_ms = COUNT_DEFAULT_FLUSH_MS,
                         .stats_interval_s = COUNT_DEFAULT_STATS_S};
    startup_t start = {.name = "opstream-count",
                       .short_opts = OPS_CLI_COMMON_SHORT "g:",
                       .long_opts = longopts,
                       .usage = usage,
                       .option = count_option,
                       .opaque = &opts,
                       .max_args = 0,
                       .exit_fatal = COUNT_EXIT_FATAL};

    int rc = startup_parse(&start, argc, argv);
    if (rc >= 0)
        goto cleanup;
    if (opts.group[0] == '\0') {
        rc = startup_usage_error(&start, "-g: the group name is empty");
        goto cleanup;
    }
    char err[512];
    if (ops_consumer_quiet_kafka(start.cfg, start.common.verbose, err, sizeof err) != 0) {
        rc = startup_usage_error(&start, "%s", err);
        goto cleanup;
    }
    if (opts.reset_offsets != NULL) {
        rc = count_reset_offsets(start.cfg, opts.group, opts.reset_offsets);
        goto cleanup;
    }
    opts.cfg = start.cfg;
    opts.verbose = start.common.verbose;
    rc = count_run(&opts);
cleanup:
    ops_config_destroy(start.cfg);
    return rc;
}
