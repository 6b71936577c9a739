/*
 * opstream-broker control channel: one-line text commands that change the
 * mock cluster at run time (brokers down/up, partition leaders, injected
 * request errors), so fault tests can drive a running broker.
 */
#ifndef OPSTREAM_BROKER_CONTROL_H
#define OPSTREAM_BROKER_CONTROL_H

#include <stddef.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

/* Runs one command line against mcluster. Returns 0 and leaves answer "ok",
 * or -1 with answer "error: <why>". Blank lines and '#' comments answer
 * nothing (answer ""). */
int broker_control_run(rd_kafka_mock_cluster_t *mcluster, const char *line, char *answer,
                       size_t answer_size);

/* The command list for --help. */
const char *broker_control_help(void);

#endif
