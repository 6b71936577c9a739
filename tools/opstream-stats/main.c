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
#include "startup.h"

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
            ops_cli_common_help());
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

/* What the command line asks for besides the common set. */
typedef struct stats_cli {
    const char *cc;
    int window;
    bool json, watch, list;
    long alerts;
} stats_cli_t;

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

static int stats_option(void *opaque, int opt, const char *arg, char *err, size_t err_size) {
    stats_cli_t *c = opaque;
    switch (opt) {
    case OPT_COUNTRY:
        c->cc = arg;
        if (!ops_valid_country(arg)) {
            snprintf(err, err_size, "--country: '%s' is not an ISO 3166-1 code", arg);
            return -1;
        }
        return 0;
    case OPT_WINDOW:
        c->window = ops_stats_window_from_name(arg);
        if (c->window < 0) {
            snprintf(err, err_size, "--window: '%s': use 10m, 1h or 24h", arg);
            return -1;
        }
        return 0;
    case OPT_JSON:
        c->json = true;
        return 0;
    case OPT_WATCH:
        c->watch = true;
        return 0;
    case OPT_LIST:
        c->list = true;
        return 0;
    case OPT_ALERTS:
        return ops_cli_parse_long("--alerts", arg, 0, 1000, &c->alerts, err, err_size);
    default:
        return startup_unknown_option(opt, err, err_size);
    }
}

int main(int argc, char **argv) {
    redisContext *rc = NULL;
    stats_cli_t c = {.window = -1, .alerts = 5};
    startup_t start = {.name = "opstream-stats",
                       .short_opts = OPS_CLI_COMMON_SHORT,
                       .long_opts = longopts,
                       .usage = usage,
                       .option = stats_option,
                       .opaque = &c,
                       .max_args = -1, /* checked below, with its own message */
                       .exit_fatal = EXIT_REDIS};
    char err[512];

    int code = startup_parse(&start, argc, argv);
    ops_config_t *cfg = start.cfg;
    int argi = start.argi;
    if (code >= 0)
        goto cleanup;
    code = EXIT_USAGE;
    const char *cc = c.cc, *op = NULL;
    bool json = c.json, watch = c.watch, list = c.list;
    int window = c.window;
    long alerts = c.alerts;
    if (argi < argc)
        op = argv[argi++];
    if (argi < argc || (list && op != NULL) || (!list && op == NULL)) {
        fprintf(stderr, "opstream-stats: give one operation code, or --list\n"
                        "Try 'opstream-stats --help'.\n");
        goto cleanup;
    }
    if (op != NULL && !ops_valid_operation(op)) {
        fprintf(stderr, "opstream-stats: '%s' is not an operation code ([A-Z0-9][A-Z0-9-]*)\n", op);
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
    ops_config_destroy(start.cfg);
    return code;
}
