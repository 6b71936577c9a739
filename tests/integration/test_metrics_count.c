/*
 * The consumers' metrics endpoints, with opstream-count under load: a flood
 * of 10,000 requests (good and bad) from test clients while events stream
 * in changes nothing counted and every request is answered as it should
 * be; opstream_events_total, opstream_dlq_total and the lag say what was
 * counted, sent to the DLQ and is left; duplicates count by topic; /readyz
 * follows Redis; opstream-alert counts the alerts it raises by rule and
 * severity and opstream-alerts the alerts it shows; a busy address is exit 2
 * for each of them.
 */
#include <pthread.h>

#include "metrics_common.h"
#include "test_count_common.h"

#define FLOOD_THREADS 4
#define FLOOD_REQUESTS 10000

/* ---- helpers ------------------------------------------------------------- */

/* Sum of every sample of the scrape whose line holds all of the given
 * fragments (e.g. "opstream_events_total{", "result=\"counted\""). */
static double scrape_sum(int port, const char *a, const char *b) {
    http_answer_t ans;
    double sum = 0;
    if (http_request(port, "GET", "/metrics", &ans) != 0 || ans.status != 200 || !ans.body) {
        http_answer_free(&ans);
        return -1;
    }
    for (char *line = strtok(ans.body, "\n"); line; line = strtok(NULL, "\n")) {
        if (line[0] == '#' || strncmp(line, a, strlen(a)) != 0 || (b && !strstr(line, b)))
            continue;
        char *sp = strrchr(line, ' ');
        if (sp)
            sum += strtod(sp + 1, NULL);
    }
    http_answer_free(&ans);
    return sum;
}

typedef struct sum_wait {
    int port;
    const char *a, *b;
    double want, last;
} sum_wait_t;

static bool sum_is(void *arg) {
    sum_wait_t *w = arg;
    w->last = scrape_sum(w->port, w->a, w->b);
    return w->last == w->want;
}

/* Waits until the sum is exactly want; returns what it was last. */
static double wait_sum(int port, const char *a, const char *b, double want, int timeout_ms) {
    sum_wait_t w = {port, a, b, want, -1};
    if (harness_wait_until(sum_is, &w, timeout_ms) != 0)
        fprintf(stderr, "%s %s: %g, wanted %g\n", a, b ? b : "", w.last, want);
    return w.last;
}

/* opstream-count serving metrics on a free port; dedupe_window NULL: the
 * tests' usual setting. */
static harness_proc_t *spawn_count(const char *group, const char *dedupe_window) {
    char dedupe[64];
    snprintf(dedupe, sizeof dedupe, "opstream.dedupe.window.s=%s",
             dedupe_window ? dedupe_window : "");
    const char *extra[] = {"--metrics", "127.0.0.1:0", dedupe_window ? "-X" : NULL, dedupe, NULL};
    return tc_spawn_count(group, extra);
}

/* ---- the flood ----------------------------------------------------------- */

typedef struct flood {
    int port;
    int first, n; /* requests first .. first+n-1 of the table's cycle */
    int answered; /* with the status expected */
    int wrong;    /* another status, or none */
    char first_wrong[256];
} flood_t;

static void *flood_main(void *arg) {
    flood_t *f = arg;
    static char big[16384];
    if (big[0] == '\0') {
        int n = snprintf(big, sizeof big, "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Filler: ");
        memset(big + n, 'a', sizeof big - (size_t)n - 5);
        memcpy(big + sizeof big - 5, "\r\n\r\n", 5);
    }
    for (int i = f->first; i < f->first + f->n; i++) {
        http_answer_t a;
        int want, rc;
        switch (i % 6) {
        case 0:
            rc = http_request(f->port, "GET", "/metrics", &a);
            want = 200;
            break;
        case 1:
            rc = http_request(f->port, "GET", "/healthz", &a);
            want = 200;
            break;
        case 2:
            rc = http_request(f->port, "GET", "/no/such/path", &a);
            want = 404;
            break;
        case 3:
            rc = http_request(f->port, "POST", "/metrics", &a);
            want = 405;
            break;
        case 4:
            rc = http_request(f->port, "DELETE", "/readyz", &a);
            want = 405;
            break;
        default:
            rc = http_raw(f->port, big, strlen(big), 5000, &a);
            want = 431;
            break;
        }
        if (rc == 0 && a.status == want) {
            f->answered++;
        } else {
            if (f->wrong++ == 0)
                snprintf(f->first_wrong, sizeof f->first_wrong, "request %d: status %d, wanted %d",
                         i, rc == 0 ? a.status : -1, want);
        }
        http_answer_free(&a);
    }
    return NULL;
}

static void a_flood_of_requests_changes_nothing_counted(void **state) {
    tc_model_t m = {0};
    uint64_t rng = 1414;
    tc_stream_t s = {0};
    flood_t fl[FLOOD_THREADS];
    pthread_t th[FLOOD_THREADS];
    int64_t now = tc_wall_ms();
    (void)state;

    harness_proc_t *p = spawn_count("flood", "604800");
    assert_non_null(p);
    int port = mc_port(p, 15000);
    assert_true(port > 0);
    assert_int_equal(mc_wait_status(port, "/readyz", 200, 30000), 0);

    /* Events stream in while the flood runs. */
    s.n = 3000;
    s.per_tick = 30;
    s.ev = calloc((size_t)s.n, sizeof(*s.ev));
    assert_non_null(s.ev);
    for (int i = 0; i < s.n; i++) {
        s.ev[i] = tc_event(&rng, "FLOOD-OP", i, now - (int64_t)(i % 600) * 1000);
        tc_model_event(&m, &s.ev[i], now);
    }
    assert_int_equal(pthread_create(&s.thread, NULL, tc_stream_main, &s), 0);
    for (int t = 0; t < FLOOD_THREADS; t++) {
        memset(&fl[t], 0, sizeof fl[t]);
        fl[t].port = port;
        fl[t].first = t * (FLOOD_REQUESTS / FLOOD_THREADS);
        fl[t].n = FLOOD_REQUESTS / FLOOD_THREADS;
        assert_int_equal(pthread_create(&th[t], NULL, flood_main, &fl[t]), 0);
    }
    /* 50 messages that are not events, in the middle of it. */
    for (int i = 0; i < 50; i++)
        tc_produce_raw("opstream.rescues", "NG", "\x01garbage", 8);
    int answered = 0, wrong = 0;
    for (int t = 0; t < FLOOD_THREADS; t++) {
        pthread_join(th[t], NULL);
        answered += fl[t].answered;
        wrong += fl[t].wrong;
        if (fl[t].wrong)
            fprintf(stderr, "flood %d: %d wrong, first: %s\n", t, fl[t].wrong, fl[t].first_wrong);
    }
    pthread_join(s.thread, NULL);
    tc_flush();
    assert_int_equal(s.produced, s.n);
    assert_int_equal(wrong, 0);
    assert_int_equal(answered, FLOOD_REQUESTS);

    /* Counted exactly, as without the flood. */
    assert_int_equal(tc_wait_consumed("flood", 60000), 0);
    assert_int_equal(tc_model_compare(&m, true), 0);
    /* The metrics say the same. */
    assert_true(wait_sum(port, "opstream_events_total{", "result=\"counted\"", 3000, 10000) ==
                3000);
    assert_true(scrape_sum(port, "opstream_events_total{", "result=\"duplicate\"") == 0);
    assert_true(scrape_sum(port, "opstream_events_total{", "result=\"dlq\"") == 50);
    assert_true(scrape_sum(port, "opstream_dlq_total{reason=\"magic\"}", NULL) == 50);
    assert_true(scrape_sum(port, "opstream_dlq_total{", NULL) == 50);
    assert_true(wait_sum(port, "opstream_consumer_lag_sum{group=\"flood\"}", NULL, 0, 10000) == 0);
    assert_true(scrape_sum(port, "opstream_consumer_lag{group=\"flood\"", NULL) == 0);
    assert_true(scrape_sum(port, "opstream_redis_step_seconds_count", NULL) >= 1);
    assert_true(scrape_sum(port, "opstream_fenced_total", NULL) == 0);
    assert_true(scrape_sum(port, "opstream_redis_errors_total", NULL) == 0);
    tc_stop(p);
    tc_model_free(&m);
    free(s.ev);
}

/* Re-sent events are counted once: the metrics call them duplicates, on
 * the topic they came from; the lag per partition sums to the lag. */
static void duplicates_are_counted_by_topic(void **state) {
    uint64_t rng = 77;
    int64_t now = tc_wall_ms();
    ops_event_t ev[200];
    int per_topic[OPS_KIND_COUNT] = {0};
    char series[160], topic[64];
    (void)state;

    harness_proc_t *p = spawn_count("dupes", "604800");
    assert_non_null(p);
    int port = mc_port(p, 15000);
    assert_true(port > 0);
    for (int i = 0; i < 200; i++) {
        ev[i] = tc_event(&rng, "DUPE-OP", i, now - i * 1000);
        per_topic[ev[i].kind]++;
        tc_produce_event(&ev[i]);
    }
    tc_flush();
    assert_int_equal(tc_wait_consumed("dupes", 60000), 0);
    assert_true(wait_sum(port, "opstream_events_total{", "result=\"counted\"", 200, 10000) == 200);
    /* The same 200 again (dedupe on): counted once. */
    for (int i = 0; i < 200; i++)
        tc_produce_event(&ev[i]);
    tc_flush();
    assert_int_equal(tc_wait_consumed("dupes", 60000), 0);
    assert_true(wait_sum(port, "opstream_events_total{", "result=\"duplicate\"", 200, 10000) ==
                200);
    assert_true(scrape_sum(port, "opstream_events_total{", "result=\"counted\"") == 200);
    for (int k = 0; k < OPS_KIND_COUNT; k++) {
        ops_topic_name(NULL, (ops_kind_t)k, topic, sizeof topic);
        snprintf(
            series, sizeof series,
            "opstream_events_total{program=\"opstream-count\",topic=\"%s\",result=\"duplicate\"}",
            topic);
        assert_true(scrape_sum(port, series, NULL) == per_topic[k]);
        snprintf(
            series, sizeof series,
            "opstream_events_total{program=\"opstream-count\",topic=\"%s\",result=\"counted\"}",
            topic);
        assert_true(scrape_sum(port, series, NULL) == per_topic[k]);
    }
    redisReply *r = harness_redis_command(g_redis, "HGET opstream:{DUPE-OP}:total events");
    assert_non_null(r);
    assert_string_equal(r->str, "200");
    freeReplyObject(r);
    tc_stop(p);
}

static void readiness_follows_redis(void **state) {
    http_answer_t a;
    (void)state;
    harness_proc_t *p = spawn_count("ready", NULL);
    assert_non_null(p);
    int port = mc_port(p, 15000);
    assert_true(port > 0);
    assert_int_equal(mc_wait_status(port, "/readyz", 200, 30000), 0);
    /* Redis goes away: not ready, with the reason; the loop still runs. */
    assert_int_equal(harness_redis_kill(g_redis), 0);
    assert_int_equal(mc_wait_status(port, "/readyz", 503, 30000), 0);
    assert_int_equal(http_request(port, "GET", "/readyz", &a), 0);
    assert_non_null(strstr(a.body, "not ready: Redis "));
    assert_non_null(strstr(a.body, "unreachable"));
    http_answer_free(&a);
    assert_int_equal(mc_status(port, "/healthz"), 200);
    /* Back: ready again. */
    assert_int_equal(harness_redis_restart(g_redis), 0);
    assert_int_equal(mc_wait_status(port, "/readyz", 200, 30000), 0);
    tc_stop(p);
}

/* ---- opstream-alert and opstream-alerts ----------------------------------- */

static void alerts_are_counted_by_rule_and_severity(void **state) {
    char rules[HARNESS_PATH_MAX];
    uint64_t rng = 5;
    (void)state;
    snprintf(rules, sizeof rules, "%s/config/alerts.conf", harness_src_dir());
    const char *alert_argv[] = {
        "opstream-alert", "-b",  g_broker->bootstrap, "--redis",     g_redis->url,
        "--rules",        rules, "--metrics",         "127.0.0.1:0", NULL};
    const char *alerts_argv[] = {
        "opstream-alerts", "-b", g_broker->bootstrap, "--json", "--metrics", "127.0.0.1:0", NULL};
    harness_proc_t *al = harness_spawn(alert_argv, NULL, 0);
    harness_proc_t *sub = harness_spawn(alerts_argv, NULL, 0);
    assert_non_null(al);
    assert_non_null(sub);
    int port = mc_port(al, 15000), sport = mc_port(sub, 15000);
    assert_true(port > 0);
    assert_true(sport > 0);
    assert_int_equal(mc_wait_status(port, "/readyz", 200, 30000), 0);
    assert_int_equal(mc_wait_status(sport, "/readyz", 200, 30000), 0);

    /* One scam-centre raid (10 victims): rule scam-centre-raid, WARNING. */
    ops_event_t ev = tc_event(&rng, "ALERT-OP", 1, tc_wall_ms());
    ev.kind = OPS_KIND_RESCUE;
    ev.count = 10;
    ev.minors = 0;
    ev.site = OPS_SITE_SCAM_CENTRE;
    ops_event_id_derive(ev.operation, ev.country, ev.kind, ev.source_ref, ev.event_id);
    tc_produce_event(&ev);
    tc_flush();
    assert_true(wait_sum(port,
                         "opstream_alerts_total{rule=\"scam-centre-raid\",severity=\"WARNING\"}",
                         NULL, 1, 30000) == 1);
    assert_true(scrape_sum(port, "opstream_alerts_total{", NULL) == 1);
    assert_true(scrape_sum(port,
                           "opstream_events_total{program=\"opstream-alert\",topic=\"opstream."
                           "rescues\",result=\"alerted\"}",
                           NULL) == 1);
    assert_true(wait_sum(sport,
                         "opstream_events_total{program=\"opstream-alerts\",topic=\"opstream."
                         "alerts\",result=\"alerted\"}",
                         NULL, 1, 30000) == 1);
    assert_int_equal(harness_proc_stop(al, 20000), 0);
    assert_int_equal(harness_proc_stop(sub, 20000), 0);
    harness_proc_free(al);
    harness_proc_free(sub);
}

static int run_exit(const char *const argv[], char **errp) {
    harness_proc_t *p = harness_spawn(argv, NULL, 0);
    assert_non_null(p);
    assert_int_equal(harness_proc_wait(p, 20000), 0);
    int code = harness_proc_exit_code(p);
    *errp = harness_proc_stderr(p);
    harness_proc_free(p);
    return code;
}

static void a_busy_address_is_exit_2_for_every_consumer(void **state) {
    char listen[64], want[128], rules[HARNESS_PATH_MAX], *err = NULL;
    (void)state;
    harness_proc_t *holder = spawn_count("holder", NULL);
    int port = mc_port(holder, 15000);
    assert_true(port > 0);
    snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
    snprintf(want, sizeof want, "--metrics: cannot listen on %s: Address already in use", listen);
    snprintf(rules, sizeof rules, "%s/config/alerts.conf", harness_src_dir());

    const char *count[] = {"opstream-count", "-b",         g_broker->bootstrap,
                           "--redis",        g_redis->url, "--metrics",
                           listen,           NULL};
    const char *alert[] = {"opstream-alert", "-b",  g_broker->bootstrap, "--redis", g_redis->url,
                           "--rules",        rules, "--metrics",         listen,    NULL};
    const char *alerts[] = {"opstream-alerts", "-b",   g_broker->bootstrap,
                            "--metrics",       listen, NULL};
    const char *const *all[] = {count, alert, alerts};
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(run_exit(all[i], &err), 2);
        if (!strstr(err, want))
            fail_msg("%s did not say '%s':\n%s", all[i][0], want, err);
        free(err);
    }
    tc_stop(holder);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(a_flood_of_requests_changes_nothing_counted, tc_setup,
                                        tc_teardown),
        cmocka_unit_test_setup_teardown(duplicates_are_counted_by_topic, tc_setup, tc_teardown),
        cmocka_unit_test_setup_teardown(readiness_follows_redis, tc_setup, tc_teardown),
        cmocka_unit_test_setup_teardown(alerts_are_counted_by_rule_and_severity, tc_setup,
                                        tc_teardown),
        cmocka_unit_test_setup_teardown(a_busy_address_is_exit_2_for_every_consumer, tc_setup,
                                        tc_teardown),
    };
    return cmocka_run_group_tests(tests, tc_group_setup, tc_group_teardown);
}
