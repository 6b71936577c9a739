/*
 * opstream bench: the measurements. Each one runs the real programs
 * (opstream-count, opstream-alert) against the embedded broker and a real
 * redis-server, and watches them from outside: stored offsets in Redis,
 * /proc for CPU time and peak RSS, the alert topic for alerts.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>
#include <librdkafka/rdkafka.h>

#include "bench.h"
#include "opstream/config.h"
#include "opstream/consumer.h"
#include "opstream/counter.h"
#include "opstream/kafka.h"
#include "opstream/produce.h"

#define COUNT_TIMEOUT_US (180LL * 1000000)
#define FIELD_MAX 128

static void sleep_us(int64_t us) {
    struct timespec ts = {(time_t)(us / 1000000), (long)(us % 1000000) * 1000};

    nanosleep(&ts, NULL);
}

/* ---- Redis probes ------------------------------------------------------- */

/* Sum of the stored offsets of a group. -1 on a Redis error. */
static int64_t offsets_sum(redisContext *c, const char *group) {
    redisReply *r = redisCommand(c, "HGETALL opstream:offsets:%s", group);
    int64_t sum = 0;

    if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
        if (r != NULL)
            freeReplyObject(r);
        return -1;
    }
    for (size_t i = 1; i < r->elements; i += 2)
        sum += strtoll(r->element[i]->str, NULL, 10);
    freeReplyObject(r);
    return sum;
}

/* redis-server's own CPU time (INFO cpu: used_cpu_user + used_cpu_sys),
 * microseconds, or -1. */
static int64_t redis_cpu_us(redisContext *c) {
    redisReply *r = redisCommand(c, "INFO cpu");
    double user = -1, sys = -1;
    const char *u, *k;

    if (r == NULL || r->type != REDIS_REPLY_STRING) {
        if (r != NULL)
            freeReplyObject(r);
        return -1;
    }
    if ((u = strstr(r->str, "used_cpu_user:")) != NULL)
        user = strtod(u + strlen("used_cpu_user:"), NULL);
    if ((k = strstr(r->str, "used_cpu_sys:")) != NULL)
        sys = strtod(k + strlen("used_cpu_sys:"), NULL);
    freeReplyObject(r);
    return user < 0 || sys < 0 ? -1 : (int64_t)((user + sys) * 1e6);
}

/* Commands Redis executed (commandstats calls; commands a script runs count
 * too), leaving out the ones the bench itself sends. *evalsha: client
 * round trips of the counter. */
static int64_t redis_commands(redisContext *c, int64_t *evalsha) {
    static const char *const ours[] = {"info",   "hgetall", "flushall", "ping",   "scan",
                                       "memory", "hlen",    "hget",     "config", NULL};
    redisReply *r = redisCommand(c, "INFO commandstats");
    int64_t total = 0;

    *evalsha = 0;
    if (r == NULL || r->type != REDIS_REPLY_STRING) {
        if (r != NULL)
            freeReplyObject(r);
        return -1;
    }
    for (char *line = strstr(r->str, "cmdstat_"); line != NULL;
         line = strstr(line + 1, "cmdstat_")) {
        char name[64];
        long long calls;
        bool skip = false;
        if (sscanf(line, "cmdstat_%63[^:]:calls=%lld", name, &calls) != 2)
            continue;
        for (size_t i = 0; ours[i] != NULL; i++)
            skip = skip || strcmp(name, ours[i]) == 0;
        if (strcmp(name, "evalsha") == 0)
            *evalsha = calls;
        if (!skip)
            total += calls;
    }
    freeReplyObject(r);
    return total;
}

/* Sum of the `events` field of every bench operation's totals. */
static int64_t counted_events(redisContext *c, int nops) {
    int64_t sum = 0;

    for (int i = 1; i <= nops; i++) {
        redisReply *r = redisCommand(c, "HGET opstream:{BENCH-%03d}:total events", i);
        if (r == NULL)
            return -1;
        if (r->type == REDIS_REPLY_STRING)
            sum += strtoll(r->str, NULL, 10);
        freeReplyObject(r);
    }
    return sum;
}

int bench_redis_flush(bench_env_t *e) {
    redisReply *r = harness_redis_command(e->redis, "FLUSHALL");
    int rc = r != NULL && r->type == REDIS_REPLY_STATUS ? 0 : -1;

    if (r != NULL)
        freeReplyObject(r);
    return rc;
}

int bench_redis_hash_entries(bench_env_t *e, long n) {
    redisReply *r = harness_redis_command(e->redis, "CONFIG SET hash-max-listpack-entries %ld", n);
    int rc = r != NULL && r->type == REDIS_REPLY_STATUS ? 0 : -1;

    if (r != NULL)
        freeReplyObject(r);
    return rc;
}

int bench_redis_memory(bench_env_t *e, int64_t *used, int64_t *seen_fields, int64_t *seen_bytes) {
    redisContext *c = harness_redis_connect(e->redis);
    redisReply *r = NULL;
    char cursor[32] = "0";
    int rc = -1;

    *used = *seen_fields = *seen_bytes = 0;
    if (c == NULL)
        return -1;
    redisSetTimeout(c, (struct timeval){30, 0});
    if ((r = redisCommand(c, "INFO memory")) == NULL || r->type != REDIS_REPLY_STRING)
        goto cleanup;
    const char *u = strstr(r->str, "used_memory:");
    if (u != NULL)
        *used = strtoll(u + 12, NULL, 10);
    do {
        freeReplyObject(r);
        r = redisCommand(c, "SCAN %s MATCH opstream:{*}:seen:* COUNT 1000", cursor);
        if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 2)
            goto cleanup;
        snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
        for (size_t i = 0; i < r->element[1]->elements; i++) {
            const char *key = r->element[1]->element[i]->str;
            redisReply *h = redisCommand(c, "HLEN %s", key);
            redisReply *m = redisCommand(c, "MEMORY USAGE %s SAMPLES 0", key);
            if (h != NULL && h->type == REDIS_REPLY_INTEGER)
                *seen_fields += h->integer;
            if (m != NULL && m->type == REDIS_REPLY_INTEGER)
                *seen_bytes += m->integer;
            if (h != NULL)
                freeReplyObject(h);
            if (m != NULL)
                freeReplyObject(m);
        }
    } while (strcmp(cursor, "0") != 0);
    rc = 0;
cleanup:
    if (r != NULL)
        freeReplyObject(r);
    redisFree(c);
    return rc;
}

/* ---- programs ----------------------------------------------------------- */

/* prog (opstream-count or opstream-alert) on the bench's broker and Redis,
 * in group, on the topics of prefix, with more arguments (NULL-terminated,
 * or NULL). */
static harness_proc_t *spawn_consumer(bench_env_t *e, const char *prog, const char *prefix,
                                      const char *group, const char *const *more) {
    char px[300];
    const char *argv[48] = {
        prog, "-b", e->broker->bootstrap, "--redis", e->redis->url, "-g", group, "-X", px, NULL};
    size_t n = 9;

    snprintf(px, sizeof px, "opstream.topic.prefix=%s", prefix);
    for (; more != NULL && *more != NULL && n < 47; more++)
        argv[n++] = *more;
    argv[n] = NULL;
    return harness_spawn(argv, NULL, 0);
}

/* opstream-count as the bench runs it. $OPSTREAM_BENCH_COUNT_ARGS (words
 * separated by spaces, e.g. "--flush-ms 5 -X fetch.wait.max.ms=5") is
 * appended, for trying settings. */
static harness_proc_t *spawn_count(bench_env_t *e, const char *prefix, const char *group) {
    char extra[512];
    const char *env = getenv("OPSTREAM_BENCH_COUNT_ARGS");
    const char *more[40] = {"--stats-interval", "0", NULL};
    size_t n = 2;

    snprintf(extra, sizeof extra, "%s", env ? env : "");
    for (char *w = strtok(extra, " "); w != NULL && n < 38; w = strtok(NULL, " "))
        more[n++] = w;
    more[n] = NULL;
    return spawn_consumer(e, "opstream-count", prefix, group, more);
}

/* Stops a program with SIGTERM and says when it did not exit cleanly. */
static int stop_clean(harness_proc_t *p) {
    int code = harness_proc_stop(p, 15000);

    if (code != 0) {
        char *err = harness_proc_stderr(p);
        bench_log("%s exited %d: %s", p->name, code, err ? err : "");
        free(err);
    }
    return code == 0 ? 0 : -1;
}

/* Keeps in *peak the highest RSS seen of a program. */
static void keep_peak(long *peak, long rss_kib) {
    if (rss_kib > *peak)
        *peak = rss_kib;
}

/* The end of a run on one program and one Redis connection (either may be
 * NULL): both freed, rc passed on. */
static int end_run(int rc, harness_proc_t *p, redisContext *c) {
    harness_proc_free(p);
    if (c != NULL)
        redisFree(c);
    return rc;
}

/* ---- counter ------------------------------------------------------------ */

/* Where a consumer's run stands: its clock and CPU from the moment a tenth
 * of the span was stored (group join and first rebalances are start-up,
 * not throughput) to the moment it all was. */
typedef struct span_run {
    int64_t s0, s1, t0, t1, cpu0, cpu1;
} span_run_t;

/* Waits until the offsets group stores in Redis reach high, or stop_at
 * (the clock stops there; 0: high). */
static int wait_stored(harness_proc_t *p, redisContext *c, const char *group, int64_t base,
                       int64_t high, int64_t stop_at, span_run_t *sr) {
    int64_t deadline = bench_now_us() + COUNT_TIMEOUT_US;

    sr->s0 = -1;
    for (;;) {
        int64_t s = offsets_sum(c, group), now = bench_now_us();
        if (s < 0)
            return -1;
        if (sr->s0 < 0 && s - base >= (high - base) / 10 && s > base) {
            bench_log("%s: a tenth handled %.2f s after start", p->name,
                      (double)(now - (deadline - COUNT_TIMEOUT_US)) / 1e6);
            sr->t0 = now;
            sr->cpu0 = bench_cpu_ms(p->pid);
            sr->s0 = s;
        }
        if (s >= high || (stop_at > 0 && sr->s0 >= 0 && s >= stop_at)) {
            sr->s1 = s;
            sr->t1 = now;
            sr->cpu1 = bench_cpu_ms(p->pid);
            return 0;
        }
        if (now > deadline || !harness_proc_running(p)) {
            bench_log("%s stopped at %lld of %lld offsets", p->name, (long long)s,
                      (long long)high);
            return -1;
        }
        sleep_us(2000);
    }
}

int bench_count_run(bench_env_t *e, const char *prefix, const char *group, int nops,
                    int64_t expect_events, bench_count_result_t *out) {
    redisContext *c = harness_redis_connect(e->redis);
    harness_proc_t *p = NULL;
    int64_t msgs, high, base, ev0, ev1, cmd0, cmd1, rcpu0, rcpu1;
    span_run_t sr;
    int rc = -1;

    memset(out, 0, sizeof *out);
    out->rss_kib = -1;
    if (c == NULL || bench_topic_span(e->broker->bootstrap, prefix, &msgs, &high) != 0)
        goto cleanup;
    if ((base = offsets_sum(c, group)) < 0 || (cmd0 = redis_commands(c, &ev0)) < 0 ||
        (rcpu0 = redis_cpu_us(c)) < 0)
        goto cleanup;
    if ((p = spawn_count(e, prefix, group)) == NULL)
        goto cleanup;
    if (wait_stored(p, c, group, base, high, 0, &sr) != 0)
        goto cleanup;
    out->rss_kib = bench_rss_kib(p->pid, true);
    if (stop_clean(p) != 0)
        goto cleanup;
    if ((cmd1 = redis_commands(c, &ev1)) < 0 || (rcpu1 = redis_cpu_us(c)) < 0)
        goto cleanup;
    out->events = high - sr.s0;
    if (out->events <= 0 || sr.t1 <= sr.t0) {
        bench_log("counter run too short to measure (%lld events)", (long long)out->events);
        goto cleanup;
    }
    out->eps = (double)out->events * 1e6 / (double)(sr.t1 - sr.t0);
    out->eps_cpu =
        sr.cpu1 > sr.cpu0 ? (double)out->events * 1000.0 / (double)(sr.cpu1 - sr.cpu0) : 0;
    out->cmds_per_ev = (double)(cmd1 - cmd0) / (double)(high - base);
    out->calls_per_ev = (double)(ev1 - ev0) / (double)(high - base);
    /* Over the whole run, start-up included: every event of the span. */
    out->redis_us_per_ev = (double)(rcpu1 - rcpu0) / (double)(high - base);
    out->checked = expect_events >= 0;
    out->exact = out->checked && counted_events(c, nops) == expect_events;
    keep_peak(&e->rss_count_kib, out->rss_kib);
    rc = 0;
cleanup:
    return end_run(rc, p, c);
}

/* ---- alert throughput ----------------------------------------------------- */

int bench_alert_run(bench_env_t *e, const char *prefix, const char *group, double *eps,
                    double *eps_cpu) {
    const char *src = getenv("OPSTREAM_SRC_DIR");
    char rules[HARNESS_PATH_MAX];
    redisContext *c = harness_redis_connect(e->redis);
    harness_proc_t *p = NULL;
    int64_t msgs, high, base;
    span_run_t sr;
    long rss;
    int rc = -1;

    /* The rules the project ships (config/alerts.conf). */
    snprintf(rules, sizeof rules, "%s/config/alerts.conf", src != NULL ? src : ".");
    const char *more[] = {
        "--rules", rules, "-X", "session.timeout.ms=3000", "-X", "heartbeat.interval.ms=100", NULL};
    if (c == NULL || bench_topic_span(e->broker->bootstrap, prefix, &msgs, &high) != 0 ||
        (base = offsets_sum(c, group)) < 0 ||
        (p = spawn_consumer(e, "opstream-alert", prefix, group, more)) == NULL)
        goto cleanup;
    /* From a tenth on to the end: /proc's CPU times tick every 10 ms, and
     * the alerter takes well under a second for the rest. */
    if (wait_stored(p, c, group, base, high, 0, &sr) != 0)
        goto cleanup;
    rss = bench_rss_kib(p->pid, true);
    if (stop_clean(p) != 0)
        goto cleanup;
    if (sr.s1 - sr.s0 <= 0 || sr.t1 <= sr.t0) {
        bench_log("alert run too short to measure");
        goto cleanup;
    }
    *eps = (double)(sr.s1 - sr.s0) * 1e6 / (double)(sr.t1 - sr.t0);
    *eps_cpu = sr.cpu1 > sr.cpu0 ? (double)(sr.s1 - sr.s0) * 1000.0 / (double)(sr.cpu1 - sr.cpu0)
                                 : 0;
    keep_peak(&e->rss_alert_kib, rss);
    rc = 0;
cleanup:
    return end_run(rc, p, c);
}

/* ---- alert soak ---------------------------------------------------------- */

/* Sum of the high watermarks of prefix's event topics (rk: any client of
 * the broker), or -1: one ListOffsets request (latest) per broker for all
 * partitions at once, so that the lag sampled is close to one instant. */
static int64_t event_highs(rd_kafka_t *rk, const char *prefix) {
    char name[256];
    int64_t sum = 0;
    rd_kafka_topic_partition_list_t *l =
        rd_kafka_topic_partition_list_new(OPS_KIND_COUNT * BENCH_PARTITIONS);

    for (int k = 0; k < OPS_KIND_COUNT; k++) {
        ops_topic_name(prefix, (ops_kind_t)k, name, sizeof name);
        for (int p = 0; p < BENCH_PARTITIONS; p++)
            rd_kafka_topic_partition_list_add(l, name, p)->offset = RD_KAFKA_OFFSET_END;
    }
    if (rd_kafka_offsets_for_times(rk, l, 10000) != RD_KAFKA_RESP_ERR_NO_ERROR)
        sum = -1;
    for (int i = 0; i < l->cnt && sum >= 0; i++) {
        if (l->elems[i].err != RD_KAFKA_RESP_ERR_NO_ERROR || l->elems[i].offset < 0)
            sum = -1;
        else
            sum += l->elems[i].offset;
    }
    rd_kafka_topic_partition_list_destroy(l);
    return sum;
}

/* Messages on the topic named prefix + "alerts" (all partitions), or -1. */
static int64_t alerts_on_topic(rd_kafka_t *rk, const char *prefix) {
    char name[256];
    const rd_kafka_metadata_t *md = NULL;
    rd_kafka_topic_t *t;
    int64_t sum = 0;

    snprintf(name, sizeof name, "%salerts", prefix);
    if ((t = rd_kafka_topic_new(rk, name, NULL)) == NULL)
        return -1;
    if (rd_kafka_metadata(rk, 0, t, &md, 10000) != 0 || md->topic_cnt != 1) {
        sum = -1;
        goto cleanup;
    }
    for (int p = 0; p < md->topics[0].partition_cnt && sum >= 0; p++) {
        int64_t lo, hi;
        if (rd_kafka_query_watermark_offsets(rk, name, md->topics[0].partitions[p].id, &lo, &hi,
                                             10000) != 0)
            sum = -1;
        else
            sum += hi - lo;
    }
cleanup:
    if (md != NULL)
        rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(t);
    return sum;
}

static bool says(harness_proc_t *p, const char *what) {
    char *err = harness_proc_stderr(p);
    bool yes = err != NULL && strstr(err, what) != NULL;

    free(err);
    return yes;
}

/* The simulator's closing line "generated N, delivered N, failed N". */
static int64_t sim_delivered(harness_proc_t *p) {
    char *err = harness_proc_stderr(p);
    const char *at = err != NULL ? strstr(err, "delivered ") : NULL;
    int64_t n = at != NULL ? strtoll(at + strlen("delivered "), NULL, 10) : -1;

    free(err);
    return n;
}

int bench_soak_run(bench_env_t *e, const char *prefix, double rate, double secs, double rss_at_s,
                   bench_soak_t *out) {
    const char *src = getenv("OPSTREAM_SRC_DIR");
    char rules[HARNESS_PATH_MAX], rate_s[32], dur_s[32], px[300];
    redisContext *c = harness_redis_connect(e->redis);
    harness_proc_t *p = NULL, *sim = NULL;
    rd_kafka_t *rk = NULL;
    int64_t t0, t_end = 0, cpu0, cpu1, high = 0, stored = 0;
    int rc = -1;

    memset(out, 0, sizeof *out);
    snprintf(rules, sizeof rules, "%s/config/alerts.conf", src != NULL ? src : ".");
    snprintf(rate_s, sizeof rate_s, "%.0f", rate);
    snprintf(dur_s, sizeof dur_s, "%.0f", secs);
    snprintf(px, sizeof px, "opstream.topic.prefix=%s", prefix);
    const char *more[] = {"--rules", rules, NULL};
    const char *simv[] = {"opstream-simulate",
                          "-b",
                          e->broker->bootstrap,
                          "-X",
                          px,
                          "--operation",
                          "BENCH-SOAK",
                          "--rate",
                          rate_s,
                          "--duration",
                          dur_s,
                          "--seed",
                          "7",
                          NULL};
    if (c == NULL || (rk = bench_producer_new(e->broker->bootstrap, NULL, NULL, NULL)) == NULL ||
        (p = spawn_consumer(e, "opstream-alert", prefix, "bench-soak", more)) == NULL)
        goto cleanup;
    for (int64_t d = bench_now_us() + 60000000; !says(p, "assigned"); sleep_us(20000)) {
        if (bench_now_us() > d || !harness_proc_running(p)) {
            bench_log("soak: opstream-alert got no partitions");
            goto cleanup;
        }
    }
    if ((sim = harness_spawn(simv, NULL, 0)) == NULL)
        goto cleanup;
    t0 = bench_now_us();
    cpu0 = bench_cpu_ms(p->pid);
    /* Once a second: lag, RSS. The run ends when the simulator does. */
    for (int64_t next = t0 + 1000000;; next += 1000000) {
        bool running = harness_proc_running(sim);
        /* the offsets first: the lag is an upper bound (it includes what
         * arrived while the 64 watermarks were read) */
        if ((stored = offsets_sum(c, "bench-soak")) < 0 || (high = event_highs(rk, prefix)) < 0 ||
            !harness_proc_running(p)) {
            bench_log("soak: opstream-alert or the broker stopped answering");
            goto cleanup;
        }
        int64_t lag = high - stored;
        long rss = bench_rss_kib(p->pid, false);
        double at = (double)(bench_now_us() - t0) / 1e6;
        if (at >= rss_at_s && lag > out->lag_max)
            out->lag_max = lag;
        if (out->rss_ref_mib == 0 && at >= rss_at_s)
            out->rss_ref_mib = (double)rss / 1024.0;
        if (out->rss_ref_mib > 0 && (double)rss / 1024.0 > out->rss_max_mib)
            out->rss_max_mib = (double)rss / 1024.0;
        if (((int64_t)at) % 30 == 0)
            bench_log("soak %3.0f s: %lld events, lag %lld, RSS %.1f MiB", at, (long long)high,
                      (long long)lag, (double)rss / 1024.0);
        if (!running) {
            t_end = bench_now_us();
            break;
        }
        out->lag_end = lag; /* the last sample while the traffic ran */
        out->rss_end_mib = (double)rss / 1024.0;
        if (at > secs + 120) {
            bench_log("soak: opstream-simulate did not end");
            goto cleanup;
        }
        int64_t now = bench_now_us();
        if (next > now)
            sleep_us(next - now);
    }
    cpu1 = bench_cpu_ms(p->pid);
    out->achieved_eps = (double)sim_delivered(sim) / secs;
    if (harness_proc_exit_code(sim) != 0 || out->achieved_eps <= 0) {
        bench_log("soak: opstream-simulate exited %d", harness_proc_exit_code(sim));
        goto cleanup;
    }
    /* How long opstream-alert takes for what is left once the traffic ends. */
    for (int64_t d = t_end + 60000000; stored < high; sleep_us(20000)) {
        if ((stored = offsets_sum(c, "bench-soak")) < 0 || bench_now_us() > d)
            break;
    }
    out->drain_s = stored >= high ? (double)(bench_now_us() - t_end) / 1e6 : -1;
    out->cpu_pct = (double)(cpu1 - cpu0) * 1000.0 / (double)(t_end - t0) * 100.0;
    out->alerts = alerts_on_topic(rk, prefix);
    keep_peak(&e->rss_alert_kib, bench_rss_kib(p->pid, true));
    if (stop_clean(p) != 0)
        goto cleanup;
    rc = 0;
cleanup:
    if (sim != NULL && harness_proc_running(sim))
        harness_proc_stop(sim, 15000);
    harness_proc_free(sim);
    if (rk != NULL)
        rd_kafka_destroy(rk);
    return end_run(rc, p, c);
}

/* ---- poll and discard ---------------------------------------------------- */

int bench_discard_run(bench_env_t *e, const char *prefix, const char *group, bool woken,
                      double *eps, double *eps_cpu) {
    char expect[32], line[256];
    int64_t msgs, high;
    long long n = 0, wall_us = 0, cpu_ms = 0;
    harness_proc_t *p = NULL;
    int rc = -1;

    if (bench_topic_span(e->broker->bootstrap, prefix, &msgs, &high) != 0)
        return -1;
    snprintf(expect, sizeof expect, "%lld", (long long)msgs);
    const char *argv[] = {e->self, "discard", e->broker->bootstrap,     prefix, group, expect,
                          woken ? "woken" : NULL, NULL};
    if ((p = harness_spawn(argv, NULL, HARNESS_STDOUT_PIPE)) == NULL)
        goto cleanup;
    if (harness_proc_read_line(p, line, sizeof line, 180000) != 0 ||
        sscanf(line, "%lld %lld %lld", &n, &wall_us, &cpu_ms) != 3 || n <= 0 || wall_us <= 0) {
        bench_log("discard consumer gave no result");
        goto cleanup;
    }
    *eps = (double)n * 1e6 / (double)wall_us;
    *eps_cpu = cpu_ms > 0 ? (double)n * 1000.0 / (double)cpu_ms : 0;
    rc = harness_proc_wait(p, 15000) == 0 && harness_proc_exit_code(p) == 0 ? 0 : -1;
cleanup:
    harness_proc_free(p);
    return rc;
}

/* The discard consumer's prefetch wake-up, as the consumer runtime's: once
 * the consumer queue has come near its bound and drained to a quarter of
 * it, the assigned partitions' leaders are woken. */
static void discard_wake(rd_kafka_t *rk, rd_kafka_queue_t *q, size_t bound, bool *high) {
    rd_kafka_topic_partition_list_t *l = NULL;

    if (!ops_consumer_prefetch_drained(rd_kafka_queue_length(q), bound, high))
        return;
    if (rd_kafka_assignment(rk, &l) == RD_KAFKA_RESP_ERR_NO_ERROR && l != NULL && l->cnt > 0)
        (void)ops_kafka_wake_fetchers(rk, l, NULL);
    if (l != NULL)
        rd_kafka_topic_partition_list_destroy(l);
}

/* The child: a consumer in its own group, rd_kafka_consumer_poll like
 * opstream-count, nothing done per message. With opstream's consumer
 * defaults and librdkafka's prefetch; "woken" (a seventh argument): with
 * the consumer runtime's client settings too (the prefetch bound of the
 * default batch, bounded fetch responses) and its prefetch wake-up.
 * Prints "messages wall-us cpu-ms" counted once a tenth has arrived. */
int bench_discard_main(int argc, char **argv) {
    char err[512], name[256];
    ops_config_t *cfg = ops_config_new();
    rd_kafka_t *rk = NULL;
    rd_kafka_queue_t *q = NULL;
    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(OPS_KIND_COUNT);
    size_t bound = 0;
    bool high = false;
    long long expect, n = 0;
    int64_t t0 = 0, cpu0 = 0, deadline = bench_now_us() + COUNT_TIMEOUT_US;
    int rc = 1;

    if ((argc != 6 && !(argc == 7 && strcmp(argv[6], "woken") == 0)) || cfg == NULL) {
        fprintf(stderr, "usage: opstream-bench discard BOOTSTRAP PREFIX GROUP MESSAGES [woken]\n");
        goto cleanup;
    }
    expect = strtoll(argv[5], NULL, 10);
    ops_kafka_consumer_opts_t ko = {.group = argv[4]};
    if (argc == 7) {
        ko.prefetch_messages = ops_consumer_prefetch_messages(OPS_COUNTER_DEFAULT_MAX_EVENTS);
        ko.prefetch_given = &bound;
        ko.fetch_bytes = OPS_CONSUMER_FETCH_BYTES;
    }
    if (ops_config_set(cfg, "bootstrap.servers", argv[2], err, sizeof err) != 0 ||
        (rk = ops_kafka_consumer_build(cfg, &ko, err, sizeof err)) == NULL) {
        fprintf(stderr, "discard: %s\n", err);
        goto cleanup;
    }
    q = rd_kafka_queue_get_consumer(rk);
    for (int k = 0; k < OPS_KIND_COUNT; k++) {
        ops_topic_name(argv[3], (ops_kind_t)k, name, sizeof name);
        rd_kafka_topic_partition_list_add(topics, name, RD_KAFKA_PARTITION_UA);
    }
    if (rd_kafka_subscribe(rk, topics) != 0)
        goto cleanup;
    while (n < expect && bench_now_us() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (q != NULL && bound > 0 && (m == NULL || n % 1000 == 0))
            discard_wake(rk, q, bound, &high); /* the runtime looks after each burst */
        if (m == NULL)
            continue;
        if (m->err == 0 && ++n == expect / 10 + 1) { /* as for the counter */
            t0 = bench_now_us();
            cpu0 = bench_self_cpu_ms();
        }
        rd_kafka_message_destroy(m);
    }
    if (n >= expect) {
        printf("%lld %lld %lld\n", n - (expect / 10 + 1), (long long)(bench_now_us() - t0),
               (long long)(bench_self_cpu_ms() - cpu0));
        fflush(stdout);
        rc = 0;
    }
    if (q != NULL)
        rd_kafka_queue_destroy(q);
    rd_kafka_consumer_close(rk);
cleanup:
    if (rk != NULL)
        rd_kafka_destroy(rk);
    rd_kafka_topic_partition_list_destroy(topics);
    ops_config_destroy(cfg);
    return rc;
}

/* ---- producer ------------------------------------------------------------ */

typedef struct dr_count {
    int64_t ok, failed;
} dr_count_t;

static void dr_counter(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    dr_count_t *d = opaque;

    (void)rk;
    if (m->err)
        d->failed++;
    else
        d->ok++;
}

#define PROD_RING 10000

/* opstream's side: the ring's events sent n times over through
 * ops_produce_send (encoding included), timed from the first send until the
 * last delivery report, and the sending thread's CPU over the same span
 * (delivery reports are served on it). The producer is built before the
 * clock starts. */
static int produce_ops_side(bench_env_t *e, const char *prefix, const ops_event_t *ring, size_t n,
                            double *eps, double *cpu_ns) {
    char err[512];
    ops_config_t *cfg = ops_config_new();
    ops_produce_t *prod = NULL;
    ops_produce_stats_t st;
    ops_produce_options_t po = {0};
    int64_t t0, cpu0;
    int rc = -1;

    if (cfg == NULL ||
        ops_config_set(cfg, "bootstrap.servers", e->broker->bootstrap, err, sizeof err) != 0 ||
        ops_config_set(cfg, "opstream.topic.prefix", prefix, err, sizeof err) != 0 ||
        (prod = ops_produce_new(cfg, &po, err, sizeof err)) == NULL) {
        bench_log("producer: %s", cfg != NULL ? err : "out of memory");
        goto cleanup;
    }
    t0 = bench_now_us();
    cpu0 = bench_thread_cpu_ns();
    for (size_t i = 0; i < n; i++)
        if (ops_produce_send(prod, &ring[i % PROD_RING], "bench", (long)i, err, sizeof err) != 0) {
            bench_log("ops_produce_send: %s", err);
            goto cleanup;
        }
    ops_produce_flush(prod, -1);
    ops_produce_stats(prod, &st);
    if (st.delivered != n) {
        bench_log("producer: %llu of %zu delivered", (unsigned long long)st.delivered, n);
        goto cleanup;
    }
    *eps = (double)n * 1e6 / (double)(bench_now_us() - t0);
    *cpu_ns = (double)(bench_thread_cpu_ns() - cpu0) / (double)n;
    rc = 0;
cleanup:
    ops_produce_destroy(prod);
    ops_config_destroy(cfg);
    return rc;
}

/* The raw side: the same events as pre-encoded frames through a bare
 * librdkafka producer with opstream's settings, timed the same way. */
static int produce_raw_side(bench_env_t *e, const char *prefix, const bench_frames_t *f, size_t n,
                            double *eps, double *cpu_ns) {
    rd_kafka_t *rk = NULL;
    rd_kafka_topic_t *topics[OPS_KIND_COUNT] = {0};
    dr_count_t dr = {0};
    int64_t t0, cpu0;
    int rc = -1;

    if ((rk = bench_producer_new(e->broker->bootstrap, NULL, dr_counter, &dr)) == NULL ||
        bench_topics_open(rk, prefix, topics) != 0)
        goto cleanup;
    t0 = bench_now_us();
    cpu0 = bench_thread_cpu_ns();
    for (size_t i = 0; i < n; i++) {
        if (bench_produce_frame(rk, topics, f, i % PROD_RING, NULL) != 0)
            goto cleanup;
        rd_kafka_poll(rk, 0);
    }
    rd_kafka_flush(rk, 60000);
    if (dr.ok != (int64_t)n) {
        bench_log("raw producer: %lld of %zu delivered", (long long)dr.ok, n);
        goto cleanup;
    }
    *eps = (double)n * 1e6 / (double)(bench_now_us() - t0);
    *cpu_ns = (double)(bench_thread_cpu_ns() - cpu0) / (double)n;
    rc = 0;
cleanup:
    bench_topics_close(topics);
    if (rk != NULL)
        rd_kafka_destroy(rk);
    return rc;
}

/* Both sides send the same PROD_RING events n times over: opstream's side
 * encodes and sends each one through ops_produce (validation happened when
 * the record was read), the raw side sends the pre-encoded frames. Times run
 * from the first send until the last delivery report. raw_first says which
 * side goes first (the second one finds the broker warmed up). */
int bench_producer_run(bench_env_t *e, const char *prefix, size_t n, bool raw_first,
                       bench_producer_result_t *res) {
    bench_gen_t g;
    bench_frames_t f = {0};
    ops_event_t *ring = calloc(PROD_RING, sizeof *ring);
    int rc = -1;

    if (bench_gen_init(&g, 1) != 0)
        goto cleanup_nogen;
    if (ring == NULL || bench_frames_build(&f, &g, 0, PROD_RING, 0) != 0)
        goto cleanup;
    res->frame_bytes = bench_frames_avg_size(&f);
    for (size_t i = 0; i < PROD_RING; i++)
        bench_gen_event(&g, i, &ring[i]);
    rc = raw_first ? produce_raw_side(e, prefix, &f, n, &res->raw_eps, &res->raw_cpu_ns)
                   : produce_ops_side(e, prefix, ring, n, &res->ops_eps, &res->ops_cpu_ns);
    if (rc == 0)
        rc = raw_first ? produce_ops_side(e, prefix, ring, n, &res->ops_eps, &res->ops_cpu_ns)
                       : produce_raw_side(e, prefix, &f, n, &res->raw_eps, &res->raw_cpu_ns);
cleanup:
    bench_frames_free(&f);
    bench_gen_free(&g);
cleanup_nogen:
    free(ring);
    return rc;
}

/* ---- paced production with send times ------------------------------------ */

typedef struct sent {
    int64_t t_send; /* us */
    int32_t partition;
    int64_t offset; /* -1 until delivered */
} sent_t;

static void dr_record(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    sent_t *s = opaque;
    size_t i = (size_t)(uintptr_t)m->_private;

    (void)rk;
    if (m->err == 0) {
        s[i].partition = m->partition;
        s[i].offset = m->offset;
    }
}

typedef void (*tick_fn)(void *arg);

/* Sends f at `rate` events/s (in small bursts every ~200 us), recording each
 * send time; tick is called between bursts. Waits for every delivery. */
static int paced_produce(const char *bootstrap, const char *prefix, const bench_frames_t *f,
                         double rate, sent_t *s, tick_fn tick, void *arg, double *achieved) {
    rd_kafka_t *rk = bench_producer_new(bootstrap, NULL, dr_record, s);
    rd_kafka_topic_t *topics[OPS_KIND_COUNT] = {0};
    size_t sent = 0;
    int64_t start;
    int rc = -1;

    if (rk == NULL || bench_topics_open(rk, prefix, topics) != 0)
        goto cleanup;
    start = bench_now_us();
    while (sent < f->n) {
        int64_t now = bench_now_us();
        size_t due = (size_t)((double)(now - start) * rate / 1e6);
        while (sent < f->n && sent < due) {
            s[sent].t_send = bench_now_us();
            s[sent].offset = -1;
            if (bench_produce_frame(rk, topics, f, sent, (void *)(uintptr_t)sent) != 0)
                goto cleanup;
            sent++;
        }
        rd_kafka_poll(rk, 0);
        if (tick != NULL)
            tick(arg);
        sleep_us(200);
    }
    *achieved = (double)f->n * 1e6 / (double)(bench_now_us() - start);
    while (rd_kafka_outq_len(rk) > 0) {
        rd_kafka_poll(rk, 1);
        if (tick != NULL)
            tick(arg);
    }
    rc = 0;
cleanup:
    bench_topics_close(topics);
    if (rk != NULL)
        rd_kafka_destroy(rk);
    return rc;
}

static int fill_latency(bench_latency_t *out, double *lat, size_t n) {
    out->samples = n;
    if (n == 0)
        return -1;
    out->p50 = bench_percentile(lat, n, 50);
    out->p99 = bench_percentile(lat, n, 99);
    out->p999 = bench_percentile(lat, n, 99.9);
    out->max = lat[n - 1];
    return 0;
}

/* Ends a latency run of program p: the seen of want samples in lat into
 * out, p's peak RSS into *rss_peak where higher, p stopped. 0, or -1 when
 * a sample is missing or p did not stop cleanly. */
static int finish_latency_run(bench_latency_t *out, double *lat, size_t seen, size_t want,
                              harness_proc_t *p, long *rss_peak) {
    int rc = fill_latency(out, lat, seen);

    if (rc == 0 && seen != want)
        rc = -1;
    keep_peak(rss_peak, bench_rss_kib(p->pid, true));
    if (stop_clean(p) != 0)
        rc = -1;
    return rc;
}

/* ---- produce -> Redis ------------------------------------------------------ */

/* Offsets seen by the poller: per "topic:partition" field, each increase with
 * the time it was first seen. */
typedef struct obs {
    int64_t t, value;
} obs_t;

typedef struct field_obs {
    char name[300];
    obs_t *v;
    size_t n, cap;
} field_obs_t;

typedef struct poller {
    redisContext *c;
    const char *group;
    atomic_int stop;
    field_obs_t f[FIELD_MAX];
    size_t nf;
} poller_t;

static void poller_note(poller_t *p, const char *name, int64_t value, int64_t t) {
    size_t i;

    for (i = 0; i < p->nf && strcmp(p->f[i].name, name) != 0; i++)
        ;
    if (i == p->nf) {
        if (p->nf == FIELD_MAX)
            return;
        snprintf(p->f[p->nf++].name, sizeof p->f[0].name, "%s", name);
    }
    field_obs_t *fo = &p->f[i];
    if (fo->n > 0 && fo->v[fo->n - 1].value >= value)
        return;
    if (fo->n == fo->cap) {
        size_t cap = fo->cap ? fo->cap * 2 : 1024;
        obs_t *v = realloc(fo->v, cap * sizeof *v);
        if (v == NULL)
            return;
        fo->v = v;
        fo->cap = cap;
    }
    fo->v[fo->n++] = (obs_t){t, value};
}

/* Reads the offsets hash every millisecond; an offset is visible from the
 * reply that first shows it (error: one poll interval plus a round trip). */
static void *poller_main(void *arg) {
    poller_t *p = arg;

    while (!atomic_load(&p->stop)) {
        redisReply *r = redisCommand(p->c, "HGETALL opstream:offsets:%s", p->group);
        int64_t t = bench_now_us();
        if (r == NULL)
            break;
        if (r->type == REDIS_REPLY_ARRAY)
            for (size_t i = 0; i + 1 < r->elements; i += 2)
                poller_note(p, r->element[i]->str, strtoll(r->element[i + 1]->str, NULL, 10), t);
        freeReplyObject(r);
        sleep_us(1000);
    }
    return NULL;
}

static void poller_free(poller_t *p) {
    for (size_t i = 0; i < p->nf; i++)
        free(p->f[i].v);
    if (p->c != NULL)
        redisFree(p->c);
}

/* First time the field's stored offset passed `offset`; -1 if never. */
static int64_t visible_at(const poller_t *p, const char *name, int64_t offset) {
    for (size_t i = 0; i < p->nf; i++) {
        const field_obs_t *fo = &p->f[i];
        if (strcmp(fo->name, name) != 0)
            continue;
        size_t lo = 0, hi = fo->n;
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (fo->v[mid].value > offset)
                hi = mid;
            else
                lo = mid + 1;
        }
        return lo < fo->n ? fo->v[lo].t : -1;
    }
    return -1;
}

static bool all_counted(redisContext *c, const char *group, int64_t high) {
    int64_t deadline = bench_now_us() + 30000000;

    while (bench_now_us() < deadline) {
        int64_t s = offsets_sum(c, group);
        if (s < 0)
            return false;
        if (s >= high)
            return true;
        sleep_us(5000);
    }
    return false;
}

int bench_latency_redis(bench_env_t *e, const char *prefix, uint64_t first_index, double rate,
                        double secs, bench_latency_t *out) {
    char group[96];
    bench_gen_t g;
    bench_frames_t warm = {0}, f = {0};
    redisContext *c = harness_redis_connect(e->redis);
    poller_t *pl = calloc(1, sizeof *pl);
    harness_proc_t *p = NULL;
    sent_t *s = NULL;
    double *lat = NULL;
    size_t n = (size_t)(rate * secs), nl = 0;
    int64_t msgs, high;
    bool started = false;
    pthread_t th;
    int rc = -1;

    memset(out, 0, sizeof *out);
    /* a group of its own for the run's topics: its stored offsets are
     * those of this run only */
    snprintf(group, sizeof group, "bench-latency-%s", prefix);
    if (bench_gen_init(&g, 1) != 0)
        goto cleanup_nogen;
    if (c == NULL || pl == NULL || bench_frames_build(&warm, &g, first_index, 200, 0) != 0 ||
        bench_frames_build(&f, &g, first_index + 200, n, 0) != 0 ||
        (s = calloc(n, sizeof *s)) == NULL || (lat = calloc(n, sizeof *lat)) == NULL)
        goto cleanup;
    /* The counter joins and catches up first. */
    if ((p = spawn_count(e, prefix, group)) == NULL ||
        bench_fill(e->broker->bootstrap, prefix, &warm) < 0 ||
        bench_topic_span(e->broker->bootstrap, prefix, &msgs, &high) != 0 ||
        !all_counted(c, group, high)) {
        bench_log("latency: opstream-count did not catch up before the run");
        goto cleanup;
    }
    pl->group = group;
    if ((pl->c = harness_redis_connect(e->redis)) == NULL ||
        pthread_create(&th, NULL, poller_main, pl) != 0)
        goto cleanup;
    started = true;
    if (paced_produce(e->broker->bootstrap, prefix, &f, rate, s, NULL, NULL, &out->achieved_eps) !=
            0 ||
        bench_topic_span(e->broker->bootstrap, prefix, &msgs, &high) != 0 ||
        !all_counted(c, group, high)) {
        bench_log("latency: not every event was counted within 30 s of the run");
        goto cleanup;
    }
    sleep_us(20000); /* the poller's last round */
    atomic_store(&pl->stop, 1);
    pthread_join(th, NULL);
    started = false;
    for (size_t i = 0; i < n; i++) {
        char name[300], topic[256];
        if (s[i].offset < 0)
            continue;
        ops_topic_name(prefix, (ops_kind_t)f.kind[i], topic, sizeof topic);
        snprintf(name, sizeof name, "%s:%d", topic, (int)s[i].partition);
        int64_t t = visible_at(pl, name, s[i].offset);
        if (t >= 0)
            lat[nl++] = (double)(t - s[i].t_send) / 1000.0;
    }
    if (nl != n)
        bench_log("latency: %zu of %zu events seen in Redis", nl, n);
    rc = finish_latency_run(out, lat, nl, n, p, &e->rss_count_kib);
cleanup:
    if (started) {
        atomic_store(&pl->stop, 1);
        pthread_join(th, NULL);
    }
    harness_proc_free(p);
    if (pl != NULL)
        poller_free(pl);
    free(pl);
    free(s);
    free(lat);
    bench_frames_free(&warm);
    bench_frames_free(&f);
    bench_gen_free(&g);
cleanup_nogen:
    if (c != NULL)
        redisFree(c);
    return rc;
}

/* ---- produce -> alert -------------------------------------------------------- */

typedef struct alert_watch {
    rd_kafka_t *rk;
    ops_codec_t *codec;
    const bench_frames_t *f;
    const sent_t *s;
    double *lat;
    size_t nlat, probes;
} alert_watch_t;

/* Serves the alert consumer: each alert naming one of our probes gives
 * one latency sample (its receipt here minus the probe's send time). */
static void alert_tick(void *arg) {
    alert_watch_t *w = arg;
    rd_kafka_message_t *m;
    ops_alert_t a;
    char err[256];

    while ((m = rd_kafka_consumer_poll(w->rk, 0)) != NULL) {
        int64_t now = bench_now_us();
        if (m->err == 0 && m->payload != NULL &&
            ops_codec_decode_alert(w->codec, m->payload, m->len, &a, err, sizeof err) ==
                OPS_CODEC_OK &&
            a.n_event_ids > 0) {
            for (size_t i = 0; i < w->f->n; i++)
                if (w->f->event_id[i][0] != '\0' &&
                    strcmp(w->f->event_id[i], a.event_ids[0]) == 0 && w->s[i].t_send > 0) {
                    w->lat[w->nlat++] = (double)(now - w->s[i].t_send) / 1000.0;
                    break;
                }
        }
        rd_kafka_message_destroy(m);
    }
}

/* A reader of the alert topic assigned at its current end. */
static rd_kafka_t *alert_reader(bench_env_t *e, const char *prefix) {
    char err[512], topic[256];
    ops_config_t *cfg = ops_config_new();
    rd_kafka_t *rk = NULL;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(BENCH_PARTITIONS);

    snprintf(topic, sizeof topic, "%salerts", prefix);
    if (cfg == NULL ||
        ops_config_set(cfg, "bootstrap.servers", e->broker->bootstrap, err, sizeof err) != 0 ||
        (rk = ops_kafka_consumer_new(cfg, "bench-alert-reader", NULL, NULL, err, sizeof err)) ==
            NULL)
        goto cleanup;
    for (int i = 0; i < BENCH_PARTITIONS; i++) {
        int64_t lo, hi;
        if (rd_kafka_query_watermark_offsets(rk, topic, i, &lo, &hi, 10000) != 0) {
            rd_kafka_destroy(rk);
            rk = NULL;
            goto cleanup;
        }
        rd_kafka_topic_partition_list_add(l, topic, i)->offset = hi;
    }
    rd_kafka_assign(rk, l);
cleanup:
    rd_kafka_topic_partition_list_destroy(l);
    ops_config_destroy(cfg);
    return rk;
}

int bench_latency_alert(bench_env_t *e, const char *prefix, uint64_t first_index, double rate,
                        double secs, bench_latency_t *out) {
    static const char rules[] = "[rule bench-probe]\n"
                                "kind = rescue\n"
                                "when = location ~ BENCHPROBE\n"
                                "severity = INFO\n"
                                "summary = probe {event_id}\n";
    char rules_path[HARNESS_PATH_MAX], err[512], group[96];
    bench_gen_t g;
    bench_frames_t warm = {0}, f = {0};
    alert_watch_t w = {0}, ww = {0};
    harness_proc_t *p = NULL;
    sent_t *s = NULL, ws[1];
    size_t n = (size_t)(rate * secs), probe_every = (size_t)(rate / 20.0);
    int rc = -1;

    memset(out, 0, sizeof *out);
    if (bench_gen_init(&g, 1) != 0)
        return -1;
    const char *more[] = {"--rules", rules_path, NULL};
    if (harness_path(rules_path, sizeof rules_path, "bench-rules.conf") != 0 ||
        harness_write_file(rules_path, rules, (size_t)-1) != 0 ||
        bench_frames_build(&warm, &g, first_index, 1, 1) != 0 ||
        bench_frames_build(&f, &g, first_index + 1, n, probe_every ? probe_every : 1) != 0 ||
        (s = calloc(n, sizeof *s)) == NULL || (w.lat = calloc(n, sizeof *w.lat)) == NULL ||
        (ww.lat = calloc(1, sizeof *ww.lat)) == NULL ||
        (w.codec = ops_codec_new(NULL, err, sizeof err)) == NULL ||
        (w.rk = alert_reader(e, prefix)) == NULL)
        goto cleanup;
    for (size_t i = 0; i < n; i++)
        w.probes += f.event_id[i][0] != '\0';
    snprintf(group, sizeof group, "bench-alert-%s", prefix); /* a group per run's topics */
    if ((p = spawn_consumer(e, "opstream-alert", prefix, group, more)) == NULL)
        goto cleanup;
    /* Warm-up: the first probe's alert says the alerter is in its group. */
    ww = (alert_watch_t){.rk = w.rk, .codec = w.codec, .f = &warm, .s = ws, .lat = ww.lat};
    int64_t deadline = bench_now_us() + 60000000;
    double ach;
    if (paced_produce(e->broker->bootstrap, prefix, &warm, 1000, ws, NULL, NULL, &ach) != 0)
        goto cleanup;
    while (ww.nlat == 0 && bench_now_us() < deadline) {
        alert_tick(&ww);
        sleep_us(1000);
    }
    if (ww.nlat == 0) {
        bench_log("opstream-alert raised no alert for the warm-up probe");
        goto cleanup;
    }
    w.f = &f;
    w.s = s;
    if (paced_produce(e->broker->bootstrap, prefix, &f, rate, s, alert_tick, &w,
                      &out->achieved_eps) != 0)
        goto cleanup;
    deadline = bench_now_us() + 15000000;
    while (w.nlat < w.probes && bench_now_us() < deadline) {
        alert_tick(&w);
        sleep_us(200);
    }
    if (w.nlat != w.probes)
        bench_log("alert latency: %zu of %zu probes alerted", w.nlat, w.probes);
    rc = finish_latency_run(out, w.lat, w.nlat, w.probes, p, &e->rss_alert_kib);
cleanup:
    harness_proc_free(p);
    if (w.rk != NULL) {
        rd_kafka_consumer_close(w.rk);
        rd_kafka_destroy(w.rk);
    }
    ops_codec_destroy(w.codec);
    free(w.lat);
    free(ww.lat);
    free(s);
    bench_frames_free(&warm);
    bench_frames_free(&f);
    bench_gen_free(&g);
    return rc;
}
