/*
 * opstream produce path: encode, produce keyed by country, and account for
 * every record through its delivery report. Records in flight live in a
 * fixed pool of slots (the message opaque), each holding the encoded frame,
 * which bounds memory and lets a producer that failed fatally be replaced
 * and its unconfirmed records sent again, the same bytes with the same
 * event_id.
 */
#include "opstream/produce.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <librdkafka/rdkafka.h>

#include "opstream/codec.h"
#include "opstream/kafka.h"
#include "opstream/metrics.h"
#include "opstream/clock.h"

#define DEFAULT_MAX_IN_FLIGHT 16384
#define DEFAULT_MAX_RECREATE 3
#define POLL_MS 100
#define DEFAULT_CONNECT_TIMEOUT_S 10
#define SERVE_EVERY 16 /* sends between two polls for delivery reports */

/* Frames of up to OPS_PRODUCE_INLINE_FRAME_MAX bytes (produce.h) are kept
 * inside their slot, larger ones in the slot's heap buffer. Either way
 * librdkafka gets the frame without copying it: the frame outlives the
 * message (a slot is reused only after its delivery report, and the heap
 * buffers are freed after librdkafka is). 192 makes a slot four cache lines
 * (the bookkeeping in the first); the simulator's frames are 117 bytes on
 * average. */

/* A record in flight: what is needed to send it again (frame, topic, key)
 * and to report it (where it came from). Not the event itself: copying the
 * whole ops_event_t into a slot cost more per record than encoding it; the
 * callbacks get the event decoded back from the frame. */
typedef struct slot {
    /* frames longer than OPS_PRODUCE_INLINE_FRAME_MAX: kept while the slot
     * is reused and freed only after librdkafka is gone (a purged message
     * may still be read by it after the slot was released) */
    _Alignas(64) unsigned char *heap;
    size_t heap_cap;
    size_t len;
    const char *file;
    long line;
    ops_kind_t kind;
    char key[3]; /* the event's country */
    unsigned char key_len;
    unsigned char used;
    unsigned char resend; /* unconfirmed when its producer failed fatally */
    unsigned char inline_frame[OPS_PRODUCE_INLINE_FRAME_MAX];
} slot_t;

struct ops_produce {
    ops_produce_options_t opts;
    rd_kafka_conf_t *conf_tmpl; /* kept to recreate the producer */
    rd_kafka_t *rk;
    rd_kafka_topic_t *rkt[OPS_KIND_COUNT]; /* of rk, opened on first use */
    ops_codec_t *codec;
    char prefix[64];
    slot_t *slots;
    size_t *free_stack;
    size_t n_free;
    size_t n_slots;
    int recovering;             /* delivery errors mean "send again" while set */
    int dead;                   /* fatal and no recreation left, or abandoned */
    const char *abandon_reason; /* set while abandoning */
    int reached;
    int unreachable;       /* no broker reached within the connect timeout */
    int connect_s;         /* opstream.connect.timeout.s */
    int64_t connect_by_ms; /* monotonic deadline for reaching a broker */
    ops_produce_stats_t st;
    ops_metrics_produced_t m; /* opstream_produced_total: delivered, failed */
    unsigned unserved;        /* sends since the last serve */
    char brokers[256];        /* bootstrap.servers, for messages */
    char last_error[512];
    char fatal_reason[512];
    ops_event_t scratch; /* a slot's event decoded for a callback */
    unsigned char frame[OPS_CODEC_MAX_FRAME];
};

static void notice(ops_produce_t *p, const char *fmt, ...) {
    char msg[768];
    va_list ap;
    if (p->opts.on_notice == NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    p->opts.on_notice(p->opts.opaque, msg);
}

static const unsigned char *slot_frame(const slot_t *s) {
    return s->len > OPS_PRODUCE_INLINE_FRAME_MAX ? s->heap : s->inline_frame;
}

static void slot_release(ops_produce_t *p, slot_t *s) {
    s->used = 0;
    s->resend = 0;
    p->free_stack[p->n_free++] = (size_t)(s - p->slots);
    p->st.in_flight--;
}

/* A count the codec's reader refuses (outside 0..OPS_COUNT_MAX): such a
 * record would reach every consumer's DLQ, and its frame could not be
 * decoded back for the callbacks; it is refused here with the caller's
 * event instead. */
static bool outside_model(const ops_event_t *ev, char *errstr, size_t errstr_size) {
    const struct {
        const char *name;
        int32_t v;
    } f[] = {{"count", ev->count}, {"minors", ev->minors}, {"referred", ev->referred}};

    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        if (f[i].v < 0 || f[i].v > OPS_COUNT_MAX) {
            snprintf(errstr, errstr_size, "%s %d is outside 0..%d", f[i].name, (int)f[i].v,
                     OPS_COUNT_MAX);
            return true;
        }
    return false;
}

/* The slot's event for a callback, decoded from its frame into the scratch
 * event (valid until the next call). The frame is this codec's own
 * encoding of an event within the model (outside_model), so it decodes to
 * the event that was sent; should it not, the event is given with its kind
 * and country only. */
static const ops_event_t *slot_event(ops_produce_t *p, const slot_t *s) {
    char err[256];
    if (ops_codec_decode_event(p->codec, slot_frame(s), s->len, &p->scratch, err, sizeof(err)) !=
        OPS_CODEC_OK) {
        ops_event_init(&p->scratch);
        p->scratch.kind = s->kind;
        memcpy(p->scratch.country, s->key, sizeof(s->key));
    }
    return &p->scratch;
}

/* A failure of a record that never got a slot, told with the caller's
 * event. */
static void report_failed_event(ops_produce_t *p, const ops_event_t *ev, const char *file,
                                long line, const char *reason) {
    p->st.failed++;
    ops_metrics_add(p->m.failed, 1);
    if (p->opts.on_failed)
        p->opts.on_failed(p->opts.opaque, ev, file, line, reason);
}

static void report_failed(ops_produce_t *p, slot_t *s, const char *reason) {
    report_failed_event(p, p->opts.on_failed ? slot_event(p, s) : NULL, s->file, s->line, reason);
    slot_release(p, s);
}

static int can_recreate(const ops_produce_t *p) {
    return !p->dead && p->opts.max_recreate > 0 && p->st.recreated < p->opts.max_recreate;
}

/* Delivery report: the only place a record becomes delivered. During a
 * fatal-error recovery every error (purged, fatal) marks the slot to be
 * sent again by the next producer instead of failing it. */
static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    ops_produce_t *p = opaque;
    slot_t *s = m->_private;
    if (s == NULL || !s->used)
        return;
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        p->reached = 1;
        p->st.delivered++;
        ops_metrics_add(p->m.delivered, 1);
        if (p->opts.on_delivered)
            p->opts.on_delivered(p->opts.opaque, slot_event(p, s));
        slot_release(p, s);
        return;
    }
    if (m->err > 0)
        p->reached = 1; /* a broker answered */
    if (p->abandon_reason != NULL) {
        report_failed(p, s, p->abandon_reason);
        return;
    }
    if (p->recovering ||
        (can_recreate(p) && rd_kafka_fatal_error(rk, NULL, 0) != RD_KAFKA_RESP_ERR_NO_ERROR)) {
        s->resend = 1;
        return;
    }
    report_failed(p, s, rd_kafka_err2str(m->err));
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque) {
    ops_produce_t *p = opaque;
    (void)rk;
    snprintf(p->last_error, sizeof(p->last_error), "%s", reason);
    if (err == RD_KAFKA_RESP_ERR__FATAL)
        snprintf(p->fatal_reason, sizeof(p->fatal_reason), "%s", reason);
}

/* librdkafka logs from its own threads; the program decides what to show. */
static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
    const ops_produce_t *p = rd_kafka_opaque(rk);
    if (p != NULL && p->opts.on_log != NULL)
        p->opts.on_log(p->opts.opaque, level, fac, buf);
}

static int has_brokers(rd_kafka_conf_t *conf) {
    char buf[16] = "";
    size_t sz = sizeof(buf);
    if (rd_kafka_conf_get(conf, "bootstrap.servers", buf, &sz) == RD_KAFKA_CONF_OK && sz > 1)
        return 1;
    sz = sizeof(buf);
    return rd_kafka_conf_get(conf, "test.mock.num.brokers", buf, &sz) == RD_KAFKA_CONF_OK &&
           sz > 1 && strcmp(buf, "0") != 0;
}

/* A producer from the kept template (rd_kafka_new consumes its conf, so
 * each producer gets a copy). */
static rd_kafka_t *new_rk(ops_produce_t *p, char *errstr, size_t errstr_size) {
    char kerr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_dup(p->conf_tmpl);
    rd_kafka_t *rk;
    if (conf == NULL) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, kerr, sizeof(kerr));
    if (rk == NULL) {
        rd_kafka_conf_destroy(conf);
        snprintf(errstr, errstr_size, "cannot create the Kafka producer: %s", kerr);
    }
    return rk;
}

ops_produce_t *ops_produce_new(const ops_config_t *cfg, const ops_produce_options_t *opts,
                               char *errstr, size_t errstr_size) {
    ops_produce_t *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    if (opts != NULL)
        p->opts = *opts;
    if (p->opts.max_in_flight == 0)
        p->opts.max_in_flight = DEFAULT_MAX_IN_FLIGHT;
    if (p->opts.max_recreate == 0)
        p->opts.max_recreate = DEFAULT_MAX_RECREATE;
    const char *prefix = ops_config_get(cfg, "opstream.topic.prefix");
    snprintf(p->prefix, sizeof(p->prefix), "%s", prefix ? prefix : "opstream.");
    if (ops_metrics_produced_init(p->opts.metrics, &p->m, errstr, errstr_size) != 0)
        goto fail;
    const char *bs = ops_config_get(cfg, "bootstrap.servers");
    snprintf(p->brokers, sizeof(p->brokers), "%s", bs ? bs : "");
    int64_t connect_s = ops_config_get_int(cfg, "opstream.connect.timeout.s");
    p->connect_s = connect_s > 0 ? (int)connect_s : DEFAULT_CONNECT_TIMEOUT_S;
    p->connect_by_ms = ops_clock_mono_ms() + (int64_t)p->connect_s * 1000;

    p->n_slots = p->opts.max_in_flight;
    if (p->n_slots > SIZE_MAX / sizeof(*p->slots)) {
        snprintf(errstr, errstr_size, "max_in_flight %zu is too large", p->n_slots);
        goto fail;
    }
    /* slot-aligned, so a slot's bookkeeping is one cache line */
    p->slots = aligned_alloc(_Alignof(slot_t), p->n_slots * sizeof(*p->slots));
    if (p->slots != NULL)
        memset(p->slots, 0, p->n_slots * sizeof(*p->slots));
    p->free_stack = calloc(p->n_slots, sizeof(*p->free_stack));
    if (p->slots == NULL || p->free_stack == NULL) {
        snprintf(errstr, errstr_size, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < p->n_slots; i++)
        p->free_stack[i] = p->n_slots - 1 - i;
    p->n_free = p->n_slots;

    p->codec = ops_codec_new(NULL, errstr, errstr_size);
    if (p->codec == NULL)
        goto fail;
    p->conf_tmpl = ops_kafka_conf_new(cfg, OPS_KAFKA_PRODUCER, errstr, errstr_size);
    if (p->conf_tmpl == NULL)
        goto fail;
    if (!has_brokers(p->conf_tmpl)) {
        snprintf(errstr, errstr_size, "no brokers: use -b, OPSTREAM_BROKERS or bootstrap.servers");
        goto fail;
    }
    rd_kafka_conf_set_dr_msg_cb(p->conf_tmpl, dr_cb);
    rd_kafka_conf_set_error_cb(p->conf_tmpl, error_cb);
    rd_kafka_conf_set_log_cb(p->conf_tmpl, log_cb);
    rd_kafka_conf_set_opaque(p->conf_tmpl, p);
    p->rk = new_rk(p, errstr, errstr_size);
    if (p->rk == NULL)
        goto fail;
    return p;
fail:
    ops_produce_destroy(p);
    return NULL;
}

static int aborted(const ops_produce_t *p) {
    return p->opts.abort != NULL && *p->opts.abort;
}

static int stopped(const ops_produce_t *p) {
    return aborted(p) || (p->opts.stop != NULL && *p->opts.stop);
}

/* Closes the topic handles of the current producer (before it is
 * destroyed or replaced). */
static void close_topics(ops_produce_t *p) {
    for (int k = 0; k < OPS_KIND_COUNT; k++) {
        if (p->rkt[k] != NULL)
            rd_kafka_topic_destroy(p->rkt[k]);
        p->rkt[k] = NULL;
    }
}

/* The current producer's handle of a kind's topic, opened once: naming the
 * topic on every record would format and look it up each time. */
static rd_kafka_topic_t *kind_topic(ops_produce_t *p, ops_kind_t kind, char *errstr,
                                    size_t errstr_size) {
    char topic[128];
    if ((int)kind < 0 || kind >= OPS_KIND_COUNT ||
        ops_topic_name(p->prefix, kind, topic, sizeof(topic)) != 0) {
        snprintf(errstr, errstr_size, "topic name too long");
        return NULL;
    }
    if (p->rkt[kind] == NULL && (p->rkt[kind] = rd_kafka_topic_new(p->rk, topic, NULL)) == NULL)
        snprintf(errstr, errstr_size, "cannot open topic %s: %s", topic,
                 rd_kafka_err2str(rd_kafka_last_error()));
    return p->rkt[kind];
}

/* Encodes ev into slot s: the frame inline when it fits, else in a heap
 * copy. Returns 0, or -1 with errstr (encoding failed, out of memory). */
static int slot_fill(ops_produce_t *p, slot_t *s, const ops_event_t *ev, char *errstr,
                     size_t errstr_size) {
    size_t len = 0;
    if (ops_codec_encode_event(p->codec, ev, p->frame, sizeof(p->frame), &len, errstr,
                               errstr_size) != 0)
        return -1;
    if (len <= sizeof(s->inline_frame)) {
        memcpy(s->inline_frame, p->frame, len);
    } else {
        if (len > s->heap_cap) {
            unsigned char *h = realloc(s->heap, len);
            if (h == NULL) {
                snprintf(errstr, errstr_size, "out of memory");
                return -1;
            }
            s->heap = h;
            s->heap_cap = len;
        }
        memcpy(s->heap, p->frame, len);
    }
    s->len = len;
    s->kind = ev->kind;
    s->key_len = (unsigned char)strnlen(ev->country, sizeof(s->key) - 1);
    memcpy(s->key, ev->country, s->key_len);
    s->key[s->key_len] = '\0';
    return 0;
}

/* Hands one slot's frame to the current producer, as it is: a first send
 * and a re-send after a fatal error send the same bytes. Waits while
 * librdkafka's own queue is full. Returns the produce error (0 when
 * queued). */
static rd_kafka_resp_err_t produce_slot(ops_produce_t *p, slot_t *s, char *errstr,
                                        size_t errstr_size) {
    rd_kafka_topic_t *rkt = p->rkt[s->kind];
    rd_kafka_resp_err_t err;

    if (rkt == NULL && (rkt = kind_topic(p, s->kind, errstr, errstr_size)) == NULL)
        return RD_KAFKA_RESP_ERR__INVALID_ARG;
    for (;;) {
        /* flags 0: no copy, the slot holds the frame until the delivery
         * report; the key is copied by librdkafka */
        if (rd_kafka_produce(rkt, RD_KAFKA_PARTITION_UA, 0, (void *)slot_frame(s), s->len, s->key,
                             s->key_len, s) == 0)
            return RD_KAFKA_RESP_ERR_NO_ERROR;
        err = rd_kafka_last_error();
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL || aborted(p))
            break;
        rd_kafka_poll(p->rk, POLL_MS);
    }
    snprintf(errstr, errstr_size, "%s", rd_kafka_err2str(err));
    return err;
}

/* The idempotent producer failed fatally (e.g. the broker lost its
 * sequence state): it cannot send anything any more. Collect the reports of
 * everything it held, replace it, and send the unconfirmed records again.
 * They keep their event_id, so a record that did reach the topic before the
 * failure is absorbed by the consumers' dedupe. */
static void recover(ops_produce_t *p) {
    char reason[512], errstr[512];
    rd_kafka_t *old = p->rk;
    size_t n_resend = 0;

    if (rd_kafka_fatal_error(old, reason, sizeof(reason)) == RD_KAFKA_RESP_ERR_NO_ERROR)
        return;
    if (p->dead)
        return;
    snprintf(p->fatal_reason, sizeof(p->fatal_reason), "%s", reason);
    if (!can_recreate(p)) {
        notice(p, "producer failed fatally: %s; not recreating it (again)", reason);
        p->dead = 1;
        for (size_t i = 0; i < p->n_slots; i++)
            if (p->slots[i].used && p->slots[i].resend)
                report_failed(p, &p->slots[i], reason);
        return;
    }
    /* Collect the reports of what the old producer held (bounded wait). */
    p->recovering = 1;
    rd_kafka_purge(old, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    for (int i = 0; i < 50 && rd_kafka_outq_len(old) > 0; i++)
        rd_kafka_poll(old, POLL_MS);
    rd_kafka_poll(old, 0);
    p->rk = new_rk(p, errstr, sizeof(errstr));
    if (p->rk == NULL) {
        p->rk = old; /* its topic handles stay */
        p->recovering = 0;
        p->dead = 1;
        notice(p, "producer failed fatally: %s; recreating it failed: %s", reason, errstr);
        for (size_t i = 0; i < p->n_slots; i++)
            if (p->slots[i].used)
                report_failed(p, &p->slots[i], reason);
        return;
    }
    close_topics(p); /* the handles of old */
    rd_kafka_destroy(old);
    p->recovering = 0;
    p->st.recreated++;
    /* Every record still in a slot was held by the old producer and never
     * confirmed. */
    for (size_t i = 0; i < p->n_slots; i++) {
        if (p->slots[i].used) {
            p->slots[i].resend = 1;
            n_resend++;
        }
    }
    notice(p, "producer failed fatally: %s; recreated it, re-sending %zu unconfirmed records",
           reason, n_resend);
    for (size_t i = 0; i < p->n_slots; i++) {
        slot_t *s = &p->slots[i];
        if (!s->used || !s->resend)
            continue;
        s->resend = 0;
        if (produce_slot(p, s, errstr, sizeof(errstr)) != RD_KAFKA_RESP_ERR_NO_ERROR)
            report_failed(p, s, errstr);
    }
}

/* No broker answered within opstream.connect.timeout.s: say so once, in
 * words, and fail what is held (each record reported with where it came
 * from). Everything sent later fails at once with the same reason, so a
 * wrong address ends the run in seconds instead of message.timeout.ms. */
static void give_up_connecting(ops_produce_t *p) {
    char reason[sizeof(p->fatal_reason) + 16];
    p->unreachable = 1;
    snprintf(p->fatal_reason, sizeof(p->fatal_reason), "brokers %s not reachable", p->brokers);
    notice(p, "cannot reach the brokers at %s within %d s (%s); giving up", p->brokers,
           p->connect_s, p->last_error[0] != '\0' ? p->last_error : "no answer");
    snprintf(reason, sizeof(reason), "not sent: %s", p->fatal_reason);
    ops_produce_abandon(p, reason);
}

static void serve(ops_produce_t *p, int timeout_ms) {
    rd_kafka_poll(p->rk, timeout_ms);
    if (rd_kafka_fatal_error(p->rk, NULL, 0) != RD_KAFKA_RESP_ERR_NO_ERROR)
        recover(p);
    /* A metadata answer (the controller id is known) means a broker is up,
     * records or not. */
    if (!p->reached && rd_kafka_controllerid(p->rk, 0) >= 0)
        p->reached = 1;
    if (!p->reached && !p->dead && ops_clock_mono_ms() >= p->connect_by_ms)
        give_up_connecting(p);
}

int ops_produce_send(ops_produce_t *p, const ops_event_t *ev, const char *file, long line,
                     char *errstr, size_t errstr_size) {
    slot_t *s;
    rd_kafka_resp_err_t err;

    while (p->n_free == 0 && !stopped(p))
        serve(p, POLL_MS);
    if (p->n_free == 0) {
        snprintf(errstr, errstr_size, "interrupted before it could be sent");
        report_failed_event(p, ev, file, line, errstr);
        return -1;
    }
    if (p->dead) {
        if (p->unreachable)
            snprintf(errstr, errstr_size, "not sent: %s", p->fatal_reason);
        else
            snprintf(errstr, errstr_size, "producer failed fatally: %s", p->fatal_reason);
        report_failed_event(p, ev, file, line, errstr);
        return -1;
    }
    if ((int)ev->kind < 0 || ev->kind >= OPS_KIND_COUNT) {
        snprintf(errstr, errstr_size, "kind %d is not an event kind", (int)ev->kind);
        report_failed_event(p, ev, file, line, errstr);
        return -1;
    }
    if (outside_model(ev, errstr, errstr_size)) {
        report_failed_event(p, ev, file, line, errstr);
        return -1;
    }
    s = &p->slots[p->free_stack[p->n_free - 1]];
    if (slot_fill(p, s, ev, errstr, errstr_size) != 0) {
        report_failed_event(p, ev, file, line, errstr);
        return -1;
    }
    p->n_free--;
    s->file = file;
    s->line = line;
    s->used = 1;
    s->resend = 0;
    p->st.in_flight++;
    err = produce_slot(p, s, errstr, errstr_size);
    if (err == RD_KAFKA_RESP_ERR__FATAL && can_recreate(p)) {
        s->resend = 1; /* the recovery below sends it again */
        p->st.sent++;
        recover(p);
        return 0;
    }
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        report_failed(p, s, errstr);
        return -1;
    }
    p->st.sent++;
    /* Delivery reports and the fatal-error and connect checks every
     * SERVE_EVERY sends (and whenever the slots run out, above): a poll per
     * record was a lock round trip per record. */
    if (++p->unserved >= SERVE_EVERY) {
        p->unserved = 0;
        serve(p, 0);
    }
    return 0;
}

void ops_produce_poll(ops_produce_t *p, int timeout_ms) {
    serve(p, timeout_ms);
}

/* rd_kafka_flush in short steps so that an abort is noticed and a fatal
 * error is recovered from while waiting. */
int ops_produce_flush(ops_produce_t *p, int timeout_ms) {
    int64_t deadline = timeout_ms < 0 ? -1 : ops_clock_mono_ms() + timeout_ms;
    while (p->st.in_flight > 0) {
        if (aborted(p))
            return -1;
        if (deadline >= 0 && ops_clock_mono_ms() >= deadline)
            return -1;
        rd_kafka_flush(p->rk, POLL_MS);
        serve(p, 0);
    }
    return 0;
}

/* The final flush is bounded once a stop is asked for: a program must end
 * within seconds of SIGTERM even when no broker answers, and whatever is
 * still unconfirmed then is reported failed, never dropped silently. */
int ops_produce_finish(ops_produce_t *p, int grace_ms, void (*tick)(void *opaque)) {
    int64_t stop_by = -1;
    while (ops_produce_flush(p, POLL_MS) != 0) {
        if (tick != NULL)
            tick(p->opts.opaque);
        if (stopped(p) && stop_by < 0) {
            stop_by = ops_clock_mono_ms() + grace_ms;
            if (p->st.in_flight > 0 && !aborted(p))
                notice(p, "interrupted: waiting up to %d ms for %llu records to be confirmed",
                       grace_ms, (unsigned long long)p->st.in_flight);
        }
        if (aborted(p) || (stop_by >= 0 && ops_clock_mono_ms() >= stop_by)) {
            ops_produce_abandon(p, "interrupted before delivery was confirmed");
            return 1;
        }
    }
    return 0;
}

int ops_produce_unreachable(const ops_produce_t *p) {
    return p->unreachable;
}

void ops_produce_abandon(ops_produce_t *p, const char *reason) {
    p->dead = 1; /* nothing is sent any more */
    p->abandon_reason = reason;
    if (p->rk != NULL) {
        rd_kafka_purge(p->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_poll(p->rk, 0);
    }
    /* Purged in-flight requests may still be reported later by librdkafka;
     * what is left is failed here, and its slot freed, so a late report
     * finds the slot unused and is ignored. */
    for (size_t i = 0; i < p->n_slots; i++)
        if (p->slots[i].used)
            report_failed(p, &p->slots[i], reason);
    p->abandon_reason = NULL;
}

void ops_produce_stats(const ops_produce_t *p, ops_produce_stats_t *st) {
    *st = p->st;
}

const char *ops_produce_last_error(const ops_produce_t *p) {
    return p->last_error;
}

int ops_produce_reached_broker(const ops_produce_t *p) {
    return p->reached;
}

void ops_produce_destroy(ops_produce_t *p) {
    if (p == NULL)
        return;
    if (p->slots != NULL && p->st.in_flight > 0)
        ops_produce_abandon(p, "not confirmed when the producer was closed");
    if (p->rk != NULL) {
        /* librdkafka may still hold purged messages whose opaque points
         * into the slots: they are all unused now, so dr_cb ignores them. */
        close_topics(p);
        rd_kafka_destroy(p->rk);
    }
    if (p->conf_tmpl != NULL)
        rd_kafka_conf_destroy(p->conf_tmpl);
    ops_codec_destroy(p->codec);
    for (size_t i = 0; p->slots != NULL && i < p->n_slots; i++)
        free(p->slots[i].heap);
    free(p->slots);
    free(p->free_stack);
    free(p);
}
