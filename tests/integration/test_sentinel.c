/*
 * opstream on Redis Sentinel: a primary, a replica and three sentinels
 * (sentinel_harness.h); opstream-count (dedupe off) and opstream-alert
 * reach the primary through a redis-sentinel:// URL while a stream is
 * produced. The replica is made to miss the primary's last steps (its
 * replication stream held, as asynchronous replication loses them), then
 * the primary is SIGKILLed. After the failover the counts on the new
 * primary are exact: the consumers find their stored offsets behind what
 * they wrote, are fenced, re-read the offsets there and count the lost
 * range again. opstream-stats, given the sentinel URL, reads the new
 * primary; the alert consumer's offsets and mirror go on there, and every
 * alert on the alert topic is in the new primary's stream (opstream-alert
 * mirrors the last ones again once it meets the new primary). The cost of
 * the failover (pause, messages replayed, batches fenced) is printed.
 */
#include "test_count_common.h"

#include "sentinel_harness.h"

#define SEED 1515ULL
#define OP "LIBERTERRA-II"

static sh_deployment_t g_dep;

static int group_setup(void **state) {
    char err[256];

    if (harness_group_setup(state) != 0 || sh_start(&g_dep) != 0)
        return -1;
    g_redis = g_dep.node[0];
    g_codec = ops_codec_new(NULL, err, sizeof err);
    return g_codec != NULL ? 0 : -1;
}

static int group_teardown(void **state) {
    ops_codec_destroy(g_codec);
    sh_free(&g_dep);
    g_redis = NULL;
    return harness_group_teardown(state);
}

static int setup(void **state) {
    (void)state;
    g_broker = harness_broker_start(NULL);
    return g_broker != NULL ? tp_producer_start() : -1;
}

static harness_proc_t *spawn_count(void) {
    const char *argv[] = {"opstream-count", "-b", g_broker->bootstrap, "--redis", g_dep.url,
                          "--batch", "100", "--stats-interval", "1", "-X",
                          "opstream.dedupe.window.s=0", NULL};
    return harness_spawn(argv, NULL, 0);
}

static harness_proc_t *spawn_alert(const char *rules) {
    const char *argv[] = {"opstream-alert", "-b", g_broker->bootstrap, "--redis", g_dep.url,
                          "--rules", rules, NULL};
    return harness_spawn(argv, NULL, 0);
}

typedef struct moved {
    const char *group;
    int64_t past;
} moved_t;

static bool offsets_past(void *arg) {
    const moved_t *m = arg;
    return tc_offsets_sum(m->group) > m->past;
}


/* The "events" of the "total" object of opstream-stats --json OP, run
 * against the sentinel URL; -1 when it fails. */
static long long stats_total_events(void) {
    const char *argv[] = {"opstream-stats", "--redis", g_dep.url, "--json", OP, NULL};
    harness_proc_t *p = harness_spawn(argv, NULL, 0);
    long long events = -1;

    assert_non_null(p);
    assert_int_equal(harness_proc_wait(p, 20000), 0);
    char *out = harness_proc_stdout(p);
    const char *total = out != NULL ? strstr(out, "\"total\":{") : NULL;
    const char *ev = total != NULL ? strstr(total, "\"events\":") : NULL;
    if (harness_proc_exit_code(p) == 0 && ev != NULL && ev < strstr(total, "}"))
        events = strtoll(ev + strlen("\"events\":"), NULL, 10);
    free(out);
    harness_proc_free(p);
    return events;
}

/* Every alert id on the alert topic is in the new primary's mirror. */
static void assert_mirror_holds_every_alert(size_t *published) {
    harness_msgs_t msgs = {0};
    char err[512], key[OPS_KEY_MAX];

    assert_int_equal(harness_consume_all(g_broker->bootstrap, "opstream.alerts", 300, 30000, &msgs),
                     0);
    ops_key_alerts(OP, key, sizeof key);
    redisReply *r = harness_redis_command(g_redis, "XRANGE %s - +", key);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    for (size_t i = 0; i < msgs.n; i++) {
        ops_alert_t a;
        bool found = false;
        assert_int_equal(ops_codec_decode_alert(g_codec, msgs.v[i].value, msgs.v[i].value_len, &a,
                                                err, sizeof err),
                         OPS_CODEC_OK);
        for (size_t e = 0; e < r->elements && !found; e++) {
            redisReply *f = r->element[e]->element[1];
            for (size_t k = 0; k + 1 < f->elements && !found; k += 2)
                found = strcmp(f->element[k]->str, "alert_id") == 0 &&
                        strcmp(f->element[k + 1]->str, a.alert_id) == 0;
        }
        if (!found)
            fail_msg("alert %s is on the topic, not in %s on the new primary", a.alert_id, key);
    }
    *published = msgs.n;
    freeReplyObject(r);
    harness_msgs_free(&msgs);
}

static void primary_killed_midstream_counts_exactly_on_the_new_primary(void **state) {
    tc_model_t m = {0};
    tc_stream_t s;
    char rules[HARNESS_PATH_MAX], line[256];
    int64_t now = tc_wall_ms();

    (void)state;
    assert_int_equal(harness_path(rules, sizeof rules, "sentinel-rules.conf"), 0);
    assert_int_equal(harness_write_file(rules,
                                        "[rule mass-rescue]\nkind = rescue\n"
                                        "when = victims >= 50\nseverity = CRITICAL\n"
                                        "summary = {country}: {victims} victims, {operation}\n",
                                        (size_t)-1),
                     0);
    harness_proc_t *count = spawn_count();
    harness_proc_t *alert = spawn_alert(rules);
    assert_non_null(count);
    assert_non_null(alert);
    /* about 500 events a second for 24 s: the failover lands mid-stream */
    tc_stream_fill(&s, OP, 12000, 10, SEED, now);
    for (int i = 0; i < s.n; i++)
        tc_model_event(&m, &s.ev[i], now);
    tc_stream_run(&s);
    moved_t cm = {"opstream-count", 0}, am = {"opstream-alert", 0};
    assert_int_equal(harness_wait_until(offsets_past, &cm, 30000), 0);
    assert_int_equal(harness_wait_until(offsets_past, &am, 30000), 0);

    /* The replica stops hearing from the primary, which goes on taking
     * steps: those steps exist only on the primary when it dies. */
    harness_redis_t *old = g_dep.node[0];
    relay_hold(g_dep.relay, true);
    cm.past = tc_offsets_sum("opstream-count") + 300;
    assert_int_equal(harness_wait_until(offsets_past, &cm, 30000), 0);
    int64_t count_before = tc_offsets_sum("opstream-count");
    int64_t alert_before = tc_offsets_sum("opstream-alert");
    int64_t t_kill = harness_now_ms();
    int old_port = old->port;
    assert_int_equal(harness_redis_kill(old), 0);
    relay_drop(g_dep.relay);
    assert_true(s.produced < s.n); /* mid-stream */

    harness_redis_t *now_primary = sh_wait_promotion(&g_dep, old_port, 90000);
    assert_non_null(now_primary);
    int64_t t_promoted = harness_now_ms();
    g_redis = now_primary;
    /* What the new primary holds, read as soon as it is known: the
     * counter may already have met it, been fenced and counted on (the
     * case under test, that the new primary lacks the last steps, is
     * asserted below by the fenced batch it causes). */
    int64_t count_kept = tc_offsets_sum("opstream-count");
    int64_t alert_kept = tc_offsets_sum("opstream-alert");

    /* Counting resumes on the new primary and passes what was lost. */
    cm.past = count_before;
    assert_int_equal(harness_wait_until(offsets_past, &cm, 60000), 0);
    int64_t t_resumed = harness_now_ms();
    tc_stream_finish(&s);
    assert_int_equal(tc_wait_consumed("opstream-count", 60000), 0);
    assert_int_equal(tc_wait_consumed("opstream-alert", 60000), 0);

    /* opstream-stats follows the sentinels to the new primary. */
    assert_int_equal(stats_total_events(), tc_model_get(&m, "opstream:{" OP "}:total", "events"));

    int fenced = harness_proc_stderr_count(count, "batch not applied");
    int alert_fenced = harness_proc_stderr_count(alert, "batch not applied");
    snprintf(line, sizeof line, "redis: primary %s now 127.0.0.1:%d (was 127.0.0.1:%d)",
             SH_MASTER, now_primary->port, old_port);
    assert_int_equal(harness_proc_stderr_count(count, line), 1); /* said once */
    assert_int_equal(harness_proc_stderr_count(alert, line), 1);
    /* the alerts of the last minutes mirrored again on the new primary */
    assert_int_equal(harness_proc_stderr_count(alert, "after the failover: "), 1);
    tc_stop(count);
    assert_int_equal(harness_proc_stop(alert, 20000), 0);
    harness_proc_free(alert);

    /* Totals, country hashes, minute and hour buckets: exact. */
    assert_int_equal(tc_model_compare(&m, true), 0);
    size_t alerts = 0;
    assert_mirror_holds_every_alert(&alerts);
    assert_true(alerts > 0);
    assert_true(fenced >= 1); /* the new primary lacked the last steps: met and re-read */

    fprintf(stderr,
            "failover cost: primary promoted %.1f s after the kill, counting past the lost "
            "steps %.1f s after it; opstream-count replayed %lld messages (%d batch%s fenced), "
            "opstream-alert replayed %lld (%d fenced); %zu alerts mirrored\n",
            (double)(t_promoted - t_kill) / 1000.0, (double)(t_resumed - t_kill) / 1000.0,
            (long long)(count_kept < count_before ? count_before - count_kept : 0), fenced,
            fenced == 1 ? "" : "es",
            (long long)(alert_kept < alert_before ? alert_before - alert_kept : 0), alert_fenced,
            alerts);
    tc_model_free(&m);
}

/* A master name no sentinel monitors: each sentinel is named with why,
 * at once (waiting cannot mend it). */
static void unknown_master_names_every_sentinel_asked(void **state) {
    char url[300];
    (void)state;
    snprintf(url, sizeof url, "%.*snope", (int)(strchr(g_dep.url, '#') + 1 - g_dep.url),
             g_dep.url);
    const char *argv[] = {"opstream-stats", "--redis", url, "--list", NULL};
    harness_proc_t *p = harness_spawn(argv, NULL, 0);
    assert_non_null(p);
    assert_int_equal(harness_proc_wait(p, 20000), 0);
    assert_int_equal(harness_proc_exit_code(p), 3); /* Redis unreachable */
    assert_int_equal(harness_proc_stderr_count(
                         p, "redis-sentinel master 'nope': no primary found through 3 sentinels"),
                     1);
    for (int i = 0; i < SH_SENTINELS; i++) {
        char line[128];
        snprintf(line, sizeof line, "127.0.0.1:%d (does not monitor a master named 'nope')",
                 g_dep.sentinel_port[i]);
        assert_int_equal(harness_proc_stderr_count(p, line), 1);
    }
    harness_proc_free(p);
}

/* Sentinels that want a password (their own ACL user): the URL names the
 * user and a file with the password; without them every sentinel is named
 * with NOAUTH. Last: the deployment's sentinels keep the password. */
static void sentinels_with_a_password_are_asked_as_their_user(void **state) {
    char pwfile[HARNESS_PATH_MAX], url[HARNESS_PATH_MAX + 512];
    const char *head_end = strchr(g_dep.url, '#');

    (void)state;
    assert_int_equal(harness_path(pwfile, sizeof pwfile, "sentinel.pw"), 0);
    assert_int_equal(harness_write_file(pwfile, "s3nt1nel-pw\n", (size_t)-1), 0);
    for (int i = 0; i < SH_SENTINELS; i++) {
        redisReply *r = sh_command_port(g_dep.sentinel_port[i],
                                        "ACL SETUSER opstream-client on >s3nt1nel-pw -@all +auth "
                                        "+ping +sentinel|get-master-addr-by-name");
        assert_non_null(r);
        assert_int_equal(r->type, REDIS_REPLY_STATUS);
        freeReplyObject(r);
        r = sh_command_port(g_dep.sentinel_port[i], "ACL SETUSER default off");
        assert_non_null(r);
        freeReplyObject(r);
    }
    const char *argv[] = {"opstream-stats", "--redis", g_dep.url, "--list", NULL};
    harness_proc_t *p = harness_spawn(argv, NULL, 0);
    assert_non_null(p);
    assert_int_equal(harness_proc_wait(p, 20000), 0);
    assert_int_equal(harness_proc_exit_code(p), 3);
    assert_int_equal(harness_proc_stderr_count(p, "(AUTH failed") +
                         harness_proc_stderr_count(p, "(NOAUTH"),
                     SH_SENTINELS);
    harness_proc_free(p);

    snprintf(url, sizeof url, "%.*s?sentinel_user=opstream-client&sentinel_password_file=%s%s",
             (int)(head_end - g_dep.url), g_dep.url, pwfile, head_end);
    argv[2] = url;
    p = harness_spawn(argv, NULL, 0);
    assert_non_null(p);
    assert_int_equal(harness_proc_wait(p, 20000), 0);
    if (harness_proc_exit_code(p) != 0) {
        char *err = harness_proc_stderr(p);
        fail_msg("opstream-stats exit %d: %s", harness_proc_exit_code(p), err ? err : "");
    }
    harness_proc_free(p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(unknown_master_names_every_sentinel_asked),
        cmocka_unit_test_setup_teardown(primary_killed_midstream_counts_exactly_on_the_new_primary,
                                        setup, tc_teardown),
        cmocka_unit_test(sentinels_with_a_password_are_asked_as_their_user),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
