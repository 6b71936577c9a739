/*
 * opstream alert output: the alert producer, whose delivery reports are
 * waited for a round of alerts at a time, the duplicate-free mirror into the Redis alert stream and
 * the read-back of the alert topic used on start.
 */
#include "opstream/alert_out.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "opstream/clock.h"
#include "opstream/codec.h"
#include "opstream/consumer.h"
#include "opstream/kafka.h"
#include "opstream/keys.h"
#include "err_priv.h"

/* One alert of the round. */
typedef struct slot {
    ops_alert_out_state_t state;
    int64_t sent_ms, reported_ms; /* monotonic */
} slot_t;

struct ops_alert_out {
    const ops_config_t *cfg; /* borrowed */
    rd_kafka_t *rk;
    rd_kafka_topic_t *rkt; /* held so the topic's metadata stays known */
    ops_codec_t *codec;
    char topic[256];
    /* The round: the alerts sent since the last ops_alert_out_round, one
     * slot each. A delivery report carries its round and slot in the
     * message's opaque; a report of an earlier round (a round abandoned, a
     * producer recreated) is ignored. */
    uint32_t round;
    slot_t *slots;
    size_t n_slots, cap_slots, n_open;
    rd_kafka_resp_err_t first_err; /* of the round's first failed report */
    bool first_failed;
};

/* The message opaque of slot i of round r (64-bit pointers: both fit). */
static void *slot_opaque(uint32_t r, size_t i) {
    return (void *)(uintptr_t)(((uint64_t)r << 32) | (uint64_t)(i + 1));
}

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    ops_alert_out_t *out = opaque;
    uint64_t v = (uint64_t)(uintptr_t)m->_private;
    size_t i = (size_t)(v & 0xffffffffu);
    (void)rk;
    if ((uint32_t)(v >> 32) != out->round || i == 0 || i > out->n_slots)
        return; /* a report of an earlier round */
    slot_t *s = &out->slots[i - 1];
    if (s->state != OPS_ALERT_OUT_PENDING)
        return;
    s->state =
        m->err == RD_KAFKA_RESP_ERR_NO_ERROR ? OPS_ALERT_OUT_DELIVERED : OPS_ALERT_OUT_FAILED;
    s->reported_ms = ops_clock_mono_ms();
    out->n_open--;
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR && !out->first_failed) {
        out->first_failed = true;
        out->first_err = m->err;
    }
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
    free(out->slots);
    free(out);
}

const char *ops_alert_out_topic(const ops_alert_out_t *out) {
    return out->topic;
}

/* Every slot still open is failed: its report will never come (a producer
 * recreated) or is no longer waited for. */
static void fail_open(ops_alert_out_t *out, rd_kafka_resp_err_t err) {
    for (size_t i = 0; i < out->n_slots && out->n_open > 0; i++) {
        if (out->slots[i].state != OPS_ALERT_OUT_PENDING)
            continue;
        out->slots[i].state = OPS_ALERT_OUT_FAILED;
        out->slots[i].reported_ms = ops_clock_mono_ms();
        out->n_open--;
        if (!out->first_failed) {
            out->first_failed = true;
            out->first_err = err;
        }
    }
}

/* The idempotent producer can fail fatally (fenced producer id, sequence
 * gaps). Nothing of it is usable afterwards, so it is replaced; the alerts
 * in flight are then failed (their outcome is unknown) and the caller
 * checks them against the topic. */
static int recreate_if_fatal(ops_alert_out_t *out, char *errstr, size_t errstr_size) {
    char ferr[256];
    if (out->rk == NULL ||
        rd_kafka_fatal_error(out->rk, ferr, sizeof(ferr)) == RD_KAFKA_RESP_ERR_NO_ERROR)
        return 0;
    out->round++; /* reports the old producer gives while it goes are ignored */
    drop_producer(out);
    fail_open(out, RD_KAFKA_RESP_ERR__FATAL);
    if (make_producer(out, errstr, errstr_size) != 0) {
        drop_producer(out);
        return -1;
    }
    ops_err_format(errstr, errstr_size, "alert producer failed fatally (%s); recreated", ferr);
    return -1;
}

int ops_alert_out_send(ops_alert_out_t *out, const ops_alert_t *a, size_t *slotp, char *errstr,
                       size_t errstr_size) {
    uint8_t buf[OPS_CODEC_MAX_FRAME];
    size_t len = 0;
    if (out->rk == NULL && make_producer(out, errstr, errstr_size) != 0) {
        drop_producer(out);
        return -1;
    }
    if (ops_codec_encode_alert(out->codec, a, buf, sizeof(buf), &len, errstr, errstr_size) != 0)
        return -1;
    if (out->n_slots == out->cap_slots) {
        size_t ncap = out->cap_slots == 0 ? 64 : out->cap_slots * 2;
        slot_t *nv = realloc(out->slots, ncap * sizeof(*nv));
        if (nv == NULL) {
            ops_err_format(errstr, errstr_size, "alert output: out of memory");
            return -1;
        }
        out->slots = nv;
        out->cap_slots = ncap;
    }
    size_t i = out->n_slots;
    for (;;) {
        rd_kafka_resp_err_t err = rd_kafka_producev(
            out->rk, RD_KAFKA_V_RKT(out->rkt), RD_KAFKA_V_KEY(a->operation, strlen(a->operation)),
            RD_KAFKA_V_VALUE(buf, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_OPAQUE(slot_opaque(out->round, i)), RD_KAFKA_V_END);
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
    out->slots[i] = (slot_t){.state = OPS_ALERT_OUT_PENDING, .sent_ms = ops_clock_mono_ms()};
    out->n_slots++;
    out->n_open++;
    *slotp = i;
    return 0;
}

void ops_alert_out_poll(ops_alert_out_t *out) {
    if (out->rk != NULL && out->n_open > 0)
        rd_kafka_poll(out->rk, 0);
}

int ops_alert_out_wait(ops_alert_out_t *out, volatile sig_atomic_t *stop, int stop_grace_ms,
                       char *errstr, size_t errstr_size) {
    int64_t give_up = -1;
    while (out->n_open > 0 && out->rk != NULL) {
        rd_kafka_poll(out->rk, 20);
        if (out->n_open == 0 || stop == NULL || !*stop)
            continue;
        if (give_up < 0)
            give_up = ops_clock_mono_ms() + stop_grace_ms;
        if (ops_clock_mono_ms() >= give_up) {
            ops_err_format(errstr, errstr_size,
                           "interrupted while waiting for the delivery of %zu alerts", out->n_open);
            return -1;
        }
    }
    if (out->n_open > 0) /* no producer: their reports never come */
        fail_open(out, RD_KAFKA_RESP_ERR__DESTROY);
    if (!out->first_failed)
        return 0;
    ops_err_format(errstr, errstr_size, "alerts not delivered to %s: %s", out->topic,
                   rd_kafka_err2str(out->first_err));
    recreate_if_fatal(out, errstr, errstr_size);
    return 1;
}

ops_alert_out_state_t ops_alert_out_state(const ops_alert_out_t *out, size_t slot,
                                          int64_t *delivery_ms) {
    if (slot >= out->n_slots)
        return OPS_ALERT_OUT_FAILED;
    const slot_t *s = &out->slots[slot];
    if (delivery_ms != NULL)
        *delivery_ms = s->state == OPS_ALERT_OUT_PENDING ? -1 : s->reported_ms - s->sent_ms;
    return s->state;
}

void ops_alert_out_round(ops_alert_out_t *out) {
    out->round++;
    out->n_slots = 0;
    out->n_open = 0;
    out->first_failed = false;
    out->first_err = RD_KAFKA_RESP_ERR_NO_ERROR;
}

/*
 * KEYS[1] the stream, KEYS[2] its index (a hash: alert_id -> the id of its
 * stream entry, and "#n", the number of ids it holds); ARGV[1] MAXLEN,
 * ARGV[2] the alert_id, ARGV[3..] the field/value pairs. An alert whose id
 * the index holds and whose entry the stream still has is there already,
 * so a replayed alert is not mirrored twice: a few hash look-ups, where
 * reading the newest MAXLEN entries cost milliseconds of Redis per alert.
 * Without an index (a stream written before the index existed, or the
 * index deleted) one is built from the newest MAXLEN entries first. Once
 * the index holds twice MAXLEN ids it forgets those older than the
 * stream's first entry. Only commands of the writer's ACL
 * (config/redis-acl.conf) are used.
 */
static const char mirror_script[] =
    "local maxlen = tonumber(ARGV[1])\n"
    "local function older(a, b)\n"
    "  local am, as = string.match(a, '^(%d+)-(%d+)$')\n"
    "  local bm, bs = string.match(b, '^(%d+)-(%d+)$')\n"
    "  if am == nil or bm == nil then return false end\n"
    "  am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs)\n"
    "  return am < bm or (am == bm and as < bs)\n"
    "end\n"
    "if redis.call('EXISTS', KEYS[2]) == 0 then\n"
    "  local n = 0\n"
    "  for _, e in ipairs(redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', maxlen)) do\n"
    "    local f = e[2]\n"
    "    for i = 1, #f, 2 do\n"
    "      if f[i] == 'alert_id' then\n"
    "        if redis.call('HSET', KEYS[2], f[i + 1], e[1]) == 1 then n = n + 1 end\n"
    "        break\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "  redis.call('HSET', KEYS[2], '#n', n)\n"
    "end\n"
    "local at = redis.call('HGET', KEYS[2], ARGV[2])\n"
    "if at and string.match(at, '^%d+%-%d+$') and #redis.call('XRANGE', KEYS[1], at, at) > 0 then\n"
    "  return 0\n"
    "end\n"
    "local args = {'XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*'}\n"
    "for i = 3, #ARGV do args[#args + 1] = ARGV[i] end\n"
    "local id = redis.call(unpack(args))\n"
    "if redis.call('HSET', KEYS[2], ARGV[2], id) == 1 and\n"
    "   redis.call('HINCRBY', KEYS[2], '#n', 1) > 2 * maxlen then\n"
    "  local first = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)[1][1]\n"
    "  local all = redis.call('HGETALL', KEYS[2])\n"
    "  local n = 0\n"
    "  for i = 1, #all, 2 do\n"
    "    if all[i] ~= '#n' then\n"
    "      if older(all[i + 1], first) then\n"
    "        redis.call('HDEL', KEYS[2], all[i])\n"
    "      else\n"
    "        n = n + 1\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "  redis.call('HSET', KEYS[2], '#n', n)\n"
    "end\n"
    "return 1\n";

/* The arguments of one alert's mirror script, formatted in place. */
#define MIRROR_ARGC 35
typedef struct mirror_args {
    char key[OPS_KEY_MAX], ids_key[OPS_KEY_MAX], maxlen[16], observed[24], baseline[40],
        threshold[40];
    char ws[24], we[24], raised[24];
    char ids[OPS_ALERT_EVENT_IDS_MAX * (OPS_EVENT_ID_LEN + 1) + 1];
    const char *argv[MIRROR_ARGC];
} mirror_args_t;

static int mirror_args(const ops_alert_t *a, mirror_args_t *m, char *errstr, size_t errstr_size) {
    const char *sev = ops_severity_name(a->severity);
    if (ops_key_alerts(a->operation, m->key, sizeof(m->key)) < 0 ||
        ops_key_alert_ids(a->operation, m->ids_key, sizeof(m->ids_key)) < 0) {
        ops_err_format(errstr, errstr_size, "alert stream key too long");
        return -1;
    }
    snprintf(m->maxlen, sizeof(m->maxlen), "%d", OPS_ALERT_STREAM_MAXLEN);
    snprintf(m->observed, sizeof(m->observed), "%" PRId64, a->observed);
    snprintf(m->baseline, sizeof(m->baseline), "%.15g", a->baseline);
    snprintf(m->threshold, sizeof(m->threshold), "%.15g", a->threshold);
    snprintf(m->ws, sizeof(m->ws), "%" PRId64, a->window_start);
    snprintf(m->we, sizeof(m->we), "%" PRId64, a->window_end);
    snprintf(m->raised, sizeof(m->raised), "%" PRId64, a->raised_at);
    m->ids[0] = '\0';
    for (uint32_t i = 0; i < a->n_event_ids && i < OPS_ALERT_EVENT_IDS_MAX; i++) {
        if (i > 0)
            strcat(m->ids, ",");
        strncat(m->ids, a->event_ids[i], OPS_EVENT_ID_LEN);
    }
    const char *argv[MIRROR_ARGC] = {"EVAL",
                                     mirror_script,
                                     "2",
                                     m->key,
                                     m->ids_key,
                                     m->maxlen,
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
                                     m->observed,
                                     "baseline",
                                     m->baseline,
                                     "threshold",
                                     m->threshold,
                                     "window_start",
                                     m->ws,
                                     "window_end",
                                     m->we,
                                     "event_ids",
                                     m->ids,
                                     "summary",
                                     a->summary,
                                     "raised_at",
                                     m->raised};
    memcpy(m->argv, argv, sizeof(argv));
    return 0;
}

/* The script's answer: 1 added, 0 already there, -1 with errstr. Frees r. */
static int mirror_reply(redisReply *r, const char *key, char *errstr, size_t errstr_size) {
    int rc = -1;
    if (r == NULL)
        return -1;
    if (r->type != REDIS_REPLY_INTEGER)
        ops_err_format(errstr, errstr_size, "redis: XADD %s: %s", key,
                       r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
    else
        rc = r->integer == 1 ? 1 : 0;
    freeReplyObject(r);
    return rc;
}

int ops_alert_out_mirror(ops_redis_link_t *rc, const ops_alert_t *a, char *errstr,
                         size_t errstr_size) {
    mirror_args_t m;
    if (mirror_args(a, &m, errstr, errstr_size) != 0)
        return -1;
    /* the mirror skips ids it holds: safe to send twice */
    redisReply *r =
        ops_redis_link_command_again(rc, m.key, MIRROR_ARGC, m.argv, NULL, errstr, errstr_size);
    return mirror_reply(r, m.key, errstr, errstr_size);
}

/* Alerts per pipeline: bounds the client's buffers. */
#define MIRROR_PIPELINE 128

/* One pipeline of at most MIRROR_PIPELINE alerts: every script appended,
 * then every reply read (all of them, also after an error reply, so that
 * the link is left with nothing pending). Added ones counted in *added;
 * *answered gets the number of alerts, from the first, whose replies were
 * read. *lost is set when the one failure was a reply that could not be
 * read: the connection was gone, the link dropped it with every reply
 * still pending, and the alerts from *answered on may or may not have been
 * mirrored. */
static int mirror_pipeline(ops_redis_link_t *rc, const ops_alert_t *const *alerts, size_t n,
                           mirror_args_t *m, size_t *added, size_t *answered, bool *lost,
                           char *errstr, size_t errstr_size) {
    char e[512];
    int rc_out = 0;
    size_t appended = 0;
    *answered = 0;
    *lost = false;
    for (size_t i = 0; i < n; i++) {
        if (mirror_args(alerts[i], &m[i], errstr, errstr_size) != 0) {
            rc_out = -1;
            break;
        }
        if (ops_redis_link_append(rc, m[i].key, MIRROR_ARGC, m[i].argv, NULL, errstr,
                                  errstr_size) != 0) {
            rc_out = -1;
            break;
        }
        appended++;
    }
    for (size_t i = 0; i < appended && ops_redis_link_pending(rc) > 0; i++) {
        redisReply *reply = ops_redis_link_reply(rc, e, sizeof(e));
        if (reply == NULL) {
            if (rc_out == 0) /* else an earlier failure is the one to report */
                ops_err_format(errstr, errstr_size, "%s", e);
            *lost = rc_out == 0;
            return -1;
        }
        int r = mirror_reply(reply, m[i].key, e, sizeof(e));
        if (r < 0 && rc_out == 0) {
            ops_err_format(errstr, errstr_size, "%s", e);
            rc_out = -1;
        }
        if (r == 1)
            (*added)++;
        (*answered)++;
    }
    return rc_out;
}

/*
 * A connection found gone while a pipeline's replies are read (Redis
 * restarted, an idle disconnect, CLIENT KILL since the last round) costs
 * no error: the alerts not answered are sent once more, at once, on the
 * connection the link makes afresh, as ops_redis_link_command_again does
 * for one command. The scripts skip the ids the stream holds, so those
 * that ran before the connection went are not mirrored twice; each script
 * carries its source (EVAL), so a restarted Redis needs nothing loaded
 * first. A failure of the second try, or a connection lost again later in
 * the same call, is the caller's.
 */
int ops_alert_out_mirror_many(ops_redis_link_t *rc, const ops_alert_t *const *alerts, size_t n,
                              char *errstr, size_t errstr_size) {
    mirror_args_t *m = calloc(n < MIRROR_PIPELINE ? (n > 0 ? n : 1) : MIRROR_PIPELINE, sizeof(*m));
    size_t added = 0, at = 0;
    bool again = true;
    int rc_out = 0;
    if (m == NULL) {
        ops_err_format(errstr, errstr_size, "alert mirror: out of memory");
        return -1;
    }
    while (at < n && rc_out == 0) {
        size_t k = n - at < MIRROR_PIPELINE ? n - at : MIRROR_PIPELINE, answered = 0;
        bool lost = false;
        rc_out =
            mirror_pipeline(rc, alerts + at, k, m, &added, &answered, &lost, errstr, errstr_size);
        if (lost && again && ops_redis_link_pending(rc) == 0) { /* lost: rc_out is -1 */
            again = false;
            rc_out = 0;
            at += answered;
            continue;
        }
        at += k;
    }
    free(m);
    return rc_out == 0 ? (int)added : -1;
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
