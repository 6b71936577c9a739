/*
 * opstream-broker control channel: parses one-line commands and applies them
 * to the mock cluster with librdkafka's rd_kafka_mock_* calls. Pure command
 * handling, no I/O: main.c reads the lines and prints the answers.
 */
#include "control.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define CONTROL_MAX_ARGS 64
#define CONTROL_LINE_MAX 4096
#define CONTROL_MAX_ERRORS (CONTROL_MAX_ARGS - 3)

/* Kafka protocol API keys by name, for push-errors. Numbers work too. */
static const struct {
    const char *name;
    int16_t key;
} api_keys[] = {
    {"Produce", 0},
    {"Fetch", 1},
    {"ListOffsets", 2},
    {"Metadata", 3},
    {"OffsetCommit", 8},
    {"OffsetFetch", 9},
    {"FindCoordinator", 10},
    {"JoinGroup", 11},
    {"Heartbeat", 12},
    {"LeaveGroup", 13},
    {"SyncGroup", 14},
    {"ApiVersions", 18},
    {"CreateTopics", 19},
    {"InitProducerId", 22},
    {"AddPartitionsToTxn", 24},
    {"AddOffsetsToTxn", 25},
    {"EndTxn", 26},
    {"TxnOffsetCommit", 28},
    {"OffsetForLeaderEpoch", 23},
};

const char *broker_control_help(void) {
    return "Control commands (one per line on stdin when stdin is a pipe; each\n"
           "answers one line on stdout, \"ok\" or \"error: <why>\"):\n"
           "  ping                              answers ok\n"
           "  broker-down ID                    take broker ID (1..N) down\n"
           "  broker-up ID                      bring it back\n"
           "  rtt ID MS                         add MS ms round-trip time to broker ID\n"
           "  leader TOPIC PARTITION ID         move the partition's leader to broker ID\n"
           "  coordinator GROUP ID              broker ID coordinates consumer group GROUP\n"
           "                                    (for a client that looks it up from now on)\n"
           "  push-errors API COUNT ERR...      the next COUNT requests of API (name such\n"
           "                                    as Produce, Fetch, Metadata, or number) fail\n"
           "                                    with the ERRs in turn (name such as\n"
           "                                    NOT_LEADER_FOR_PARTITION, or number)\n"
           "  clear-errors API                  drop errors still queued for API\n"
           "  topic-error TOPIC ERR             every request on TOPIC fails with ERR\n"
           "                                    (NO_ERROR clears it)\n"
           "  create-topic TOPIC PARTITIONS [REPLICATION]\n";
}

/* Parses a whole decimal integer within [min, max]. */
static int parse_long(const char *s, long min, long max, long *out) {
    char *end = NULL;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static int parse_api_key(const char *s, int16_t *out) {
    long v;
    size_t i;

    for (i = 0; i < sizeof(api_keys) / sizeof(api_keys[0]); i++) {
        if (strcasecmp(s, api_keys[i].name) == 0) {
            *out = api_keys[i].key;
            return 0;
        }
    }
    if (parse_long(s, 0, INT16_MAX, &v) != 0)
        return -1;
    *out = (int16_t)v;
    return 0;
}

/* Error codes by librdkafka's name, with or without the RD_KAFKA_RESP_ERR_
 * prefix ("NOT_LEADER_FOR_PARTITION", "_TRANSPORT"), or by number. */
static int parse_err(const char *s, rd_kafka_resp_err_t *out) {
    const struct rd_kafka_err_desc *descs = NULL;
    size_t n = 0;
    size_t i;
    long v;

    if (strncmp(s, "RD_KAFKA_RESP_ERR_", 18) == 0)
        s += 18;
    rd_kafka_get_err_descs(&descs, &n);
    for (i = 0; i < n; i++) {
        if (descs[i].name != NULL && strcasecmp(descs[i].name, s) == 0) {
            *out = descs[i].code;
            return 0;
        }
    }
    if (parse_long(s, INT_MIN, INT_MAX, &v) != 0)
        return -1;
    *out = (rd_kafka_resp_err_t)v;
    return 0;
}

/* "error: <what> '<arg>'" (arg may be NULL). */
static int answer_err(char *answer, size_t size, const char *what, const char *arg) {
    if (arg != NULL)
        snprintf(answer, size, "error: %s '%s'", what, arg);
    else
        snprintf(answer, size, "error: %s", what);
    return -1;
}

static int answer_kafka(char *answer, size_t size, rd_kafka_resp_err_t err) {
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        snprintf(answer, size, "ok");
        return 0;
    }
    snprintf(answer, size, "error: %s", rd_kafka_err2str(err));
    return -1;
}

/* Splits the line into whitespace-separated words in place. Returns the
 * number of words, or -1 when there are too many. */
static int split_words(char *line, char *argv[], int max) {
    int argc = 0;
    char *save = NULL;
    char *w;

    for (w = strtok_r(line, " \t\r\n", &save); w != NULL; w = strtok_r(NULL, " \t\r\n", &save)) {
        if (argc == max)
            return -1;
        argv[argc++] = w;
    }
    return argc;
}

/* Every command maps to one rd_kafka_mock_* call; arguments are checked here
 * so that a typo answers an error instead of reaching the mock cluster. */
int broker_control_run(rd_kafka_mock_cluster_t *mc, const char *line, char *answer, size_t size) {
    char buf[CONTROL_LINE_MAX];
    char *argv[CONTROL_MAX_ARGS];
    int argc;
    long id, part, n;
    rd_kafka_resp_err_t err;
    int16_t api;

    answer[0] = '\0';
    if (strlen(line) >= sizeof(buf))
        return answer_err(answer, size, "line too long", NULL);
    snprintf(buf, sizeof(buf), "%s", line);
    argc = split_words(buf, argv, CONTROL_MAX_ARGS);
    if (argc < 0)
        return answer_err(answer, size, "too many words", NULL);
    if (argc == 0 || argv[0][0] == '#')
        return 0;

    if (strcmp(argv[0], "ping") == 0 && argc == 1)
        return answer_kafka(answer, size, RD_KAFKA_RESP_ERR_NO_ERROR);

    if ((strcmp(argv[0], "broker-down") == 0 || strcmp(argv[0], "broker-up") == 0) && argc == 2) {
        if (parse_long(argv[1], 1, INT32_MAX, &id) != 0)
            return answer_err(answer, size, "bad broker id", argv[1]);
        err = argv[0][7] == 'd' ? rd_kafka_mock_broker_set_down(mc, (int32_t)id)
                                : rd_kafka_mock_broker_set_up(mc, (int32_t)id);
        return answer_kafka(answer, size, err);
    }

    if (strcmp(argv[0], "rtt") == 0 && argc == 3) {
        if (parse_long(argv[1], 1, INT32_MAX, &id) != 0)
            return answer_err(answer, size, "bad broker id", argv[1]);
        if (parse_long(argv[2], 0, 3600000, &n) != 0)
            return answer_err(answer, size, "bad rtt (ms)", argv[2]);
        return answer_kafka(answer, size, rd_kafka_mock_broker_set_rtt(mc, (int32_t)id, (int)n));
    }

    if (strcmp(argv[0], "leader") == 0 && argc == 4) {
        if (parse_long(argv[2], 0, INT32_MAX, &part) != 0)
            return answer_err(answer, size, "bad partition", argv[2]);
        if (parse_long(argv[3], 1, INT32_MAX, &id) != 0)
            return answer_err(answer, size, "bad broker id", argv[3]);
        return answer_kafka(
            answer, size,
            rd_kafka_mock_partition_set_leader(mc, argv[1], (int32_t)part, (int32_t)id));
    }

    if (strcmp(argv[0], "coordinator") == 0 && argc == 3) {
        if (parse_long(argv[2], 1, INT32_MAX, &id) != 0)
            return answer_err(answer, size, "bad broker id", argv[2]);
        return answer_kafka(answer, size,
                            rd_kafka_mock_coordinator_set(mc, "group", argv[1], (int32_t)id));
    }

    if (strcmp(argv[0], "push-errors") == 0 && argc >= 4) {
        rd_kafka_resp_err_t errs[CONTROL_MAX_ERRORS];
        size_t n_errs = (size_t)argc - 3;
        size_t i;

        if (parse_api_key(argv[1], &api) != 0)
            return answer_err(answer, size, "unknown API", argv[1]);
        if (parse_long(argv[2], 1, 1000000, &n) != 0)
            return answer_err(answer, size, "bad count", argv[2]);
        for (i = 0; i < n_errs; i++) {
            if (parse_err(argv[3 + i], &errs[i]) != 0)
                return answer_err(answer, size, "unknown error", argv[3 + i]);
        }
        /* COUNT requests fail, cycling through the given errors. */
        {
            rd_kafka_resp_err_t *all = calloc((size_t)n, sizeof(*all));
            long k;

            if (all == NULL)
                return answer_err(answer, size, "out of memory", NULL);
            for (k = 0; k < n; k++)
                all[k] = errs[(size_t)k % n_errs];
            rd_kafka_mock_push_request_errors_array(mc, api, (size_t)n, all);
            free(all);
        }
        return answer_kafka(answer, size, RD_KAFKA_RESP_ERR_NO_ERROR);
    }

    if (strcmp(argv[0], "clear-errors") == 0 && argc == 2) {
        if (parse_api_key(argv[1], &api) != 0)
            return answer_err(answer, size, "unknown API", argv[1]);
        rd_kafka_mock_clear_request_errors(mc, api);
        return answer_kafka(answer, size, RD_KAFKA_RESP_ERR_NO_ERROR);
    }

    if (strcmp(argv[0], "topic-error") == 0 && argc == 3) {
        if (parse_err(argv[2], &err) != 0)
            return answer_err(answer, size, "unknown error", argv[2]);
        rd_kafka_mock_topic_set_error(mc, argv[1], err);
        return answer_kafka(answer, size, RD_KAFKA_RESP_ERR_NO_ERROR);
    }

    if (strcmp(argv[0], "create-topic") == 0 && (argc == 3 || argc == 4)) {
        long rf = 1;

        if (parse_long(argv[2], 1, 10000, &part) != 0)
            return answer_err(answer, size, "bad partition count", argv[2]);
        if (argc == 4 && parse_long(argv[3], 1, 100, &rf) != 0)
            return answer_err(answer, size, "bad replication factor", argv[3]);
        return answer_kafka(answer, size,
                            rd_kafka_mock_topic_create(mc, argv[1], (int)part, (int)rf));
    }

    return answer_err(answer, size, "unknown command or wrong arguments (see --help):", argv[0]);
}
