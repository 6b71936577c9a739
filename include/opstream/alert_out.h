/*
 * opstream alert output: publishes alerts Avro-framed to the alert topic
 * (opstream.alerts, key = operation) with the idempotent producer, waiting
 * for each delivery report; mirrors them into the capped Redis stream
 * opstream:{OP}:alerts without duplicates; and reads the alert topic back,
 * which is how opstream-alert learns on start what it already published.
 */
#ifndef OPSTREAM_ALERT_OUT_H
#define OPSTREAM_ALERT_OUT_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "opstream/redis_link.h"

#include "opstream/config.h"
#include "opstream/event.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Entries kept in opstream:{OP}:alerts (XADD MAXLEN ~). */
#define OPS_ALERT_STREAM_MAXLEN 1000

typedef struct ops_alert_out ops_alert_out_t;

/* Creates the alert producer from cfg (ops_kafka_producer_new: idempotent,
 * acks=all) for topic opstream.topic.prefix + "alerts". cfg is borrowed and
 * must outlive the output (the producer is recreated from it after a fatal
 * error). NULL with errstr on failure. */
ops_alert_out_t *ops_alert_out_new(const ops_config_t *cfg, char *errstr, size_t errstr_size);
void ops_alert_out_destroy(ops_alert_out_t *out); /* accepts NULL; flushes up to 5 s */

/* The topic alerts go to ("opstream.alerts"). */
const char *ops_alert_out_topic(const ops_alert_out_t *out);

/* Encodes and produces one alert and waits for its delivery report, which
 * librdkafka always gives within message.timeout.ms. stop (may be NULL) is
 * checked while waiting: when it becomes non-zero the wait ends with -1 and
 * "interrupted". After a fatal producer error the producer is recreated and
 * -1 returned, so the caller retries. 0 once delivered. */
int ops_alert_out_publish(ops_alert_out_t *out, const ops_alert_t *a, volatile sig_atomic_t *stop,
                          char *errstr, size_t errstr_size);

/* XADDs the alert to opstream:{OP}:alerts (MAXLEN ~ 1000), fields named as
 * in the Avro record (times in ms, event_ids comma-separated, country "" when
 * operation-wide), unless one of the newest 1000 entries already carries its
 * alert_id: a replay never mirrors an alert twice. One atomic script (EVAL,
 * so a restarted Redis needs no reload), routed by the stream's key through
 * the link (a single server or a cluster). 1 when added, 0 when already
 * there, -1 with errstr on a Redis error (the link reconnects by itself). */
int ops_alert_out_mirror(ops_redis_link_t *rc, const ops_alert_t *a, char *errstr,
                         size_t errstr_size);

/* Reads every alert of the alert topic, all partitions from the beginning
 * up to the high watermarks seen at the start (ops_consumer_read_to_end),
 * and calls fn for each one that decodes; fn returning non-zero stops with
 * -1. *undecodablep (may be NULL) gets the number of records that did not
 * decode. -1 with errstr on a Kafka error, after timeout_ms, or once *stop
 * (may be NULL) is set. */
int ops_alert_topic_read(const ops_config_t *cfg, int (*fn)(const ops_alert_t *a, void *opaque),
                         void *opaque, int timeout_ms, volatile sig_atomic_t *stop,
                         size_t *undecodablep, char *errstr, size_t errstr_size);

#ifdef __cplusplus
}
#endif
#endif
