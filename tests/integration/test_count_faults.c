/*
 * opstream-count under faults, while a stream is being produced: kill -9 at
 * random moments ten times with a restart each time, two consumers in the
 * group with one leaving mid-stream, and redis-server killed and restarted
 * (AOF, appendfsync always) mid-stream, and a zombie: a member frozen
 * (SIGSTOP) past its session timeout while another takes its partitions
 * over, then thawed with whatever it had fetched. Every time the counts
 * must be exact; and the step of one batch beside the next one while Redis
 * stalls. The consumers run with dedupe off (tc_spawn_count), so a
 * batch counted twice would show: only the offsets stored with the counts
 * keep them exact. And a crash between the operations' steps and the
 * offsets write (the offsets key made unwritable by an ACL, then kill -9):
 * the consumer that replays the batch must count nothing of it again, which
 * only the applied-offset watermarks can ensure.
 */
#include "test_count_common.h"

#include <pthread.h>
#include <signal.h>

#define SEED 777ULL

typedef tc_stream_t stream_t;

/* Generates n events of op (times within the last two hours), models them
 * (m NULL: the caller models what was produced) and starts producing them. */
static void stream_start(stream_t *s, tc_model_t *m, const char *op, int n, int per_tick,
                         uint64_t seed) {
    int64_t now = tc_wall_ms();

    tc_stream_fill(s, op, n, per_tick, seed, now);
    for (int i = 0; m != NULL && i < n; i++)
        tc_model_event(m, &s->ev[i], now);
    tc_stream_run(s);
}

typedef struct progress {
    const char *group;
    int64_t since;
} progress_t;

static bool offsets_moved(void *arg) {
    const progress_t *p = arg;

    return tc_offsets_sum(p->group) > p->since;
}

static bool proc_says_assigned(void *arg) {
    return tc_stderr_has(arg, "assigned");
}

static bool proc_says_retrying(void *arg) {
    return tc_stderr_has(arg, "retrying");
}

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

static void redis_killed_and_restarted_midstream_counts_exactly(void **state) {
    tc_model_t m = {0};
    stream_t s;
    harness_proc_t *p = tc_spawn_count("opstream-count", NULL);

    (void)state;
    assert_non_null(p);
    stream_start(&s, &m, "LIBERTERRA-II", 6000, 20, SEED + 2);
    while (s.produced < s.n / 3)
        nanosleep(&(struct timespec){0, 20000000L}, NULL);
    assert_int_equal(harness_redis_kill(g_redis), 0);
    /* The consumer meets the dead Redis, says so, and keeps running. */
    assert_int_equal(harness_wait_until(proc_says_retrying, p, 30000), 0);
    assert_true(harness_proc_running(p));
    assert_int_equal(harness_redis_restart(g_redis), 0);
    tc_stream_finish(&s);
    assert_int_equal(tc_wait_consumed("opstream-count", 60000), 0);
    char *err = harness_proc_stderr(p);
    assert_non_null(strstr(err, "retrying")); /* it met the dead Redis and said so */
    free(err);
    tc_stop(p);
    assert_int_equal(tc_model_compare(&m, true), 0);
    tc_model_free(&m);
}

static bool proc_says_batch_not_applied(void *arg) {
    return tc_stderr_has(arg, "batch not applied");
}

/*
 * A zombie with a stale batch: A holds a batch it cannot write (Redis
 * frozen), then A itself freezes; Redis thaws, B joins and, once A's
 * session has expired, takes every partition from the stored offsets and
 * counts A's batch's events itself. A thawed tries to write its batch: the
 * watermarks must refuse every event of it B counted, or those events would
 * count twice, which only dedupe could hide and dedupe is off here. Which
 * of the two then loses the offsets compare-and-set ("batch not applied")
 * depends on timing: A, when B already wrote the offsets of A's partitions,
 * or B, when A's write came between B's operation steps and B's offsets
 * write. The counts are exact either way.
 */
static void zombie_member_thawed_after_its_partitions_moved_counts_nothing_twice(void **state) {
    tc_model_t m = {0};
    stream_t s;
    const char *const verbose[] = {"-v", "--batch", "100", NULL};

    (void)state;
    harness_proc_t *a = tc_spawn_count("opstream-count", verbose);
    assert_non_null(a);
    assert_int_equal(harness_wait_until(proc_says_assigned, a, 30000), 0);
    stream_start(&s, &m, "FLASH-WEKA", 3000, 10, SEED + 3);
    progress_t pr = {"opstream-count", 0};
    assert_int_equal(harness_wait_until(offsets_moved, &pr, 30000), 0);
    /* A holds a batch it cannot write, then freezes with it. */
    assert_int_equal(harness_proc_signal(g_redis->proc, SIGSTOP), 0);
    assert_int_equal(harness_wait_until(proc_says_retrying, a, 30000), 0);
    assert_int_equal(harness_proc_signal(a, SIGSTOP), 0);
    assert_int_equal(harness_proc_signal(g_redis->proc, SIGCONT), 0);
    pr.since = tc_offsets_sum("opstream-count");
    /* B takes the partitions over and counts past A's batch. */
    harness_proc_t *b = tc_spawn_count("opstream-count", verbose);
    assert_non_null(b);
    assert_int_equal(harness_wait_until(proc_says_assigned, b, 60000), 0);
    assert_int_equal(harness_wait_until(offsets_moved, &pr, 60000), 0);
    /* A wakes up a zombie and tries its stale batch (at the latest in its
     * final flush when stopped): refused whole, so every count is exact. */
    assert_int_equal(harness_proc_signal(a, SIGCONT), 0);
    tc_stream_finish(&s);
    assert_int_equal(tc_wait_consumed("opstream-count", 60000), 0);
    assert_int_equal(harness_proc_stop(a, 20000), 0);
    bool tried = proc_says_batch_not_applied(a) || proc_says_batch_not_applied(b);
    tc_stop(b);
    assert_int_equal(tc_model_compare(&m, true), 0);
    /* Commands A wrote before Redis froze are still in Redis's socket and
     * run when it thaws: when they were A's whole step (scripts and
     * offsets), A's batch landed before B took over and nobody is fenced.
     * The counts must be exact either way; the line says which path ran. */
    print_message("zombie: %s\n", tried ? "the stale batch was tried and refused"
                                         : "the batch landed before the freeze took hold");
    harness_proc_free(a);
    tc_model_free(&m);
}

/*
 * The Redis step of one batch runs while the next batch is consumed and
 * decoded: the next batch stands at the offsets that step stores, so a
 * single member is never fenced by its own steps and nothing is counted
 * twice or left out. A backlog counted in small batches (every batch
 * follows one in flight), then a stream during which Redis stalls three
 * times (SIGSTOP, 300 ms: the step in flight waits while the next batch
 * fills up and grows). Dedupe is off: only the offsets keep counts exact.
 */
static void steps_beside_the_next_batch_count_exactly_and_never_fence_themselves(void **state) {
    tc_model_t m = {0};
    stream_t s;
    const char *const small[] = {"-v", "--batch", "50", NULL};
    const struct timespec pause = {0, 300 * 1000000L};

    (void)state;
    stream_start(&s, &m, "OVERLAP", 3000, 3000, SEED + 4);
    tc_stream_finish(&s);
    harness_proc_t *p = tc_spawn_count("opstream-count", small);
    assert_non_null(p);
    assert_int_equal(tc_wait_consumed("opstream-count", 60000), 0);
    stream_start(&s, &m, "OVERLAP", 6000, 50, SEED + 5);
    for (int i = 0; i < 3; i++) {
        nanosleep(&pause, NULL);
        assert_int_equal(harness_proc_signal(g_redis->proc, SIGSTOP), 0);
        nanosleep(&pause, NULL);
        assert_int_equal(harness_proc_signal(g_redis->proc, SIGCONT), 0);
    }
    tc_stream_finish(&s);
    assert_int_equal(tc_wait_consumed("opstream-count", 60000), 0);
    assert_int_equal(harness_proc_stop(p, 20000), 0);
    assert_int_equal(tc_model_compare(&m, true), 0);
    assert_false(tc_stderr_has(p, "batch not applied"));
    /* and the steps did run beside the next batch (-v says how many) */
    char *err = harness_proc_stderr(p);
    const char *line = err != NULL ? strstr(err, " steps ran while the next batch took") : NULL;
    unsigned long long beside = 0, run = 0;
    while (line != NULL && line > err && line[-1] != '\n')
        line--;
    if (line == NULL || sscanf(line, "opstream-count: %llu of %llu", &beside, &run) != 2 ||
        beside == 0)
        fail_msg("no step ran beside the next batch (%llu of %llu); stderr:\n%s", beside, run,
                 err ? err : "");
    print_message("steps beside the next batch: %llu of %llu\n", beside, run);
    free(err);
    harness_proc_free(p);
    tc_model_free(&m);
}

static bool some_counted(void *arg) {
    redisReply *r = harness_redis_command(g_redis, "HGET opstream:{%s}:total events",
                                          (const char *)arg);
    bool yes = r != NULL && r->type == REDIS_REPLY_STRING && atoll(r->str) > 0;

    if (r != NULL)
        freeReplyObject(r);
    return yes;
}

static void acl_default(bool offsets_writable) {
    redisReply *r =
        offsets_writable
            ? harness_redis_command(g_redis, "ACL SETUSER default allkeys")
            : harness_redis_command(g_redis, "ACL SETUSER default resetkeys ~opstream:[^o]* "
                                             "~opstream:operations %%R~opstream:offsets:*");

    assert_non_null(r);
    assert_int_not_equal(r->type, REDIS_REPLY_ERROR);
    freeReplyObject(r);
}

static void crash_between_the_steps_and_the_offsets_write_counts_nothing_twice(void **state) {
    tc_model_t m = {0};
    stream_t s;
    const char *const verbose[] = {"-v", "--batch", "200", NULL};

    (void)state;
    /* Every key but the offsets (and opstream:operations, listed) stays
     * writable: the steps go through, the offsets write fails. */
    acl_default(false);
    stream_start(&s, &m, "LIBERTERRA-II", 2000, 50, SEED + 4);
    tc_stream_finish(&s);
    harness_proc_t *a = tc_spawn_count("opstream-count", verbose);
    assert_non_null(a);
    assert_int_equal(harness_wait_until(some_counted, "LIBERTERRA-II", 30000), 0);
    assert_int_equal(harness_wait_until(proc_says_retrying, a, 30000), 0);
    assert_int_equal(tc_offsets_sum("opstream-count"), 0); /* counted, offsets not written */
    assert_int_equal(harness_proc_kill(a), 0);
    harness_proc_free(a);
    acl_default(true);
    /* The next consumer starts from no stored offsets at all. */
    harness_proc_t *b = tc_spawn_count("opstream-count", NULL);
    assert_non_null(b);
    assert_int_equal(tc_wait_consumed("opstream-count", 60000), 0);
    tc_stop(b);
    assert_int_equal(tc_model_compare(&m, true), 0);
    tc_model_free(&m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(kill9_ten_times_during_a_stream_counts_exactly, tc_setup,
                                        tc_teardown),
        cmocka_unit_test_setup_teardown(two_consumers_with_one_leaving_midstream_count_exactly,
                                        tc_setup, tc_teardown),
        cmocka_unit_test_setup_teardown(redis_killed_and_restarted_midstream_counts_exactly,
                                        tc_setup, tc_teardown),
        cmocka_unit_test_setup_teardown(
            crash_between_the_steps_and_the_offsets_write_counts_nothing_twice, tc_setup,
            tc_teardown),
        cmocka_unit_test_setup_teardown(
            zombie_member_thawed_after_its_partitions_moved_counts_nothing_twice, tc_setup,
            tc_thaw_teardown),
        cmocka_unit_test_setup_teardown(
            steps_beside_the_next_batch_count_exactly_and_never_fence_themselves, tc_setup,
            tc_thaw_teardown),
    };
    return cmocka_run_group_tests(tests, tc_group_setup, tc_group_teardown);
}
