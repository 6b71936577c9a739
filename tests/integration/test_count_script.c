/*
 * The atomic Redis step of the counter (lib/counter_redis.c) against a real
 * redis-server, without Kafka: a stale batch from a consumer that lost its
 * partition is refused whole (fencing), already-counted ids are dropped and
 * the rest applied, the script survives SCRIPT FLUSH (NOSCRIPT reload), a
 * Redis that is down fails the step without touching the batch, and
 * stored offsets are read back for assignment.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "harness.h"
#include "opstream/counter.h"
#include "opstream/counter_redis.h"

static harness_redis_t *g_redis;

static int group_setup(void **state) {
    if (harness_group_setup(state) != 0)
        return -1;
    g_redis = harness_redis_start(false);
    return g_redis != NULL ? 0 : -1;
}

static int group_teardown(void **state) {
    harness_redis_free(g_redis);
    return harness_group_teardown(state);
}

static int flush_redis(void **state) {
    redisReply *r = harness_redis_command(g_redis, "FLUSHALL");

    (void)state;
    if (r == NULL)
        return -1;
    freeReplyObject(r);
    return 0;
}

static int64_t now_ms(void) {
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static ops_event_t event(int id, int victims) {
    ops_event_t ev;

    ops_event_init(&ev);
    ev.kind = OPS_KIND_RESCUE;
    snprintf(ev.operation, sizeof ev.operation, "LIBERTERRA-II");
    snprintf(ev.country, sizeof ev.country, "BR");
    snprintf(ev.event_id, sizeof ev.event_id, "00000000-0000-4000-8000-%012d", id);
    ev.count = victims;
    ev.occurred_at = now_ms() - 60000;
    return ev;
}

static ops_counter_t *counter(void) {
    char err[256];
    ops_counter_options_t o = {.group = "g", .dedupe_window_s = OPS_COUNTER_DEDUPE_DEFAULT};
    ops_counter_t *c = ops_counter_new(&o, err, sizeof err);

    assert_non_null(c);
    assert_int_equal(ops_counter_assign(c, "opstream.rescues", 0, -1, err, sizeof err), 0);
    return c;
}

static long long hget(const char *key, const char *field) {
    redisReply *r = harness_redis_command(g_redis, "HGET %s %s", key, field);
    long long v;

    assert_non_null(r);
    v = r->type == REDIS_REPLY_STRING ? strtoll(r->str, NULL, 10) : -1;
    freeReplyObject(r);
    return v;
}

static ops_counter_redis_t *connect_step(void) {
    char err[256];
    ops_counter_redis_t *cr = ops_counter_redis_new(g_redis->url, NULL, 2000, err, sizeof err);

    assert_non_null(cr);
    return cr;
}

static void stale_batch_of_a_consumer_that_lost_its_partition_is_refused_whole(void **state) {
    ops_counter_t *a = counter(), *b = counter();
    ops_counter_redis_t *cr = connect_step();
    char err[256];
    int64_t stored;

    (void)state;
    /* Both believe nothing is stored; A applies first. */
    for (int i = 0; i < 3; i++) {
        ops_event_t ev = event(i, 10);
        ops_counter_add_event(a, "opstream.rescues", 0, i, &ev);
        ops_counter_add_event(b, "opstream.rescues", 0, i, &ev);
    }
    assert_int_equal(ops_counter_redis_apply(cr, a, now_ms(), NULL, err, sizeof err),
                     OPS_COUNTER_STEP_APPLIED);
    assert_int_equal(hget("opstream:offsets:g", "opstream.rescues:0"), 3);
    assert_int_equal(hget("opstream:{LIBERTERRA-II}:total", "victims"), 30);

    /* B's batch is stale: refused, nothing written, batch dropped. */
    assert_int_equal(ops_counter_redis_apply(cr, b, now_ms(), NULL, err, sizeof err),
                     OPS_COUNTER_STEP_FENCED);
    assert_non_null(strstr(err, "opstream.rescues:0"));
    assert_int_equal(ops_counter_pending(b), 0);
    assert_int_equal(hget("opstream:{LIBERTERRA-II}:total", "victims"), 30);
    assert_int_equal(hget("opstream:offsets:g", "opstream.rescues:0"), 3);

    /* After reading the offsets back B continues where A stopped. */
    assert_int_equal(ops_counter_redis_load_offsets(cr, b, "g", err, sizeof err), 0);
    ops_counter_partition(b, 0, NULL, NULL, &stored);
    assert_int_equal(stored, 3);
    ops_event_t ev = event(3, 5);
    assert_int_equal(ops_counter_add_event(b, "opstream.rescues", 0, 3, &ev), OPS_COUNTER_ADDED);
    assert_int_equal(ops_counter_redis_apply(cr, b, now_ms(), NULL, err, sizeof err),
                     OPS_COUNTER_STEP_APPLIED);
    assert_int_equal(hget("opstream:{LIBERTERRA-II}:total", "victims"), 35);
    assert_int_equal(hget("opstream:offsets:g", "opstream.rescues:0"), 4);

    /* A is now the zombie: its next batch (from 3) is refused too. */
    ops_event_t late = event(99, 1000);
    ops_counter_add_event(a, "opstream.rescues", 0, 3, &late);
    assert_int_equal(ops_counter_redis_apply(cr, a, now_ms(), NULL, err, sizeof err),
                     OPS_COUNTER_STEP_FENCED);
    assert_int_equal(hget("opstream:{LIBERTERRA-II}:total", "victims"), 35);
    ops_counter_redis_destroy(cr);
    ops_counter_destroy(a);
    ops_counter_destroy(b);
}

static void already_counted_ids_are_dropped_and_the_rest_applied(void **state) {
    ops_counter_t *c = counter();
    ops_counter_redis_t *cr = connect_step();
    char err[256];
    size_t seen = 0;

    (void)state;
    for (int i = 0; i < 4; i++) {
        ops_event_t ev = event(i, 1);
        ops_counter_add_event(c, "opstream.rescues", 0, i, &ev);
    }
    assert_int_equal(ops_counter_redis_apply(cr, c, now_ms(), &seen, err, sizeof err),
                     OPS_COUNTER_STEP_APPLIED);
    assert_int_equal(seen, 0);
    /* Re-sent: ids 2 and 3 again (new offsets), plus a new id 4. */
    for (int i = 2; i < 5; i++) {
        ops_event_t ev = event(i, 100);
        ops_counter_add_event(c, "opstream.rescues", 0, 2 + i, &ev);
    }
    assert_int_equal(ops_counter_redis_apply(cr, c, now_ms(), &seen, err, sizeof err),
                     OPS_COUNTER_STEP_APPLIED);
    assert_int_equal(seen, 2);
    assert_int_equal(hget("opstream:{LIBERTERRA-II}:total", "events"), 5);
    assert_int_equal(hget("opstream:{LIBERTERRA-II}:total", "victims"), 104);
    assert_int_equal(hget("opstream:offsets:g", "opstream.rescues:0"), 7);
    ops_counter_redis_destroy(cr);
    ops_counter_destroy(c);
}

static void script_is_reloaded_after_script_flush(void **state) {
    ops_counter_t *c = counter();
    ops_counter_redis_t *cr = connect_step();
    char err[256];
    redisReply *r;

    (void)state;
    ops_event_t e0 = event(0, 2);
    ops_counter_add_event(c, "opstream.rescues", 0, 0, &e0);
    assert_int_equal(ops_counter_redis_apply(cr, c, now_ms(), NULL, err, sizeof err),
                     OPS_COUNTER_STEP_APPLIED);
    r = harness_redis_command(g_redis, "SCRIPT FLUSH");
    assert_non_null(r);
    freeReplyObject(r);
    ops_event_t e1 = event(1, 3);
    ops_counter_add_event(c, "opstream.rescues", 0, 1, &e1);
    assert_int_equal(ops_counter_redis_apply(cr, c, now_ms(), NULL, err, sizeof err),
                     OPS_COUNTER_STEP_APPLIED);
    assert_int_equal(hget("opstream:{LIBERTERRA-II}:total", "victims"), 5);
    ops_counter_redis_destroy(cr);
    ops_counter_destroy(c);
}

static void redis_down_fails_the_step_and_keeps_the_batch(void **state) {
    ops_counter_t *c = counter();
    ops_counter_redis_t *cr = connect_step();
    char err[256];

    (void)state;
    ops_event_t ev = event(0, 7);
    ops_counter_add_event(c, "opstream.rescues", 0, 0, &ev);
    assert_int_equal(harness_redis_stop(g_redis), 0);
    assert_int_equal(ops_counter_redis_apply(cr, c, now_ms(), NULL, err, sizeof err),
                     OPS_COUNTER_STEP_FAILED);
    assert_int_equal(ops_counter_pending(c), 1);
    assert_int_equal(ops_counter_redis_load_offsets(cr, c, "g", err, sizeof err), -1);
    assert_int_equal(harness_redis_restart(g_redis), 0);
    assert_int_equal(ops_counter_redis_apply(cr, c, now_ms(), NULL, err, sizeof err),
                     OPS_COUNTER_STEP_APPLIED);
    assert_int_equal(hget("opstream:{LIBERTERRA-II}:total", "victims"), 7);
    ops_counter_redis_destroy(cr);
    ops_counter_destroy(c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(stale_batch_of_a_consumer_that_lost_its_partition_is_refused_whole,
                               flush_redis),
        cmocka_unit_test_setup(already_counted_ids_are_dropped_and_the_rest_applied, flush_redis),
        cmocka_unit_test_setup(script_is_reloaded_after_script_flush, flush_redis),
        cmocka_unit_test_setup(redis_down_fails_the_step_and_keeps_the_batch, flush_redis),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
