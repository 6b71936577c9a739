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
#include <strings.h>
#include <time.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "opstream/cli.h"
#include "opstream/config.h"
#include "opstream/redis_link.h"
#include "opstream/stats.h"
#include "opstream/validate.h"
#include "opstream/clock.h"
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
            "      --country CC   only this reporting country (totals and windows); a\n"
            "                     country that never reported for OP is exit 1\n"
            "      --window W     only this window: 10m, 1h or 24h (default: all three)\n"
            "      --json         one JSON object (with --list: an array of codes)\n"
            "      --watch        redraw in place every second until SIGINT/SIGTERM, cut\n"
            "                     to the terminal (80x24 when not a terminal): header,\n"
            "                     totals and windows first, then alerts, then as many\n"
            "                     countries as fit (\"... N more\"). Waits, saying so,\n"
            "                     while the operation has no count yet or Redis is down\n"
            "      --alerts N     latest alerts to show (default 5; 0 = none)\n"
            "      --list         list the operations seen\n"
            "\n"
            "Settings (-X or -c): opstream.redis.url, opstream.redis.password.file,\n"
            "opstream.connect.timeout.s.\n"
            "\n"
            "%s"
            "\n"
            "Exit codes:\n"
            "  0  ok\n"
            "  1  operation not found, or --country CC has not reported for it\n"
            "  2  usage error\n"
            "  3  Redis error: Redis not reachable within opstream.connect.timeout.s\n"
            "     (default 10 s), refused or failed a command (named on stderr)\n"
            "With --watch: 0 when stopped by SIGINT/SIGTERM, 3 if Redis was down then.\n",
            ops_cli_help_for(OPS_CLI_USES_REDIS));
}

/* Reads op once. Returns an exit code; *msg says why it is not EXIT_OK. */
static int read_stats(ops_redis_link_t *rc, const char *op, const char *cc, long alerts,
                      ops_stats_t *s, char *msg, size_t msg_size) {
    char err[512];
    int r = ops_stats_read(rc, op, cc, ops_clock_wall_ms(), (size_t)alerts, s, err, sizeof err);

    if (r < 0) {
        snprintf(msg, msg_size, "Redis error: %s", err);
        return EXIT_REDIS;
    }
    if (r == 1) {
        snprintf(msg, msg_size, "operation %s not found (see --list)", op);
        return EXIT_NOT_FOUND;
    }
    if (r == 2) {
        snprintf(msg, msg_size,
                 "country %s has not reported for %s (run without --country to "
                 "see those that did)",
                 cc, op);
        return EXIT_NOT_FOUND;
    }
    if (alerts == 0)
        s->n_alerts = 0;
    return EXIT_OK;
}

static int show(ops_redis_link_t *rc, const char *op, const char *cc, int window, bool json,
                long alerts) {
    ops_stats_t s;
    char msg[768];
    int code = read_stats(rc, op, cc, alerts, &s, msg, sizeof msg);

    if (code != EXIT_OK)
        fprintf(stderr, "opstream-stats: %s\n", msg);
    else if (json)
        render_json(stdout, &s, window);
    else
        render_text(stdout, &s, window, 0);
    fflush(stdout);
    ops_stats_free(&s);
    return code;
}

/* The link to the deployment, reached once (PING) so that an unreachable
 * Redis is named now. */
static ops_redis_link_t *connect_redis(const ops_config_t *cfg, int timeout_ms, char *err,
                                       size_t err_size) {
    char inner[512];
    const char *ping[] = {"PING"};
    redisReply *r = NULL;
    ops_redis_link_t *rc = ops_redis_link_new(ops_config_get(cfg, "opstream.redis.url"),
                                              ops_config_get(cfg, "opstream.redis.password.file"),
                                              timeout_ms, inner, sizeof inner);
    if (rc != NULL &&
        (r = ops_redis_link_command(rc, NULL, 1, ping, NULL, inner, sizeof inner)) != NULL &&
        r->type == REDIS_REPLY_ERROR)
        snprintf(inner, sizeof inner, "%s", r->str);
    if (rc == NULL || r == NULL || r->type == REDIS_REPLY_ERROR) {
        snprintf(err, err_size, "cannot reach Redis (%s); check --redis or OPSTREAM_REDIS", inner);
        ops_redis_link_destroy(rc);
        rc = NULL;
    }
    if (r != NULL)
        freeReplyObject(r);
    return rc;
}

/* The terminal's size, 80x24 when stdout is not a terminal. */
static void screen_size(int *rows, int *cols) {
    struct winsize ws;
    *rows = 24;
    *cols = 80;
    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 0 && ws.ws_col > 0) {
        *rows = ws.ws_row;
        *cols = ws.ws_col;
    }
}

/* Draws one frame in place: cursor home, each line cut to the width and
 * its rest cleared, then the rest of the screen cleared. The frame has
 * fewer lines than the screen, so nothing scrolls and the scrollback does
 * not grow. Not a terminal: the frame as text, cut the same way. */
static void draw(const char *frame, int cols, bool tty) {
    const char *p = frame;
    if (tty)
        fputs("\033[H", stdout);
    while (*p != '\0') {
        const char *nl = strchr(p, '\n');
        size_t len = nl != NULL ? (size_t)(nl - p) : strlen(p);
        size_t bytes = 0;
        int shown = 0;
        /* cut at cols characters (UTF-8 continuation bytes take no column) */
        while (bytes < len && (shown < cols || ((unsigned char)p[bytes] & 0xC0) == 0x80)) {
            if (((unsigned char)p[bytes] & 0xC0) != 0x80)
                shown++;
            if (shown > cols)
                break;
            bytes++;
        }
        fwrite(p, 1, bytes, stdout);
        fputs(tty ? "\033[K\n" : "\n", stdout);
        p += nl != NULL ? len + 1 : len;
    }
    if (tty)
        fputs("\033[J", stdout);
    else
        fputc('\n', stdout);
    fflush(stdout);
}

/* --watch: one frame a second until a signal. The operation not there yet
 * and Redis down are waiting states shown in the frame, not errors. */
static int watch_loop(const ops_config_t *cfg, ops_redis_link_t **rcp, const char *op,
                      const char *cc, int window, bool json, long alerts) {
    bool tty = isatty(STDOUT_FILENO);
    int code = EXIT_OK, told = EXIT_OK;
    bool sentinel = strncasecmp(ops_config_get(cfg, "opstream.redis.url"), "redis-sentinel://",
                                17) == 0;

    while (!g_stop) {
        char msg[768] = "", *frame = NULL;
        size_t frame_len = 0;
        int rows, cols;
        ops_stats_t s;

        if (*rcp == NULL)
            *rcp = connect_redis(cfg, 1000, msg, sizeof msg);
        /* a redis-sentinel:// deployment: a demoted primary would go on
         * answering reads with what it held before the failover */
        if (*rcp != NULL && sentinel && ops_redis_link_check_primary(*rcp, msg, sizeof msg) != 0)
            code = EXIT_REDIS;
        else
            code = *rcp != NULL ? read_stats(*rcp, op, cc, alerts, &s, msg, sizeof msg) : EXIT_REDIS;
        if (code == EXIT_REDIS && *rcp != NULL) {
            ops_redis_link_destroy(*rcp); /* reconnect next time (a Redis restart) */
            *rcp = NULL;
        }
        screen_size(&rows, &cols);
        FILE *out = open_memstream(&frame, &frame_len);
        if (out == NULL)
            return EXIT_REDIS;
        if (code == EXIT_OK && json) {
            render_json(out, &s, window);
        } else if (code == EXIT_OK) {
            render_text(out, &s, window, rows - 1);
        } else {
            char ts[32];
            ops_validate_format_timestamp(ops_clock_wall_ms(), ts, sizeof ts);
            fprintf(out, "%s%s%s  at %s\n\n", op, cc ? " / " : "", cc ? cc : "", ts);
            if (code == EXIT_REDIS)
                fprintf(out, "waiting for Redis: %s\n", msg);
            else if (cc == NULL)
                fprintf(out, "waiting for the first counted event of %s\n", op);
            else
                fprintf(out, "waiting for the first counted event of %s from %s\n", op, cc);
        }
        fclose(out);
        if (!json) {
            draw(frame, cols, tty);
        } else if (code == EXIT_OK) {
            fputs(frame, stdout); /* one JSON object per line */
            fflush(stdout);
        } else if (code != told) {
            /* JSON lines stay JSON: the waiting state goes to stderr, once */
            fprintf(stderr, "opstream-stats: waiting: %s\n", msg);
        }
        told = code;
        free(frame);
        if (code == EXIT_OK)
            ops_stats_free(&s);
        for (int i = 0; i < 10 && !g_stop; i++)
            usleep(100000);
    }
    return code == EXIT_REDIS ? EXIT_REDIS : EXIT_OK;
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
    ops_redis_link_t *rc = NULL;
    stats_cli_t c = {.window = -1, .alerts = 5};
    startup_t start = {.name = "opstream-stats",
                       .short_opts = OPS_CLI_COMMON_SHORT,
                       .long_opts = longopts,
                       .usage = usage,
                       .option = stats_option,
                       .opaque = &c,
                       .max_args = -1, /* checked below, with its own message */
                       .exit_fatal = EXIT_REDIS,
                       .uses = OPS_CLI_USES_REDIS};
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
    if (op != NULL && ops_operation_check(op, err, sizeof err) != 0) {
        fprintf(stderr, "opstream-stats: %s\n", err);
        goto cleanup;
    }
    if (watch) {
        startup_catch_stop_signals(&g_stop, NULL);
        code = watch_loop(cfg, &rc, op, cc, window, json, alerts);
        goto cleanup;
    }
    int connect_s = (int)ops_config_get_int(cfg, "opstream.connect.timeout.s");
    rc = connect_redis(cfg, (connect_s > 0 ? connect_s : 10) * 1000, err, sizeof err);
    if (rc == NULL) {
        fprintf(stderr, "opstream-stats: %s\n", err);
        code = EXIT_REDIS;
        goto cleanup;
    }
    if (list) {
        char **ops;
        size_t n;
        if (ops_stats_list(rc, &ops, &n, err, sizeof err) != 0) {
            fprintf(stderr, "opstream-stats: Redis error: %s\n", err);
            code = EXIT_REDIS;
            goto cleanup;
        }
        render_list(stdout, ops, n, json);
        ops_stats_list_free(ops, n);
        code = EXIT_OK;
        goto cleanup;
    }
    code = show(rc, op, cc, window, json, alerts);
cleanup:
    ops_redis_link_destroy(rc);
    ops_config_destroy(start.cfg);
    return code;
}
