/*
 * opstream bench: the events the bench produces. Deterministic Flash-Weka-like
 * traffic for one to a hundred operations (the simulator's generator),
 * encoded once into frames so that producing them costs the bench nothing,
 * and a fast filler that loads topic sets before a counter run.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <librdkafka/rdkafka.h>

#include "bench.h"
#include "opstream/config.h"
#include "opstream/kafka.h"

int bench_gen_init(bench_gen_t *g, int nops) {
    char err[512], op[32];
    struct timespec ts;

    memset(g, 0, sizeof *g);
    if (nops < 1 || nops > BENCH_MAX_OPS)
        return -1;
    clock_gettime(CLOCK_REALTIME, &ts);
    g->ref_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    g->nops = nops;
    for (int i = 0; i < nops; i++) {
        ops_sim_options_t so = {.operation = op, .seed = (uint64_t)i + 1};
        snprintf(op, sizeof op, "BENCH-%03d", i + 1);
        if ((g->sims[i] = ops_sim_new(&so, err, sizeof err)) == NULL) {
            bench_log("simulator: %s", err);
            goto fail;
        }
    }
    if ((g->codec = ops_codec_new(NULL, err, sizeof err)) == NULL) {
        bench_log("codec: %s", err);
        goto fail;
    }
    return 0;
fail:
    bench_gen_free(g);
    return -1;
}

void bench_gen_free(bench_gen_t *g) {
    for (int i = 0; i < BENCH_MAX_OPS; i++)
        ops_sim_destroy(g->sims[i]);
    ops_codec_destroy(g->codec);
    memset(g, 0, sizeof *g);
}

void bench_gen_event(const bench_gen_t *g, uint64_t index, ops_event_t *ev) {
    ops_sim_event(g->sims[index % (uint64_t)g->nops], index / (uint64_t)g->nops, g->ref_ms, ev);
}

/* A probe: a small rescue marked with the location the bench's alert rule
 * matches; its event_id (unique like every generated one) names it. */
static void make_probe(ops_event_t *ev) {
    ev->kind = OPS_KIND_RESCUE;
    ev->count = 3;
    ev->minors = 0;
    ev->referred = 0;
    ev->exploitation = OPS_EXPLOITATION_FORCED_LABOUR;
    ev->site = OPS_SITE_WORKSITE;
    ev->has_location = true;
    snprintf(ev->location, sizeof ev->location, "BENCHPROBE");
}

int bench_frames_build(bench_frames_t *f, const bench_gen_t *g, uint64_t first, size_t n,
                       size_t probe_every) {
    char err[512];
    size_t cap = n * 160 + 4096, used = 0;
    ops_event_t ev;

    memset(f, 0, sizeof *f);
    f->data = malloc(cap);
    f->off = calloc(n ? n : 1, sizeof *f->off);
    f->len = calloc(n ? n : 1, sizeof *f->len);
    f->kind = calloc(n ? n : 1, sizeof *f->kind);
    f->key = calloc(n ? n : 1, sizeof *f->key);
    f->event_id = calloc(n ? n : 1, sizeof *f->event_id);
    if (f->data == NULL || f->off == NULL || f->len == NULL || f->kind == NULL || f->key == NULL ||
        f->event_id == NULL)
        goto fail;
    for (size_t i = 0; i < n; i++) {
        size_t len;
        bench_gen_event(g, first + i, &ev);
        bool probe = probe_every > 0 && i % probe_every == probe_every / 2;
        if (probe) {
            make_probe(&ev);
            memcpy(f->event_id[i], ev.event_id, sizeof f->event_id[i]);
        }
        if (cap - used < OPS_CODEC_MAX_FRAME) {
            unsigned char *d = realloc(f->data, cap * 2);
            if (d == NULL)
                goto fail;
            f->data = d;
            cap *= 2;
        }
        if (ops_codec_encode_event(g->codec, &ev, f->data + used, cap - used, &len, err,
                                   sizeof err) != 0) {
            bench_log("encode: %s", err);
            goto fail;
        }
        f->off[i] = used;
        f->len[i] = (uint32_t)len;
        f->kind[i] = (uint8_t)ev.kind;
        memcpy(f->key[i], ev.country, 3);
        used += len;
        f->n++;
    }
    return 0;
fail:
    bench_frames_free(f);
    return -1;
}

void bench_frames_free(bench_frames_t *f) {
    free(f->data);
    free(f->off);
    free(f->len);
    free(f->kind);
    free(f->key);
    free(f->event_id);
    memset(f, 0, sizeof *f);
}

double bench_frames_avg_size(const bench_frames_t *f) {
    double sum = 0;

    for (size_t i = 0; i < f->n; i++)
        sum += f->len[i];
    return f->n ? sum / (double)f->n : 0;
}

int bench_create_topics(harness_broker_t *b, const char *prefix) {
    static const char *const suffix[] = {"arrests",  "rescues", "migrants",
                                         "seizures", "alerts",  "dlq"};
    char cmd[256];

    for (size_t i = 0; i < sizeof suffix / sizeof *suffix; i++) {
        snprintf(cmd, sizeof cmd, "create-topic %s%s %d 3", prefix, suffix[i], BENCH_PARTITIONS);
        if (harness_broker_command(b, cmd, NULL, 0) != 0)
            return -1;
    }
    return 0;
}

typedef struct fill_state {
    int64_t delivered, failed;
} fill_state_t;

static void fill_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    fill_state_t *st = opaque;

    (void)rk;
    if (m->err)
        st->failed++;
    else
        st->delivered++;
}

/* A producer with opstream's defaults (kafka.c) plus the given extra
 * properties (NULL-terminated name, value pairs; may be NULL). */
static rd_kafka_t *producer(const char *bootstrap, const char *const extra[],
                            void (*dr)(rd_kafka_t *, const rd_kafka_message_t *, void *),
                            void *opaque) {
    char err[512];
    rd_kafka_t *rk = NULL;
    ops_config_t *cfg = ops_config_new();

    if (cfg == NULL || ops_config_set(cfg, "bootstrap.servers", bootstrap, err, sizeof err) != 0)
        goto cleanup;
    for (size_t i = 0; extra != NULL && extra[i] != NULL; i += 2)
        if (ops_config_set(cfg, extra[i], extra[i + 1], err, sizeof err) != 0)
            goto cleanup;
    rk = ops_kafka_producer_new(cfg, dr, opaque, err, sizeof err);
cleanup:
    if (rk == NULL)
        bench_log("producer: %s", cfg ? err : "out of memory");
    ops_config_destroy(cfg);
    return rk;
}

rd_kafka_t *bench_producer_new(const char *bootstrap, const char *const extra[],
                               void (*dr)(rd_kafka_t *, const rd_kafka_message_t *, void *),
                               void *opaque) {
    return producer(bootstrap, extra, dr, opaque);
}

/* Produces frame i to its kind's topic, keyed by country, serving delivery
 * reports while librdkafka's queue is full. */
int bench_produce_frame(rd_kafka_t *rk, rd_kafka_topic_t *const topics[OPS_KIND_COUNT],
                        const bench_frames_t *f, size_t i, void *msg_opaque) {
    for (;;) {
        if (rd_kafka_produce(topics[f->kind[i]], RD_KAFKA_PARTITION_UA, 0, f->data + f->off[i],
                             f->len[i], f->key[i], 2, msg_opaque) == 0)
            return 0;
        if (rd_kafka_last_error() != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            bench_log("produce: %s", rd_kafka_err2str(rd_kafka_last_error()));
            return -1;
        }
        rd_kafka_poll(rk, 1);
    }
}

int bench_topics_open(rd_kafka_t *rk, const char *prefix,
                      rd_kafka_topic_t *topics[OPS_KIND_COUNT]) {
    char name[256];

    for (int k = 0; k < OPS_KIND_COUNT; k++) {
        topics[k] = NULL;
        if (ops_topic_name(prefix, (ops_kind_t)k, name, sizeof name) != 0 ||
            (topics[k] = rd_kafka_topic_new(rk, name, NULL)) == NULL)
            return -1;
    }
    return 0;
}

void bench_topics_close(rd_kafka_topic_t *topics[OPS_KIND_COUNT]) {
    for (int k = 0; k < OPS_KIND_COUNT; k++)
        if (topics[k] != NULL)
            rd_kafka_topic_destroy(topics[k]);
}

double bench_fill(const char *bootstrap, const char *prefix, const bench_frames_t *f) {
    static const char *const extra[] = {"linger.ms", "20", "queue.buffering.max.messages", "500000",
                                        NULL};
    fill_state_t st = {0};
    rd_kafka_topic_t *topics[OPS_KIND_COUNT] = {0};
    rd_kafka_t *rk = producer(bootstrap, extra, fill_dr, &st);
    double secs = -1;
    int64_t t0 = bench_now_us();

    if (rk == NULL || bench_topics_open(rk, prefix, topics) != 0)
        goto cleanup;
    for (size_t i = 0; i < f->n; i++) {
        if (bench_produce_frame(rk, topics, f, i, NULL) != 0)
            goto cleanup;
        if (i % 1024 == 0)
            rd_kafka_poll(rk, 0);
    }
    rd_kafka_flush(rk, 60000);
    if (st.delivered != (int64_t)f->n) {
        bench_log("fill: %lld of %zu delivered, %lld failed", (long long)st.delivered, f->n,
                  (long long)st.failed);
        goto cleanup;
    }
    secs = (double)(bench_now_us() - t0) / 1e6;
cleanup:
    bench_topics_close(topics);
    if (rk != NULL)
        rd_kafka_destroy(rk);
    return secs;
}

int bench_topic_span(const char *bootstrap, const char *prefix, int64_t *msgs, int64_t *high) {
    char name[256];
    rd_kafka_t *rk = producer(bootstrap, NULL, NULL, NULL);
    int rc = -1;

    *msgs = *high = 0;
    if (rk == NULL)
        return -1;
    for (int k = 0; k < OPS_KIND_COUNT; k++) {
        ops_topic_name(prefix, (ops_kind_t)k, name, sizeof name);
        for (int p = 0; p < BENCH_PARTITIONS; p++) {
            int64_t lo, hi;
            rd_kafka_resp_err_t err =
                rd_kafka_query_watermark_offsets(rk, name, p, &lo, &hi, 10000);
            if (err) {
                bench_log("watermarks %s [%d]: %s", name, p, rd_kafka_err2str(err));
                goto cleanup;
            }
            *msgs += hi - lo;
            *high += hi;
        }
    }
    rc = 0;
cleanup:
    rd_kafka_destroy(rk);
    return rc;
}
