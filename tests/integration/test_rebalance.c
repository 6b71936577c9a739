/*
 * Group membership on the embedded broker: a consumer that joins after the
 * previous member left with a clean close gets its partitions within
 * seconds (the broker's group coordinator waits session.timeout.ms - 1 s in
 * a rebalance, so opstream's consumers use a short session timeout there;
 * with librdkafka's default of 45 s the newcomer waited 44 s), and the
 * user's own group settings still win. See docs/embedded-broker.md.
 */
#include "test_count_common.h"

/* A member that joins after a clean close must own its partitions within
 * this long; before the fix it took 44 s (librdkafka's default session
 * timeout of 45 s, less 1 s). It takes about 2 s on an idle machine; the
 * deadline leaves room for make test running eight binaries at once on two
 * cores, and is still far below the 44 s it proves gone. */
#define REJOIN_DEADLINE_MS 12000

/* The value librdkafka will use for key in a consumer conf built from cfg. */
static void consumer_conf_value(const char *bootstrap, const char *user_kv, const char *key,
                                char *out, size_t size) {
    char err[512];
    ops_config_t *cfg = ops_config_new();
    rd_kafka_conf_t *conf;

    assert_non_null(cfg);
    assert_int_equal(ops_config_set(cfg, "bootstrap.servers", bootstrap, err, sizeof err), 0);
    if (user_kv != NULL)
        assert_int_equal(ops_config_set_kv(cfg, user_kv, err, sizeof err), 0);
    conf = ops_kafka_conf_new(cfg, OPS_KAFKA_CONSUMER, err, sizeof err);
    assert_non_null(conf);
    assert_int_equal(rd_kafka_conf_get(conf, key, out, &size), RD_KAFKA_CONF_OK);
    rd_kafka_conf_destroy(conf);
    ops_config_destroy(cfg);
}

static void consumers_of_the_embedded_broker_use_a_short_session_timeout_unless_told(
    void **state) {
    char v[64], redis_addr[64];

    (void)state;
    consumer_conf_value(g_broker->bootstrap, NULL, "session.timeout.ms", v, sizeof v);
    assert_string_equal(v, "3000");
    consumer_conf_value(g_broker->bootstrap, NULL, "heartbeat.interval.ms", v, sizeof v);
    assert_string_equal(v, "300");
    /* The user's setting wins. */
    consumer_conf_value(g_broker->bootstrap, "session.timeout.ms=30000", "session.timeout.ms", v,
                        sizeof v);
    assert_string_equal(v, "30000");
    /* Something else listening on the loopback interface (a redis-server)
     * is not the embedded broker: librdkafka's defaults stay. */
    snprintf(redis_addr, sizeof redis_addr, "127.0.0.1:%d", g_redis->port);
    consumer_conf_value(redis_addr, NULL, "session.timeout.ms", v, sizeof v);
    assert_string_equal(v, "45000");
    /* Nobody listening: no probe, librdkafka's defaults. */
    consumer_conf_value("127.0.0.1:1", NULL, "session.timeout.ms", v, sizeof v);
    assert_string_equal(v, "45000");
}

static bool says_assigned(void *arg) {
    char *err = harness_proc_stderr(arg);
    bool yes = err != NULL && strstr(err, "assigned 24 partitions") != NULL;

    free(err);
    return yes;
}

/* Starts prog (opstream-count or opstream-alert) in group with the
 * program's own group settings: no session timeout given. */
static harness_proc_t *spawn(const char *prog, const char *rules) {
    const char *argv[] = {prog,    "-b", g_broker->bootstrap, "--redis", g_redis->url, "-g",
                          "rejoin", "-v", rules ? "--rules" : NULL, rules, NULL};
    return harness_spawn(argv, NULL, 0);
}

/* The first member owns every partition, stops cleanly (LeaveGroup); the
 * next one owns them within REJOIN_DEADLINE_MS of its start, three times. */
static void rejoin_after_clean_close(const char *prog, const char *rules) {
    harness_proc_t *p = spawn(prog, rules);

    assert_non_null(p);
    assert_int_equal(harness_wait_until(says_assigned, p, 30000), 0);
    for (int round = 0; round < 3; round++) {
        assert_int_equal(harness_proc_stop(p, 20000), 0);
        harness_proc_free(p);
        int64_t t0 = harness_now_ms();
        p = spawn(prog, rules);
        assert_non_null(p);
        int rc = harness_wait_until(says_assigned, p, REJOIN_DEADLINE_MS);
        int64_t took = harness_now_ms() - t0;
        if (rc != 0)
            fail_msg("%s round %d: no partitions %lld ms after a clean close of the previous "
                     "member (deadline %d ms)",
                     prog, round, (long long)took, REJOIN_DEADLINE_MS);
        print_message("%s round %d: partitions after %lld ms\n", prog, round, (long long)took);
    }
    assert_int_equal(harness_proc_stop(p, 20000), 0);
    harness_proc_free(p);
}

static void count_member_joining_after_a_clean_close_gets_its_partitions_within_seconds(
    void **state) {
    (void)state;
    rejoin_after_clean_close("opstream-count", NULL);
}

static void alert_member_joining_after_a_clean_close_gets_its_partitions_within_seconds(
    void **state) {
    char rules[HARNESS_PATH_MAX];

    (void)state;
    harness_path(rules, sizeof rules, "rules.conf");
    assert_int_equal(harness_write_file(rules,
                                        "[rule mass-rescue]\nkind = rescue\nwhen = victims >= 50\n"
                                        "severity = CRITICAL\n",
                                        (size_t)-1),
                     0);
    rejoin_after_clean_close("opstream-alert", rules);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            consumers_of_the_embedded_broker_use_a_short_session_timeout_unless_told, tc_setup,
            tc_teardown),
        cmocka_unit_test_setup_teardown(
            count_member_joining_after_a_clean_close_gets_its_partitions_within_seconds, tc_setup,
            tc_teardown),
        cmocka_unit_test_setup_teardown(
            alert_member_joining_after_a_clean_close_gets_its_partitions_within_seconds, tc_setup,
            tc_teardown),
    };
    return cmocka_run_group_tests(tests, tc_group_setup, tc_group_teardown);
}
