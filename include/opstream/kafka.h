/*
 * opstream Kafka adapter: builds producers and consumers from an
 * ops_config_t with the defaults opstream relies on (producer: idempotence,
 * acks=all, socket.nagle.disable, a small linger; consumer: no auto commit,
 * since offsets live in Redis, socket.nagle.disable, auto.offset.reset
 * earliest), then the user's properties on top.
 */
#ifndef OPSTREAM_KAFKA_H
#define OPSTREAM_KAFKA_H

#include <stdbool.h>

#include <librdkafka/rdkafka.h>

#include "opstream/config.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A librdkafka conf with opstream's defaults for the role, then every Kafka
 * property of cfg. The caller adds callbacks and owns the result (it is
 * freed by rd_kafka_new on success). NULL with errstr on failure. */
rd_kafka_conf_t *ops_kafka_conf_new(const ops_config_t *cfg, ops_kafka_role_t role, char *errstr,
                                    size_t errstr_size);

/* A producer. dr_msg_cb (may be NULL) gets delivery reports; opaque is the
 * rk opaque. NULL with errstr on failure (e.g. no bootstrap.servers). */
rd_kafka_t *ops_kafka_producer_new(const ops_config_t *cfg,
                                   void (*dr_msg_cb)(rd_kafka_t *, const rd_kafka_message_t *, void *),
                                   void *opaque, char *errstr, size_t errstr_size);

/* How a consumer is built: group (NULL: group.id from the config), the
 * callbacks (each may be NULL), their opaque, and whether partition EOF
 * events are wanted (readers that stop at the end). */
typedef struct ops_kafka_consumer_opts {
    const char *group;
    void (*rebalance_cb)(rd_kafka_t *, rd_kafka_resp_err_t, rd_kafka_topic_partition_list_t *,
                         void *);
    void (*error_cb)(rd_kafka_t *, int, const char *, void *);
    void (*log_cb)(const rd_kafka_t *, int, const char *, const char *);
    void *opaque;
    bool partition_eof;
    /* librdkafka's prefetch bound in messages (queued.min.messages) unless
     * the user set it; 0: librdkafka's default. */
    size_t prefetch_messages;
    /* When not NULL, receives the bound the client was given, as its conf
     * holds it: the user's queued.min.messages, else prefetch_messages,
     * else librdkafka's default. Written before the client is created. */
    size_t *prefetch_given;
    /* fetch.max.bytes (at least message.max.bytes) unless the user set
     * it; 0: librdkafka's default. */
    size_t fetch_bytes;
} ops_kafka_consumer_opts_t;

/* The one consumer builder: opstream's consumer defaults, the user's
 * properties, then o. The poll queue is redirected to the consumer queue
 * (rd_kafka_poll_set_consumer). NULL with errstr on failure. */
rd_kafka_t *ops_kafka_consumer_build(const ops_config_t *cfg, const ops_kafka_consumer_opts_t *o,
                                     char *errstr, size_t errstr_size);

/* A consumer in group `group` (NULL: group.id from cfg). rebalance_cb may be
 * NULL for librdkafka's default assign/unassign. The poll queue is
 * redirected to the consumer queue (rd_kafka_poll_set_consumer). */
rd_kafka_t *ops_kafka_consumer_new(const ops_config_t *cfg, const char *group,
                                   void (*rebalance_cb)(rd_kafka_t *, rd_kafka_resp_err_t,
                                                        rd_kafka_topic_partition_list_t *, void *),
                                   void *opaque, char *errstr, size_t errstr_size);

/* Wakes the broker threads that fetch parts' partitions: one request per
 * leader for the latest offsets (every offset in parts is set to
 * RD_KAFKA_OFFSET_END), handed to the brokers' threads and not waited for
 * (rd_kafka_offsets_for_times with timeout 0; in librdkafka 2.0.2 a
 * watermark query waits for its answer even with timeout 0). A broker
 * thread that stopped fetching because the consumer queue was full looks
 * at its partitions again only up to a second later unless something wakes
 * it; the answer does. false: nothing was sent (a partition the client
 * does not know), with *errp (may be NULL) librdkafka's reason. */
bool ops_kafka_wake_fetchers(rd_kafka_t *rk, rd_kafka_topic_partition_list_t *parts,
                             rd_kafka_resp_err_t *errp);

#ifdef __cplusplus
}
#endif
#endif
