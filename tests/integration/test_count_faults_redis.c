/*
 * opstream-count under faults around Redis, while a stream is being
 * produced: redis-server killed and restarted (AOF, appendfsync always)
 * mid-stream; a zombie: a member frozen (SIGSTOP) with a step Redis held
 * back (and dropped), past its session timeout, while another takes its
 * partitions over, then thawed: its stale batch is tried and refused; and
 * the step of one batch beside the next one while Redis stalls. Every time
 * the counts must be exact. The consumers run with dedupe off
 * (tc_spawn_count), so a batch counted twice would show: only the offsets
 * stored with the counts keep them exact. And a crash between the
 * operations' steps and the offsets write (the offsets key made unwritable
 * by an ACL, then kill -9): the consumer that replays the batch must count
 * nothing of it again, which only the applied-offset watermarks can
 * ensure. The faults of the members themselves are in test_count_faults.c.
 */
#include "test_count_faults_common.h"

#include <pthread.h>
#include <signal.h>

static bool proc_says_retrying(void *arg) {
    return harness_proc_stderr_has(arg, "retrying");
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
    tc_stop(p);
    assert_int_equal(tc_model_compare(&m, true), 0);
    tc_model_free(&m);
}

static bool proc_says_batch_not_applied(void *arg) {
    return harness_proc_stderr_has(arg, "batch not applied");
}

/* Whether a consumer's step (an EVALSHA) waits in Redis, held back by
 * CLIENT PAUSE WRITE. */
static bool a_step_is_held_back(void *arg) {
    (void)arg;
    return harness_redis_held_back(g_redis, "evalsha") > 0;
}

/* A reply that is there and no error, freed. */
static void reply_ok(redisReply *r) {
    assert_non_null(r);
    assert_int_not_equal(r->type, REDIS_REPLY_ERROR);
    freeReplyObject(r);
}

/* The fenced batches of the last status line a consumer wrote ("..., N
 * fenced, ..."), or -1 when it wrote none. */
static long long fenced_in_status(harness_proc_t *p) {
    char *err = harness_proc_stderr(p);
    const char *at = NULL;
    long long n = -1;

    for (const char *s = err; s != NULL && (s = strstr(s, " fenced, ")) != NULL; s++)
        at = s;
    while (at != NULL && at > err && at[-1] != ' ')
        at--;
    if (at != NULL)
        n = strtoll(at, NULL, 10);
    free(err);
    return n;
}

/*
 * A zombie with a stale batch: Redis takes no writes (CLIENT PAUSE WRITE),
 * so A's next step waits in Redis unrun; A freezes (SIGSTOP) with that
 * batch, its connections are closed (their held-back commands dropped) and
 * Redis takes writes again. B joins, and once A's session has expired takes
 * every partition from the stored offsets, counts A's batch's events itself
 * and every event after them. A thawed reconnects and tries its stale batch:
 * refused whole ("batch not applied", counted as fenced), since the stored
 * offsets moved on; B, the only writer, is never fenced. Dedupe is off, so
 * a batch counted twice would show in the counts.
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
    /* A's next step is held back in Redis; A freezes with its batch, and
     * the step is dropped with A's connections. */
    reply_ok(harness_redis_command(g_redis, "CLIENT PAUSE %d WRITE", 120000));
    assert_int_equal(harness_wait_until(a_step_is_held_back, NULL, 30000), 0);
    assert_int_equal(harness_proc_signal(a, SIGSTOP), 0);
    /* only A is connected: its connections closed, its step dropped */
    assert_true(harness_redis_kill_clients(g_redis) >= 1);
    reply_ok(harness_redis_command(g_redis, "CLIENT UNPAUSE"));
    assert_false(a_step_is_held_back(NULL));
    /* B takes the partitions over and counts everything, A's batch too. */
    harness_proc_t *b = tc_spawn_count("opstream-count", verbose);
    assert_non_null(b);
    assert_int_equal(harness_wait_until(proc_says_assigned, b, 60000), 0);
    tc_stream_finish(&s);
    assert_int_equal(tc_wait_consumed("opstream-count", 60000), 0);
    /* A wakes up a zombie, reconnects and tries its stale batch: refused. */
    assert_int_equal(harness_proc_signal(a, SIGCONT), 0);
    assert_int_equal(harness_wait_until(proc_says_batch_not_applied, a, 60000), 0);
    assert_int_equal(tc_wait_consumed("opstream-count", 60000), 0);
    assert_int_equal(harness_proc_stop(a, 20000), 0);
    assert_true(fenced_in_status(a) >= 1);
    assert_false(proc_says_batch_not_applied(b));
    tc_stop(b);
    assert_int_equal(tc_model_compare(&m, true), 0);
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
    assert_false(harness_proc_stderr_has(p, "batch not applied"));
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
    redisReply *r =
        harness_redis_command(g_redis, "HGET opstream:{%s}:total events", (const char *)arg);
    bool yes = r != NULL && r->type == REDIS_REPLY_STRING && atoll(r->str) > 0;

    if (r != NULL)
        freeReplyObject(r);
    return yes;
}

static void acl_default(bool offsets_writable) {
    reply_ok(offsets_writable
                 ? harness_redis_command(g_redis, "ACL SETUSER default allkeys")
                 : harness_redis_command(g_redis, "ACL SETUSER default resetkeys ~opstream:[^o]* "
                                                  "~opstream:operations %%R~opstream:offsets:*"));
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
