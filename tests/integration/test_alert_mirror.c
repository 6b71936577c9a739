/*
 * The alert mirror (alert_out.h) against a real redis-server: alerts land
 * in opstream:{OP}:alerts once each, mirrored one at a time or pipelined;
 * the index of the stream's alert ids (opstream:{OP}:alerts:ids) is built
 * from the stream when it is missing (a stream an earlier version wrote, an
 * index deleted), forgets the entries the stream trimmed, and an alert whose
 * entry was trimmed is mirrored again, as before the index; a connection
 * lost between calls is made afresh within the next call.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"
#include "opstream/alert_out.h"
#include "opstream/keys.h"
#include "opstream/redis_link.h"
#include "opstream/rules.h"

static harness_redis_t *g_redis;
static ops_redis_link_t *g_link;

static int group_setup(void **state) {
    char err[512];
    if (harness_group_setup_redis(state, &g_redis) != 0)
        return -1;
    g_link = ops_redis_link_new(g_redis->url, NULL, 5000, err, sizeof err);
    return g_link != NULL ? 0 : -1;
}

static int group_teardown(void **state) {
    ops_redis_link_destroy(g_link);
    return harness_group_teardown_redis(state, &g_redis);
}

/* Alert number i of operation op, with a derived id. */
static void make_alert(const char *op, int i, ops_alert_t *a) {
    char inst[16];
    ops_alert_init(a);
    snprintf(inst, sizeof inst, "%d", i);
    ops_alert_id_derive("mass-rescue", op, "PH", inst, a->alert_id);
    snprintf(a->operation, sizeof a->operation, "%s", op);
    a->has_country = true;
    snprintf(a->country, sizeof a->country, "PH");
    snprintf(a->rule, sizeof a->rule, "mass-rescue");
    snprintf(a->metric, sizeof a->metric, "victims");
    a->severity = OPS_SEVERITY_CRITICAL;
    a->observed = 100 + i;
    a->threshold = 50;
    a->window_start = a->window_end = 1727654400000LL + i;
    a->n_event_ids = 1;
    snprintf(a->event_ids[0], sizeof a->event_ids[0], "%s", a->alert_id);
    snprintf(a->summary, sizeof a->summary, "PH: %d victims rescued", 100 + i);
    a->raised_at = 1727654460000LL + i;
}

static int mirror_many(ops_alert_t *v, size_t n) {
    char err[512];
    const ops_alert_t **p = calloc(n, sizeof *p);
    assert_non_null(p);
    for (size_t i = 0; i < n; i++)
        p[i] = &v[i];
    int added = ops_alert_out_mirror_many(g_link, p, n, err, sizeof err);
    if (added < 0)
        fail_msg("mirror: %s", err);
    free(p);
    return added;
}

static long long redis_int(const char *fmt, const char *key) {
    redisReply *r = harness_redis_command(g_redis, fmt, key);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    long long v = r->integer;
    freeReplyObject(r);
    return v;
}

/* The index's "#n": the number of ids it holds. */
static long long index_count(const char *ids) {
    redisReply *r = harness_redis_command(g_redis, "HGET %s #n", ids);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    long long v = strtoll(r->str, NULL, 10);
    freeReplyObject(r);
    return v;
}

static long long xlen(const char *op) {
    char key[OPS_KEY_MAX];
    ops_key_alerts(op, key, sizeof key);
    return redis_int("XLEN %s", key);
}

/* How many entries of op's stream carry alert_id id. */
static int entries_with(const char *op, const char *id) {
    char key[OPS_KEY_MAX];
    ops_key_alerts(op, key, sizeof key);
    redisReply *r = harness_redis_command(g_redis, "XRANGE %s - +", key);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    int n = 0;
    for (size_t e = 0; e < r->elements; e++) {
        redisReply *f = r->element[e]->element[1];
        for (size_t k = 0; k + 1 < f->elements; k += 2)
            n += strcmp(f->element[k]->str, "alert_id") == 0 &&
                 strcmp(f->element[k + 1]->str, id) == 0;
    }
    freeReplyObject(r);
    return n;
}

static void alerts_are_mirrored_once_one_at_a_time_pipelined_and_raised_twice(void **state) {
    (void)state;
    static ops_alert_t v[6];
    char err[512];
    for (int i = 0; i < 5; i++)
        make_alert("ONCE", i, &v[i]);
    v[5] = v[2]; /* raised twice in one batch */
    assert_int_equal(mirror_many(v, 6), 5);
    assert_int_equal(xlen("ONCE"), 5);
    /* replayed: pipelined, and one at a time */
    assert_int_equal(mirror_many(v, 6), 0);
    for (int i = 0; i < 5; i++)
        assert_int_equal(ops_alert_out_mirror(g_link, &v[i], err, sizeof err), 0);
    assert_int_equal(xlen("ONCE"), 5);
    for (int i = 0; i < 5; i++)
        assert_int_equal(entries_with("ONCE", v[i].alert_id), 1);
    /* a new one after them, one at a time */
    ops_alert_t a;
    make_alert("ONCE", 5, &a);
    assert_int_equal(ops_alert_out_mirror(g_link, &a, err, sizeof err), 1);
    assert_int_equal(xlen("ONCE"), 6);
}

static void a_stream_without_its_index_is_indexed_from_its_entries(void **state) {
    (void)state;
    static ops_alert_t v[4];
    char key[OPS_KEY_MAX], ids[OPS_KEY_MAX];
    ops_key_alerts("OLDER", key, sizeof key);
    ops_key_alert_ids("OLDER", ids, sizeof ids);
    for (int i = 0; i < 4; i++)
        make_alert("OLDER", i, &v[i]);
    /* three alerts as a version without the index wrote them */
    for (int i = 0; i < 3; i++) {
        redisReply *r = harness_redis_command(g_redis, "XADD %s * alert_id %s operation OLDER", key,
                                              v[i].alert_id);
        assert_non_null(r);
        freeReplyObject(r);
    }
    assert_int_equal(redis_int("EXISTS %s", ids), 0);
    assert_int_equal(mirror_many(v, 4), 1); /* only the fourth is new */
    assert_int_equal(xlen("OLDER"), 4);
    for (int i = 0; i < 4; i++)
        assert_int_equal(entries_with("OLDER", v[i].alert_id), 1);
    /* the index deleted: built again, nothing added twice */
    assert_int_equal(redis_int("DEL %s", ids), 1);
    assert_int_equal(mirror_many(v, 4), 0);
    assert_int_equal(xlen("OLDER"), 4);
    assert_int_equal(redis_int("HLEN %s", ids), 5); /* four ids and "#n" */
    assert_int_equal(index_count(ids), 4);
}

static void the_index_forgets_trimmed_entries_and_a_trimmed_alert_is_mirrored_again(void **state) {
    (void)state;
    enum { N = 3 * OPS_ALERT_STREAM_MAXLEN };
    static ops_alert_t v[N];
    char ids[OPS_KEY_MAX];
    ops_key_alert_ids("MANY", ids, sizeof ids);
    for (int i = 0; i < N; i++)
        make_alert("MANY", i, &v[i]);
    assert_int_equal(mirror_many(v, N), N);
    long long len = xlen("MANY");
    assert_true(len >= OPS_ALERT_STREAM_MAXLEN && len < N);
    long long held = redis_int("HLEN %s", ids) - 1;
    assert_true(held >= len);
    assert_true(held <= 2 * OPS_ALERT_STREAM_MAXLEN);
    /* the oldest one is gone from the stream: mirrored again (at the end);
     * the newest is there: not */
    assert_int_equal(entries_with("MANY", v[0].alert_id), 0);
    assert_int_equal(mirror_many(&v[0], 1), 1);
    assert_int_equal(entries_with("MANY", v[0].alert_id), 1);
    assert_int_equal(mirror_many(&v[N - 1], 1), 0);
    assert_int_equal(entries_with("MANY", v[N - 1].alert_id), 1);
    /* "#n" is the number of ids held, through the clean-ups and the
     * mirror again; an alert trimmed from the stream whose id the index
     * still holds is mirrored again without counting its id twice */
    long long held_now = redis_int("HLEN %s", ids) - 1;
    assert_int_equal(index_count(ids), held_now);
    char key[OPS_KEY_MAX];
    ops_key_alerts("MANY", key, sizeof key);
    redisReply *r = harness_redis_command(g_redis, "HEXISTS %s %s", ids, v[N - 1].alert_id);
    assert_non_null(r);
    assert_int_equal(r->integer, 1); /* the index holds the newest id */
    freeReplyObject(r);
    r = harness_redis_command(g_redis, "XTRIM %s MAXLEN 0", key);
    assert_non_null(r);
    freeReplyObject(r);
    assert_int_equal(mirror_many(&v[N - 1], 1), 1); /* its entry trimmed: again */
    assert_int_equal(redis_int("HLEN %s", ids) - 1, held_now);
    assert_int_equal(index_count(ids), held_now);
}

/* An error reply (a stream key holding another type) fails the call with
 * the reason, and the alerts around it are still mirrored. */
static void an_error_reply_fails_the_call_and_the_other_alerts_are_mirrored(void **state) {
    (void)state;
    static ops_alert_t v[3];
    const ops_alert_t *p[3] = {&v[0], &v[1], &v[2]};
    char key[OPS_KEY_MAX], err[512] = "";
    make_alert("GOOD", 0, &v[0]);
    make_alert("BADTYPE", 1, &v[1]);
    make_alert("GOOD", 2, &v[2]);
    ops_key_alerts("BADTYPE", key, sizeof key);
    redisReply *r = harness_redis_command(g_redis, "SET %s not-a-stream", key);
    assert_non_null(r);
    freeReplyObject(r);
    assert_int_equal(ops_alert_out_mirror_many(g_link, p, 3, err, sizeof err), -1);
    if (strstr(err, key) == NULL || strstr(err, "WRONGTYPE") == NULL)
        fail_msg("error: %s", err);
    assert_int_equal(xlen("GOOD"), 2);
    assert_int_equal(ops_redis_link_pending(g_link), 0);
}

/* The link's connection killed (CLIENT KILL) or its server restarted
 * between calls: the next call makes the connection afresh and sends its
 * pipeline again by itself, without an error for the caller. A server that
 * is down is the caller's error. */
static void a_connection_lost_between_calls_is_made_afresh_within_the_next_call(void **state) {
    (void)state;
    enum { N = 300 }; /* three pipelines */
    static ops_alert_t v[N];
    const ops_alert_t *first = &v[0];
    char err[512];
    for (int i = 0; i < N; i++)
        make_alert("LOST", i, &v[i]);
    assert_int_equal(mirror_many(v, 10), 10);
    assert_true(harness_redis_kill_clients(g_redis) >= 1); /* the link's */
    assert_int_equal(mirror_many(v, N), N - 10);
    assert_int_equal(xlen("LOST"), N);
    assert_true(harness_redis_kill_clients(g_redis) >= 1); /* the link's */
    assert_int_equal(mirror_many(v, N), 0);
    assert_int_equal(xlen("LOST"), N);

    assert_int_equal(harness_redis_stop(g_redis), 0);
    err[0] = '\0';
    assert_int_equal(ops_alert_out_mirror_many(g_link, &first, 1, err, sizeof err), -1);
    assert_true(err[0] != '\0');
    assert_int_equal(harness_redis_restart(g_redis), 0);
    /* a server without AOF comes back empty: all of them mirrored again */
    assert_int_equal(mirror_many(v, N), N);
    for (int i = 0; i < N; i += 37)
        assert_int_equal(entries_with("LOST", v[i].alert_id), 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(alerts_are_mirrored_once_one_at_a_time_pipelined_and_raised_twice),
        cmocka_unit_test(a_stream_without_its_index_is_indexed_from_its_entries),
        cmocka_unit_test(the_index_forgets_trimmed_entries_and_a_trimmed_alert_is_mirrored_again),
        cmocka_unit_test(an_error_reply_fails_the_call_and_the_other_alerts_are_mirrored),
        /* last: it stops and restarts the server */
        cmocka_unit_test(a_connection_lost_between_calls_is_made_afresh_within_the_next_call),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
