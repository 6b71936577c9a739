/*
 * opstream dead-letter queue: forwards a Kafka message that cannot be
 * decoded to <prefix>dlq (opstream.dlq) unchanged (key, value, headers), with
 * headers opstream.error (the reason), opstream.source.topic,
 * opstream.source.partition and opstream.source.offset. Consumers confirm
 * the DLQ copies (ops_dlq_flush) before they pass the offsets of the
 * originals, so a bad message is never just dropped.
 */
#ifndef OPSTREAM_DLQ_H
#define OPSTREAM_DLQ_H

#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "opstream/config.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A value larger than the producer accepts is forwarded cut to this many
 * bytes, with header opstream.truncated = its original size. */
#define OPS_DLQ_TRUNCATE_BYTES 65536

typedef struct ops_dlq ops_dlq_t;

/* Creates the DLQ producer from cfg (ops_kafka_producer_new: idempotent,
 * acks=all) for topic opstream.topic.prefix + "dlq". cfg must outlive the
 * DLQ (the producer is recreated from it after a fatal error). NULL with
 * errstr on failure. */
ops_dlq_t *ops_dlq_new(const ops_config_t *cfg, char *errstr, size_t errstr_size);
/* Flushes for up to 5 s, then destroys. Accepts NULL. */
void ops_dlq_destroy(ops_dlq_t *dlq);

/* Queues a copy of msg (a consumed message: topic, partition and offset are
 * taken from it) with the reason headers. reason is e.g. the codec's
 * errstr. 0, or -1 with errstr when it could not even be queued. */
int ops_dlq_send(ops_dlq_t *dlq, const rd_kafka_message_t *msg, const char *reason, char *errstr,
                 size_t errstr_size);

/* The same from explicit parts (headers may be NULL; they are copied). */
int ops_dlq_send_parts(ops_dlq_t *dlq, const char *topic, int32_t partition, int64_t offset,
                       const void *key, size_t key_len, const void *value, size_t value_len,
                       const rd_kafka_headers_t *headers, const char *reason, char *errstr,
                       size_t errstr_size);

/* Serves delivery reports without blocking. */
void ops_dlq_poll(ops_dlq_t *dlq);

/* Waits up to timeout_ms until every queued copy has its delivery report.
 * 0 when all of them since the last ops_dlq_flush were delivered; -1 with
 * errstr when one failed or the wait timed out: the caller must then not
 * pass the originals' offsets (it re-consumes them and sends again). After a
 * fatal producer error the producer is recreated. */
int ops_dlq_flush(ops_dlq_t *dlq, int timeout_ms, char *errstr, size_t errstr_size);

/* Copies confirmed delivered since creation. */
uint64_t ops_dlq_delivered(const ops_dlq_t *dlq);

#ifdef __cplusplus
}
#endif
#endif
