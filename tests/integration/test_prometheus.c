/*
 * Against a real Prometheus (Debian's prometheus binary, scraping every
 * second): what opstream serves is scraped and queried as operators will
 * do it. opstream-count under load: its counted-events rate is above zero,
 * its lag grows while Redis is away and opstream_consumer_lag_sum returns
 * to 0 once it has caught up; the
 * producer's delivered rate is above zero under load; every query of the
 * shipped Grafana dashboard is valid PromQL that Prometheus answers.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "metrics_common.h"
#include "prometheus_server.h"
#include "test_count_common.h"

typedef struct query_wait {
    prom_server_t *prom;
    const char *promql;
    int min_samples;
    double sum;
} query_wait_t;

/* True once the query returns at least min_samples samples. */
static bool query_has(void *arg) {
    query_wait_t *w = arg;
    return ps_query(w->prom, w->promql, &w->sum) >= w->min_samples;
}

/* A Prometheus scraping the metrics on port as job, once it reports the
 * target up (up == 1). */
static prom_server_t *prom_scraping(const char *job, int port) {
    char target[64], up_query[128];
    snprintf(target, sizeof target, "%s=127.0.0.1:%d", job, port);
    const char *targets[] = {target, NULL};
    prom_server_t *prom = ps_start(targets);
    assert_non_null(prom);
    snprintf(up_query, sizeof up_query, "up{job=\"%s\"} == 1", job);
    query_wait_t up = {prom, up_query, 1, 0};
    assert_int_equal(harness_wait_until(query_has, &up, 30000), 0);
    return prom;
}

static void producer_rate_is_scraped_and_queryable(void **state) {
    (void)state;
    int port;
    harness_proc_t *sim = mc_spawn_simulate(g_broker->bootstrap, "PROM-SIM", &port);
    assert_non_null(sim);
    assert_true(port > 0);
    /* Scraped: up is 1. */
    prom_server_t *prom = prom_scraping("opstream-simulate", port);
    /* The delivered rate over the last scrapes is above zero. */
    query_wait_t rate = {
        prom,
        "rate(opstream_produced_total{job=\"opstream-simulate\",result=\"delivered\"}[5s]) > 0", 1,
        0};
    assert_int_equal(harness_wait_until(query_has, &rate, 30000), 0);
    assert_true(rate.sum > 0);
    /* Process metrics and the build info arrive too. */
    double v;
    assert_int_equal(
        ps_query(prom, "process_resident_memory_bytes{job=\"opstream-simulate\"} > 0", &v), 1);
    assert_int_equal(ps_query(prom, "opstream_build_info{version=\"" OPS_VERSION "\"}", &v), 1);
    assert_true(v == 1);

    ps_free(prom);
    assert_int_equal(harness_proc_stop(sim, 20000), 0);
    harness_proc_free(sim);
}

static void counting_rate_and_lag_as_prometheus_sees_them(void **state) {
    (void)state;
    const char *count_argv[] = {
        "opstream-count", "-b",        g_broker->bootstrap, "--redis", g_redis->url, "-g",
        "prom",           "--metrics", "127.0.0.1:0",       NULL};
    harness_proc_t *count = harness_spawn(count_argv, NULL, 0);
    assert_non_null(count);
    int port = mc_port(count, 15000);
    assert_true(port > 0);
    prom_server_t *prom = prom_scraping("opstream-count", port);

    /* Load: a simulated operation at 400 events/s until the rate shows. */
    const char *sim_argv[] = {"opstream-simulate",
                              "-b",
                              g_broker->bootstrap,
                              "--operation",
                              "PROM-OP",
                              "--rate",
                              "400",
                              "--events",
                              "1000000",
                              NULL};
    harness_proc_t *sim = harness_spawn(sim_argv, NULL, 0);
    assert_non_null(sim);
    query_wait_t rate = {prom,
                         "sum(rate(opstream_events_total{job=\"opstream-count\","
                         "result=\"counted\"}[5s])) > 0",
                         1, 0};
    assert_int_equal(harness_wait_until(query_has, &rate, 60000), 0);
    assert_true(rate.sum > 0);

    /* Redis goes away under load: counting pauses and the lag grows... */
    assert_int_equal(harness_redis_stop(g_redis), 0);
    query_wait_t behind = {
        prom, "opstream_consumer_lag_sum{job=\"opstream-count\",group=\"prom\"} > 0", 1, 0};
    assert_int_equal(harness_wait_until(query_has, &behind, 60000), 0);
    /* ...until it is back and the load ends. */
    assert_int_equal(harness_redis_restart(g_redis), 0);
    assert_int_equal(harness_proc_stop(sim, 20000), 0);
    harness_proc_free(sim);

    /* Caught up (Redis holds every offset): the lag Prometheus reads is
     * back at 0. */
    assert_int_equal(tc_wait_consumed("prom", 60000), 0);
    query_wait_t lag = {
        prom, "opstream_consumer_lag_sum{job=\"opstream-count\",group=\"prom\"} == 0", 1, 0};
    assert_int_equal(harness_wait_until(query_has, &lag, 60000), 0);
    /* What Prometheus says was counted is there (not compared with Redis:
     * a step applied while Redis went away, its reply lost, counts as
     * fenced, see README). */
    query_wait_t total = {prom,
                          "sum(opstream_events_total{job=\"opstream-count\","
                          "result=\"counted\"}) > 0",
                          1, 0};
    assert_int_equal(harness_wait_until(query_has, &total, 10000), 0);

    ps_free(prom);
    assert_int_equal(harness_proc_stop(count, 20000), 0);
    harness_proc_free(count);
}

/* Every expression of config/grafana/opstream.json parses and evaluates. */
static void every_dashboard_query_is_valid_promql(void **state) {
    char dash[HARNESS_PATH_MAX];
    (void)state;
    const char *targets[] = {"none=127.0.0.1:1", NULL};
    prom_server_t *prom = ps_start(targets);
    assert_non_null(prom);
    snprintf(dash, sizeof dash, "%s/config/grafana/opstream.json", harness_src_dir());
    const char *jq[] = {"jq", "-r", ".panels[] | .targets[]? | .expr", dash, NULL};
    harness_proc_t *p = harness_spawn(jq, NULL, 0);
    assert_non_null(p);
    assert_int_equal(harness_proc_wait(p, 20000), 0);
    assert_int_equal(harness_proc_exit_code(p), 0);
    char *exprs = harness_proc_stdout(p);
    harness_proc_free(p);
    int n = 0;
    for (char *line = strtok(exprs, "\n"); line; line = strtok(NULL, "\n")) {
        char *json = ps_query_json(prom, line);
        if (!json || !strstr(json, "\"status\":\"success\""))
            fail_msg("dashboard query refused: %s\n%s", line, json ? json : "(no answer)");
        free(json);
        n++;
    }
    assert_true(n >= 10);
    free(exprs);
    ps_free(prom);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        /* each with its own broker and an emptied Redis (AOF: a restart
         * keeps the counts) */
        cmocka_unit_test_setup_teardown(counting_rate_and_lag_as_prometheus_sees_them, tc_setup,
                                        tc_teardown),
        cmocka_unit_test_setup_teardown(producer_rate_is_scraped_and_queryable, tc_setup,
                                        tc_teardown),
        cmocka_unit_test(every_dashboard_query_is_valid_promql),
    };
    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, tc_group_setup, tc_group_teardown);
}
