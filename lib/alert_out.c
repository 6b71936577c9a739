/*
 * opstream alert output: the alert producer with synchronous delivery
 * confirmation, the duplicate-free mirror into the Redis alert stream and
 * the read-back of the alert topic used on start.
 */
#include "opstream/alert_out.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "opstream/codec.h"
#include "opstream/consumer.h"
#include "opstream/kafka.h"
#include "opstream/keys.h"
#include "err_priv.h"

struct ops_alert_out {
    const ops_config_t *cfg; /* borrowed */
    rd_kafka_t *rk;
    rd_kafka_topic_t *rkt; /* held so the topic's metadata stays known */
    ops_codec_t *codec;
    char topic[256];
    /* delivery report of the one message in flight */
    bool dr_done;
    rd_kafka_resp_err_t dr_err;
};

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    ops_alert_out_t *out = opaque;
    (void)rk;
    out->dr_done = true;
    out->dr_err = m->err;
}

static int alerts_topic(const ops_config_t *cfg, char *buf, size_t size) {
    const char *prefix = ops_config_get(cfg, "opstream.topic.prefix");
    int n = snprintf(buf, size, "%salerts", prefix != NULL ? prefix : "opstream.");
    return n < 0 || (size_t)n >= size ? -1 : 0;
}

/*
 * Creates the producer and learns the alert topic's partitions right away:
 * librdkafka otherwise looks up a topic it has not seen on its next
 * periodic scan, up to a second after the first alert, which is most of
 * the latency budget of an alert. A failed lookup here only costs that.
 */
static int make_producer(ops_alert_out_t *out, char *errstr, size_t errstr_size) {
    const rd_kafka_metadata_t *md = NULL;
    out->rk = ops_kafka_producer_new(out->cfg, dr_cb, out, errstr, errstr_size);
    if (out->rk == NULL)
        return -1;
    out->rkt = rd_kafka_topic_new(out->rk, out->topic, NULL);
    if (out->rkt == NULL) {
        ops_err_format(errstr, errstr_size, "topic %s: %s", out->topic,
                       rd_kafka_err2str(rd_kafka_last_error()));
        return -1;
    }
    if (rd_kafka_metadata(out->rk, 0, out->rkt, &md, 1500) == RD_KAFKA_RESP_ERR_NO_ERROR)
        rd_kafka_metadata_destroy(md);
    return 0;
}

static void drop_producer(ops_alert_out_t *out) {
    if (out->rkt != NULL)
        rd_kafka_topic_destroy(out->rkt);
    out->rkt = NULL;
    if (out->rk != NULL)
        rd_kafka_destroy(out->rk);
    out->rk = NULL;
}

ops_alert_out_t *ops_alert_out_new(const ops_config_t *cfg, char *errstr, size_t errstr_size) {
    ops_alert_out_t *out = calloc(1, sizeof(*out));
    if (out == NULL) {
        ops_err_format(errstr, errstr_size, "alert output: out of memory");
        goto fail;
    }
    out->cfg = cfg;
    if (alerts_topic(cfg, out->topic, sizeof(out->topic)) != 0) {
        ops_err_format(errstr, errstr_size, "alert output: topic prefix too long");
        goto fail;
    }
    out->codec = ops_codec_new(NULL, errstr, errstr_size);
    if (out->codec == NULL)
        goto fail;
    if (make_producer(out, errstr, errstr_size) != 0)
        goto fail;
    return out;
fail:
    ops_alert_out_destroy(out);
    return NULL;
}

void ops_alert_out_destroy(ops_alert_out_t *out) {
    if (out == NULL)
        return;
    if (out->rk != NULL)
        rd_kafka_flush(out->rk, 5000);
    drop_producer(out);
    ops_codec_destroy(out->codec);
    free(out);
}

const char *ops_alert_out_topic(const ops_alert_out_t *out) {
    return out->topic;
}

/* The idempotent producer can fail fatally (fenced producer id, sequence
 * gaps). Nothing of it is usable afterwards, so it is replaced; the alert in
 * flight is then retried by the caller. */
static int recreate_if_fatal(ops_alert_out_t *out, char *errstr, size_t errstr_size) {
    char ferr[256];
    if (rd_kafka_fatal_error(out->rk, ferr, sizeof(ferr)) == RD_KAFKA_RESP_ERR_NO_ERROR)
        return 0;
    drop_producer(out);
    if (make_producer(out, errstr, errstr_size) != 0) {
        drop_producer(out);
        return -1;
    }
    ops_err_format(errstr, errstr_size, "alert producer failed fatally (%s); recreated", ferr);
    return -1;
}

int ops_alert_out_publish(ops_alert_out_t *out, const ops_alert_t *a, volatile sig_atomic_t *stop,
                          char *errstr, size_t errstr_size) {
    uint8_t buf[OPS_CODEC_MAX_FRAME];
    size_t len = 0;
    if (out->rk == NULL && make_producer(out, errstr, errstr_size) != 0) {
        drop_producer(out);
        return -1;
    }
    if (ops_codec_encode_alert(out->codec, a, buf, sizeof(buf), &len, errstr, errstr_size) != 0)
        return -1;
    out->dr_done = false;
    out->dr_err = RD_KAFKA_RESP_ERR_NO_ERROR;
    for (;;) {
        rd_kafka_resp_err_t err = rd_kafka_producev(
            out->rk, RD_KAFKA_V_RKT(out->rkt), RD_KAFKA_V_KEY(a->operation, strlen(a->operation)),
            RD_KAFKA_V_VALUE(buf, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
            break;
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            ops_err_format(errstr, errstr_size, "produce to %s: %s", out->topic,
                           rd_kafka_err2str(err));
            recreate_if_fatal(out, errstr, errstr_size);
            return -1;
        }
        rd_kafka_poll(out->rk, 50);
    }
    /* flush-per-alert: poll until this message's report */
    while (!out->dr_done) {
        rd_kafka_poll(out->rk, 20);
        if (stop != NULL && *stop && !out->dr_done) {
            ops_err_format(errstr, errstr_size, "interrupted while waiting for the delivery of %s",
                           a->alert_id);
            return -1;
        }
    }
    if (out->dr_err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        ops_err_format(errstr, errstr_size, "alert %s not delivered to %s: %s", a->alert_id,
                       out->topic, rd_kafka_err2str(out->dr_err));
        recreate_if_fatal(out, errstr, errstr_size);
        return -1;
    }
    return 0;
}

/* KEYS[1] the stream; ARGV[1] MAXLEN, ARGV[2] the alert_id, ARGV[3..] the
 * field/value pairs. Looks for the id among the newest MAXLEN entries first,
 * so a replayed alert is not mirrored twice. */
static const char mirror_script[] =
    "local ents = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', ARGV[1])\n"
    "for _, e in ipairs(ents) do\n"
    "  local f = e[2]\n"
    "  for i = 1, #f, 2 do\n"
    "    if f[i] == 'alert_id' and f[i + 1] == ARGV[2] then return 0 end\n"
    "  end\n"
    "end\n"
    "local args = {'XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*'}\n"
    "for i = 3, #ARGV do args[#args + 1] = ARGV[i] end\n"
    "redis.call(unpack(args))\n"
    "return 1\n";

int ops_alert_out_mirror(ops_redis_link_t *rc, const ops_alert_t *a, char *errstr,
                         size_t errstr_size) {
    char key[OPS_KEY_MAX], maxlen[16], observed[24], baseline[40], threshold[40];
    char ws[24], we[24], raised[24];
    char ids[OPS_ALERT_EVENT_IDS_MAX * (OPS_EVENT_ID_LEN + 1) + 1] = "";
    const char *sev = ops_severity_name(a->severity);
    if (ops_key_alerts(a->operation, key, sizeof(key)) < 0) {
        ops_err_format(errstr, errstr_size, "alert stream key too long");
        return -1;
    }
    snprintf(maxlen, sizeof(maxlen), "%d", OPS_ALERT_STREAM_MAXLEN);
    snprintf(observed, sizeof(observed), "%" PRId64, a->observed);
    snprintf(baseline, sizeof(baseline), "%.15g", a->baseline);
    snprintf(threshold, sizeof(threshold), "%.15g", a->threshold);
    snprintf(ws, sizeof(ws), "%" PRId64, a->window_start);
    snprintf(we, sizeof(we), "%" PRId64, a->window_end);
    snprintf(raised, sizeof(raised), "%" PRId64, a->raised_at);
    for (uint32_t i = 0; i < a->n_event_ids && i < OPS_ALERT_EVENT_IDS_MAX; i++) {
        if (i > 0)
            strcat(ids, ",");
        strncat(ids, a->event_ids[i], OPS_EVENT_ID_LEN);
    }
    const char *argv[] = {"EVAL",
                          mirror_script,
                          "1",
                          key,
                          maxlen,
                          a->alert_id,
                          "alert_id",
                          a->alert_id,
                          "operation",
                          a->operation,
                          "country",
                          a->has_country ? a->country : "",
                          "rule",
                          a->rule,
                          "metric",
                          a->metric,
                          "severity",
                          sev != NULL ? sev : "",
                          "observed",
                          observed,
                          "baseline",
                          baseline,
                          "threshold",
                          threshold,
                          "window_start",
                          ws,
                          "window_end",
                          we,
                          "event_ids",
                          ids,
                          "summary",
                          a->summary,
                          "raised_at",
                          raised};
    int argc = (int)(sizeof(argv) / sizeof(argv[0]));
    /* the mirror skips ids it holds: safe to send twice */
    redisReply *r =
        ops_redis_link_command_again(rc, key, argc, argv, NULL, errstr, errstr_size);
    int rc_out = -1;
    if (r == NULL)
        goto cleanup;
    if (r->type != REDIS_REPLY_INTEGER) {
        ops_err_format(errstr, errstr_size, "redis: XADD %s: %s", key,
                       r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
        goto cleanup;
    }
    rc_out = r->integer == 1 ? 1 : 0;
cleanup:
    if (r != NULL)
        freeReplyObject(r);
    return rc_out;
}

/* ---- reading the alert topic back ---------------------------------------- */

typedef struct readback {
    ops_codec_t *codec;
    int (*fn)(const ops_alert_t *a, void *opaque);
    void *opaque;
    size_t undecodable;
} readback_t;

static int readback_one(const rd_kafka_message_t *m, void *opaque) {
    readback_t *rb = opaque;
    ops_alert_t a;
    char derr[256];

    if (m->payload == NULL || ops_codec_decode_alert(rb->codec, m->payload, m->len, &a, derr,
                                                     sizeof(derr)) != OPS_CODEC_OK) {
        rb->undecodable++;
        return 0;
    }
    return rb->fn(&a, rb->opaque);
}

int ops_alert_topic_read(const ops_config_t *cfg, int (*fn)(const ops_alert_t *a, void *opaque),
                         void *opaque, int timeout_ms, volatile sig_atomic_t *stop,
                         size_t *undecodablep, char *errstr, size_t errstr_size) {
    char topic[256];
    readback_t rb = {.fn = fn, .opaque = opaque};
    int rc = -1;

    if (alerts_topic(cfg, topic, sizeof(topic)) != 0) {
        ops_err_format(errstr, errstr_size, "alert topic name too long");
        goto cleanup;
    }
    rb.codec = ops_codec_new(NULL, errstr, errstr_size);
    if (rb.codec == NULL)
        goto cleanup;
    rc = ops_consumer_read_to_end(cfg, topic, readback_one, &rb, timeout_ms, stop, errstr,
                                  errstr_size);
cleanup:
    if (undecodablep != NULL)
        *undecodablep = rb.undecodable;
    ops_codec_destroy(rb.codec);
    return rc;
}
