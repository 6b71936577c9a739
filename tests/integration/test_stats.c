/*
 * opstream-stats against counts written by opstream-count: totals, rolling
 * windows built from the buckets (late events land in their own buckets and
 * the windows follow), the per-country filter and table order, --list, the
 * JSON form and the documented exit codes.
 */
#include "test_count_common.h"

#define SEED 4242ULL
#define HOUR_MS (3600LL * 1000)

/* Runs opstream-stats with args; returns its exit code and its stdout in
 * *outp (caller frees). */
static int run_stats(const char *const *args, char **outp) {
    const char *argv[16] = {"opstream-stats", "--redis", g_redis->url};
    size_t n = 3;
    harness_proc_t *p;
    int code;

    for (; *args != NULL && n < 15; args++)
        argv[n++] = *args;
    argv[n] = NULL;
    p = harness_spawn(argv, NULL, 0);
    assert_non_null(p);
    assert_int_equal(harness_proc_wait(p, 20000), 0);
    code = harness_proc_exit_code(p);
    if (outp != NULL)
        *outp = harness_proc_stdout(p);
    harness_proc_free(p);
    return code;
}

/* The value of metric inside the JSON object that follows section (e.g.
 * "\"total\":" or "\"10m\":"); -1 when absent. */
static long long json_metric(const char *json, const char *section, const char *metric) {
    char pat[64];
    const char *p = strstr(json, section), *q;

    if (p == NULL)
        return -1;
    snprintf(pat, sizeof pat, "\"%s\":", metric);
    q = strstr(p, pat);
    return q != NULL ? strtoll(q + strlen(pat), NULL, 10) : -1;
}

/* Produces n events of op at now - offset - [0, spread) ms, models them. */
static void produce_at(tc_model_t *m, uint64_t *rng, const char *op, int first, int n,
                       int64_t offset, int64_t spread) {
    int64_t now = tc_wall_ms();

    for (int i = first; i < first + n; i++) {
        ops_event_t ev = tc_event(rng, op, i, now - offset - (int64_t)(tc_rand(rng) % spread));
        tc_produce_event(&ev);
        tc_model_event(m, &ev, now);
    }
    tc_flush();
}

static long long model_sum(const tc_model_t *m, const char *key_part, const char *field) {
    long long sum = 0;

    for (size_t i = 0; i < m->n; i++)
        if (strstr(m->f[i].key, key_part) != NULL && strcmp(m->f[i].field, field) == 0)
            sum += m->f[i].v;
    return sum;
}

static void late_events_land_in_their_buckets_and_windows_follow(void **state) {
    tc_model_t m = {0};
    uint64_t rng = SEED;
    char *out = NULL;
    const char *const json_args[] = {"FLASH-WEKA", "--json", NULL};
    harness_proc_t *p;
    int64_t late_at;
    char key[OPS_KEY_MAX];

    (void)state;
    /* 300 now (last 4 minutes), 100 a day and a half back (no window). */
    produce_at(&m, &rng, "FLASH-WEKA", 0, 300, 0, 4 * OPS_MINUTE_MS);
    produce_at(&m, &rng, "FLASH-WEKA", 300, 100, 36 * HOUR_MS, 10 * OPS_MINUTE_MS);
    p = tc_spawn_count("opstream-count", NULL);
    assert_non_null(p);
    assert_int_equal(tc_wait_consumed("opstream-count", 60000), 0);
    assert_int_equal(tc_model_compare(&m, true), 0);

    assert_int_equal(run_stats(json_args, &out), 0);
    assert_int_equal(json_metric(out, "\"total\":", "events"), 400);
    assert_int_equal(json_metric(out, "\"10m\":", "events"), 300);
    assert_int_equal(json_metric(out, "\"1h\":", "events"), 300);
    assert_int_equal(json_metric(out, "\"24h\":", "events"), 300);
    long long victims_now = json_metric(out, "\"10m\":", "victims");
    long long victims_24h = json_metric(out, "\"24h\":", "victims");
    free(out);

    /* Late reports: 150 events five hours back, in the middle of an hour
     * so that they all share one hour bucket. */
    late_at = tc_wall_ms() - 5 * HOUR_MS;
    late_at = ops_hour_floor(late_at) + 30 * OPS_MINUTE_MS;
    tc_model_t late = {0};
    int64_t now = tc_wall_ms();
    for (int i = 0; i < 150; i++) {
        ops_event_t ev = tc_event(&rng, "FLASH-WEKA", 1000 + i, late_at + i * 1000);
        tc_produce_event(&ev);
        tc_model_event(&m, &ev, now);
        tc_model_event(&late, &ev, now);
    }
    tc_flush();
    assert_int_equal(tc_wait_consumed("opstream-count", 60000), 0);
    tc_stop(p);
    assert_int_equal(tc_model_compare(&m, true), 0);

    /* Their hour bucket holds exactly them; the windows follow. */
    ops_key_hour("FLASH-WEKA", late_at, key, sizeof key);
    redisReply *r = harness_redis_command(g_redis, "HGET %s events", key);
    assert_non_null(r);
    assert_non_null(r->str);
    assert_int_equal(strtoll(r->str, NULL, 10), 150);
    freeReplyObject(r);
    r = harness_redis_command(g_redis, "TTL %s", key);
    assert_true(r->integer > 0 && r->integer <= HOUR_TTL_S);
    freeReplyObject(r);

    assert_int_equal(run_stats(json_args, &out), 0);
    assert_int_equal(json_metric(out, "\"total\":", "events"), 550);
    assert_int_equal(json_metric(out, "\"10m\":", "events"), 300);
    assert_int_equal(json_metric(out, "\"1h\":", "events"), 300);
    assert_int_equal(json_metric(out, "\"24h\":", "events"), 450);
    assert_int_equal(json_metric(out, "\"10m\":", "victims"), victims_now);
    assert_int_equal(json_metric(out, "\"24h\":", "victims"),
                     victims_24h + model_sum(&late, ":total", "victims"));
    free(out);
    tc_model_free(&late);
    tc_model_free(&m);
}

static void country_filter_table_order_list_and_exit_codes(void **state) {
    tc_model_t m = {0};
    uint64_t rng = SEED + 1;
    char *out = NULL;
    harness_proc_t *p;

    (void)state;
    produce_at(&m, &rng, "WEKA-II", 0, 400, 0, 30 * OPS_MINUTE_MS);
    p = tc_spawn_count("opstream-count", NULL);
    assert_non_null(p);
    assert_int_equal(tc_wait_consumed("opstream-count", 60000), 0);
    tc_stop(p);

    /* --country: the totals and windows of that country only. */
    const char *const ng[] = {"WEKA-II", "--country", "NG", "--json", NULL};
    assert_int_equal(run_stats(ng, &out), 0);
    assert_int_equal(json_metric(out, "\"total\":", "arrests"),
                     tc_model_get(&m, "opstream:{WEKA-II}:country:NG", "arrests"));
    assert_int_equal(json_metric(out, "\"1h\":", "events"),
                     tc_model_get(&m, "opstream:{WEKA-II}:country:NG", "events"));
    free(out);

    /* The table: the country with the most events comes first. */
    const char *best = NULL;
    long long best_n = -1;
    for (size_t i = 0; i < m.nmembers; i++) {
        char key[OPS_KEY_MAX];
        snprintf(key, sizeof key, "opstream:{WEKA-II}:country:%s", m.members[i]);
        long long n = tc_model_get(&m, key, "events");
        if (n > best_n || (n == best_n && strcmp(m.members[i], best) < 0)) {
            best_n = n;
            best = m.members[i];
        }
    }
    const char *const text[] = {"WEKA-II", NULL};
    assert_int_equal(run_stats(text, &out), 0);
    const char *table = strstr(out, "\ncountry");
    assert_non_null(table);
    table = strchr(table + 1, '\n') + 1;
    assert_int_equal(strncmp(table, best, 2), 0);
    assert_non_null(strstr(out, "last 10m"));
    assert_non_null(strstr(out, "last 24h"));
    free(out);

    const char *const window[] = {"WEKA-II", "--window", "1h", "--json", NULL};
    assert_int_equal(run_stats(window, &out), 0);
    assert_null(strstr(out, "\"10m\""));
    assert_int_equal(json_metric(out, "\"1h\":", "events"), 400);
    free(out);

    const char *const list[] = {"--list", NULL};
    assert_int_equal(run_stats(list, &out), 0);
    assert_string_equal(out, "WEKA-II\n");
    free(out);

    const char *const unknown[] = {"NO-SUCH-OP", NULL};
    assert_int_equal(run_stats(unknown, NULL), 1);
    const char *const usage1[] = {NULL};
    assert_int_equal(run_stats(usage1, NULL), 2);
    const char *const usage2[] = {"WEKA-II", "--window", "7d", NULL};
    assert_int_equal(run_stats(usage2, NULL), 2);
    const char *argv[] = {"opstream-stats", "--redis", "redis://127.0.0.1:1/0", "WEKA-II", NULL};
    p = harness_spawn(argv, NULL, 0);
    assert_int_equal(harness_proc_wait(p, 20000), 0);
    assert_int_equal(harness_proc_exit_code(p), 3);
    harness_proc_free(p);
    tc_model_free(&m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(late_events_land_in_their_buckets_and_windows_follow,
                                        tc_setup, tc_teardown),
        cmocka_unit_test_setup_teardown(country_filter_table_order_list_and_exit_codes, tc_setup,
                                        tc_teardown),
    };
    return cmocka_run_group_tests(tests, tc_group_setup, tc_group_teardown);
}
