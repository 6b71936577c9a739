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
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>

#include "opstream/cli.h"
#include "opstream/config.h"
#include "opstream/observe.h"

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
    bool no_config; /* reads no configuration (and lists no -b, -X, -c, --redis) */
    unsigned uses;  /* OPS_CLI_USES_* the program talks to (0: both); the
                     * options of the others are usage errors */

    /* Filled by startup_parse: */
    ops_config_t *cfg;       /* the configuration; the program destroys it */
    ops_cli_common_t common; /* -v count, --help, --version */
    int argi;                /* index of the first positional argument */
} startup_t;

/*
 * Reads the command line: s->cfg becomes a new configuration with the
 * environment applied first (ops_config_load_env), then the options in
 * order (NULL with no_config); the program destroys it whatever the result.
 * Returns -1 when the program should run; otherwise the exit code, after
 * printing the help (stdout), the version (stdout), or "NAME: reason" and
 * "Try 'NAME --help'." (stderr).
 */
int startup_parse(startup_t *s, int argc, char **argv);

/* For the default of a program's option switch: an option its table lists
 * but its callback does not handle. Returns -1 with err. */
int startup_unknown_option(int opt, char *err, size_t err_size);

/* --operation OP, shared by the programs that take it: *out = arg when it
 * is an operation code, else -1 with err ("--operation: why"). */
int startup_operation_option(const char *arg, const char **out, char *err, size_t err_size);

/* A usage error found after startup_parse: "NAME: <message>" and
 * "Try 'NAME --help'." on stderr. Returns STARTUP_EXIT_USAGE. */
int startup_usage_error(const startup_t *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Catches SIGINT and SIGTERM without SA_RESTART (a blocked read or poll
 * returns, so the program notices at once): the first sets *stop to the
 * signal number, a second one also sets *abort to 1 (abort may be NULL).
 * The flags must outlive the program's run (static storage). */
void startup_catch_stop_signals(volatile sig_atomic_t *stop, volatile sig_atomic_t *abort);

/* Ignores SIGPIPE, for the long-running programs: a write to a connection
 * or pipe whose other end is gone (a Redis restart, an idle disconnect,
 * CLIENT KILL; a reader of stdout that exited) then fails with EPIPE, which
 * the program handles (a Redis write is retried on a new connection),
 * instead of ending the process. */
void startup_ignore_sigpipe(void);

/* Starts the program's metrics, health state and, when --metrics (or
 * opstream.metrics.listen) is set, its endpoint (observe.h), and says where
 * it serves: "NAME: metrics on http://HOST:PORT/metrics". stall_ms as for
 * ops_health_new. A busy or invalid address is reported as
 * "NAME: --metrics: REASON"; returns -1 (a usage error, exit 2), else 0. */
int startup_observe(const char *name, const ops_config_t *cfg, int stall_ms, ops_observe_t *obs);

#endif
