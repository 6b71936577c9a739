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
            "in the same fenced store as opstream-count's.\n"
            "Messages that do not decode go to opstream.dlq. Spike rules see the\n"
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
            "                             group has live members\n"
            "\n"
            "Settings (-X or -c): opstream.topic.prefix, opstream.max.message.bytes,\n"
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
            "leaves the group, in every state.\n"
            "\n"
            "Exit codes:\n"
            "  0  stopped by SIGINT/SIGTERM (or --check passed)\n"
            "  1  fatal error (a fatal Kafka error), --reset-offsets failed\n"
            "  2  usage, configuration or rules-file error\n"
            "  3  --reset-offsets refused: the group has live members\n",
            ALERT_DEFAULT_GROUP, ALERT_DEFAULT_LOOKBACK, ops_cli_common_help());
}

int main(int argc, char **argv) {
    static const struct option longopts[] = {
        OPS_CLI_COMMON_LONG,
        {"group", required_argument, NULL, 'g'},
        {"rules", required_argument, NULL, OPT_RULES},
        {"lookback", required_argument, NULL, OPT_LOOKBACK},
        {"check", no_argument, NULL, OPT_CHECK},
        {"reset-offsets", required_argument, NULL, OPT_RESET_OFFSETS},
        {NULL, 0, NULL, 0},
    };
    ops_config_t *cfg = ops_config_new();
    ops_rules_t *rules = NULL;
    ops_cli_common_t common = {0};
    alert_opts_t opts = {.group = ALERT_DEFAULT_GROUP, .lookback_messages = ALERT_DEFAULT_LOOKBACK};
    const char *rules_path = NULL, *reset = NULL;
    int check_only = 0;
    char err[512];
    int rc = ALERT_EXIT_USAGE, opt;

    if (cfg == NULL) {
        fprintf(stderr, "opstream-alert: out of memory\n");
        return ALERT_EXIT_FATAL;
    }
    if (ops_config_load_env(cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "opstream-alert: environment: %s\n", err);
        goto cleanup;
    }
    while ((opt = getopt_long(argc, argv, OPS_CLI_COMMON_SHORT "g:", longopts, NULL)) != -1) {
        int handled = ops_cli_common_option(cfg, &common, opt, optarg, err, sizeof(err));
        if (handled < 0) {
            fprintf(stderr, "opstream-alert: %s\n", err);
            goto cleanup;
        }
        if (handled > 0)
            continue;
        switch (opt) {
        case 'g':
            opts.group = optarg;
            break;
        case OPT_RULES:
            rules_path = optarg;
            break;
        case OPT_LOOKBACK: {
            long v;
            if (ops_cli_parse_long("--lookback", optarg, 0, 1000000000L, &v, err, sizeof(err)) !=
                0) {
                fprintf(stderr, "opstream-alert: %s (messages)\n", err);
                goto cleanup;
            }
            opts.lookback_messages = v;
            break;
        }
        case OPT_CHECK:
            check_only = 1;
            break;
        case OPT_RESET_OFFSETS:
            reset = optarg;
            break;
        default:
            fprintf(stderr, "Try 'opstream-alert --help'.\n");
            goto cleanup;
        }
    }
    if (common.want_help) {
        usage(stdout);
        rc = ALERT_EXIT_OK;
        goto cleanup;
    }
    if (common.want_version) {
        ops_cli_version_string("opstream-alert", err, sizeof(err));
        printf("%s\n", err);
        rc = ALERT_EXIT_OK;
        goto cleanup;
    }
    if (optind < argc) {
        fprintf(stderr, "opstream-alert: unexpected argument '%s'\nTry 'opstream-alert --help'.\n",
                argv[optind]);
        goto cleanup;
    }
    if (opts.group[0] == '\0') {
        fprintf(stderr, "opstream-alert: -g: the group name is empty\n");
        goto cleanup;
    }
    if (ops_consumer_quiet_kafka(cfg, common.verbose, err, sizeof(err)) != 0) {
        fprintf(stderr, "opstream-alert: %s\n", err);
        goto cleanup;
    }
    if (reset != NULL) {
        rc = alert_reset_offsets(cfg, opts.group, reset);
        goto cleanup;
    }
    if (rules_path == NULL) {
        fprintf(stderr, "opstream-alert: --rules FILE is required\nTry 'opstream-alert --help'.\n");
        goto cleanup;
    }
    if (ops_rules_load_file(rules_path, &rules, err, sizeof(err)) != 0) {
        fprintf(stderr, "opstream-alert: %s\n", err);
        goto cleanup;
    }
    if (check_only) {
        for (size_t i = 0; i < ops_rules_count(rules); i++)
            printf("%s %s\n", ops_rules_name(rules, i),
                   ops_rules_is_spike(rules, i) ? "spike" : "event");
        rc = ALERT_EXIT_OK;
        goto cleanup;
    }
    opts.cfg = cfg;
    opts.rules = rules;
    opts.verbose = common.verbose;
    rc = alert_run(&opts);
cleanup:
    ops_rules_destroy(rules);
    ops_config_destroy(cfg);
    return rc;
}
