/*
 * opstream-stats: live counts of an operation from Redis (totals, per
 * country, rolling 10 minute / 1 hour / 24 hour windows, latest alerts), as
 * a table or one JSON object, once or refreshed every second.
 */
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "opstream/cli.h"
#include "opstream/config.h"
#include "opstream/redis.h"
#include "opstream/stats.h"
#include "opstream/validate.h"
#include "render.h"

enum { EXIT_OK = 0, EXIT_NOT_FOUND = 1, EXIT_USAGE = 2, EXIT_REDIS = 3 };

enum {
    OPT_COUNTRY = OPS_CLI_OPT_FIRST_PROGRAM,
    OPT_WINDOW,
    OPT_JSON,
    OPT_WATCH,
    OPT_LIST,
    OPT_ALERTS,
};

static volatile sig_atomic_t g_stop;

static void on_signal(int sig) {
    (void)sig;
    g_stop = 1;
}

static void usage(FILE *out) {
    fprintf(out,
            "Usage: opstream-stats [--redis URL] OP [--country CC] [--window 10m|1h|24h]\n"
            "                      [--json] [--watch] [--alerts N]\n"
            "       opstream-stats [--redis URL] --list [--json]\n"
            "\n"
            "Live counts of operation OP from Redis: totals, rolling windows summed from\n"
            "the event-time buckets, a per-country table (largest first) and the latest\n"
            "alerts. Windows are whole buckets ending with the current one: 10m and 1h\n"
            "from minute buckets, 24h from hour buckets, so each covers up to one bucket\n"
            "less than its name at the oldest edge.\n"
            "\n"
            "Options:\n"
            "      --country CC   only this reporting country (totals and windows)\n"
            "      --window W     only this window: 10m, 1h or 24h (default: all three)\n"
            "      --json         one JSON object (with --list: an array of codes)\n"
            "      --watch        refresh every second (clears the screen on a terminal)\n"
            "                     until SIGINT\n"
            "      --alerts N     latest alerts to show (default 5; 0 = none)\n"
            "      --list         list the operations seen\n"
            "\n"
            "%s"
            "\n"
            "Exit codes:\n"
            "  0  ok\n"
            "  1  operation not found\n"
            "  2  usage error\n"
            "  3  Redis error\n",
            ops_cli_help_for(OPS_CLI_USES_REDIS));
}

static int64_t wall_ms(void) {
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int show(redisContext *rc, const char *op, const char *cc, int window, bool json,
                long alerts, bool clear) {
    ops_stats_t s;
    char err[512];
    int r = ops_stats_read(rc, op, cc, wall_ms(), (size_t)alerts, &s, err, sizeof err);

    if (r < 0) {
        fprintf(stderr, "opstream-stats: %s\n", err);
        ops_stats_free(&s);
        return EXIT_REDIS;
    }
    if (r == 1) {
        fprintf(stderr, "opstream-stats: operation %s not found (see --list)\n", op);
        ops_stats_free(&s);
        return EXIT_NOT_FOUND;
    }
    if (alerts == 0)
        s.n_alerts = 0;
    if (clear)
        fputs("\033[H\033[2J", stdout);
    if (json)
        render_json(stdout, &s, window);
    else
        render_text(stdout, &s, window);
    fflush(stdout);
    ops_stats_free(&s);
    return EXIT_OK;
}

int main(int argc, char **argv) {
    static const struct option longopts[] = {
        OPS_CLI_COMMON_LONG,
        {"country", required_argument, NULL, OPT_COUNTRY},
        {"window", required_argument, NULL, OPT_WINDOW},
        {"json", no_argument, NULL, OPT_JSON},
        {"watch", no_argument, NULL, OPT_WATCH},
        {"list", no_argument, NULL, OPT_LIST},
        {"alerts", required_argument, NULL, OPT_ALERTS},
        {NULL, 0, NULL, 0},
    };
    ops_config_t *cfg = ops_config_new();
    ops_cli_common_t common = {.uses = OPS_CLI_USES_REDIS};
    redisContext *rc = NULL;
    const char *cc = NULL, *op = NULL;
    bool json = false, watch = false, list = false;
    int window = -1, opt, code = EXIT_USAGE;
    long alerts = 5;
    char err[512];

    if (cfg == NULL)
        return EXIT_REDIS;
    if (ops_config_load_env(cfg, err, sizeof err) != 0) {
        fprintf(stderr, "opstream-stats: environment: %s\n", err);
        goto cleanup;
    }
    while ((opt = getopt_long(argc, argv, OPS_CLI_COMMON_SHORT, longopts, NULL)) != -1) {
        int handled = ops_cli_common_option(cfg, &common, opt, optarg, err, sizeof err);
        if (handled < 0) {
            fprintf(stderr, "opstream-stats: %s\n", err);
            goto cleanup;
        }
        if (handled > 0)
            continue;
        switch (opt) {
        case OPT_COUNTRY:
            cc = optarg;
            if (!ops_valid_country(cc)) {
                fprintf(stderr, "opstream-stats: --country: '%s' is not an ISO 3166-1 code\n", cc);
                goto cleanup;
            }
            break;
        case OPT_WINDOW:
            window = ops_stats_window_from_name(optarg);
            if (window < 0) {
                fprintf(stderr, "opstream-stats: --window: '%s': use 10m, 1h or 24h\n", optarg);
                goto cleanup;
            }
            break;
        case OPT_JSON:
            json = true;
            break;
        case OPT_WATCH:
            watch = true;
            break;
        case OPT_LIST:
            list = true;
            break;
        case OPT_ALERTS: {
            char err[256];
            long v;
            if (ops_cli_parse_long("--alerts", optarg, 0, 1000, &v, err, sizeof(err)) != 0) {
                fprintf(stderr, "opstream-stats: %s\n", err);
                goto cleanup;
            }
            alerts = v;
            break;
        }
        default:
            fprintf(stderr, "Try 'opstream-stats --help'.\n");
            goto cleanup;
        }
    }
    if (common.want_help) {
        usage(stdout);
        code = EXIT_OK;
        goto cleanup;
    }
    if (common.want_version) {
        ops_cli_version_string("opstream-stats", err, sizeof err);
        printf("%s\n", err);
        code = EXIT_OK;
        goto cleanup;
    }
    if (optind < argc)
        op = argv[optind++];
    if (optind < argc || (list && op != NULL) || (!list && op == NULL)) {
        fprintf(stderr, "opstream-stats: give one operation code, or --list\n"
                        "Try 'opstream-stats --help'.\n");
        goto cleanup;
    }
    if (op != NULL && ops_operation_check(op, err, sizeof err) != 0) {
        fprintf(stderr, "opstream-stats: %s\n", err);
        goto cleanup;
    }
    rc = ops_redis_connect(ops_config_get(cfg, "opstream.redis.url"),
                           ops_config_get(cfg, "opstream.redis.password.file"), 2000, err,
                           sizeof err);
    if (rc == NULL) {
        fprintf(stderr, "opstream-stats: %s\n", err);
        code = EXIT_REDIS;
        goto cleanup;
    }
    if (list) {
        char **ops;
        size_t n;
        if (ops_stats_list(rc, &ops, &n, err, sizeof err) != 0) {
            fprintf(stderr, "opstream-stats: %s\n", err);
            code = EXIT_REDIS;
            goto cleanup;
        }
        render_list(stdout, ops, n, json);
        ops_stats_list_free(ops, n);
        code = EXIT_OK;
        goto cleanup;
    }
    if (!watch) {
        code = show(rc, op, cc, window, json, alerts, false);
        goto cleanup;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    bool tty = isatty(STDOUT_FILENO);
    while (!g_stop) {
        code = show(rc, op, cc, window, json, alerts, tty);
        if (code == EXIT_REDIS) {
            /* Keep watching through a Redis restart. */
            redisFree(rc);
            rc = ops_redis_connect(ops_config_get(cfg, "opstream.redis.url"),
                                   ops_config_get(cfg, "opstream.redis.password.file"), 2000, err,
                                   sizeof err);
            if (rc == NULL)
                fprintf(stderr, "opstream-stats: %s\n", err);
        }
        for (int i = 0; i < 10 && !g_stop; i++)
            usleep(100000);
        if (rc == NULL && !g_stop)
            rc = ops_redis_connect(ops_config_get(cfg, "opstream.redis.url"),
                                   ops_config_get(cfg, "opstream.redis.password.file"), 2000, err,
                                   sizeof err);
        if (rc == NULL)
            code = EXIT_REDIS;
    }
cleanup:
    if (rc != NULL)
        redisFree(rc);
    ops_config_destroy(cfg);
    return code;
}
