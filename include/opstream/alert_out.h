/*
 * opstream alert output: publishes alerts Avro-framed to the alert topic
 * (opstream.alerts, key = operation) with the idempotent producer, sent in
 * rounds whose delivery reports are waited for together; mirrors them into
 * the capped Redis stream opstream:{OP}:alerts without duplicates; and
 * reads the alert topic back, which is how opstream-alert learns on start
 * what it already published.
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

/* Where an alert sent in the current round stands. */
typedef enum ops_alert_out_state {
    OPS_ALERT_OUT_PENDING = 0, /* no delivery report yet */
    OPS_ALERT_OUT_DELIVERED,   /* on the topic */
    OPS_ALERT_OUT_FAILED       /* reported as not delivered, or its report will never
                                * come: its outcome is unknown (a timeout may still
                                * have reached the topic) */
} ops_alert_out_state_t;

/*
 * Alerts are published in rounds: every alert of a round is sent without
 * waiting (ops_alert_out_send), then their delivery reports are waited for
 * once (ops_alert_out_wait), read (ops_alert_out_state) and the next round
 * begins (ops_alert_out_round). One wait per batch of events instead of one
 * per alert; librdkafka keeps the order of the sends on each partition.
 */

/* Encodes and produces one alert without waiting for its delivery report;
 * *slot gets its number in the round (0, 1, ...). -1 with errstr when it
 * cannot be encoded or produced (nothing sent; after a fatal producer error
 * the producer is recreated and the alerts of the round still in flight are
 * failed). */
int ops_alert_out_send(ops_alert_out_t *out, const ops_alert_t *a, size_t *slot, char *errstr,
                       size_t errstr_size);

/* Serves the delivery reports that have arrived, without waiting. */
void ops_alert_out_poll(ops_alert_out_t *out);

/* Waits for the delivery report of every alert of the round, which
 * librdkafka always gives within message.timeout.ms. stop (may be NULL) is
 * checked while waiting: once it is non-zero the wait goes on for at most
 * stop_grace_ms, then ends with -1 ("interrupted"; the round stays as it
 * is, a later wait may go on). 0 when every alert of the round was
 * delivered; 1 when one or more were not (errstr says the first reason;
 * after a fatal producer error the producer is recreated). */
int ops_alert_out_wait(ops_alert_out_t *out, volatile sig_atomic_t *stop, int stop_grace_ms,
                       char *errstr, size_t errstr_size);

/* Where alert number slot of the round stands; *delivery_ms (may be NULL)
 * gets the time from its send to its report (-1 while pending). */
ops_alert_out_state_t ops_alert_out_state(const ops_alert_out_t *out, size_t slot,
                                          int64_t *delivery_ms);

/* Starts a new round: the slots are forgotten, and a report still to come
 * for one of them is ignored. */
void ops_alert_out_round(ops_alert_out_t *out);

/* XADDs the alert to opstream:{OP}:alerts (MAXLEN ~ 1000), fields named as
 * in the Avro record (times in ms, event_ids comma-separated, country "" when
 * operation-wide), unless one of the newest 1000 entries already carries its
 * alert_id: a replay never mirrors an alert twice. One atomic script (EVAL,
 * so a restarted Redis needs no reload), routed by the stream's key through
 * the link (a single server or a cluster). 1 when added, 0 when already
 * there, -1 with errstr on a Redis error (the link reconnects by itself). */
int ops_alert_out_mirror(ops_redis_link_t *rc, const ops_alert_t *a, char *errstr,
                         size_t errstr_size);

/* ops_alert_out_mirror for n alerts, in their order, pipelined (one round
 * trip per 128 alerts). A connection found gone while the replies are read
 * (a Redis restart, an idle disconnect, CLIENT KILL) is made afresh at once
 * and the alerts not yet answered are sent again, once per call. Returns
 * how many were added (the others were there already; one whose script ran
 * just before its connection went counts as there already), or -1 with
 * errstr on a Redis error, or when the connection is lost again or cannot
 * be made (some may have been added: sending them all again is safe). */
int ops_alert_out_mirror_many(ops_redis_link_t *rc, const ops_alert_t *const *alerts, size_t n,
                              char *errstr, size_t errstr_size);

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
