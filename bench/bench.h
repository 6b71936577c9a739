/*
 * opstream benchmark harness (make bench): shared declarations of the bench
 * program. main.c drives the runs and reports, sys.c reads the machine and
 * /proc, feed.c generates and produces events, runs.c holds the measurements.
 */
#ifndef OPSTREAM_BENCH_H
#define OPSTREAM_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "harness.h"
#include "opstream/codec.h"
#include "opstream/event.h"
#include "opstream/simulate.h"

#define BENCH_PARTITIONS 16 /* per event topic: keeps the pre-filled sets within retention */
#define BENCH_MAX_OPS 100

/* ---- sys.c: machine, /proc, statistics ---------------------------------- */

int64_t bench_now_us(void);               /* monotonic microseconds */
int64_t bench_cpu_ms(pid_t pid);          /* utime+stime of a process, ms; -1 if gone */
int64_t bench_self_cpu_ms(void);          /* of this process */
int64_t bench_thread_cpu_ns(void);        /* CPU time of the calling thread, ns */
long bench_rss_kib(pid_t pid, bool peak); /* VmHWM (peak) or VmRSS, KiB; -1 if gone */
void bench_machine(char *cpu, size_t cpusize, int *cores);
void bench_lib_versions(char *buf, size_t size);
double bench_median(double *v, size_t n);               /* sorts v */
double bench_percentile(double *v, size_t n, double p); /* sorts v; nearest rank */
void bench_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- feed.c: events and frames ----------------------------------------- */

/* Deterministic events of nops operations ("BENCH-001"...), spread like the
 * Flash-Weka scenario; index i is operation i % nops. */
typedef struct bench_gen {
    ops_sim_t *sims[BENCH_MAX_OPS];
    int nops;
    ops_codec_t *codec;
    int64_t ref_ms;
} bench_gen_t;

int bench_gen_init(bench_gen_t *g, int nops);
void bench_gen_free(bench_gen_t *g);
void bench_gen_event(const bench_gen_t *g, uint64_t index, ops_event_t *ev);

/* Pre-encoded frames: data[off[i] .. off[i]+len[i]), kind and key per frame. */
typedef struct bench_frames {
    unsigned char *data;
    size_t *off;
    uint32_t *len;
    uint8_t *kind;
    char (*key)[3];
    char (*event_id)[OPS_EVENT_ID_LEN + 1]; /* only for probes (else "") */
    size_t n;
} bench_frames_t;

/* Encodes events [first, first+n). Every probe_every-th one (0: none) is a
 * rescue whose location is "BENCHPROBE" (the alert rule's marker). */
int bench_frames_build(bench_frames_t *f, const bench_gen_t *g, uint64_t first, size_t n,
                       size_t probe_every);
void bench_frames_free(bench_frames_t *f);
double bench_frames_avg_size(const bench_frames_t *f);

/* A producer with opstream's defaults (kafka.c: idempotent, acks=all) plus
 * extra properties (NULL-terminated name, value pairs; may be NULL). */
rd_kafka_t *bench_producer_new(const char *bootstrap, const char *const extra[],
                               void (*dr)(rd_kafka_t *, const rd_kafka_message_t *, void *),
                               void *opaque);
/* The four event topics of prefix as handles, indexed by kind. */
int bench_topics_open(rd_kafka_t *rk, const char *prefix, rd_kafka_topic_t *topics[OPS_KIND_COUNT]);
void bench_topics_close(rd_kafka_topic_t *topics[OPS_KIND_COUNT]);
/* Produces frame i to its kind's topic keyed by country (no copy: f must
 * outlive delivery), serving delivery reports while the queue is full. */
int bench_produce_frame(rd_kafka_t *rk, rd_kafka_topic_t *const topics[OPS_KIND_COUNT],
                        const bench_frames_t *f, size_t i, void *msg_opaque);

/* Creates the four event topics plus alerts and dlq under prefix. */
int bench_create_topics(harness_broker_t *b, const char *prefix);

/* Produces all frames to prefix's topics with opstream's producer defaults
 * (idempotent, acks=all) and waits for every delivery report. Returns the
 * elapsed seconds, or a negative number on failure. */
double bench_fill(const char *bootstrap, const char *prefix, const bench_frames_t *f);

/* Sum of (high - low) and of high over the event topics of prefix. */
int bench_topic_span(const char *bootstrap, const char *prefix, int64_t *msgs, int64_t *high);

/* ---- runs.c: measurements ---------------------------------------------- */

typedef struct bench_env {
    harness_broker_t *broker;
    harness_redis_t *redis;
    const char *self; /* path of this program, for the discard consumer */
    bool quick;
    int runs;
    long rss_count_kib, rss_alert_kib; /* peaks seen */
    long hash_entries_default;         /* redis-server's own hash-max-listpack-entries */
    bool main_filled;                  /* the counter section filled the one-operation set */
} bench_env_t;

/* The hash-max-listpack-entries of the deployments opstream describes
 * (docker-compose.yml, docs/redis-deployments.md), which the bench's
 * redis-server runs with; the growth section also measures the server's
 * own default beside it. */
#define BENCH_HASH_ENTRIES 128

/* Sets redis-server's hash-max-listpack-entries (CONFIG SET): 0 or -1. */
int bench_redis_hash_entries(bench_env_t *e, long n);

typedef struct bench_count_result {
    double eps;          /* events/s, wall clock */
    double eps_cpu;      /* events per CPU-second of opstream-count */
    double cmds_per_ev;  /* Redis commands (inside the script too) per event */
    double calls_per_ev; /* client round trips per event */
    double redis_us_per_ev; /* redis-server CPU (user+sys) per event, microseconds */
    long rss_kib;           /* peak RSS of opstream-count; -1: not measured */
    int64_t events;
    bool checked; /* the totals were compared with the events produced */
    bool exact;   /* checked, and the Redis totals equal the events produced */
} bench_count_result_t;

/* Runs opstream-count (group) on prefix's topics until its stored offsets
 * reach the high watermarks. expect_events: events the totals must hold
 * afterwards over all operations (-1: not checked). */
int bench_count_run(bench_env_t *e, const char *prefix, const char *group, int nops,
                    int64_t expect_events, bench_count_result_t *out);

/* opstream-alert (group, config/alerts.conf) on prefix's topics: events/s
 * and events per CPU-second from the moment a tenth was handled (by its
 * offsets stored in Redis) to the end. */
int bench_alert_run(bench_env_t *e, const char *prefix, const char *group, double *eps,
                    double *eps_cpu);

/* opstream-alert under the simulator's traffic: opstream-simulate at rate
 * events/s for secs seconds (operation BENCH-SOAK, live event times) into
 * prefix's topics while opstream-alert (config/alerts.conf) consumes them,
 * watched once a second. */
typedef struct bench_soak {
    double achieved_eps; /* events the simulator delivered / secs */
    int64_t lag_end;     /* high watermarks - stored offsets at the last sample while the
                          * simulator ran (the offsets read first: an upper bound) */
    int64_t lag_max;     /* the highest lag sampled from rss_at_s on */
    double drain_s;      /* seconds from the end of the traffic to lag 0 (-1: not within 60 s) */
    double rss_ref_mib;  /* VmRSS at rss_at_s */
    double rss_max_mib;  /* the highest VmRSS sampled from then on */
    double rss_end_mib;  /* VmRSS at the last sample while the simulator ran */
    double cpu_pct;      /* opstream-alert's CPU over the traffic, % of one core */
    int64_t alerts;      /* alerts on the alert topic */
} bench_soak_t;

int bench_soak_run(bench_env_t *e, const char *prefix, double rate, double secs, double rss_at_s,
                   bench_soak_t *out);

/* The poll-and-discard consumer as its own process (this program's
 * "discard" mode): with librdkafka's prefetch, or (woken) with the consumer
 * runtime's prefetch bound and wake-up. eps and eps_cpu as above. */
int bench_discard_run(bench_env_t *e, const char *prefix, const char *group, bool woken,
                      double *eps, double *eps_cpu);
int bench_discard_main(int argc, char **argv); /* the child side */

/* One producer run: opstream's produce path (encode + ops_produce) against
 * raw librdkafka of the same frames. */
typedef struct bench_producer_result {
    double ops_eps, raw_eps;       /* events/s, first send to last delivery report */
    double ops_cpu_ns, raw_cpu_ns; /* CPU of the sending thread per event, ns */
    double frame_bytes;            /* average frame size */
} bench_producer_result_t;

/* n events each; raw_first: the raw side runs first. */
int bench_producer_run(bench_env_t *e, const char *prefix, size_t n, bool raw_first,
                       bench_producer_result_t *res);

typedef struct bench_latency {
    double p50, p99, p999, max; /* ms */
    size_t samples;
    double achieved_eps;
} bench_latency_t;

/* Produce -> visible in Redis at rate events/s for secs seconds. */
int bench_latency_redis(bench_env_t *e, const char *prefix, uint64_t first_index, double rate,
                        double secs, bench_latency_t *out);
/* Produce -> alert on the alert topic, probes among rate events/s. */
int bench_latency_alert(bench_env_t *e, const char *prefix, uint64_t first_index, double rate,
                        double secs, bench_latency_t *out);

/* Redis: used_memory and the dedupe hashes (keys, fields, bytes). */
int bench_redis_memory(bench_env_t *e, int64_t *used, int64_t *seen_fields, int64_t *seen_bytes);
int bench_redis_flush(bench_env_t *e);

#endif
