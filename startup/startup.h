/*
 * opstream program start-up, shared by every program (the Makefile links
 * the sources of startup/ into each; unlike lib/, this code prints and
 * chooses exit codes): configuration from the environment, the getopt_long loop with the
 * common options of opstream/cli.h, --help, --version and usage errors, so
 * that every program starts, fails and explains itself the same way.
 */
#ifndef OPSTREAM_STARTUP_H
#define OPSTREAM_STARTUP_H

#include <getopt.h>
#include <stdio.h>

#include "opstream/cli.h"
#include "opstream/config.h"

/* Exit codes every program shares: --help and --version exit 0, a usage or
 * configuration error exits 2 (each program documents its own others). */
#define STARTUP_EXIT_OK 0
#define STARTUP_EXIT_USAGE 2

typedef struct startup {
    const char *name;               /* "opstream-count": prefixes every message */
    const char *short_opts;         /* getopt optstring, OPS_CLI_COMMON_SHORT included */
    const struct option *long_opts; /* OPS_CLI_COMMON_LONG included; a zero row ends it */
    void (*usage)(FILE *out);       /* the --help text */
    /* One of the program's own options. Returns 0 to go on, 1 when it was
     * served and the program is done (e.g. --list-scenarios: exit 0), or -1
     * with errstr (a usage error; startup prints it). May be NULL. */
    int (*option)(void *opaque, int opt, const char *arg, char *errstr, size_t errstr_size);
    void *opaque;
    int max_args;   /* positional arguments accepted; -1: any number */
    int exit_fatal; /* exit code when out of memory before anything ran */
} startup_t;

/*
 * Reads the command line. With cfg non-NULL, *cfg becomes a new
 * configuration with the environment applied first (ops_config_load_env),
 * then the options in order; the caller destroys it whatever the result.
 * Programs without configuration pass cfg NULL and list no configuration
 * options. *argi (argi may be NULL) receives the index of the first
 * positional argument.
 * Returns -1 when the program should run; otherwise the exit code, after
 * printing the help (stdout), the version (stdout), or "NAME: reason" and
 * "Try 'NAME --help'." (stderr).
 */
int startup_parse(const startup_t *s, int argc, char **argv, ops_config_t **cfg,
                  ops_cli_common_t *common, int *argi);

/* A usage error found after startup_parse: "NAME: <message>" and
 * "Try 'NAME --help'." on stderr. Returns STARTUP_EXIT_USAGE. */
int startup_usage_error(const startup_t *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
