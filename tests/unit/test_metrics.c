/*
 * Unit tests for lib/metrics.c and lib/metrics_process.c: the exact text
 * exposition format 0.0.4 of counters, gauges and histograms, the
 * cardinality bound, refused names and values, updates from many threads,
 * and the /proc parsers on fixed text.
 */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "opstream/codec.h"
#include "opstream/metrics.h"

static char *render(ops_metrics_t *reg) {
    char *out = NULL;
    size_t len = 0;
    char err[256];
    assert_int_equal(ops_metrics_render(reg, &out, &len, err, sizeof err), 0);
    assert_non_null(out);
    assert_int_equal(len, strlen(out));
    return out;
}

static void counters_and_gauges_render_as_exposition_format_0_0_4(void **state) {
    static const char *const labels[] = {"program", "topic", "result", NULL};
    char err[256];
    ops_metrics_t *reg = ops_metrics_new();
    (void)state;

    ops_metrics_family_t *ev =
        ops_metrics_family(reg, OPS_METRICS_COUNTER, "opstream_events_total",
                           "Events handled, by result.", labels, 16, NULL, 0, err, sizeof err);
    assert_non_null(ev);
    const char *v1[] = {"opstream-count", "opstream.rescues", "counted"};
    const char *v2[] = {"opstream-count", "opstream.rescues", "dlq"};
    ops_metrics_series_t *counted = ops_metrics_series(ev, v1, err, sizeof err);
    ops_metrics_series_t *dlq = ops_metrics_series(ev, v2, err, sizeof err);
    assert_non_null(counted);
    assert_non_null(dlq);
    /* The same values give the same series. */
    assert_ptr_equal(ops_metrics_series(ev, v1, err, sizeof err), counted);
    ops_metrics_add(counted, 41);
    ops_metrics_add(counted, 1);
    ops_metrics_series_t *lag = ops_metrics_gauge(reg, "opstream_lag_sum", "Lag.", err, sizeof err);
    ops_metrics_set(lag, 12.5);
    ops_metrics_set(ops_metrics_gauge(reg, "opstream_neg", "Negative.", err, sizeof err), -3);
    /* Declared, no series: not rendered at all. */
    assert_non_null(ops_metrics_family(reg, OPS_METRICS_GAUGE, "opstream_unused", "x", labels, 4,
                                       NULL, 0, err, sizeof err));

    char *text = render(reg);
    assert_string_equal(
        text, "# HELP opstream_events_total Events handled, by result.\n"
              "# TYPE opstream_events_total counter\n"
              "opstream_events_total{program=\"opstream-count\",topic=\"opstream.rescues\","
              "result=\"counted\"} 42\n"
              "opstream_events_total{program=\"opstream-count\",topic=\"opstream.rescues\","
              "result=\"dlq\"} 0\n"
              "# HELP opstream_lag_sum Lag.\n"
              "# TYPE opstream_lag_sum gauge\n"
              "opstream_lag_sum 12.5\n"
              "# HELP opstream_neg Negative.\n"
              "# TYPE opstream_neg gauge\n"
              "opstream_neg -3\n");
    free(text);
    assert_true(ops_metrics_value(counted) == 42.0);
    ops_metrics_destroy(reg);
}

static void histogram_renders_cumulative_buckets_sum_and_count(void **state) {
    static const double bounds[] = {0.001, 0.01, 0.1};
    static const char *const labels[] = {"step", NULL};
    const char *vals[] = {"apply"};
    char err[256];
    ops_metrics_t *reg = ops_metrics_new();
    (void)state;

    ops_metrics_family_t *f =
        ops_metrics_family(reg, OPS_METRICS_HISTOGRAM, "opstream_redis_step_seconds",
                           "Time of one step.", labels, 1, bounds, 3, err, sizeof err);
    assert_non_null(f);
    ops_metrics_series_t *h = ops_metrics_series(f, vals, err, sizeof err);
    ops_metrics_observe(h, 0.0005); /* first bucket */
    ops_metrics_observe(h, 0.001);  /* on the bound: le is "less or equal" */
    ops_metrics_observe(h, 0.05);   /* third */
    ops_metrics_observe(h, 2.0);    /* +Inf only */
    char *text = render(reg);
    assert_string_equal(text, "# HELP opstream_redis_step_seconds Time of one step.\n"
                              "# TYPE opstream_redis_step_seconds histogram\n"
                              "opstream_redis_step_seconds_bucket{step=\"apply\",le=\"0.001\"} 2\n"
                              "opstream_redis_step_seconds_bucket{step=\"apply\",le=\"0.01\"} 2\n"
                              "opstream_redis_step_seconds_bucket{step=\"apply\",le=\"0.1\"} 3\n"
                              "opstream_redis_step_seconds_bucket{step=\"apply\",le=\"+Inf\"} 4\n"
                              "opstream_redis_step_seconds_sum{step=\"apply\"} 2.0515\n"
                              "opstream_redis_step_seconds_count{step=\"apply\"} 4\n");
    free(text);
    assert_true(ops_metrics_value(h) == 4.0);
    ops_metrics_destroy(reg);
}

static void help_and_label_values_are_escaped(void **state) {
    static const char *const labels[] = {"rule", NULL};
    const char *vals[] = {"a\\b \"c\""};
    char err[256];
    ops_metrics_t *reg = ops_metrics_new();
    (void)state;

    ops_metrics_family_t *f =
        ops_metrics_family(reg, OPS_METRICS_COUNTER, "x_total", "line one\nback\\slash \"quoted\"",
                           labels, 2, NULL, 0, err, sizeof err);
    ops_metrics_add(ops_metrics_series(f, vals, err, sizeof err), 1);
    char *text = render(reg);
    assert_string_equal(text, "# HELP x_total line one\\nback\\\\slash \"quoted\"\n"
                              "# TYPE x_total counter\n"
                              "x_total{rule=\"a\\\\b \\\"c\\\"\"} 1\n");
    free(text);
    ops_metrics_destroy(reg);
}

static void series_beyond_the_bound_are_refused(void **state) {
    static const char *const labels[] = {"partition", NULL};
    char err[256], v[16];
    ops_metrics_t *reg = ops_metrics_new();
    (void)state;

    ops_metrics_family_t *f = ops_metrics_family(reg, OPS_METRICS_GAUGE, "lag", "Lag.", labels, 3,
                                                 NULL, 0, err, sizeof err);
    for (int i = 0; i < 3; i++) {
        const char *vals[] = {v};
        snprintf(v, sizeof v, "%d", i);
        assert_non_null(ops_metrics_series(f, vals, err, sizeof err));
    }
    const char *fourth[] = {"3"};
    assert_null(ops_metrics_series(f, fourth, err, sizeof err));
    assert_string_equal(err, "lag: already 3 series, its bound");
    /* An existing one is still found. */
    const char *first[] = {"0"};
    assert_non_null(ops_metrics_series(f, first, err, sizeof err));
    ops_metrics_destroy(reg);
}

static void bad_names_values_and_redeclarations_are_refused(void **state) {
    static const char *const ok_labels[] = {"topic", NULL};
    static const char *const le[] = {"le", NULL};
    static const char *const reserved[] = {"__x", NULL};
    static const char *const twice[] = {"a", "a", NULL};
    static const char *const five[] = {"a", "b", "c", "d", "e", NULL};
    static const double desc[] = {1.0, 0.5};
    char err[256], longv[OPS_METRICS_MAX_VALUE + 2];
    ops_metrics_t *reg = ops_metrics_new();
    (void)state;

    static const struct {
        const char *name;
        const char *const *labels;
        size_t max;
        const char *err;
    } rows[] = {
        {"9lives", NULL, 1, "'9lives' is not a metric name"},
        {"has-dash", NULL, 1, "'has-dash' is not a metric name"},
        {"", NULL, 1, "'' is not a metric name"},
        {"m", le, 1, "m: 'le' is not a label name"},
        {"m", reserved, 1, "m: '__x' is not a label name"},
        {"m", twice, 4, "m: label 'a' twice"},
        {"m", five, 4, "m: more than 4 labels"},
        {"m", NULL, 2, "m: series bound 2 (a family without labels has 1)"},
        {"m", ok_labels, 0, "m: series bound 0 (a family without labels has 1)"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        err[0] = '\0';
        assert_null(ops_metrics_family(reg, OPS_METRICS_COUNTER, rows[i].name, "h", rows[i].labels,
                                       rows[i].max, NULL, 0, err, sizeof err));
        assert_string_equal(err, rows[i].err);
    }
    assert_null(ops_metrics_family(reg, OPS_METRICS_HISTOGRAM, "h", "h", NULL, 1, desc, 2, err,
                                   sizeof err));
    assert_string_equal(err, "h: bucket bounds must be finite and strictly ascending");
    assert_null(ops_metrics_family(reg, OPS_METRICS_HISTOGRAM, "h", "h", NULL, 1, NULL, 0, err,
                                   sizeof err));
    assert_string_equal(err, "h: 0 buckets (1..32)");

    /* Same declaration twice: the same family; a different one: refused. */
    ops_metrics_family_t *f = ops_metrics_family(reg, OPS_METRICS_COUNTER, "c_total", "h",
                                                 ok_labels, 4, NULL, 0, err, sizeof err);
    assert_non_null(f);
    assert_ptr_equal(ops_metrics_family(reg, OPS_METRICS_COUNTER, "c_total", "h", ok_labels, 4,
                                        NULL, 0, err, sizeof err),
                     f);
    assert_null(ops_metrics_family(reg, OPS_METRICS_GAUGE, "c_total", "h", ok_labels, 4, NULL, 0,
                                   err, sizeof err));
    assert_string_equal(err, "c_total: declared twice, differently");

    /* Label values: bounded printable text. */
    memset(longv, 'x', sizeof longv - 1);
    longv[sizeof longv - 1] = '\0';
    const char *too_long[] = {longv};
    assert_null(ops_metrics_series(f, too_long, err, sizeof err));
    assert_string_equal(err, "c_total{topic}: label value of 129 bytes (at most 128)");
    const char *ctrl[] = {"a\nb"};
    assert_null(ops_metrics_series(f, ctrl, err, sizeof err));
    assert_string_equal(err, "c_total{topic}: label value holds control byte 0x0a");
    const char *missing[] = {NULL};
    assert_null(ops_metrics_series(f, missing, err, sizeof err));
    assert_string_equal(err, "c_total{topic}: a label value is missing");

    /* Nothing was rendered for the refused ones. */
    char *text = render(reg);
    assert_string_equal(text, "");
    free(text);
    ops_metrics_destroy(reg);
}

static void updates_of_the_wrong_kind_or_on_null_do_nothing(void **state) {
    char err[256];
    ops_metrics_t *reg = ops_metrics_new();
    (void)state;
    ops_metrics_series_t *g = ops_metrics_gauge(reg, "g", "g", err, sizeof err);
    ops_metrics_series_t *c = ops_metrics_counter(reg, "c_total", "c", err, sizeof err);
    ops_metrics_add(g, 5);
    ops_metrics_observe(c, 1.0);
    ops_metrics_add(NULL, 1);
    ops_metrics_set(NULL, 1);
    ops_metrics_observe(NULL, 1);
    assert_true(ops_metrics_value(g) == 0.0);
    assert_true(ops_metrics_value(c) == 0.0);
    /* A counter read from elsewhere (CPU seconds) plus what was added. */
    ops_metrics_set(c, 1.25);
    ops_metrics_add(c, 2);
    char *text = render(reg);
    assert_string_equal(text, "# HELP g g\n# TYPE g gauge\ng 0\n"
                              "# HELP c_total c\n# TYPE c_total counter\nc_total 3.25\n");
    free(text);
    ops_metrics_destroy(reg);
}

static void values_are_formatted_as_prometheus_reads_them(void **state) {
    static const struct {
        double v;
        const char *text;
    } rows[] = {
        {0, "0"},
        {-0.0, "0"},
        {1, "1"},
        {123456789012.0, "123456789012"},
        {0.1, "0.1"},
        {0.005, "0.005"},
        {2.5e-7, "2.5e-07"},
        {1.0 / 3, "0.3333333333333333"},
        {1e300, "1e+300"},
        {INFINITY, "+Inf"},
        {-INFINITY, "-Inf"},
        {NAN, "NaN"},
    };
    char buf[64];
    (void)state;
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        assert_string_equal(ops_metrics_format_value(rows[i].v, buf, sizeof buf), rows[i].text);
}

#define THREADS 4
#define ADDS 100000

typedef struct {
    ops_metrics_series_t *c, *h;
} thread_arg_t;

static void *adder(void *p) {
    thread_arg_t *a = p;
    for (int i = 0; i < ADDS; i++) {
        ops_metrics_add(a->c, 1);
        ops_metrics_observe(a->h, 0.5);
    }
    return NULL;
}

static void *renderer(void *p) {
    ops_metrics_t *reg = p;
    for (int i = 0; i < 200; i++) {
        char *out = NULL;
        if (ops_metrics_render(reg, &out, NULL, NULL, 0) == 0)
            free(out);
    }
    return NULL;
}

/* No update is lost while several threads add and another renders. */
static void concurrent_updates_lose_nothing(void **state) {
    static const double bounds[] = {1.0};
    char err[256];
    pthread_t t[THREADS + 1];
    ops_metrics_t *reg = ops_metrics_new();
    thread_arg_t a;
    (void)state;
    a.c = ops_metrics_counter(reg, "adds_total", "a", err, sizeof err);
    a.h = ops_metrics_series(ops_metrics_family(reg, OPS_METRICS_HISTOGRAM, "obs", "o", NULL, 1,
                                                bounds, 1, err, sizeof err),
                             NULL, err, sizeof err);
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, adder, &a), 0);
    assert_int_equal(pthread_create(&t[THREADS], NULL, renderer, reg), 0);
    for (int i = 0; i <= THREADS; i++)
        pthread_join(t[i], NULL);
    assert_true(ops_metrics_value(a.c) == (double)THREADS * ADDS);
    assert_true(ops_metrics_value(a.h) == (double)THREADS * ADDS);
    char *text = render(reg);
    assert_non_null(strstr(text, "adds_total 400000\n"));
    assert_non_null(strstr(text, "obs_bucket{le=\"1\"} 400000\n"));
    assert_non_null(strstr(text, "obs_sum 200000\n"));
    free(text);
    ops_metrics_destroy(reg);
}

static int collected;
static void count_collects(void *opaque) {
    ops_metrics_set(opaque, ++collected);
}

static void collectors_run_before_every_render(void **state) {
    char err[256];
    ops_metrics_t *reg = ops_metrics_new();
    (void)state;
    ops_metrics_series_t *g = ops_metrics_gauge(reg, "renders", "r", err, sizeof err);
    assert_int_equal(ops_metrics_add_collector(reg, count_collects, g, NULL, err, sizeof err), 0);
    free(render(reg));
    char *text = render(reg);
    assert_string_equal(text, "# HELP renders r\n# TYPE renders gauge\nrenders 2\n");
    free(text);
    ops_metrics_destroy(reg);
}

static void proc_stat_is_parsed_after_the_last_parenthesis(void **state) {
    /* A command name with ") " inside; utime 250, stime 150, starttime
     * 1000 ticks. */
    const char *stat = "4242 (a) b (c) R 1 4242 4242 0 -1 4194304 100 0 0 0 250 150 0 0 20 0 3 0 "
                       "1000 3133440 387 18446744073709551615 0 0 0\n";
    double cpu = 0, start = 0, vsz = 0, rss = 0;
    int64_t boot = 0;
    char err[256];
    (void)state;
    assert_int_equal(
        ops_metrics_parse_proc_stat(stat, 100, 1700000000, &cpu, &start, err, sizeof err), 0);
    assert_true(cpu == 4.0);
    assert_true(start == 1700000010.0);
    assert_int_equal(
        ops_metrics_parse_proc_stat("4242 (x) R 1 2", 100, 0, &cpu, &start, err, sizeof err), -1);
    assert_string_equal(err, "/proc/self/stat: ends before field 6");
    assert_int_equal(
        ops_metrics_parse_proc_stat("no parens", 100, 0, &cpu, &start, err, sizeof err), -1);
    assert_int_equal(
        ops_metrics_parse_proc_statm("732 443 415 6 0 89 0\n", 4096, &vsz, &rss, err, sizeof err),
        0);
    assert_true(vsz == 732.0 * 4096);
    assert_true(rss == 443.0 * 4096);
    assert_int_equal(ops_metrics_parse_proc_statm("x", 4096, &vsz, &rss, err, sizeof err), -1);
    assert_int_equal(ops_metrics_parse_boot_time("cpu 1 2 3\nintr 5\nbtime 1795951280\nctxt 9\n",
                                                 &boot, err, sizeof err),
                     0);
    assert_int_equal(boot, 1795951280);
    assert_int_equal(ops_metrics_parse_boot_time("cpu 1\n", &boot, err, sizeof err), -1);
    assert_string_equal(err, "/proc/stat: no btime line");
}

static void process_metrics_and_build_info_are_read_from_this_process(void **state) {
    char err[256];
    ops_metrics_t *reg = ops_metrics_new();
    (void)state;
    assert_int_equal(ops_metrics_add_build_info(reg, "1.2.3", err, sizeof err), 0);
    assert_int_equal(ops_metrics_add_process(reg, err, sizeof err), 0);
    char *text = render(reg);
    assert_non_null(strstr(text, "# TYPE opstream_build_info gauge\n"
                                 "opstream_build_info{version=\"1.2.3\"} 1\n"));
    assert_non_null(strstr(text, "# TYPE process_cpu_seconds_total counter\n"));
    char *rss = strstr(text, "\nprocess_resident_memory_bytes ");
    char *start = strstr(text, "\nprocess_start_time_seconds ");
    char *fds = strstr(text, "\nprocess_open_fds ");
    assert_non_null(rss);
    assert_non_null(start);
    assert_non_null(fds);
    /* Plausible values: some resident memory, started after 2020, a few
     * descriptors. */
    assert_true(strtod(rss + 31, NULL) > 100000.0);
    assert_true(strtod(start + 28, NULL) > 1577836800.0);
    assert_true(strtod(fds + 18, NULL) >= 3.0);
    free(text);
    ops_metrics_destroy(reg);
}

static void opstream_families_are_declared_once_with_bounded_labels(void **state) {
    char err[256];
    ops_metrics_t *reg = ops_metrics_new();
    ops_metrics_consumer_t a, b;
    ops_metrics_produced_t p;
    (void)state;
    assert_int_equal(ops_metrics_consumer_init(reg, "opstream-count", &a, err, sizeof err), 0);
    /* A second group in the same process shares the families. */
    assert_int_equal(ops_metrics_consumer_init(reg, "other", &b, err, sizeof err), 0);
    assert_ptr_equal(a.lag, b.lag);
    assert_ptr_equal(a.fenced, b.fenced);
    assert_ptr_not_equal(a.lag_sum, b.lag_sum);
    assert_int_equal(ops_metrics_produced_init(reg, &p, err, sizeof err), 0);
    ops_metrics_add(p.delivered, 3);
    ops_metrics_series_t *ev =
        ops_metrics_events(reg, "opstream-count", "opstream.arrests", "counted", err, sizeof err);
    assert_non_null(ev);
    assert_ptr_equal(ops_metrics_events(reg, "opstream-count", "opstream.arrests", "counted", err,
                                        sizeof err),
                     ev);
    ops_metrics_observe(a.step_seconds, 0.003);
    char *text = render(reg);
    assert_non_null(strstr(text, "# TYPE opstream_consumer_lag_sum gauge\n"
                                 "opstream_consumer_lag_sum{group=\"opstream-count\"} 0\n"
                                 "opstream_consumer_lag_sum{group=\"other\"} 0\n"));
    assert_non_null(strstr(text, "opstream_redis_step_seconds_bucket{le=\"0.0025\"} 0\n"
                                 "opstream_redis_step_seconds_bucket{le=\"0.005\"} 1\n"));
    assert_non_null(strstr(text, "opstream_produced_total{result=\"delivered\"} 3\n"
                                 "opstream_produced_total{result=\"rejected\"} 0\n"
                                 "opstream_produced_total{result=\"failed\"} 0\n"));
    assert_non_null(strstr(text, "opstream_events_total{program=\"opstream-count\",topic=\""
                                 "opstream.arrests\",result=\"counted\"} 0\n"));
    free(text);
    /* No registry: handles are NULL and updates do nothing. */
    assert_int_equal(ops_metrics_produced_init(NULL, &p, err, sizeof err), 0);
    assert_null(p.delivered);
    ops_metrics_add(p.delivered, 1);
    ops_metrics_destroy(reg);
}

static void dlq_reasons_are_classes_not_text(void **state) {
    (void)state;
    assert_string_equal(ops_metrics_dlq_reason(OPS_CODEC_ERR_MAGIC, 0), "magic");
    assert_string_equal(ops_metrics_dlq_reason(OPS_CODEC_ERR_UNKNOWN_ID, 0), "unknown_schema");
    assert_string_equal(ops_metrics_dlq_reason(OPS_CODEC_ERR_TRUNCATED, 0), "truncated");
    assert_string_equal(ops_metrics_dlq_reason(OPS_CODEC_ERR_MALFORMED, 0), "malformed");
    assert_string_equal(ops_metrics_dlq_reason(OPS_CODEC_ERR_TOO_LARGE, 0), "too_large");
    assert_string_equal(ops_metrics_dlq_reason(OPS_CODEC_ERR_WRONG_TYPE, 0), "wrong_type");
    assert_string_equal(ops_metrics_dlq_reason(OPS_CODEC_ERR_INTERNAL, 0), "internal");
    assert_string_equal(ops_metrics_dlq_reason(12345, 0), "internal");
    assert_string_equal(ops_metrics_dlq_reason(OPS_CODEC_OK, 1), "invalid");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(counters_and_gauges_render_as_exposition_format_0_0_4),
        cmocka_unit_test(histogram_renders_cumulative_buckets_sum_and_count),
        cmocka_unit_test(help_and_label_values_are_escaped),
        cmocka_unit_test(series_beyond_the_bound_are_refused),
        cmocka_unit_test(bad_names_values_and_redeclarations_are_refused),
        cmocka_unit_test(updates_of_the_wrong_kind_or_on_null_do_nothing),
        cmocka_unit_test(values_are_formatted_as_prometheus_reads_them),
        cmocka_unit_test(concurrent_updates_lose_nothing),
        cmocka_unit_test(collectors_run_before_every_render),
        cmocka_unit_test(proc_stat_is_parsed_after_the_last_parenthesis),
        cmocka_unit_test(process_metrics_and_build_info_are_read_from_this_process),
        cmocka_unit_test(opstream_families_are_declared_once_with_bounded_labels),
        cmocka_unit_test(dlq_reasons_are_classes_not_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
