/*
 * opstream program start-up: the one getopt_long loop, environment first,
 * options in order (later ones win), then --help, --version and the
 * positional arguments, with one wording for every usage error.
 */
#include "startup.h"

#include <stdarg.h>
#include <stdlib.h>

int startup_usage_error(const startup_t *s, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "%s: ", s->name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry '%s --help'.\n", s->name);
    return STARTUP_EXIT_USAGE;
}

int startup_parse(const startup_t *s, int argc, char **argv, ops_config_t **cfg,
                  ops_cli_common_t *common, int *argi) {
    char err[512];
    int opt;

    if (cfg != NULL) {
        *cfg = ops_config_new();
        if (*cfg == NULL) {
            fprintf(stderr, "%s: out of memory\n", s->name);
            return s->exit_fatal;
        }
        if (ops_config_load_env(*cfg, err, sizeof(err)) != 0)
            return startup_usage_error(s, "environment: %s", err);
    }
    while ((opt = getopt_long(argc, argv, s->short_opts, s->long_opts, NULL)) != -1) {
        /* Without a configuration only -v, --help and --version can be
         * common ones: the program's tables list no others. */
        int rc = ops_cli_common_option(cfg != NULL ? *cfg : NULL, common, opt, optarg, err,
                                       sizeof(err));
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
    if (common->want_help) {
        s->usage(stdout);
        return STARTUP_EXIT_OK;
    }
    if (common->want_version) {
        ops_cli_version_string(s->name, err, sizeof(err));
        printf("%s\n", err);
        return STARTUP_EXIT_OK;
    }
    if (s->max_args >= 0 && argc - optind > s->max_args)
        return startup_usage_error(s, "unexpected argument '%s'", argv[optind + s->max_args]);
    if (argi != NULL)
        *argi = optind;
    return -1;
}
