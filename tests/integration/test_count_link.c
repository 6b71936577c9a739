/*
 * opstream-count across a lost Redis connection, against the embedded
 * broker and a real redis-server: the counter's connection is closed
 * between batches (CLIENT KILL), or a relay between the two (relay.h)
 * loses the reply to a step Redis ran: an operation's script, or the
 * offsets write, or to the record of a range lost to retention; or closed
 * before a rebalance, whose new partitions' offsets it reads. Each time the
 * step (or the read, or the record) is sent again at once on a new
 * connection, with no warning, and a lost range is still reported; the counts stay exact; a step
 * applied before the loss is found applied, so its events are not reported as duplicates nor its
 * offsets taken for another consumer's (fenced). The consumers run with dedupe off, so only the
 * applied watermarks and the offsets keep the counts exact.
 */
#include "test_count_common.h"

#include "relay.h"

#define SEED 20241129ULL

static relay_t *g_relay;

static int link_teardown(void **state) {
    relay_free(g_relay);
    g_relay = NULL;
    return tc_teardown(state);
}

/* n events of two operations over the last two hours, into a and b. */
static void produce_two_ops(tc_model_t *a, tc_model_t *b, int n, uint64_t seed) {
    uint64_t rng = seed;
    int64_t now = tc_wall_ms();

    for (int i = 0; i < n; i++) {
        int64_t at = now - (int64_t)(tc_rand(&rng) % (2 * 3600 * 1000ULL));
        ops_event_t ev = tc_event(&rng, i % 2 ? "FLASH-WEKA" : "WEKA-II", i, at);
        tc_produce_event(&ev);
        tc_model_event(i % 2 ? a : b, &ev, now);
    }
    tc_flush();
}

/* The figures of opstream-count's last status line: events, duplicates,
 * fenced. false when there is none. */
static bool last_status(const char *err, long long *events, long long *dupes, long long *fenced) {
    bool found = false;

    for (const char *l = err; l != NULL && (l = strstr(l, " events/s, ")) != NULL; l++) {
        long long e, b, d, u, f;
        if (sscanf(l,
                   " events/s, %lld events, %lld batches, %lld dlq, %lld duplicates, %lld fenced",
                   &e, &b, &d, &u, &f) == 5) {
            *events = e;
            *dupes = u;
            *fenced = f;
            found = true;
        }
    }
    return found;
}

/* Stops p and checks what it said: the step sent again at once (-v), no
 * wait for Redis, no fence, no duplicate, every event counted. */
static void stop_and_check(harness_proc_t *p, long long want_events) {
    long long events = -1, dupes = -1, fenced = -1;
    char *err;

    assert_int_equal(harness_proc_stop(p, 20000), 0);
    err = harness_proc_stderr(p);
    assert_non_null(err);
    harness_proc_free(p);
    if (!last_status(err, &events, &dupes, &fenced) || events != want_events || dupes != 0 ||
        fenced != 0 || strstr(err, "waiting for Redis") != NULL ||
        strstr(err, "batch not applied") != NULL || strstr(err, "sent again at once") == NULL)
        fail_msg("want %lld events, 0 duplicates, 0 fenced, the step sent again at once and no "
                 "wait for Redis; got %lld events, %lld duplicates, %lld fenced:\n%s",
                 want_events, events, dupes, fenced, err);
    free(err);
}

/* opstream-count through the relay, -v, batches of 200; the relay armed
 * with cut (see relay.h) before the program starts, unless NULL. */
static harness_proc_t *count_through_relay(const char *cut) {
    char url[64];
    const char *argv[] = {"opstream-count",
                          "-b",
                          g_broker->bootstrap,
                          "--redis",
                          url,
                          "--stats-interval",
                          "1",
                          "--batch",
                          "200",
                          "-v",
                          "-X",
                          "opstream.dedupe.window.s=" TC_DEDUPE_WINDOW,
                          NULL};

    g_relay = relay_start(g_redis->port);
    assert_non_null(g_relay);
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/0", g_relay->port);
    if (cut != NULL)
        relay_cut_after(g_relay, cut);
    harness_proc_t *p = harness_spawn(argv, NULL, 0);
    assert_non_null(p);
    return p;
}

/* The relay loses the reply to the first step request holding text; the
 * counts of 1,000 events before it and 1,000 after stay exact. */
static void reply_lost_after(const char *text, uint64_t seed) {
    tc_model_t a = {0}, b = {0};
    harness_proc_t *p = count_through_relay(NULL);

    produce_two_ops(&a, &b, 1000, seed);
    assert_int_equal(tc_wait_consumed("opstream-count", 60000), 0);
    relay_cut_after(g_relay, text);
    produce_two_ops(&a, &b, 1000, seed + 1);
    assert_int_equal(tc_wait_consumed("opstream-count", 60000), 0);
    assert_int_equal(relay_cuts(g_relay), 1);
    stop_and_check(p, 2000);
    assert_int_equal(tc_model_compare(&a, true), 0);
    assert_int_equal(tc_model_compare(&b, true), 0);
    tc_model_free(&a);
    tc_model_free(&b);
}

/* An operation's script ran (its KEYS name the applied watermarks) and its
 * reply was lost: sent again, it answers APPLIED, and its events are this
 * step's, not duplicates. */
static void a_lost_reply_to_an_operations_step_counts_it_once_and_no_duplicate(void **state) {
    (void)state;
    reply_lost_after(":applied:", SEED);
}

/* The offsets write (the script with one key, the group's offsets hash;
 * the precheck reads that hash with HMGET) ran and its reply was lost: the
 * offsets Redis holds are the batch's own, so the batch was applied, not
 * fenced. */
static void a_lost_reply_to_the_offsets_write_is_the_batch_applied_not_a_fence(void **state) {
    (void)state;
    reply_lost_after("$1\r\n1\r\n$31\r\nopstream:offsets:opstream-count\r\n", SEED + 2);
}

/* The counter's connections closed while it waits for events (a server's
 * idle timeout, CLIENT KILL): the next step goes out on a new connection
 * at once, with no warning. */
static void connections_killed_between_batches_cost_no_wait(void **state) {
    tc_model_t a = {0}, b = {0};
    static const char *const extra[] = {"--batch", "200", "-v", NULL};
    harness_proc_t *p = tc_spawn_count("opstream-count", extra);
    redisReply *r;

    (void)state;
    assert_non_null(p);
    produce_two_ops(&a, &b, 1000, SEED + 4);
    assert_int_equal(tc_wait_consumed("opstream-count", 60000), 0);
    r = harness_redis_command(g_redis, "CLIENT KILL TYPE normal");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    assert_true(r->integer >= 1);
    freeReplyObject(r);
    produce_two_ops(&a, &b, 1000, SEED + 5);
    assert_int_equal(tc_wait_consumed("opstream-count", 60000), 0);
    stop_and_check(p, 2000);
    assert_int_equal(tc_model_compare(&a, true), 0);
    assert_int_equal(tc_model_compare(&b, true), 0);
    tc_model_free(&a);
    tc_model_free(&b);
}

static bool assigned_twice(void *arg) {
    return harness_proc_stderr_count(arg, "assigned ") >= 2;
}

/* The counter's connections closed while it waits (CLIENT KILL), then a
 * second member joins: the first reads its new partitions' offsets on a
 * new connection at once, with no warning. */
static void connections_killed_before_a_rebalance_cost_no_wait(void **state) {
    static const char *const verbose[] = {"-v", NULL}; /* every assignment said */
    harness_proc_t *a = tc_spawn_count("opstream-count", verbose), *b;
    redisReply *r;
    char *err;

    (void)state;
    assert_non_null(a);
    void *says[2] = {a, "assigned "};
    assert_int_equal(harness_wait_until(tc_says, says, 30000), 0);
    r = harness_redis_command(g_redis, "CLIENT KILL TYPE normal");
    assert_non_null(r);
    assert_true(r->type == REDIS_REPLY_INTEGER && r->integer >= 1);
    freeReplyObject(r);
    b = tc_spawn_count("opstream-count", NULL);
    assert_non_null(b);
    assert_int_equal(harness_wait_until(assigned_twice, a, 30000), 0);
    tc_stop(b);
    assert_int_equal(harness_proc_stop(a, 20000), 0);
    err = harness_proc_stderr(a);
    harness_proc_free(a);
    assert_non_null(err);
    if (strstr(err, "waiting for Redis") != NULL)
        fail_msg("a wait for Redis after a lost connection:\n%s", err);
    free(err);
}

/* A consumer behind the broker's retention records the lost range in
 * opstream:gaps:GROUP before it goes on, and says so in an ERROR line; the
 * relay loses that HSET's reply. Sent again at once, the HSET finds the
 * range recorded: still reported once, with no wait, and recorded once. */
static void a_lost_reply_to_a_gap_record_still_reports_the_gap(void **state) {
    tc_model_t m = {0};
    int64_t lo = -1, hi = -1;
    char want[128];
    redisReply *r;

    (void)state;
    tc_behind_retention("opstream-count", &m, &lo, &hi);
    harness_proc_t *p = count_through_relay("opstream:gaps:");
    assert_int_equal(tc_wait_consumed("opstream-count", 30000), 0);
    assert_int_equal(relay_cuts(g_relay), 1);
    assert_int_equal(harness_proc_stop(p, 20000), 0);
    snprintf(want, sizeof want, "ERROR: opstream.arrests [0]: offsets 100..%lld (%lld messages)",
             (long long)lo - 1, (long long)lo - 100);
    if (harness_proc_stderr_count(p, want) != 1 ||
        harness_proc_stderr_has(p, "waiting for Redis")) {
        char *err = harness_proc_stderr(p);
        fail_msg("want '%s' once and no wait for Redis in:\n%s", want, err ? err : "");
    }
    harness_proc_free(p);
    r = harness_redis_command(g_redis, "HLEN opstream:gaps:opstream-count");
    assert_non_null(r);
    assert_int_equal(r->integer, 1);
    freeReplyObject(r);
    assert_int_equal(tc_model_compare(&m, true), 0);
    tc_model_free(&m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            a_lost_reply_to_an_operations_step_counts_it_once_and_no_duplicate, tc_setup,
            link_teardown),
        cmocka_unit_test_setup_teardown(
            a_lost_reply_to_the_offsets_write_is_the_batch_applied_not_a_fence, tc_setup,
            link_teardown),
        cmocka_unit_test_setup_teardown(connections_killed_between_batches_cost_no_wait, tc_setup,
                                        link_teardown),
        cmocka_unit_test_setup_teardown(connections_killed_before_a_rebalance_cost_no_wait,
                                        tc_setup, link_teardown),
        cmocka_unit_test_setup_teardown(a_lost_reply_to_a_gap_record_still_reports_the_gap,
                                        tc_setup, link_teardown),
    };
    return cmocka_run_group_tests(tests, tc_group_setup, tc_group_teardown);
}
