/*
 * opstream-bench: the benchmark behind `make bench`. Starts the embedded
 * broker and a redis-server, measures producer, counter, latency, memory and
 * growth figures (each the median of several runs), prints a table with the
 * targets beside the figures and writes the same figures as JSON.
 */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "opstream/json.h"

#define MAX_RUNS 9

/* Sizes of one bench run; --quick shrinks everything for a sanity run. */
typedef struct sizes {
    size_t producer_events;
    size_t counter_events;
    size_t growth_events;
    size_t ids_round, ids_climb_round;
    int64_t ids_high; /* distinct ids in Redis before the "high" rounds */
    double latency_s;
    size_t program_events;
    double soak_s, soak_rss_at_s; /* the alert soak: its length, when RSS is taken first */
} sizes_t;

static const sizes_t full_sizes = {1000000, 400000, 300000, 100000, 300000,
                                   1000000, 5.0,    100000, 300.0,  60.0};
static const sizes_t quick_sizes = {30000,  60000, 40000, 20000, 40000,
                                    100000, 2.0,   20000, 20.0,  5.0};

/* One reported figure: median of its runs, optional target. */
typedef struct figure {
    const char *section, *name, *unit;
    double v[MAX_RUNS];
    int n;
    double median;
    const char *target_text; /* NULL: informational */
    double target;
    bool higher_is_better;
} figure_t;

#define MAX_FIGURES 128
static figure_t g_fig[MAX_FIGURES];
static int g_nfig;

static figure_t *fig(const char *section, const char *name, const char *unit) {
    for (int i = 0; i < g_nfig; i++)
        if (strcmp(g_fig[i].section, section) == 0 && strcmp(g_fig[i].name, name) == 0)
            return &g_fig[i];
    if (g_nfig == MAX_FIGURES) { /* a figure too many: kept out of the table */
        static figure_t spare;
        bench_log("more than %d figures: %s left out", MAX_FIGURES, name);
        memset(&spare, 0, sizeof spare);
        spare.section = section;
        spare.name = name;
        spare.unit = unit;
        return &spare;
    }
    figure_t *f = &g_fig[g_nfig++];
    memset(f, 0, sizeof *f);
    f->section = section;
    f->name = name;
    f->unit = unit;
    return f;
}

static void add(const char *section, const char *name, const char *unit, double v) {
    figure_t *f = fig(section, name, unit);

    if (f->n < MAX_RUNS)
        f->v[f->n++] = v;
}

/* The median of a figure's runs so far; -1 when it has none. */
static double median_of(const char *section, const char *name) {
    for (int i = 0; i < g_nfig; i++)
        if (strcmp(g_fig[i].section, section) == 0 && strcmp(g_fig[i].name, name) == 0)
            return g_fig[i].n > 0 ? bench_median(g_fig[i].v, (size_t)g_fig[i].n) : -1;
    return -1;
}

/* Adds num / den of two figures' medians as the figure name (x), when both
 * have runs; returns whether it did. */
static bool add_ratio(const char *section, const char *name, const char *num, const char *den) {
    double a = median_of(section, num), b = median_of(section, den);

    if (a <= 0 || b <= 0)
        return false;
    add(section, name, "x", a / b);
    return true;
}

static void target(const char *section, const char *name, const char *text, double t,
                   bool higher_is_better) {
    figure_t *f = fig(section, name, "");

    f->target_text = text;
    f->target = t;
    f->higher_is_better = higher_is_better;
}

static const char *verdict(const figure_t *f) {
    if (f->target_text == NULL)
        return "";
    if (f->n == 0)
        return "n/a";
    return (f->higher_is_better ? f->median >= f->target : f->median <= f->target) ? "PASS"
                                                                                   : "MISS";
}

static int failures;

static void failed(const char *what) {
    bench_log("%s failed", what);
    failures++;
}

static void print_row(FILE *out, const figure_t *f) {
    char num[32];

    if (f->n == 0)
        snprintf(num, sizeof num, "n/a");
    else if (f->median >= 100)
        snprintf(num, sizeof num, "%.0f", f->median);
    else
        snprintf(num, sizeof num, "%.3g", f->median);
    fprintf(out, "%-10s %-44s %14s %-10s %-14s %s\n", "", f->name, num, f->unit,
            f->target_text ? f->target_text : "", verdict(f));
}

static const char *const g_sections[] = {"producer", "counter", "latency",  "soak",
                                         "memory",   "growth",  "programs", NULL};

static void print_table(FILE *out) {
    fprintf(out, "%-10s %-44s %14s %-10s %-14s %s\n", "", "figure", "median", "unit", "target", "");
    for (int s = 0; g_sections[s] != NULL; s++) {
        bool header = false;
        for (int i = 0; i < g_nfig; i++) {
            figure_t *f = &g_fig[i];
            if (strcmp(f->section, g_sections[s]) != 0)
                continue;
            if (!header)
                fprintf(out, "%s\n", f->section);
            header = true;
            print_row(out, f);
        }
    }
}
/* A JSON string literal (the library's one writer); null when out of memory. */
static void json_str(FILE *o, const char *s) {
    char *q = ops_json_quote(s);
    fputs(q != NULL ? q : "null", o);
    free(q);
}

static int write_json(const char *path, const char *cpu, int cores, const char *libs,
                      const char *redis_version, const char *redis_settings, bool quick, int runs) {
    FILE *o = fopen(path, "w");

    if (o == NULL)
        return -1;
    fprintf(o, "{\n  \"machine\": {\"cpu\": ");
    json_str(o, cpu);
    fprintf(o, ", \"cores\": %d},\n  \"libraries\": ", cores);
    json_str(o, libs);
    fprintf(o, ",\n  \"redis_server\": ");
    json_str(o, redis_version);
    fprintf(o, ",\n  \"redis_settings\": ");
    json_str(o, redis_settings);
    fprintf(o, ",\n  \"quick\": %s,\n  \"runs\": %d,\n  \"figures\": [\n", quick ? "true" : "false",
            runs);
    for (int i = 0; i < g_nfig; i++) {
        figure_t *f = &g_fig[i];
        fprintf(o, "    {\"section\": ");
        json_str(o, f->section);
        fprintf(o, ", \"name\": ");
        json_str(o, f->name);
        fprintf(o, ", \"unit\": ");
        json_str(o, f->unit);
        if (f->n)
            fprintf(o, ", \"median\": %.6g, \"runs\": [", f->median);
        else
            fprintf(o, ", \"median\": null, \"runs\": [");
        for (int k = 0; k < f->n; k++)
            fprintf(o, "%s%.6g", k ? ", " : "", f->v[k]);
        fprintf(o, "]");
        if (f->target_text != NULL) {
            fprintf(o, ", \"target\": ");
            json_str(o, f->target_text);
            fprintf(o, ", \"verdict\": \"%s\"", verdict(f));
        }
        fprintf(o, "}%s\n", i + 1 < g_nfig ? "," : "");
    }
    fprintf(o, "  ]\n}\n");
    return fclose(o);
}

/* redis-server's own hash-max-listpack-entries (-1: not known). */
static long redis_hash_entries(bench_env_t *e) {
    redisReply *r = harness_redis_command(e->redis, "CONFIG GET hash-max-listpack-entries");
    long n = -1;

    if (r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        r->element[1]->type == REDIS_REPLY_STRING)
        n = strtol(r->element[1]->str, NULL, 10);
    if (r != NULL)
        freeReplyObject(r);
    return n;
}

static void redis_version(bench_env_t *e, char *buf, size_t size) {
    redisReply *r = harness_redis_command(e->redis, "INFO server");
    const char *v;

    snprintf(buf, size, "?");
    if (r != NULL && r->type == REDIS_REPLY_STRING && (v = strstr(r->str, "redis_version:")))
        snprintf(buf, size, "%.*s", (int)strcspn(v + 14, "\r\n"), v + 14);
    if (r != NULL)
        freeReplyObject(r);
}

/* Fills a fresh topic set with n events of nops operations starting at
 * event index first; says how many the broker kept. */
static int prefill(bench_env_t *e, const char *prefix, int nops, uint64_t first, size_t n,
                   bool create, int64_t *kept) {
    bench_gen_t g;
    bench_frames_t f;
    int64_t high;
    double secs;

    if (create && bench_create_topics(e->broker, prefix) != 0)
        return -1;
    if (bench_gen_init(&g, nops) != 0)
        return -1;
    if (bench_frames_build(&f, &g, first, n, 0) != 0) {
        bench_gen_free(&g);
        return -1;
    }
    secs = bench_fill(e->broker->bootstrap, prefix, &f);
    bench_frames_free(&f);
    bench_gen_free(&g);
    if (secs < 0 || bench_topic_span(e->broker->bootstrap, prefix, kept, &high) != 0)
        return -1;
    bench_log("%s: %zu events in %.2f s (%.0f/s); the topics hold %lld", prefix, n, secs,
              (double)n / secs, (long long)*kept);
    return 0;
}

/* A peak RSS in KiB as MiB, when it was measured (kib > 0); otherwise the
 * figure stays without a value and prints "n/a". */
static void add_rss(const char *section, const char *name, long kib) {
    if (kib > 0)
        add(section, name, "MiB", (double)kib / 1024.0);
    else
        (void)fig(section, name, "MiB");
}

/* "counts exact": 1 or 0 only for a run whose totals were compared with
 * what was produced; "n/a" otherwise. */
static void add_exact(const char *section, const char *name, const bench_count_result_t *r) {
    if (r->checked)
        add(section, name, "", r->exact ? 1 : 0);
    else
        (void)fig(section, name, "");
}

static const char *exact_word(const bench_count_result_t *r) {
    return !r->checked ? "not checked" : r->exact ? "yes" : "NO";
}

static void count_figures(const char *section, const bench_count_result_t *r, bool full) {
    add(section, "events/s (wall clock)", "ev/s", r->eps);
    add(section, "events per CPU-second of opstream-count", "ev/cpu-s", r->eps_cpu);
    add_rss(section, "peak RSS of opstream-count", r->rss_kib);
    if (full) {
        add(section, "Redis commands per event (script inside)", "cmd/ev", r->cmds_per_ev);
        add(section, "Redis round trips per event", "rt/ev", r->calls_per_ev);
        add(section, "redis-server CPU per counted event", "us/ev", r->redis_us_per_ev);
        add_exact(section, "counts exact (1 = yes)", r);
    }
}

static void bench_producer(bench_env_t *e, const sizes_t *z) {
    bench_producer_result_t res;

    if (bench_create_topics(e->broker, "b.prod.") != 0)
        return failed("producer topics");
    /* Even runs send opstream's side first, odd runs the raw side, so that
     * neither always meets the broker warmed up by the other; the ratio is
     * taken per run. */
    for (int r = 0; r < e->runs; r++) {
        if (bench_producer_run(e, "b.prod.", z->producer_events, r % 2 == 1, &res) != 0)
            return failed("producer run");
        add("producer", "opstream produce path (encode+send)", "ev/s", res.ops_eps);
        add("producer", "raw librdkafka, same frames (limit)", "ev/s", res.raw_eps);
        add("producer", "ratio opstream / raw", "", res.ops_eps / res.raw_eps);
        add("producer", "sending thread CPU per event, opstream", "ns/ev", res.ops_cpu_ns);
        add("producer", "sending thread CPU per event, raw", "ns/ev", res.raw_cpu_ns);
        add("producer", "frame size", "bytes", res.frame_bytes);
        bench_log("producer run %d (%s first): %.0f/s opstream, %.0f/s raw, ratio %.3f; "
                  "sending thread %.0f ns/ev opstream, %.0f ns/ev raw",
                  r + 1, r % 2 == 1 ? "raw" : "opstream", res.ops_eps, res.raw_eps,
                  res.ops_eps / res.raw_eps, res.ops_cpu_ns, res.raw_cpu_ns);
    }
    target("producer", "ratio opstream / raw", ">= 0.6", 0.6, true);
}

static void bench_counter(bench_env_t *e, const sizes_t *z) {
    bench_count_result_t res;
    int64_t kept;
    double eps, eps_cpu, woken, woken_cpu;
    char group[64];

    if (prefill(e, "b.main.", 1, 0, z->counter_events, true, &kept) != 0)
        return failed("counter prefill");
    if (kept != (int64_t)z->counter_events)
        bench_log("warning: retention kept %lld of %zu events", (long long)kept, z->counter_events);
    e->main_filled = kept == (int64_t)z->counter_events;
    for (int r = 0; r < e->runs; r++) {
        if (bench_redis_flush(e) != 0 ||
            bench_count_run(e, "b.main.", "bench-count", 1,
                            kept == (int64_t)z->counter_events ? kept : -1, &res) != 0)
            return failed("counter run");
        count_figures("counter", &res, true);
        add("growth", "1 operation: events/s", "ev/s", res.eps);
        add_rss("growth", "1 operation: RSS", res.rss_kib);
        snprintf(group, sizeof group, "bench-discard-%d", r);
        if (bench_discard_run(e, "b.main.", group, false, &eps, &eps_cpu) != 0)
            return failed("discard run");
        add("counter", "poll-and-discard events/s (limit)", "ev/s", eps);
        add("counter", "poll-and-discard events per CPU-second", "ev/cpu-s", eps_cpu);
        add("counter", "ratio count / poll-and-discard", "", res.eps / eps);
        /* the same with the runtime's prefetch bound and wake-up: what
         * Kafka delivers to a consumer set up as opstream-count's is */
        snprintf(group, sizeof group, "bench-discard-woken-%d", r);
        if (bench_discard_run(e, "b.main.", group, true, &woken, &woken_cpu) != 0)
            return failed("discard run (woken)");
        add("counter", "poll-and-discard, runtime's prefetch wake-up", "ev/s", woken);
        add("counter", "ratio count / that", "", res.eps / woken);
        bench_log("counter run %d: %.0f/s (%.0f per CPU-s), discard %.0f/s (woken %.0f/s), "
                  "counts exact: %s, redis %.2f us/ev",
                  r + 1, res.eps, res.eps_cpu, eps, woken, exact_word(&res), res.redis_us_per_ev);
        if (res.checked && !res.exact)
            failed("counter counts exact");
        snprintf(group, sizeof group, "bench-alert-cpu-%d", r);
        if (bench_alert_run(e, "b.main.", group, &eps, &eps_cpu) != 0)
            return failed("alert run");
        add("counter", "opstream-alert events/s (wall clock)", "ev/s", eps);
        add("counter", "opstream-alert events per CPU-second", "ev/cpu-s", eps_cpu);
        bench_log("alert run %d: %.0f/s (%.0f per CPU-s)", r + 1, eps, eps_cpu);
    }
    target("counter", "events/s (wall clock)", ">= 200000", 2e5, true);
    target("counter", "redis-server CPU per counted event", "<= 2", 2, false);
    target("counter", "opstream-alert events per CPU-second", ">= 300000", 3e5, true);
    target("counter", "events per CPU-second of opstream-count", ">= 500000", 5e5, true);
    target("counter", "ratio count / poll-and-discard", ">= 0.6", 0.6, true);
    target("counter", "peak RSS of opstream-count", "<= 64", 64, false);
    target("counter", "counts exact (1 = yes)", "= 1", 1, true);
}

static void bench_growth_ops(bench_env_t *e, const sizes_t *z, int nops) {
    static char prefixes[2][32];
    static char names[2][3][64];
    int slot = nops == 10 ? 0 : 1;
    char *prefix = prefixes[slot];
    bench_count_result_t res;
    int64_t kept;

    snprintf(prefix, sizeof prefixes[0], "b.ops%d.", nops);
    snprintf(names[slot][0], sizeof names[0][0], "%d operations: events/s", nops);
    snprintf(names[slot][1], sizeof names[0][1], "%d operations: RSS", nops);
    snprintf(names[slot][2], sizeof names[0][2], "%d operations: redis-server CPU per event",
             nops);
    if (prefill(e, prefix, nops, 0, z->growth_events, true, &kept) != 0)
        return failed("growth prefill");
    for (int r = 0; r < e->runs; r++) {
        if (bench_redis_flush(e) != 0 ||
            bench_count_run(e, prefix, "bench-growth", nops,
                            kept == (int64_t)z->growth_events ? kept : -1, &res) != 0)
            return failed("growth run");
        add("growth", names[slot][0], "ev/s", res.eps);
        add_rss("growth", names[slot][1], res.rss_kib);
        add("growth", names[slot][2], "us/ev", res.redis_us_per_ev);
        if (res.checked && !res.exact)
            failed("growth counts exact");
        else if (!res.checked)
            bench_log("growth run: counts not checked (the broker's retention dropped events)");
    }
}

/* One operation and 100 again (their topic sets filled by the counter and
 * growth sections) with redis-server's own hash-max-listpack-entries: the
 * same runs on a server left at its default, for comparison. */
static void bench_growth_server_default(bench_env_t *e, const sizes_t *z) {
    static char names[4][96];
    long d = e->hash_entries_default;
    bench_count_result_t one, hundred;

    if (d < 0 || d == BENCH_HASH_ENTRIES || !e->main_filled)
        return;
    snprintf(names[0], sizeof names[0], "1 operation: events/s (default %ld)", d);
    snprintf(names[1], sizeof names[1], "100 operations: events/s (default %ld)", d);
    snprintf(names[2], sizeof names[2], "100 operations: Redis CPU/event (default %ld)", d);
    snprintf(names[3], sizeof names[3], "100 operations vs one (default %ld)", d);
    if (bench_redis_hash_entries(e, d) != 0)
        return failed("redis hash-max-listpack-entries");
    for (int r = 0; r < e->runs; r++) {
        if (bench_redis_flush(e) != 0 ||
            bench_count_run(e, "b.main.", "bench-count-default", 1, (int64_t)z->counter_events,
                            &one) != 0 ||
            bench_redis_flush(e) != 0 ||
            bench_count_run(e, "b.ops100.", "bench-growth-default", 100, -1, &hundred) != 0) {
            failed("growth run (Redis default)");
            break;
        }
        add("growth", names[0], "ev/s", one.eps);
        add("growth", names[1], "ev/s", hundred.eps);
        add("growth", names[2], "us/ev", hundred.redis_us_per_ev);
        if (one.checked && !one.exact)
            failed("growth counts exact (Redis default)");
    }
    add_ratio("growth", names[3], names[1], names[0]);
    if (bench_redis_hash_entries(e, BENCH_HASH_ENTRIES) != 0)
        failed("redis hash-max-listpack-entries");
}

/* Distinct ids: a 10k seed, rounds measured with ~10k ids held, a climb to
 * ids_high, rounds measured there; every round checks the totals. */
static void bench_growth_ids(bench_env_t *e, const sizes_t *z) {
    static char lo_eps[64], lo_rss[64], hi_eps[64], hi_rss[64], lo_mem[64], hi_mem[64], lo_seen[64],
        hi_seen[64];
    const char *prefix = "b.ids.";
    uint64_t next = 10000000;
    int64_t total = 0, kept, used, fields, bytes;
    bench_count_result_t res;

    snprintf(lo_eps, sizeof lo_eps, "ids ~10k held: events/s");
    snprintf(lo_rss, sizeof lo_rss, "ids ~10k held: RSS");
    snprintf(lo_mem, sizeof lo_mem, "Redis used_memory, 10k ids");
    snprintf(lo_seen, sizeof lo_seen, "dedupe hashes, 10k ids");
    snprintf(hi_eps, sizeof hi_eps, "ids ~%lldk held: events/s", (long long)z->ids_high / 1000);
    snprintf(hi_rss, sizeof hi_rss, "ids ~%lldk held: RSS", (long long)z->ids_high / 1000);
    snprintf(hi_mem, sizeof hi_mem, "Redis used_memory, %lldk ids", (long long)z->ids_high / 1000);
    snprintf(hi_seen, sizeof hi_seen, "dedupe hashes, %lldk ids", (long long)z->ids_high / 1000);
    if (bench_redis_flush(e) != 0)
        return failed("ids flush");
        /* One round: fill n new ids, count them, check the totals. */
#define ROUND(n, create)                                                                           \
    do {                                                                                           \
        if (prefill(e, prefix, 1, next, (n), (create), &kept) != 0)                                \
            return failed("ids prefill");                                                          \
        next += (n);                                                                               \
        total += (int64_t)(n);                                                                     \
        if (bench_count_run(e, prefix, "bench-ids", 1, total, &res) != 0)                          \
            return failed("ids count");                                                            \
        if (!res.exact)                                                                            \
            failed("ids counts exact");                                                            \
    } while (0)
    ROUND(10000, true);
    if (bench_redis_memory(e, &used, &fields, &bytes) == 0) {
        add("growth", lo_mem, "MiB", (double)used / 1048576.0);
        add("growth", lo_seen, "MiB", (double)bytes / 1048576.0);
    }
    for (int r = 0; r < e->runs; r++) {
        ROUND(z->ids_round, false);
        add("growth", lo_eps, "ev/s", res.eps);
        add_rss("growth", lo_rss, res.rss_kib);
    }
    while (total < z->ids_high)
        ROUND(z->ids_climb_round, false);
    if (bench_redis_memory(e, &used, &fields, &bytes) == 0) {
        add("growth", hi_mem, "MiB", (double)used / 1048576.0);
        add("growth", hi_seen, "MiB", (double)bytes / 1048576.0);
        add("growth", "dedupe bytes per id (Redis)", "B", fields ? (double)bytes / fields : 0);
        bench_log("ids: %lld held in Redis, %lld bytes in dedupe hashes", (long long)fields,
                  (long long)bytes);
    }
    for (int r = 0; r < e->runs; r++) {
        ROUND(z->ids_round, false);
        add("growth", hi_eps, "ev/s", res.eps);
        add_rss("growth", hi_rss, res.rss_kib);
    }
#undef ROUND
}

/* The topic prefix of alert latency run r: each run has topics of its own
 * (see bench_latency), and bench_readers reads the last run's. */
static void alert_prefix(char *buf, size_t size, int r) {
    snprintf(buf, size, "b.alert.%d.", r);
}

static void bench_latency(bench_env_t *e, const sizes_t *z) {
    static const struct {
        double rate;
        const char *p50, *p99, *p999, *rate_name;
    } rates[] = {
        {10000, "10k ev/s: produce->Redis p50", "10k ev/s: produce->Redis p99",
         "10k ev/s: produce->Redis p99.9", "10k ev/s: achieved rate"},
        {50000, "50k ev/s: produce->Redis p50", "50k ev/s: produce->Redis p99",
         "50k ev/s: produce->Redis p99.9", "50k ev/s: achieved rate"},
    };
    bench_latency_t l;
    uint64_t next = 50000000;
    char prefix[32];

    /* Each run on topics of its own: the embedded broker finds a fetch's
     * offset by walking the partition's message sets from the oldest (it
     * keeps no offset index), so on topics that kept earlier runs' events
     * every fetch costs more, run after run. */
    for (size_t k = 0; k < 2; k++) {
        for (int r = 0; r < e->runs; r++) {
            snprintf(prefix, sizeof prefix, "b.lat%zu.%d.", k, r);
            if (bench_create_topics(e->broker, prefix) != 0)
                return failed("latency topics");
            if (bench_latency_redis(e, prefix, next, rates[k].rate, z->latency_s, &l) != 0)
                return failed("latency run");
            next += 1000000;
            add("latency", rates[k].p50, "ms", l.p50);
            add("latency", rates[k].p99, "ms", l.p99);
            add("latency", rates[k].p999, "ms", l.p999);
            add("latency", rates[k].rate_name, "ev/s", l.achieved_eps);
            bench_log("latency %.0f/s run %d: p50 %.2f p99 %.2f p99.9 %.2f ms (%zu samples)",
                      rates[k].rate, r + 1, l.p50, l.p99, l.p999, l.samples);
        }
    }
    target("latency", "10k ev/s: produce->Redis p99", "<= 20", 20, false);
    target("latency", "50k ev/s: produce->Redis p99", "<= 100", 100, false);
    for (int r = 0; r < e->runs; r++) {
        alert_prefix(prefix, sizeof prefix, r);
        if (bench_create_topics(e->broker, prefix) != 0)
            return failed("alert latency topics");
        if (bench_latency_alert(e, prefix, next, 10000, z->latency_s, &l) != 0)
            return failed("alert latency run");
        next += 1000000;
        add("latency", "produce->alert p50 (10k ev/s load)", "ms", l.p50);
        add("latency", "produce->alert p99 (10k ev/s load)", "ms", l.p99);
        add("latency", "alert probes per run", "", (double)l.samples);
        bench_log("alert latency run %d: p50 %.2f p99 %.2f ms (%zu probes)", r + 1, l.p50, l.p99,
                  l.samples);
    }
    target("latency", "produce->alert p99 (10k ev/s load)", "<= 50", 50, false);
}

/* opstream-alert under the simulator's traffic at 10,000 events/s: one run
 * (it lasts soak_s), so each figure is that run's value. */
static void bench_soak(bench_env_t *e, const sizes_t *z) {
    bench_soak_t s;

    if (bench_create_topics(e->broker, "b.soak.") != 0)
        return failed("soak topics");
    if (bench_soak_run(e, "b.soak.", 10000, z->soak_s, z->soak_rss_at_s, &s) != 0)
        return failed("soak run");
    add("soak", "simulator rate achieved (asked 10,000)", "ev/s", s.achieved_eps);
    add("soak", "opstream-alert lag at the end of the traffic", "events", (double)s.lag_end);
    add("soak",
        z->soak_rss_at_s >= 60 ? "highest lag after 1 min" : "highest lag after 5 s (quick)",
        "events", (double)s.lag_max);
    if (s.drain_s >= 0)
        add("soak", "caught up after the traffic ended", "s", s.drain_s);
    else
        (void)fig("soak", "caught up after the traffic ended", "s"); /* not within 60 s: n/a */
    add("soak", z->soak_rss_at_s >= 60 ? "RSS at 1 min" : "RSS at 5 s (quick)", "MiB",
        s.rss_ref_mib);
    add("soak", "RSS at the end", "MiB", s.rss_end_mib);
    add("soak", "RSS growth from then on (highest - first)", "MiB", s.rss_max_mib - s.rss_ref_mib);
    add("soak", "alerts raised", "", (double)s.alerts);
    add("soak", "alerts per second", "/s", (double)s.alerts / z->soak_s);
    add("soak", "opstream-alert CPU", "% core", s.cpu_pct);
    bench_log("soak: %.0f ev/s for %.0f s, lag at the end %lld (highest %lld), caught up in %.2f "
              "s, RSS %.1f -> %.1f MiB (highest %.1f), %lld alerts, %.1f%% of a core",
              s.achieved_eps, z->soak_s, (long long)s.lag_end, (long long)s.lag_max, s.drain_s,
              s.rss_ref_mib, s.rss_end_mib, s.rss_max_mib, (long long)s.alerts, s.cpu_pct);
    target("soak", "simulator rate achieved (asked 10,000)", ">= 9500", 9500, true);
    target("soak", "opstream-alert lag at the end of the traffic", "<= 10000", 10000, false);
    target("soak", "caught up after the traffic ended", "<= 5", 5, false);
    target("soak", "RSS growth from then on (highest - first)", "<= 4", 4, false);
}

/* Runs a program to its end, sampling its peak RSS while it runs. Returns
 * wall seconds, or -1. */
static double run_program(const char *const argv[], long *peak_kib) {
    harness_proc_t *p = harness_spawn(argv, NULL, 0);
    int64_t t0 = bench_now_us(), deadline = t0 + 300000000;
    double secs = -1;

    *peak_kib = 0;
    if (p == NULL)
        return -1;
    while (harness_proc_running(p) && bench_now_us() < deadline) {
        long k = bench_rss_kib(p->pid, true);
        if (k > *peak_kib)
            *peak_kib = k;
        usleep(5000);
    }
    if (harness_proc_wait(p, 1000) == 0 && harness_proc_exit_code(p) == 0)
        secs = (double)(bench_now_us() - t0) / 1e6;
    else {
        char *err = harness_proc_stderr(p);
        bench_log("%s did not finish cleanly (exit %d): %s", argv[0], harness_proc_exit_code(p),
                  err ? err : "");
        free(err);
    }
    harness_proc_free(p);
    return secs;
}

/* The producing programs end to end (process start to exit): opstream-simulate
 * straight to Kafka, and opstream-produce reading JSON Lines. */
static void bench_programs(bench_env_t *e, const sizes_t *z) {
    char events[32], jsonl[HARNESS_PATH_MAX];
    long kib;
    double secs;

    if (bench_create_topics(e->broker, "b.prog.") != 0)
        return failed("program topics");
    snprintf(events, sizeof events, "%zu", z->program_events);
    const char *sim[] = {"opstream-simulate",
                         "-b",
                         e->broker->bootstrap,
                         "-X",
                         "opstream.topic.prefix=b.prog.",
                         "--operation",
                         "BENCH-SIM",
                         "--rate",
                         "0",
                         "--events",
                         events,
                         NULL};
    const char *print[] = {"opstream-simulate", "--operation", "BENCH-SIM", "--rate", "0",
                           "--events",          events,        "--print",   NULL};
    harness_proc_t *p = harness_spawn(print, NULL, 0);
    if (p == NULL || harness_proc_wait(p, 120000) != 0 || harness_proc_exit_code(p) != 0) {
        harness_proc_free(p);
        return failed("simulate --print");
    }
    snprintf(jsonl, sizeof jsonl, "%s", p->out_path);
    harness_proc_free(p);
    const char *prod[] = {"opstream-produce",
                          "-b",
                          e->broker->bootstrap,
                          "--format",
                          "jsonl",
                          "-X",
                          "opstream.topic.prefix=b.prog.",
                          jsonl,
                          NULL};
    for (int r = 0; r < e->runs; r++) {
        if ((secs = run_program(sim, &kib)) <= 0)
            return failed("opstream-simulate run");
        add("programs", "opstream-simulate --rate 0, start to exit", "ev/s",
            (double)z->program_events / secs);
        add_rss("memory", "peak RSS of opstream-simulate", kib);
        if ((secs = run_program(prod, &kib)) <= 0)
            return failed("opstream-produce run");
        add("programs", "opstream-produce JSON Lines, start to exit", "ev/s",
            (double)z->program_events / secs);
        add_rss("memory", "peak RSS of opstream-produce", kib);
    }
    target("programs", "opstream-produce JSON Lines, start to exit", ">= 200000", 2e5, true);
}

/* Runs a program that refreshes until stopped (opstream-stats --watch)
 * until it has printed and refreshed once more, reads its peak RSS, stops
 * it. Returns the peak in KiB, or -1. */
static long watch_program(const char *const argv[]) {
    harness_proc_t *p = harness_spawn(argv, NULL, 0);
    int64_t deadline = bench_now_us() + 30000000;
    long kib = -1;
    char *out = NULL;

    if (p == NULL)
        return -1;
    while (harness_proc_running(p) && bench_now_us() < deadline &&
           (out = harness_proc_stdout(p)) != NULL && out[0] == '\0') {
        free(out);
        out = NULL;
        usleep(10000);
    }
    if (out != NULL && out[0] != '\0') {
        usleep(1500000); /* one more refresh (every second) */
        kib = bench_rss_kib(p->pid, true);
    }
    free(out);
    if (harness_proc_stop(p, 15000) != 0 || kib <= 0) {
        char *err = harness_proc_stderr(p);
        bench_log("%s did not run cleanly: %s", argv[0], err ? err : "");
        free(err);
        kib = -1;
    }
    harness_proc_free(p);
    return kib;
}

/* The reading programs: opstream-alerts over the alerts the alert latency
 * runs raised (from the oldest to the end), opstream-stats on the operation
 * the counter runs counted. Peak RSS only: they are not on the hot path. */
static void bench_readers(bench_env_t *e, bool alerts, bool stats) {
    long kib;
    char topics[32], prefix[64];
    const char *rd[] = {"opstream-alerts",
                        "-b",
                        e->broker->bootstrap,
                        "-X",
                        prefix,
                        "--from-beginning",
                        "--exit-at-end",
                        NULL};
    const char *st[] = {"opstream-stats", "--redis", e->redis->url, "BENCH-001", "--watch", NULL};

    alert_prefix(topics, sizeof topics, e->runs - 1); /* the last alert latency run's */
    snprintf(prefix, sizeof prefix, "opstream.topic.prefix=%s", topics);
    if (alerts) {
        if (run_program(rd, &kib) <= 0)
            failed("opstream-alerts run");
        else
            add_rss("memory", "peak RSS of opstream-alerts", kib);
    }
    if (stats) {
        if ((kib = watch_program(st)) <= 0)
            failed("opstream-stats run");
        else
            add_rss("memory", "peak RSS of opstream-stats", kib);
    }
}

/* "fill BOOTSTRAP PREFIX EVENTS [OPERATIONS]": loads a topic set (the
 * broker must have it) for profiling a program outside the bench. */
static int fill_main(int argc, char **argv) {
    bench_gen_t g;
    bench_frames_t f;
    double secs = -1;

    if (argc < 5 || argc > 6) {
        fprintf(stderr, "usage: opstream-bench fill BOOTSTRAP PREFIX EVENTS [OPERATIONS]\n");
        return 2;
    }
    if (bench_gen_init(&g, argc == 6 ? atoi(argv[5]) : 1) != 0)
        return 1;
    if (bench_frames_build(&f, &g, 0, (size_t)strtoull(argv[4], NULL, 10), 0) == 0) {
        secs = bench_fill(argv[2], argv[3], &f);
        bench_frames_free(&f);
    }
    bench_gen_free(&g);
    return secs < 0;
}

/* --only: a comma-separated list of sections; NULL runs them all. */
static bool want(const char *only, const char *section) {
    size_t len = strlen(section);

    for (const char *p = only; p != NULL && *p; p += strcspn(p, ",") + (p[strcspn(p, ",")] != 0))
        if (strncmp(p, section, len) == 0 && (p[len] == ',' || p[len] == '\0'))
            return true;
    return only == NULL;
}

static void usage(FILE *out) {
    fprintf(out,
            "Usage: opstream-bench [--quick] [--runs N] [--json FILE] [--only LIST]\n"
            "       opstream-bench fill BOOTSTRAP PREFIX EVENTS [OPERATIONS]\n"
            "       opstream-bench discard BOOTSTRAP PREFIX GROUP MESSAGES   (internal)\n"
            "\n"
            "Starts opstream-broker and a redis-server, measures the producer, the\n"
            "counter, latencies, memory, growth and opstream-alert's staying power,\n"
            "prints a table (median of N runs,\n"
            "target, PASS/MISS) and writes the figures as JSON.\n"
            "\n"
            "Options:\n"
            "  --quick      small sizes and one run: a sanity check, not figures\n"
            "  --runs N     runs per figure (default 3, at most %d)\n"
            "  --json FILE  where to write the figures (default bench/results.json)\n"
            "  --only LIST  only these sections: producer,counter,growth,latency,programs,\n"
            "               soak (opstream-alert under 10,000 events/s for 5 minutes)\n"
            "\n"
            "Environment: OPSTREAM_BIN_DIR (the programs; default bin), TMPDIR.\n"
            "Exit codes: 0 every measurement ran, 1 one or more failed, 2 usage.\n"
            "Targets are reported, not enforced: a MISS does not change the exit code.\n",
            MAX_RUNS);
}

int main(int argc, char **argv) {
    static const struct option longopts[] = {
        {"quick", no_argument, NULL, 'q'},      {"runs", required_argument, NULL, 'r'},
        {"json", required_argument, NULL, 'j'}, {"only", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},       {NULL, 0, NULL, 0}};
    static const char *const broker_args[] = {"--partitions", "16", NULL};
    bench_env_t e = {.runs = 3};
    const char *json = "bench/results.json", *only = NULL;
    char self[PATH_MAX], cpu[256], libs[256], rv[64], rset[128];
    int opt, cores;
    int64_t t0 = bench_now_us();

    if (argc > 1 && strcmp(argv[1], "discard") == 0)
        return bench_discard_main(argc, argv);
    if (argc > 1 && strcmp(argv[1], "fill") == 0)
        return fill_main(argc, argv);
    while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (opt) {
        case 'q':
            e.quick = true;
            break;
        case 'r':
            e.runs = atoi(optarg);
            if (e.runs < 1 || e.runs > MAX_RUNS) {
                fprintf(stderr, "opstream-bench: --runs: 1..%d\n", MAX_RUNS);
                return 2;
            }
            break;
        case 'j':
            json = optarg;
            break;
        case 'o':
            only = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    const sizes_t *z = e.quick ? &quick_sizes : &full_sizes;
    ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 1);
    if (sl <= 0)
        return 1;
    self[sl] = '\0';
    e.self = self;
    bench_machine(cpu, sizeof cpu, &cores);
    bench_lib_versions(libs, sizeof libs);
    if ((e.broker = harness_broker_start(broker_args)) == NULL ||
        (e.redis = harness_redis_start(false)) == NULL) {
        bench_log("cannot start the broker or redis-server");
        return 1;
    }
    redis_version(&e, rv, sizeof rv);
    e.hash_entries_default = redis_hash_entries(&e);
    if (bench_redis_hash_entries(&e, BENCH_HASH_ENTRIES) != 0) {
        bench_log("cannot set redis-server's hash-max-listpack-entries");
        return 1;
    }
    snprintf(rset, sizeof rset, "hash-max-listpack-entries %d (\"default\": its own, %ld)",
             BENCH_HASH_ENTRIES, e.hash_entries_default);
    bench_log("%s, %d cores; %s; redis-server %s, %s; %d runs%s", cpu, cores, libs, rv, rset,
              e.runs, e.quick ? " (quick)" : "");

    if (want(only, "producer"))
        bench_producer(&e, z);
    if (want(only, "counter"))
        bench_counter(&e, z);
    if (want(only, "growth")) {
        bench_growth_ops(&e, z, 10);
        bench_growth_ops(&e, z, 100);
        if (add_ratio("growth", "100 operations vs one (medians)", "100 operations: events/s",
                      "1 operation: events/s"))
            target("growth", "100 operations vs one (medians)", ">= 0.6", 0.6, true);
        bench_growth_server_default(&e, z);
        bench_growth_ids(&e, z);
    }
    if (want(only, "latency"))
        bench_latency(&e, z);
    if (want(only, "programs"))
        bench_programs(&e, z);
    if (want(only, "soak"))
        bench_soak(&e, z);
    add_rss("memory", "peak RSS of opstream-count (all runs)", e.rss_count_kib);
    add_rss("memory", "peak RSS of opstream-alert", e.rss_alert_kib);
    bench_readers(&e, want(only, "latency"),
                  want(only, "counter") || want(only, "growth") || want(only, "latency"));
    add_rss("memory", "peak RSS of opstream-broker", bench_rss_kib(e.broker->proc->pid, true));
    target("memory", "peak RSS of opstream-count (all runs)", "<= 64", 64, false);

    for (int i = 0; i < g_nfig; i++)
        g_fig[i].median = bench_median(g_fig[i].v, (size_t)g_fig[i].n);
    printf("opstream bench: %s, %d cores; %s; redis-server %s, %s\n", cpu, cores, libs, rv, rset);
    printf("each figure: median of %d run%s%s; %.0f s in all\n\n", e.runs, e.runs > 1 ? "s" : "",
           e.quick ? " (quick sizes: a sanity check, not figures)" : "",
           (double)(bench_now_us() - t0) / 1e6);
    print_table(stdout);
    if (write_json(json, cpu, cores, libs, rv, rset, e.quick, e.runs) != 0) {
        bench_log("cannot write %s", json);
        failures++;
    } else {
        printf("\nfigures written to %s\n", json);
    }
    harness_broker_free(e.broker);
    harness_redis_free(e.redis);
    if (failures)
        printf("%d measurement(s) failed: see the lines above\n", failures);
    return failures ? 1 : 0;
}
