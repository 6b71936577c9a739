/*
 * opstream dead-letter queue: an idempotent producer that forwards
 * undecodable messages to opstream.dlq with reason and source headers, and
 * counts delivery reports so that callers can confirm before passing the
 * originals' offsets.
 */
#include "opstream/dlq.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "opstream/kafka.h"
#include "err_priv.h"

struct ops_dlq {
    const ops_config_t *cfg; /* borrowed */
    rd_kafka_t *rk;
    char topic[256];
    uint64_t delivered; /* since creation */
    uint64_t failed;    /* since the last flush */
    char last_error[256];
};

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    ops_dlq_t *dlq = opaque;

    (void)rk;
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        dlq->delivered++;
    } else {
        dlq->failed++;
        snprintf(dlq->last_error, sizeof(dlq->last_error), "%s", rd_kafka_err2str(m->err));
    }
}

static int make_producer(ops_dlq_t *dlq, char *errstr, size_t errstr_size) {
    dlq->rk = ops_kafka_producer_new(dlq->cfg, dr_cb, dlq, errstr, errstr_size);
    return dlq->rk != NULL ? 0 : -1;
}

ops_dlq_t *ops_dlq_new(const ops_config_t *cfg, char *errstr, size_t errstr_size) {
    ops_dlq_t *dlq = calloc(1, sizeof(*dlq));
    const char *prefix = ops_config_get(cfg, "opstream.topic.prefix");

    if (dlq == NULL) {
        ops_err_format(errstr, errstr_size, "dlq: out of memory");
        goto fail;
    }
    dlq->cfg = cfg;
    if ((size_t)snprintf(dlq->topic, sizeof(dlq->topic), "%sdlq", prefix ? prefix : "opstream.") >=
        sizeof(dlq->topic)) {
        ops_err_format(errstr, errstr_size, "dlq: topic prefix too long");
        goto fail;
    }
    if (make_producer(dlq, errstr, errstr_size) != 0)
        goto fail;
    return dlq;

fail:
    ops_dlq_destroy(dlq);
    return NULL;
}

void ops_dlq_destroy(ops_dlq_t *dlq) {
    if (dlq == NULL)
        return;
    if (dlq->rk != NULL) {
        rd_kafka_flush(dlq->rk, 5000);
        rd_kafka_destroy(dlq->rk);
    }
    free(dlq);
}

/* Builds the headers: the original ones, then ours (the last value of a
 * header name wins for readers that take one). */
static rd_kafka_headers_t *make_headers(const char *topic, int32_t partition, int64_t offset,
                                        const rd_kafka_headers_t *orig, const char *reason,
                                        size_t truncated_from) {
    rd_kafka_headers_t *h = orig != NULL ? rd_kafka_headers_copy(orig) : rd_kafka_headers_new(4);
    char num[32];

    if (h == NULL)
        return NULL;
    rd_kafka_header_add(h, "opstream.error", -1, reason ? reason : "unknown", -1);
    rd_kafka_header_add(h, "opstream.source.topic", -1, topic, -1);
    snprintf(num, sizeof num, "%d", (int)partition);
    rd_kafka_header_add(h, "opstream.source.partition", -1, num, -1);
    snprintf(num, sizeof num, "%lld", (long long)offset);
    rd_kafka_header_add(h, "opstream.source.offset", -1, num, -1);
    if (truncated_from > 0) {
        snprintf(num, sizeof num, "%zu", truncated_from);
        rd_kafka_header_add(h, "opstream.truncated", -1, num, -1);
    }
    return h;
}

static rd_kafka_resp_err_t produce_copy(ops_dlq_t *dlq, const void *key, size_t key_len,
                                        const void *value, size_t value_len,
                                        rd_kafka_headers_t *h) {
    return rd_kafka_producev(
        dlq->rk, RD_KAFKA_V_TOPIC(dlq->topic), RD_KAFKA_V_KEY((void *)key, key_len),
        RD_KAFKA_V_VALUE((void *)value, value_len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END);
}

/* A full local queue is waited out (serving reports); a value the producer
 * refuses as too large is sent cut short rather than lost, so the DLQ still
 * says where the original is. */
int ops_dlq_send_parts(ops_dlq_t *dlq, const char *topic, int32_t partition, int64_t offset,
                       const void *key, size_t key_len, const void *value, size_t value_len,
                       const rd_kafka_headers_t *headers, const char *reason, char *errstr,
                       size_t errstr_size) {
    size_t truncated_from = 0;
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR__FAIL;

    if (dlq->rk == NULL && make_producer(dlq, errstr, errstr_size) != 0)
        return -1;

    for (int attempt = 0; attempt < 1000; attempt++) {
        rd_kafka_headers_t *h =
            make_headers(topic, partition, offset, headers, reason, truncated_from);
        if (h == NULL) {
            ops_err_format(errstr, errstr_size, "dlq: out of memory");
            return -1;
        }
        err = produce_copy(dlq, key, key_len, value, value_len, h);
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
            return 0; /* h now owned by the message */
        rd_kafka_headers_destroy(h);
        if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            rd_kafka_poll(dlq->rk, 10);
            continue;
        }
        if (err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE && truncated_from == 0 &&
            value_len > OPS_DLQ_TRUNCATE_BYTES) {
            truncated_from = value_len;
            value_len = OPS_DLQ_TRUNCATE_BYTES;
            continue;
        }
        break;
    }
    ops_err_format(errstr, errstr_size, "dlq: cannot queue a copy of %s [%d] @%lld: %s", topic,
                   (int)partition, (long long)offset, rd_kafka_err2str(err));
    return -1;
}

int ops_dlq_send(ops_dlq_t *dlq, const rd_kafka_message_t *msg, const char *reason, char *errstr,
                 size_t errstr_size) {
    rd_kafka_headers_t *hdrs = NULL;

    if (rd_kafka_message_headers(msg, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR)
        hdrs = NULL;
    return ops_dlq_send_parts(dlq, rd_kafka_topic_name(msg->rkt), msg->partition, msg->offset,
                              msg->key, msg->key_len, msg->payload, msg->len, hdrs, reason, errstr,
                              errstr_size);
}

void ops_dlq_poll(ops_dlq_t *dlq) {
    if (dlq != NULL && dlq->rk != NULL)
        rd_kafka_poll(dlq->rk, 0);
}

/* A fatal error of the idempotent producer (e.g. its producer id fenced)
 * makes it unusable: what was queued counts as failed, and a new producer
 * takes its place. */
int ops_dlq_flush(ops_dlq_t *dlq, int timeout_ms, char *errstr, size_t errstr_size) {
    char ferr[256];
    int rc = -1;

    if (dlq->rk == NULL) {
        ops_err_format(errstr, errstr_size,
                       "dlq: no producer (it failed fatally and could not be recreated)");
        goto cleanup;
    }
    rd_kafka_flush(dlq->rk, timeout_ms);
    if (rd_kafka_fatal_error(dlq->rk, ferr, sizeof ferr) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        ops_err_format(errstr, errstr_size, "dlq: producer failed fatally (%s); recreated", ferr);
        rd_kafka_purge(dlq->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_poll(dlq->rk, 0);
        rd_kafka_destroy(dlq->rk);
        dlq->rk = NULL;
        if (make_producer(dlq, ferr, sizeof ferr) != 0)
            ops_err_format(errstr, errstr_size,
                           "dlq: producer failed fatally and cannot be recreated: %s", ferr);
        goto cleanup;
    }
    if (rd_kafka_outq_len(dlq->rk) > 0) {
        ops_err_format(errstr, errstr_size, "dlq: %d copies still unconfirmed after %d ms",
                       rd_kafka_outq_len(dlq->rk), timeout_ms);
        goto cleanup;
    }
    if (dlq->failed > 0) {
        ops_err_format(errstr, errstr_size, "dlq: %llu copies failed: %s",
                       (unsigned long long)dlq->failed, dlq->last_error);
        goto cleanup;
    }
    rc = 0;
cleanup:
    dlq->failed = 0;
    return rc;
}

uint64_t ops_dlq_delivered(const ops_dlq_t *dlq) {
    return dlq != NULL ? dlq->delivered : 0;
}
