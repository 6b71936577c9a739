/*
 * opstream-alert: the alerting consumer. Reads the four event topics in
 * consumer group opstream-alert, evaluates the rules of a rules file and
 * publishes alerts once each to opstream.alerts and opstream:{OP}:alerts.
 * This file parses options and loads the rules; the consume loop is alert.c.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alert.h"
#include "opstream/cli.h"
#include "opstream/config.h"
#include "opstream/consumer.h"
#include "opstream/rules.h"
#include "startup.h"

enum {
    OPT_RULES = OPS_CLI_OPT_FIRST_PROGRAM,
    OPT_LOOKBACK,
    OPT_CHECK,
    OPT_RESET_OFFSETS,
};

static void usage(FILE *out) {
    fprintf(out,
            "Usage: opstream-alert -b BROKERS --redis URL --rules FILE [-g GROUP] [options]\n"
            "\n"
            "Consumes opstream.arrests, .rescues, .migrants and .seizures, evaluates the\n"
            "rules of FILE and publishes alerts Avro-framed to opstream.alerts (key: the\n"
            "operation) and into the capped Redis stream opstream:{OP}:alerts.\n"
            "Single-event rules fire on one event (a rescue with victims >= 50, a\n"
            "SCAM_CENTRE raid); spike rules compare a metric over a sliding event-time\n"
            "window, per country or per operation, with the average of earlier windows\n"
            "and fire at max(min, factor x baseline), then cool down. The rules format\n"
            "is documented in config/alerts.conf and include/opstream/rules.h.\n"
            "\n"
            "Each alert has a deterministic alert_id (rule, operation, scope, window or\n"
            "event), and it is published once across restarts, replays and instances\n"
            "of the group: on every partition assignment the alert topic is read to its\n"
            "end (what any instance published), a publish whose outcome is unknown\n"
            "(timeout, producer recreated) is checked against the topic before it is\n"
            "tried again, and each partition is re-read from its stored offset\n"
            "back over the rules' span (by time where the broker supports it, else\n"
            "--lookback messages) to rebuild the spike baselines, raising nothing for\n"
            "messages handled before. Offsets live in Redis (opstream:offsets:GROUP),\n"
            "in the same fenced store as opstream-count's, stored every 1000 messages\n"
            "or 200 ms once the alerts those messages raised are delivered: an alert\n"
            "is sent when its event is read, and a batch's delivery reports are\n"
            "waited for together.\n"
            "Messages that do not decode, and events that break the producer's rules\n"
            "(absurd counts or event times, bad codes), go to opstream.dlq with the\n"
            "reason and raise nothing. Spike rules see the\n"
            "partitions of their own instance only: run one instance per group when\n"
            "operation-wide spike rules matter.\n"
            "\n"
            "Options:\n"
            "      --rules FILE           alert rules (required)\n"
            "  -g, --group GROUP          consumer group (default %s)\n"
            "      --lookback N           messages per partition re-read on start when\n"
            "                             the broker cannot find offsets by time\n"
            "                             (default %d)\n"
            "      --check                only check the rules file, print the rule\n"
            "                             names and exit\n"
            "      --reset-offsets earliest|latest\n"
            "                             recovery: set the group's stored offsets of\n"
            "                             every partition of the event topics to the\n"
            "                             oldest or newest offset the broker has, then\n"
            "                             exit (no --rules needed). Refused while the\n"
            "                             group has live members\n" OPS_CLI_METRICS_HELP
            "                             (/readyz: partitions assigned, Redis reachable)\n"
            "\n"
            "Settings (-X or -c): opstream.topic.prefix, opstream.max.message.bytes,\n"
            "opstream.event.time.min, opstream.event.time.max.future.s,\n"
            "opstream.redis.password.file, opstream.connect.timeout.s (seconds before\n"
            "an unreachable broker or Redis is reported; default 10).\n"
            "\n"
            "%s"
            "\n"
            "Each published alert is logged on stderr. Redis or Kafka unreachable: said\n"
            "once (\"waiting for broker ...\", \"waiting for Redis ...\"), the alert or\n"
            "offset write is retried, nothing is skipped. Offsets gone backwards (topic\n"
            "recreated, broker restarted while Redis kept the offsets): as opstream-count\n"
            "(an ERROR line, opstream:gaps:GROUP \"skipped:<ms>\", --reset-offsets).\n"
            "SIGINT/SIGTERM: one more attempt (up to 1 s) to store the offsets, then\n"
            "leaves the group, in every state (offsets left unstored are read again on\n"
            "the next start, their alerts checked against the topic).\n"
            "\n"
            "Exit codes:\n"
            "  0  stopped by SIGINT/SIGTERM, also with the last offsets unstored (or\n"
            "     --check passed)\n"
            "  1  fatal error (a fatal Kafka error), --reset-offsets failed\n"
            "  2  usage, configuration or rules-file error (also a --metrics address\n"
            "     that is busy or invalid)\n"
            "  3  --reset-offsets refused: the group has live members\n",
            ALERT_DEFAULT_GROUP, ALERT_DEFAULT_LOOKBACK, ops_cli_common_help());
}

/* What the command line asks of opstream-alert besides the common set. */
typedef struct alert_cli {
    alert_opts_t opts;
    const char *rules_path;
    const char *reset_offsets; /* --reset-offsets earliest|latest, or NULL */
    int check_only;
} alert_cli_t;

static const struct option longopts[] = {
    OPS_CLI_COMMON_LONG,
    {"group", required_argument, NULL, 'g'},
    {"rules", required_argument, NULL, OPT_RULES},
    {"lookback", required_argument, NULL, OPT_LOOKBACK},
    {"check", no_argument, NULL, OPT_CHECK},
    {"reset-offsets", required_argument, NULL, OPT_RESET_OFFSETS},
    OPS_CLI_METRICS_LONG,
    {NULL, 0, NULL, 0},
};

static int alert_option(void *opaque, int opt, const char *arg, char *err, size_t err_size) {
    alert_cli_t *c = opaque;
    long v;
    switch (opt) {
    case 'g':
        c->opts.group = arg;
        return 0;
    case OPT_RULES:
        c->rules_path = arg;
        return 0;
    case OPT_LOOKBACK:
        if (ops_cli_parse_long("--lookback", arg, 0, 1000000000L, &v, err, err_size) != 0) {
            size_t n = strlen(err);
            snprintf(err + n, err_size - n, " (messages)");
            return -1;
        }
        c->opts.lookback_messages = v;
        return 0;
    case OPT_CHECK:
        c->check_only = 1;
        return 0;
    case OPT_RESET_OFFSETS:
        c->reset_offsets = arg;
        return 0;
    default:
        return startup_unknown_option(opt, err, err_size);
    }
}

int main(int argc, char **argv) {
    ops_rules_t *rules = NULL;
    alert_cli_t c = {
        .opts = {.group = ALERT_DEFAULT_GROUP, .lookback_messages = ALERT_DEFAULT_LOOKBACK}};
    startup_t start = {.name = "opstream-alert",
                       .short_opts = OPS_CLI_COMMON_SHORT "g:",
                       .long_opts = longopts,
                       .usage = usage,
                       .option = alert_option,
                       .opaque = &c,
                       .max_args = 0,
                       .exit_fatal = ALERT_EXIT_FATAL};
    char err[512];

    int rc = startup_parse(&start, argc, argv);
    if (rc >= 0)
        goto cleanup;
    if (c.opts.group[0] == '\0') {
        rc = startup_usage_error(&start, "-g: the group name is empty");
        goto cleanup;
    }
    if (ops_consumer_quiet_kafka(start.cfg, start.common.verbose, err, sizeof(err)) != 0) {
        rc = startup_usage_error(&start, "%s", err);
        goto cleanup;
    }
    if (c.reset_offsets != NULL) {
        rc = alert_reset_offsets(start.cfg, c.opts.group, c.reset_offsets);
        goto cleanup;
    }
    if (c.rules_path == NULL) {
        rc = startup_usage_error(&start, "--rules FILE is required");
        goto cleanup;
    }
    rc = ALERT_EXIT_USAGE;
    if (ops_rules_load_file(c.rules_path, &rules, err, sizeof(err)) != 0) {
        fprintf(stderr, "opstream-alert: %s\n", err);
        goto cleanup;
    }
    if (c.check_only) {
        for (size_t i = 0; i < ops_rules_count(rules); i++)
            printf("%s %s\n", ops_rules_name(rules, i),
                   ops_rules_is_spike(rules, i) ? "spike" : "event");
        rc = ALERT_EXIT_OK;
        goto cleanup;
    }
    c.opts.cfg = start.cfg;
    c.opts.rules = rules;
    c.opts.verbose = start.common.verbose;
    rc = alert_run(&c.opts);
cleanup:
    ops_rules_destroy(rules);
    ops_config_destroy(start.cfg);
    return rc;
}
