/*
 * opstream-alerts: follows the alert topic (opstream.alerts) and prints one
 * readable line per alert (time, severity, operation, country, summary), in
 * colour on a terminal, or one JSON object per line with --json. A plain
 * reader: it assigns every partition itself and commits nothing.
 */
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "opstream/alert_fmt.h"
#include "opstream/cli.h"
#include "opstream/codec.h"
#include "opstream/config.h"
#include "opstream/consumer.h"
#include "opstream/idset.h"
#include "opstream/kafka.h"
#include "opstream/validate.h"
#include "opstream/clock.h"
#include "startup.h"

#define PROG "opstream-alerts"

enum { EXIT_OK = 0, EXIT_FATAL = 1, EXIT_USAGE = 2 };

enum {
    OPT_JSON = OPS_CLI_OPT_FIRST_PROGRAM,
    OPT_FROM_BEGINNING,
    OPT_EXIT_AT_END,
    OPT_OPERATION,
    OPT_MIN_SEVERITY,
};

typedef struct follow_opts {
    bool json;
    bool from_beginning;
    bool exit_at_end;
    const char *operation; /* NULL: every operation */
    ops_severity_t min_severity;
    bool colour;
    int verbose;
    ops_observe_t obs;           /* metrics, health, the --metrics endpoint */
    ops_metrics_series_t *shown; /* opstream_events_total{result="alerted"} */
} follow_opts_t;

static volatile sig_atomic_t g_stop;

/* What librdkafka said last (error_cb, on the polling thread), and the -v
 * level for its log lines. */
typedef struct kafka_talk {
    char last_error[512];
    int verbose;
} kafka_talk_t;

static void on_kafka_error(rd_kafka_t *rk, int err, const char *reason, void *opaque) {
    kafka_talk_t *t = opaque;
    (void)rk;
    (void)err;
    snprintf(t->last_error, sizeof(t->last_error), "%s", reason);
}

/* librdkafka's own log lines only with -v: a broker problem is told once,
 * in this program's words. */
static void on_kafka_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
    const kafka_talk_t *t = rd_kafka_opaque(rk);
    if (level <= 2 || (t != NULL && t->verbose > 0))
        fprintf(stderr, PROG ": kafka %s: %s\n", fac, buf);
}

static void usage(FILE *out) {
    fprintf(out,
            "Usage: opstream-alerts -b BROKERS [--json] [--from-beginning] [--exit-at-end]\n"
            "                       [--operation OP] [--min-severity S]\n"
            "\n"
            "Follows opstream.alerts and prints one line per alert:\n"
            "  2024-09-30T14:05:00Z CRITICAL LIBERTERRA-II PH  PH: 250 victims rescued in one "
            "SCAM_CENTRE raid, LIBERTERRA-II\n"
            "(time: the event's time, or when a spike was raised; its window is in --json\n"
            "as window_start/window_end; country \"--\" for an operation-wide alert).\n"
            "Colour by severity when stdout is a terminal and\n"
            "NO_COLOR is unset. Each alert_id is printed once.\n"
            "\n"
            "Options:\n"
            "      --json                 one JSON object per line, every alert field\n"
            "      --from-beginning       start at the oldest alert kept (default: only\n"
            "                             new alerts)\n"
            "      --exit-at-end          exit once every partition reached the end it had\n"
            "                             at start\n"
            "      --operation OP         only alerts of operation OP\n"
            "      --min-severity S       only alerts of severity S or higher: INFO,\n"
            "                             WARNING, CRITICAL (default INFO)\n" OPS_CLI_METRICS_HELP
            "                             (/readyz: the alert topic's partitions assigned)\n"
            "\n"
            "Settings (-X or -c): opstream.topic.prefix, opstream.max.message.bytes,\n"
            "opstream.connect.timeout.s, opstream.metrics.listen (--metrics). librdkafka's\n"
            "own log lines only with -v.\n"
            "\n"
            "%s"
            "  NO_COLOR                      set and not empty: no colour\n"
            "\n"
            "Records of the alert topic that do not decode are reported on stderr with\n"
            "partition and offset, and skipped.\n"
            "\n"
            "Exit codes:\n"
            "  0  end reached (--exit-at-end) or stopped by SIGINT/SIGTERM\n"
            "  1  Kafka error: no alert topic, or the brokers did not answer within\n"
            "     opstream.connect.timeout.s (default 10 s; with --exit-at-end also\n"
            "     while reading); named on stderr\n"
            "  2  usage or configuration error (also a --metrics address that is busy\n"
            "     or invalid)\n",
            ops_cli_help_for(OPS_CLI_USES_KAFKA));
}

static void print_alert(const follow_opts_t *o, const ops_alert_t *a) {
    char line[OPS_ALERT_FMT_MAX];
    if (o->json)
        ops_alert_format_json(a, line, sizeof(line));
    else
        ops_alert_format_line(a, o->colour, line, sizeof(line));
    fputs(line, stdout);
    fputc('\n', stdout);
    ops_metrics_add(o->shown, 1);
    if (fflush(stdout) != 0)
        g_stop = 1; /* the reader went away (closed pipe) */
}

/* What prints the alerts: the filters and the alert_ids already printed. */
typedef struct printer {
    const follow_opts_t *o;
    const char *topic;
    ops_codec_t *codec;
    ops_idset_t seen;
} printer_t;

/* One record of the alert topic: printed when it decodes, passes the
 * filters and its alert_id is new; reported on stderr when it does not
 * decode. Always 0 (a closed stdout stops through g_stop). */
static int print_record(const rd_kafka_message_t *m, void *opaque) {
    printer_t *pr = opaque;
    const follow_opts_t *o = pr->o;
    ops_alert_t a;
    char derr[512];

    if (m->payload == NULL) {
        fprintf(stderr, PROG ": %s [%" PRId32 "] offset %" PRId64 ": empty record\n", pr->topic,
                m->partition, m->offset);
    } else if (ops_codec_decode_alert(pr->codec, m->payload, m->len, &a, derr, sizeof(derr)) !=
               OPS_CODEC_OK) {
        fprintf(stderr, PROG ": %s [%" PRId32 "] offset %" PRId64 ": %s\n", pr->topic, m->partition,
                m->offset, derr);
    } else if ((o->operation == NULL || strcmp(a.operation, o->operation) == 0) &&
               a.severity >= o->min_severity && ops_idset_add(&pr->seen, a.alert_id) != 0) {
        print_alert(o, &a);
    }
    return 0;
}

/* The topic's metadata, asked in short steps so that a signal is honoured
 * at once and brokers that do not answer within connect_s are named.
 * Returns 0, 1 when stopped by a signal, or -1 with err. */
static int topic_metadata(rd_kafka_t *rk, const char *topic, const char *brokers, int connect_s,
                          const kafka_talk_t *talk, const rd_kafka_metadata_t **mdp, char *err,
                          size_t err_size) {
    int64_t give_up = ops_clock_mono_ms() + (int64_t)connect_s * 1000;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR__TRANSPORT;
    int rc = -1;

    while (!g_stop && ops_clock_mono_ms() < give_up) {
        e = rd_kafka_metadata(rk, 0, rkt, mdp, 500);
        if (e != RD_KAFKA_RESP_ERR__TRANSPORT && e != RD_KAFKA_RESP_ERR__TIMED_OUT)
            break;
        rd_kafka_poll(rk, 100); /* serves error_cb */
    }
    if (g_stop) {
        rc = 1;
    } else if (e == RD_KAFKA_RESP_ERR__TRANSPORT || e == RD_KAFKA_RESP_ERR__TIMED_OUT) {
        snprintf(err, err_size, "cannot reach the brokers at %.200s within %d s (%.250s)", brokers,
                 connect_s, talk->last_error[0] ? talk->last_error : rd_kafka_err2str(e));
    } else if (e == RD_KAFKA_RESP_ERR_NO_ERROR &&
               ((*mdp)->topic_cnt != 1 || (*mdp)->topics[0].err)) {
        e = (*mdp)->topic_cnt == 1 ? (*mdp)->topics[0].err : RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC;
        snprintf(err, err_size, "%s: %s", topic, rd_kafka_err2str(e));
    } else if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        snprintf(err, err_size, "%s: %s", topic, rd_kafka_err2str(e));
    } else {
        rc = 0;
    }
    if (rkt != NULL)
        rd_kafka_topic_destroy(rkt);
    return rc;
}

/* Assigns every partition of the topic at the beginning or the end.
 * Returns 0, 1 when stopped by a signal, or -1 with err. */
static int assign_all(rd_kafka_t *rk, const char *topic, const follow_opts_t *o,
                      const char *brokers, int connect_s, const kafka_talk_t *talk, char *err,
                      size_t err_size) {
    int rc = -1;
    const rd_kafka_metadata_t *md = NULL;
    rd_kafka_topic_partition_list_t *parts = NULL;
    rd_kafka_resp_err_t e;
    rc = topic_metadata(rk, topic, brokers, connect_s, talk, &md, err, err_size);
    if (rc != 0)
        goto cleanup;
    rc = -1;
    int np = md->topics[0].partition_cnt;
    parts = rd_kafka_topic_partition_list_new(np > 0 ? np : 1);
    if (parts == NULL) {
        snprintf(err, err_size, "out of memory");
        goto cleanup;
    }
    for (int i = 0; i < np; i++)
        rd_kafka_topic_partition_list_add(parts, topic, md->topics[0].partitions[i].id)->offset =
            o->from_beginning ? RD_KAFKA_OFFSET_BEGINNING : RD_KAFKA_OFFSET_END;
    e = rd_kafka_assign(rk, parts);
    if (e) {
        snprintf(err, err_size, "assign %s: %s", topic, rd_kafka_err2str(e));
        goto cleanup;
    }
    rc = 0;
cleanup:
    if (parts != NULL)
        rd_kafka_topic_partition_list_destroy(parts);
    if (md != NULL)
        rd_kafka_metadata_destroy(md);
    return rc;
}

/* The follow loop; with --from-beginning --exit-at-end a read of the topic
 * to the end it had at start (ops_consumer_read_to_end). Returns an exit
 * code. */
static int follow(const ops_config_t *cfg, const follow_opts_t *o) {
    int rc = EXIT_FATAL;
    char err[512], topic[256], group[64];
    rd_kafka_t *rk = NULL;
    kafka_talk_t talk = {.verbose = o->verbose};
    rd_kafka_resp_err_t last_err = RD_KAFKA_RESP_ERR_NO_ERROR;
    int connect_s = (int)ops_config_get_int(cfg, "opstream.connect.timeout.s");
    const char *prefix = ops_config_get(cfg, "opstream.topic.prefix");
    snprintf(topic, sizeof(topic), "%salerts", prefix != NULL ? prefix : "opstream.");
    printer_t pr = {.o = o, .topic = topic};
    if (connect_s <= 0)
        connect_s = 10;

    pr.codec = ops_codec_new(NULL, err, sizeof(err));
    if (pr.codec == NULL)
        goto fail;
    if (o->exit_at_end && o->from_beginning) {
        /* no answer for connect_s (at first contact or while reading):
         * the brokers are named and the exit is 1; a signal: 0 */
        if (ops_consumer_read_to_end(cfg, topic, print_record, &pr, connect_s * 1000, &g_stop, err,
                                     sizeof(err)) != 0 &&
            !g_stop) {
            if (strncmp(err, "no brokers", 10) == 0)
                rc = EXIT_USAGE;
            goto fail;
        }
        rc = EXIT_OK;
        goto cleanup;
    }

    /* librdkafka wants a group.id even for assign(); nothing is committed */
    snprintf(group, sizeof(group), "opstream-alerts-%ld-%ld", (long)getpid(), (long)time(NULL));
    /* the one consumer builder (ops_kafka_consumer_build) */
    ops_kafka_consumer_opts_t ko = {
        .group = group, .error_cb = on_kafka_error, .log_cb = on_kafka_log, .opaque = &talk};
    rk = ops_kafka_consumer_build(cfg, &ko, err, sizeof(err));
    if (rk == NULL) {
        if (strncmp(err, "no brokers", 10) == 0)
            rc = EXIT_USAGE;
        goto fail;
    }
    char bs[1024] = "";
    size_t bs_size = sizeof(bs);
    if (rd_kafka_conf_get(rd_kafka_conf(rk), "bootstrap.servers", bs, &bs_size) != RD_KAFKA_CONF_OK)
        bs[0] = '\0';
    if (assign_all(rk, topic, o, bs, connect_s, &talk, err, sizeof(err)) < 0)
        goto fail;
    ops_health_set_ready(o->obs.health, NULL); /* every partition assigned */

    /* --exit-at-end from the end: nothing to wait for */
    while (!g_stop && !o->exit_at_end) {
        ops_health_beat(o->obs.health);
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
        if (m == NULL)
            continue;
        if (m->err) {
            /* once per change, not once per poll */
            if (m->err != last_err)
                fprintf(stderr, PROG ": kafka: %s\n", rd_kafka_message_errstr(m));
            last_err = m->err;
        } else {
            last_err = RD_KAFKA_RESP_ERR_NO_ERROR;
            print_record(m, &pr);
        }
        rd_kafka_message_destroy(m);
    }
    rc = EXIT_OK;
    goto cleanup;
fail:
    fprintf(stderr, PROG ": %s\n", err);
cleanup:
    if (rk != NULL) {
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
    }
    ops_codec_destroy(pr.codec);
    ops_idset_clear(&pr.seen);
    return rc;
}

static const struct option longopts[] = {
    OPS_CLI_COMMON_LONG,
    {"json", no_argument, NULL, OPT_JSON},
    {"from-beginning", no_argument, NULL, OPT_FROM_BEGINNING},
    {"exit-at-end", no_argument, NULL, OPT_EXIT_AT_END},
    {"operation", required_argument, NULL, OPT_OPERATION},
    {"min-severity", required_argument, NULL, OPT_MIN_SEVERITY},
    OPS_CLI_METRICS_LONG,
    {NULL, 0, NULL, 0},
};

/* The follower's own options. */
static int follow_option(void *opaque, int opt, const char *arg, char *err, size_t err_size) {
    follow_opts_t *o = opaque;
    switch (opt) {
    case OPT_JSON:
        o->json = true;
        return 0;
    case OPT_FROM_BEGINNING:
        o->from_beginning = true;
        return 0;
    case OPT_EXIT_AT_END:
        o->exit_at_end = true;
        return 0;
    case OPT_OPERATION:
        return startup_operation_option(arg, &o->operation, err, err_size);
    case OPT_MIN_SEVERITY: {
        char up[16];
        size_t i = 0;
        for (; arg[i] != '\0' && i + 1 < sizeof(up); i++)
            up[i] = (char)(arg[i] >= 'a' && arg[i] <= 'z' ? arg[i] - 32 : arg[i]);
        up[i] = '\0';
        int s = ops_severity_from_name(up);
        if (s < 0) {
            snprintf(err, err_size, "--min-severity: '%s' is not INFO, WARNING or CRITICAL", arg);
            return -1;
        }
        o->min_severity = (ops_severity_t)s;
        return 0;
    }
    default:
        return startup_unknown_option(opt, err, err_size);
    }
}

int main(int argc, char **argv) {
    follow_opts_t o = {0};
    startup_t start = {.name = PROG,
                       .short_opts = OPS_CLI_COMMON_SHORT,
                       .long_opts = longopts,
                       .usage = usage,
                       .option = follow_option,
                       .opaque = &o,
                       .max_args = 0,
                       .exit_fatal = EXIT_FATAL,
                       .uses = OPS_CLI_USES_KAFKA};

    int rc = startup_parse(&start, argc, argv);
    if (rc >= 0)
        goto cleanup;
    const char *no_colour = getenv("NO_COLOR");
    o.colour = isatty(STDOUT_FILENO) && (no_colour == NULL || no_colour[0] == '\0');
    o.verbose = start.common.verbose;

    char qerr[256];
    if (ops_consumer_quiet_kafka(start.cfg, o.verbose, qerr, sizeof(qerr)) != 0) {
        fprintf(stderr, PROG ": %s\n", qerr);
        rc = EXIT_USAGE;
        goto cleanup;
    }
    startup_catch_stop_signals(&g_stop, NULL);
    startup_ignore_sigpipe(); /* stdout closed: fflush fails, the program stops */

    /* --metrics: a busy or invalid address is a usage error, before the
     * brokers are contacted */
    if (startup_observe(PROG, start.cfg, 0, &o.obs) != 0) {
        rc = EXIT_USAGE;
        goto cleanup;
    }
    char topic[256];
    const char *prefix = ops_config_get(start.cfg, "opstream.topic.prefix");
    snprintf(topic, sizeof(topic), "%salerts", prefix != NULL ? prefix : "opstream.");
    o.shown = ops_metrics_events(o.obs.metrics, PROG, topic, "alerted", NULL, 0);
    ops_health_set_ready(o.obs.health, "no partitions assigned");
    rc = follow(start.cfg, &o);
cleanup:
    ops_observe_stop(&o.obs);
    ops_config_destroy(start.cfg);
    return rc;
}
