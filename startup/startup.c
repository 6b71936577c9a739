/*
 * opstream program start-up: the one getopt_long loop, environment first,
 * options in order (later ones win), then --help, --version and the
 * positional arguments, with one wording for every usage error.
 */
#include "startup.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "opstream/validate.h"

int startup_usage_error(const startup_t *s, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "%s: ", s->name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry '%s --help'.\n", s->name);
    return STARTUP_EXIT_USAGE;
}

int startup_unknown_option(int opt, char *err, size_t err_size) {
    snprintf(err, err_size, "option %d is listed but not handled", opt);
    return -1;
}

int startup_operation_option(const char *arg, const char **out, char *err, size_t err_size) {
    char why[256];
    if (ops_operation_check(arg, why, sizeof(why)) != 0) {
        snprintf(err, err_size, "--operation: %s", why);
        return -1;
    }
    *out = arg;
    return 0;
}

int startup_parse(startup_t *s, int argc, char **argv) {
    char err[512];
    int opt;

    s->cfg = NULL;
    memset(&s->common, 0, sizeof(s->common));
    s->common.uses = s->uses;
    if (!s->no_config) {
        s->cfg = ops_config_new();
        if (s->cfg == NULL) {
            fprintf(stderr, "%s: out of memory\n", s->name);
            return s->exit_fatal;
        }
        if (ops_config_load_env(s->cfg, err, sizeof(err)) != 0)
            return startup_usage_error(s, "environment: %s", err);
    }
    while ((opt = getopt_long(argc, argv, s->short_opts, s->long_opts, NULL)) != -1) {
        /* Without a configuration only -v, --help and --version can be
         * common ones: the program's tables list no others. */
        int rc = ops_cli_common_option(s->cfg, &s->common, opt, optarg, err, sizeof(err));
        if (rc < 0)
            return startup_usage_error(s, "%s", err);
        if (rc > 0)
            continue;
        if (opt == '?' || opt == ':' || s->option == NULL) {
            /* getopt_long has said what was wrong. */
            fprintf(stderr, "Try '%s --help'.\n", s->name);
            return STARTUP_EXIT_USAGE;
        }
        err[0] = '\0';
        rc = s->option(s->opaque, opt, optarg, err, sizeof(err));
        if (rc < 0)
            return startup_usage_error(s, "%s", err);
        if (rc > 0)
            return STARTUP_EXIT_OK;
    }
    if (s->common.want_help) {
        s->usage(stdout);
        return STARTUP_EXIT_OK;
    }
    if (s->common.want_version) {
        ops_cli_version_string(s->name, err, sizeof(err));
        printf("%s\n", err);
        return STARTUP_EXIT_OK;
    }
    if (s->max_args >= 0 && argc - optind > s->max_args)
        return startup_usage_error(s, "unexpected argument '%s'", argv[optind + s->max_args]);
    s->argi = optind;
    return -1;
}

static volatile sig_atomic_t *g_stop_flag, *g_abort_flag;

static void on_stop_signal(int sig) {
    if (*g_stop_flag && g_abort_flag != NULL)
        *g_abort_flag = 1;
    *g_stop_flag = sig;
}

void startup_catch_stop_signals(volatile sig_atomic_t *stop, volatile sig_atomic_t *abort) {
    struct sigaction sa;
    g_stop_flag = stop;
    g_abort_flag = abort;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

void startup_ignore_sigpipe(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_IGN;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGPIPE, &sa, NULL);
}

int startup_observe(const char *name, const ops_config_t *cfg, int stall_ms, ops_observe_t *obs) {
    char err[512];
    if (ops_observe_start(cfg, OPS_VERSION, stall_ms, obs, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s: --metrics: %s\n", name, err);
        return -1;
    }
    if (obs->endpoint != NULL)
        fprintf(stderr, "%s: metrics on http://%s/metrics\n", name,
                ops_endpoint_address(obs->endpoint));
    return 0;
}
