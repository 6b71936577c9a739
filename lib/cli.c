/*
 * opstream common command-line options (-b, -X, -c, --redis, -v, --help,
 * --version): one handler every program calls from its getopt_long loop,
 * the help text they all print, and the version line.
 */
#include "opstream/cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>
#include <librdkafka/rdkafka.h>

#ifndef OPS_VERSION
#define OPS_VERSION "0.1.0"
#endif

/* Prefixes errors with the option so that the user sees which one was
 * wrong: "-X foo=1: No such configuration property: \"foo\"". */
int ops_cli_common_option(ops_config_t *cfg, ops_cli_common_t *common, int opt, const char *arg,
                          char *errstr, size_t errstr_size) {
    char inner[512];
    int rc;
    const char *name;
    if (common != NULL && common->uses != 0) {
        const char *what = NULL;
        if (opt == 'b' && !(common->uses & OPS_CLI_USES_KAFKA))
            what = "-b: this program does not use Kafka";
        else if (opt == 'X' && !(common->uses & OPS_CLI_USES_KAFKA) &&
                 strncmp(arg ? arg : "", "opstream.", 9) != 0)
            what = "-X: this program does not use Kafka; only opstream.* settings apply";
        else if (opt == OPS_CLI_OPT_REDIS && !(common->uses & OPS_CLI_USES_REDIS))
            what = "--redis: this program does not use Redis";
        if (what != NULL) {
            snprintf(errstr, errstr_size, "%s", what);
            return -1;
        }
    }
    switch (opt) {
    case 'b':
        name = "-b";
        rc = ops_config_set(cfg, "bootstrap.servers", arg ? arg : "", inner, sizeof(inner));
        break;
    case 'X':
        name = "-X";
        rc = ops_config_set_kv(cfg, arg ? arg : "", inner, sizeof(inner));
        break;
    case 'c':
        /* The loader's messages already start with FILE:LINE. */
        name = "-c";
        rc = ops_config_load_file(cfg, arg ? arg : "", inner, sizeof(inner));
        break;
    case OPS_CLI_OPT_REDIS:
        name = "--redis";
        rc = ops_config_set(cfg, "opstream.redis.url", arg ? arg : "", inner, sizeof(inner));
        break;
    case OPS_CLI_OPT_METRICS:
        name = "--metrics";
        rc = ops_config_set(cfg, "opstream.metrics.listen", arg ? arg : "", inner, sizeof(inner));
        break;
    case 'v':
        if (common)
            common->verbose++;
        return 1;
    case 'h':
        if (common)
            common->want_help = 1;
        return 1;
    case OPS_CLI_OPT_VERSION:
        if (common)
            common->want_version = 1;
        return 1;
    default:
        return 0;
    }
    if (rc != 0) {
        snprintf(errstr, errstr_size, "%s: %s", name, inner);
        return -1;
    }
    return 1;
}

/* The help is assembled from the parts a program uses, so that a program
 * never lists an option it ignores. */
#define HELP_HEAD "Common options:\n"
#define HELP_BROKERS                                                                               \
    "  -b, --brokers BROKERS   Kafka bootstrap servers, host:port[,host:port...]\n"                \
    "                          (sets bootstrap.servers; no default)\n"
#define HELP_X_KAFKA                                                                               \
    "  -X PROP=VALUE           set a property: opstream.* (application),\n"                        \
    "                          topic.* (topic property) or any librdkafka property\n"
#define HELP_X_APP "  -X KEY=VALUE            set an opstream.* setting (application)\n"
#define HELP_CONFIG                                                                                \
    "  -c, --config FILE       load a properties file (key=value lines, # comments)\n"
#define HELP_REDIS                                                                                 \
    "      --redis URL         Redis server (sets opstream.redis.url; default\n"                   \
    "                          redis://127.0.0.1:6379/0), also\n"                                  \
    "                          redis://[user:pass@]host:port/db?user=NAME,\n"                      \
    "                          unix:///path?db=N,\n"                                               \
    "                          redis-sentinel://host[:port][,host...][/db]#MASTER,\n"              \
    "                          redis-cluster://host:port[,host:port...]\n"
#define HELP_TAIL                                                                                  \
    "  -v, --verbose           more output (repeat for more)\n"                                    \
    "  -h, --help              show this help and exit\n"                                          \
    "      --version           show the version and exit\n"                                        \
    "Options are applied in order after the environment; later ones win.\n"                        \
    "\n"                                                                                           \
    "Environment:\n"                                                                               \
    "  OPSTREAM_CONFIG               properties file loaded first\n"
#define HELP_ENV_KAFKA                                                                             \
    "  OPSTREAM_BROKERS              Kafka bootstrap servers (bootstrap.servers)\n"
#define HELP_ENV_REDIS                                                                             \
    "  OPSTREAM_REDIS                Redis URL (opstream.redis.url)\n"                             \
    "  OPSTREAM_REDIS_PASSWORD_FILE  file whose first line is the Redis password\n"                \
    "                                (opstream.redis.password.file)\n"
#define HELP_ENV_SASL                                                                              \
    "  OPSTREAM_SASL_PASSWORD_FILE   file whose first line is the Kafka SASL password\n"           \
    "                                (opstream.sasl.password.file)\n"

const char *ops_cli_help_for(unsigned uses) {
    switch (uses & (OPS_CLI_USES_KAFKA | OPS_CLI_USES_REDIS)) {
    case OPS_CLI_USES_KAFKA:
        return HELP_HEAD HELP_BROKERS HELP_X_KAFKA HELP_CONFIG HELP_TAIL HELP_ENV_KAFKA
            HELP_ENV_SASL;
    case OPS_CLI_USES_REDIS:
        return HELP_HEAD HELP_X_APP HELP_CONFIG HELP_REDIS HELP_TAIL HELP_ENV_REDIS;
    default:
        return HELP_HEAD HELP_BROKERS HELP_X_KAFKA HELP_CONFIG HELP_REDIS HELP_TAIL HELP_ENV_KAFKA
            HELP_ENV_REDIS HELP_ENV_SASL;
    }
}

const char *ops_cli_common_help(void) {
    return ops_cli_help_for(OPS_CLI_USES_KAFKA | OPS_CLI_USES_REDIS);
}

void ops_cli_version_string(const char *program, char *buf, size_t bufsize) {
    if (!buf || bufsize == 0)
        return;
    snprintf(buf, bufsize, "%s %s (librdkafka %s, avro-c, hiredis %d.%d.%d)",
             program ? program : "opstream", OPS_VERSION, rd_kafka_version_str(), HIREDIS_MAJOR,
             HIREDIS_MINOR, HIREDIS_PATCH);
}

int ops_cli_parse_long(const char *opt, const char *arg, long min, long max, long *out,
                       char *errstr, size_t errstr_size) {
    char *end = NULL;
    long v;

    errno = 0;
    v = (arg != NULL) ? strtol(arg, &end, 10) : 0;
    if (arg == NULL || errno != 0 || end == arg || *end != '\0' || v < min || v > max) {
        snprintf(errstr, errstr_size, "%s: '%s' is not a whole number in %ld..%ld", opt,
                 arg != NULL ? arg : "", min, max);
        return -1;
    }
    *out = v;
    return 0;
}
