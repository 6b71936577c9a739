/*
 * A test binary that fails on purpose, for tests/scripts/test_runner.sh:
 * it starts the embedded broker, a redis-server and opstream-count like an
 * integration test, then one case fails an assertion. The runner must say
 * which case failed, at which line, and show the services' last log lines.
 * Not part of the suites (its name does not start with test_).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"

static harness_broker_t *g_broker;
static harness_redis_t *g_redis;

static int group_setup(void **state) {
    if (harness_group_setup(state) != 0)
        return -1;
    g_broker = harness_broker_start(NULL);
    g_redis = harness_redis_start(false);
    return g_broker != NULL && g_redis != NULL ? 0 : -1;
}

static int group_teardown(void **state) {
    harness_broker_free(g_broker);
    harness_redis_free(g_redis);
    return harness_group_teardown(state);
}

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
        cmocka_unit_test(fails_on_purpose_after_running_the_counter),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
