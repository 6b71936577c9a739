/*
 * opstream command-line options common to every program, the way kcat does
 * them: -b BROKERS, -X prop=value, -c FILE, --redis URL, -v, --help,
 * --version. Programs add their own options to the same getopt_long tables.
 */
#ifndef OPSTREAM_CLI_H
#define OPSTREAM_CLI_H

#include <getopt.h>
#include <stddef.h>

#include "opstream/config.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Long-only option codes (above any character). */
enum {
    OPS_CLI_OPT_REDIS = 0x1000,
    OPS_CLI_OPT_VERSION,
    OPS_CLI_OPT_METRICS,
    OPS_CLI_OPT_FIRST_PROGRAM = 0x1100 /* programs number their own from here */
};

/* Short options of the common set, for the optstring: "b:X:c:vh". */
#define OPS_CLI_COMMON_SHORT "b:X:c:vh"

/* Entries of the common set, for a program's struct option table. */
#define OPS_CLI_COMMON_LONG                                                                        \
    {"brokers", required_argument, NULL, 'b'}, {"config", required_argument, NULL, 'c'},           \
        {"redis", required_argument, NULL, OPS_CLI_OPT_REDIS},                                     \
        {"verbose", no_argument, NULL, 'v'}, {"help", no_argument, NULL, 'h'}, {                   \
        "version", no_argument, NULL, OPS_CLI_OPT_VERSION                                          \
    }

/* --metrics HOST:PORT, for the long-running programs' option tables (sets
 * opstream.metrics.listen; ops_cli_common_option handles it). */
#define OPS_CLI_METRICS_LONG                                                                       \
    { "metrics", required_argument, NULL, OPS_CLI_OPT_METRICS }

/* The help lines of --metrics. */
#define OPS_CLI_METRICS_HELP                                                                       \
    "      --metrics HOST:PORT    serve GET /metrics (Prometheus text format),\n"                  \
    "                             /healthz and /readyz on this address\n"                          \
    "                             (-X opstream.metrics.listen=HOST:PORT; default off;\n"           \
    "                             [::1]:PORT for IPv6, :PORT for every interface)\n"

/* The services a program talks to (ops_cli_common_t.uses). */
enum { OPS_CLI_USES_KAFKA = 1, OPS_CLI_USES_REDIS = 2 };

/* What the common options asked for, besides configuration. */
typedef struct ops_cli_common {
    /* Set by the program before parsing: OPS_CLI_USES_* it talks to; 0 means
     * both. Options for a service it does not use (-b and librdkafka -X
     * properties without Kafka, --redis without Redis) are then usage
     * errors rather than silently ignored. */
    unsigned uses;
    int verbose;      /* count of -v */
    int want_help;    /* --help / -h */
    int want_version; /* --version */
} ops_cli_common_t;

/* Handles one getopt_long result if it belongs to the common set: -b sets
 * bootstrap.servers, -X goes through ops_config_set_kv, -c loads a file,
 * --redis sets opstream.redis.url. Returns 1 when handled, 0 when the option
 * is not a common one, -1 with errstr on a bad value. */
int ops_cli_common_option(ops_config_t *cfg, ops_cli_common_t *common, int opt, const char *arg,
                          char *errstr, size_t errstr_size);

/* Parses a whole decimal number in min..max for option `opt` (e.g.
 * "--batch"). Returns 0 and sets *out, or -1 with errstr as
 * "--batch: '12x' is not a whole number in 1..1000000" (also on overflow). */
int ops_cli_parse_long(const char *opt, const char *arg, long min, long max, long *out,
                       char *errstr, size_t errstr_size);

/* The lines every --help prints for the common options and environment. */
const char *ops_cli_common_help(void);
/* The same for a program that uses only some services (OPS_CLI_USES_*):
 * options and environment variables of the others are left out. */
const char *ops_cli_help_for(unsigned uses);

/* "opstream-count 0.1.0 (librdkafka 2.0.2, avro-c, hiredis 0.14.1)". */
void ops_cli_version_string(const char *program, char *buf, size_t bufsize);

#ifdef __cplusplus
}
#endif
#endif
