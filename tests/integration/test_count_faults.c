/*
 * opstream-count under faults of its own members, while a stream is being
 * produced: kill -9 at random moments ten times with a restart each time,
 * and two consumers in the group with one leaving mid-stream. Every time
 * the counts must be exact. The consumers run with dedupe off
 * (tc_spawn_count), so a batch counted twice would show: only the offsets
 * stored with the counts keep them exact. The faults around Redis are in
 * test_count_faults_redis.c.
 */
#include "test_count_faults_common.h"

#include <pthread.h>
#include <signal.h>

static void kill9_ten_times_during_a_stream_counts_exactly(void **state) {
    tc_model_t m = {0};
    stream_t s;
    uint64_t rng = SEED;
    const char *const verbose[] = {"-v", "--batch", "200", NULL};

    (void)state;
    /* A stream long enough to outlast the kills (about a minute at this
     * pace); it is stopped once they are over, and what it produced is the
     * expectation. */
    stream_start(&s, NULL, "FLASH-WEKA", 12000, 4, SEED);
    int64_t stored = 0;
    for (int round = 0; round < 10; round++) {
        harness_proc_t *p = tc_spawn_count("opstream-count", verbose);
        assert_non_null(p);
        /* Half the kills hit a consumer in the middle of counting (it has
         * just written a batch), the others one that is still joining. */
        long delay_ms = (long)(tc_rand(&rng) % 1500);
        if (round % 2 == 0) {
            progress_t pr = {"opstream-count", stored};
            assert_int_equal(harness_wait_until(offsets_moved, &pr, 30000), 0);
            delay_ms = (long)(tc_rand(&rng) % 300);
        }
        nanosleep(&(struct timespec){delay_ms / 1000, (delay_ms % 1000) * 1000000L}, NULL);
        assert_int_equal(harness_proc_kill(p), 0);
        harness_proc_free(p);
        stored = tc_offsets_sum("opstream-count");
    }
    assert_true(stored > 0);
    assert_true(s.produced < s.n); /* the kills did happen mid-stream */
    s.stop = 1;
    pthread_join(s.thread, NULL);
    tc_flush();
    int64_t now = tc_wall_ms();
    for (int i = 0; i < s.produced; i++)
        tc_model_event(&m, &s.ev[i], now);
    free(s.ev);
    harness_proc_t *p = tc_spawn_count("opstream-count", NULL);
    assert_non_null(p);
    assert_int_equal(tc_wait_consumed("opstream-count", 60000), 0);
    tc_stop(p);
    assert_int_equal(tc_model_compare(&m, true), 0);
    tc_model_free(&m);
}

static void two_consumers_with_one_leaving_midstream_count_exactly(void **state) {
    tc_model_t m = {0};
    stream_t s;
    const char *const verbose[] = {"-v", "--batch", "100", NULL};

    (void)state;
    harness_proc_t *a = tc_spawn_count("opstream-count", verbose);
    harness_proc_t *b = tc_spawn_count("opstream-count", verbose);
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(harness_wait_until(proc_says_assigned, a, 30000), 0);
    assert_int_equal(harness_wait_until(proc_says_assigned, b, 30000), 0);
    stream_start(&s, &m, "WEKA-II", 6000, 20, SEED + 1);
    /* Let both count for a while, then one leaves the group. */
    while (s.produced < s.n / 3)
        nanosleep(&(struct timespec){0, 20000000L}, NULL);
    tc_stop(b);
    tc_stream_finish(&s);
    assert_int_equal(tc_wait_consumed("opstream-count", 60000), 0);
    tc_stop(a);
    assert_int_equal(tc_model_compare(&m, true), 0);
    tc_model_free(&m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(kill9_ten_times_during_a_stream_counts_exactly, tc_setup,
                                        tc_teardown),
        cmocka_unit_test_setup_teardown(two_consumers_with_one_leaving_midstream_count_exactly,
                                        tc_setup, tc_teardown),
    };
    return cmocka_run_group_tests(tests, tc_group_setup, tc_group_teardown);
}
