/*
 * State and set-up shared by the integration tests that produce events
 * themselves (test_alert_common.h, test_count_common.h): the binary's
 * embedded broker, redis-server, codec, and one producer whose failed
 * deliveries are counted. Static, included by each test file.
 */
#ifndef OPSTREAM_TEST_PRODUCER_COMMON_H
#define OPSTREAM_TEST_PRODUCER_COMMON_H

#include <stddef.h>

#include "harness.h"
#include "opstream/codec.h"
#include "opstream/config.h"
#include "opstream/kafka.h"

#define TP_HELPER __attribute__((unused)) static

static harness_broker_t *g_broker;
static harness_redis_t *g_redis;
static ops_config_t *g_cfg;
static rd_kafka_t *g_rk;
static ops_codec_t *g_codec;
static int g_dr_failed;

/* Delivery reports: counts the failed ones in g_dr_failed. */
TP_HELPER void tp_dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    (void)rk;
    (void)opaque;
    if (m->err)
        g_dr_failed++;
}

/* g_cfg pointing at g_broker and the producer g_rk on it, with no failed
 * delivery yet. 0, or -1 when either cannot be made. */
TP_HELPER int tp_producer_start(void) {
    char err[512];

    g_cfg = ops_config_new();
    if (g_cfg == NULL ||
        ops_config_set(g_cfg, "bootstrap.servers", g_broker->bootstrap, err, sizeof err) != 0)
        return -1;
    g_rk = ops_kafka_producer_new(g_cfg, tp_dr_cb, NULL, err, sizeof err);
    g_dr_failed = 0;
    return g_rk != NULL ? 0 : -1;
}

/* Undoes tp_producer_start (also a partial one). */
TP_HELPER void tp_producer_stop(void) {
    if (g_rk != NULL)
        rd_kafka_destroy(g_rk);
    g_rk = NULL;
    ops_config_destroy(g_cfg);
    g_cfg = NULL;
}

#endif
