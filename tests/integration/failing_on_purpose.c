/*
 * A test binary that fails on purpose, for tests/scripts/test_runner.sh:
 * it starts the embedded broker, a redis-server and opstream-count like an
 * integration test, then one case fails an assertion. The runner must say
 * which case failed, at which line, and show the services' last log lines.
 * Not part of the suites (its name does not start with test_).
 */
#include "test_count_common.h"

static bool says_counting(void *arg) {
    char *err = harness_proc_stderr(arg);
    bool yes = err != NULL && strstr(err, "counting") != NULL;

    free(err);
    return yes;
}

static void passes(void **state) {
    (void)state;
    assert_int_equal(1 + 1, 2);
}

static void fails_on_purpose_after_running_the_counter(void **state) {
    const char *argv[] = {"opstream-count", "-b", g_broker->bootstrap, "--redis", g_redis->url,
                          NULL};
    harness_proc_t *p = harness_spawn(argv, NULL, 0);

    (void)state;
    assert_non_null(p);
    assert_int_equal(harness_wait_until(says_counting, p, 20000), 0);
    harness_proc_stop(p, 20000);
    harness_proc_free(p);
    assert_int_equal(6 * 7, 41); /* the failure the runner must point at */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(passes),
        cmocka_unit_test_setup_teardown(fails_on_purpose_after_running_the_counter, tc_setup,
                                        tc_teardown),
    };
    return cmocka_run_group_tests(tests, tc_group_setup, tc_group_teardown);
}
