/*
 * The atomic Redis step of the counter (lib/counter_redis.c) against a real
 * redis-server, without Kafka: a stale batch from a consumer that lost its
 * partition is refused whole (fencing), already-counted ids are dropped and
 * the rest applied, the script survives SCRIPT FLUSH (NOSCRIPT reload), a
 * Redis that is down fails the step without touching the batch, and
 * stored offsets are read back for assignment. A key the step writes that
 * cannot take the write (another type, a counter field that is not an
 * integer or would leave int64, an expiry Redis refuses) makes the step
 * REFUSED with the key named and nothing written; once the key is fixed
 * the same batch applies whole. The applied-offset watermarks keep counts
 * exact with dedupe off: a step replayed after a crash between the
 * operations' steps and the offsets write counts nothing again, a replay
 * that reaches past the watermark counts exactly the events past it, and a
 * batch of two operations of which one is refused applies the other once.
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
#include "opstream/keys.h"

static harness_redis_t *g_redis;

static int group_setup(void **state) {
    return harness_group_setup_redis(state, &g_redis);
}

static int group_teardown(void **state) {
    return harness_group_teardown_redis(state, &g_redis);
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

/* Dedupe off: only offsets and watermarks keep the counts exact. */
static ops_counter_t *counter_no_dedupe(void) {
    char err[256];
    ops_counter_options_t o = {.group = "g", .dedupe_window_s = 0};
    ops_counter_t *c = ops_counter_new(&o, err, sizeof err);

    assert_non_null(c);
    assert_int_equal(ops_counter_assign(c, "opstream.rescues", 0, -1, err, sizeof err), 0);
    assert_int_equal(ops_counter_assign(c, "opstream.rescues", 1, -1, err, sizeof err), 0);
    return c;
}

static void redis_do(const char *cmd) {
    redisReply *r = harness_redis_command(g_redis, cmd);

    assert_non_null(r);
    assert_int_not_equal(r->type, REDIS_REPLY_ERROR);
    freeReplyObject(r);
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

/* Counts ids at step time t (seconds) and returns how many the step dropped
 * as already counted; offsets continue from *off. */
static size_t count_ids_at(ops_counter_redis_t *cr, ops_counter_t *c, int64_t t, int64_t *off,
                           const int *ids, size_t n) {
    char err[256];
    size_t seen = 0;

    for (size_t i = 0; i < n; i++) {
        ops_event_t ev = event(ids[i], 1);
        assert_int_equal(ops_counter_add_event(c, "opstream.rescues", 0, (*off)++, &ev),
                         OPS_COUNTER_ADDED);
    }
    assert_int_equal(ops_counter_redis_apply(cr, c, t * 1000, &seen, err, sizeof err),
                     OPS_COUNTER_STEP_APPLIED);
    return seen;
}

/* Marks live in window-wide generations: an id counted late in one is found
 * in the next one (as the previous generation) while it is within the
 * window, whether the current generation holds none of the step's ids or
 * some; once the window has passed it counts again. */
static void an_id_is_remembered_across_generations_for_exactly_the_window(void **state) {
    const int64_t w = 604800, g = now_ms() / 1000 / w * w - w;
    ops_counter_t *c = counter();
    ops_counter_redis_t *cr = connect_step();
    int64_t off = 0;

    (void)state;
    assert_int_equal(count_ids_at(cr, c, g + w - 10, &off, (const int[]){0, 1, 2, 3}, 4), 0);
    /* Next generation, empty: ids 1 and 2 are in the previous one. */
    assert_int_equal(count_ids_at(cr, c, g + w + 5, &off, (const int[]){1, 2, 4}, 3), 2);
    /* 4 in the current generation, 3 in the previous, 5 new. */
    assert_int_equal(count_ids_at(cr, c, g + w + 6, &off, (const int[]){4, 3, 5}, 3), 2);
    assert_int_equal(hget("opstream:{LIBERTERRA-II}:total", "events"), 6);
    /* Ids 0, 1, 2 were counted at g + w - 10: one second before the window
     * has passed id 2 is still remembered; once it has (a mark counts while
     * it is after now minus the window), 1 and 0 count again; 5, counted in
     * this generation, does not. */
    assert_int_equal(count_ids_at(cr, c, g + 2 * w - 11, &off, (const int[]){2}, 1), 1);
    assert_int_equal(count_ids_at(cr, c, g + 2 * w - 10, &off, (const int[]){1}, 1), 0);
    assert_int_equal(count_ids_at(cr, c, g + 2 * w - 9, &off, (const int[]){5, 0}, 2), 1);
    assert_int_equal(hget("opstream:{LIBERTERRA-II}:total", "events"), 8);
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

/* ---- a step that cannot write is refused whole ------------------------------ */

/* Everything Redis holds, as one string per key: name, type, serialized
 * value (DUMP, hex) and whether it has a TTL, sorted. Two snapshots are
 * equal when nothing was written in between. */
typedef struct snapshot {
    char **v;
    size_t n;
} snapshot_t;

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void snapshot_take(snapshot_t *s) {
    redisReply *keys = harness_redis_command(g_redis, "KEYS *");

    assert_non_null(keys);
    s->n = keys->elements;
    s->v = calloc(s->n + 1, sizeof(*s->v));
    assert_non_null(s->v);
    for (size_t i = 0; i < keys->elements; i++) {
        const char *k = keys->element[i]->str;
        redisReply *d = harness_redis_command(g_redis, "DUMP %s", k);
        redisReply *t = harness_redis_command(g_redis, "PTTL %s", k);
        assert_non_null(d);
        assert_non_null(t);
        assert_int_equal(d->type, REDIS_REPLY_STRING);
        size_t len = strlen(k) + 2 * d->len + 16;
        char *line = malloc(len);
        assert_non_null(line);
        size_t o = (size_t)snprintf(line, len, "%s %s ", k, t->integer > 0 ? "ttl" : "none");
        for (size_t j = 0; j < d->len; j++)
            o += (size_t)snprintf(line + o, len - o, "%02x", (unsigned char)d->str[j]);
        s->v[i] = line;
        freeReplyObject(d);
        freeReplyObject(t);
    }
    freeReplyObject(keys);
    qsort(s->v, s->n, sizeof(*s->v), cmp_str);
}

static void snapshot_assert_equal(const snapshot_t *a, const snapshot_t *b) {
    assert_int_equal(a->n, b->n);
    for (size_t i = 0; i < a->n; i++)
        assert_string_equal(a->v[i], b->v[i]);
}

static void snapshot_free(snapshot_t *s) {
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
    memset(s, 0, sizeof(*s));
}

static long long pttl(const char *key) {
    redisReply *r = harness_redis_command(g_redis, "PTTL %s", key);
    long long v;

    assert_non_null(r);
    v = r->integer;
    freeReplyObject(r);
    return v;
}

static bool is_member(const char *key, const char *member) {
    redisReply *r = harness_redis_command(g_redis, "SISMEMBER %s %s", key, member);
    bool yes;

    assert_non_null(r);
    yes = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
    freeReplyObject(r);
    return yes;
}

/* The key of the kind a row names, for the events of event(): the current
 * dedupe slot is looked up. */
static void key_of(const char *what, int64_t at, char *key, size_t size) {
    if (strcmp(what, "total") == 0)
        snprintf(key, size, "opstream:{LIBERTERRA-II}:total");
    else if (strcmp(what, "country") == 0)
        snprintf(key, size, "opstream:{LIBERTERRA-II}:country:BR");
    else if (strcmp(what, "minute") == 0)
        ops_key_minute("LIBERTERRA-II", at, key, size);
    else if (strcmp(what, "hour") == 0)
        ops_key_hour("LIBERTERRA-II", at, key, size);
    else if (strcmp(what, "countries") == 0)
        snprintf(key, size, "opstream:{LIBERTERRA-II}:countries");
    else if (strcmp(what, "operations") == 0)
        snprintf(key, size, "opstream:operations");
    else if (strcmp(what, "offsets") == 0)
        snprintf(key, size, "opstream:offsets:g");
    else if (strcmp(what, "seen") == 0) {
        redisReply *r = harness_redis_command(g_redis, "KEYS opstream:{LIBERTERRA-II}:seen:*");
        assert_non_null(r);
        assert_int_equal(r->elements, 1);
        snprintf(key, size, "%s", r->element[0]->str);
        freeReplyObject(r);
    } else
        fail_msg("no key kind %s", what);
}

/* One failure class per row: which key is broken, how (a Redis command
 * with the key as its first argument), and what the refusal must say. */
static const struct {
    const char *key;
    const char *verb, *a1, *a2; /* VERB key a1 [a2] */
    const char *says;
} refused_rows[] = {
    {"total", "SET", "oops", NULL, "holds a string, not a hash"},
    {"country", "SET", "oops", NULL, "holds a string, not a hash"},
    {"minute", "LPUSH", "oops", NULL, "holds a list, not a hash"},
    {"hour", "SADD", "oops", NULL, "holds a set, not a hash"},
    {"countries", "HSET", "BR", "1", "holds a hash, not a set"},
    {"operations", "SET", "LIBERTERRA-II", NULL, "holds a string, not a set"},
    {"offsets", "SET", "3", NULL, "holds a string, not a hash"},
    {"seen", "SET", "oops", NULL, "holds a string, not a hash"},
    {"total", "HSET", "victims", "9223372036854775000", "would leave the 64-bit range"},
    {"minute", "HSET", "victims", "9223372036854775807", "would leave the 64-bit range"},
    {"country", "HSET", "events", "abc", "not an integer"},
    {"hour", "HSET", "victims", "1.5", "not an integer"},
    {"total", "HSET", "events", "007", "not an integer"},
};

/* For each failure class: a good batch (3 events) is applied, the key is
 * broken, the next good batch (3 more) is REFUSED naming the key with
 * nothing written at all (every key byte for byte, TTLs, offsets), and
 * after the operator restores the key the same batch applies whole: every
 * key of the contract holds both batches, buckets with their TTLs. */
static void a_key_that_cannot_take_the_write_refuses_the_whole_step_until_fixed(void **state) {
    (void)state;
    for (size_t row = 0; row < sizeof refused_rows / sizeof refused_rows[0]; row++) {
        ops_counter_t *c = counter();
        ops_counter_redis_t *cr = connect_step();
        char err[512], key[OPS_KEY_MAX];
        snapshot_t before = {0}, after = {0};
        redisReply *r;
        int64_t at = 0;

        r = harness_redis_command(g_redis, "FLUSHALL");
        assert_non_null(r);
        freeReplyObject(r);
        for (int i = 0; i < 3; i++) {
            ops_event_t ev = event(i, 10);
            at = ev.occurred_at;
            assert_int_equal(ops_counter_add_event(c, "opstream.rescues", 0, i, &ev),
                             OPS_COUNTER_ADDED);
        }
        assert_int_equal(ops_counter_redis_apply(cr, c, now_ms(), NULL, err, sizeof err),
                         OPS_COUNTER_STEP_APPLIED);

        /* Break the key, keeping what it held to restore it later. */
        key_of(refused_rows[row].key, at, key, sizeof key);
        redisReply *dump = harness_redis_command(g_redis, "DUMP %s", key);
        assert_non_null(dump);
        assert_int_equal(dump->type, REDIS_REPLY_STRING);
        long long ttl = pttl(key);
        bool field = strcmp(refused_rows[row].key, "countries") != 0 &&
                     strcmp(refused_rows[row].verb, "HSET") == 0;
        if (!field) {
            r = harness_redis_command(g_redis, "DEL %s", key);
            freeReplyObject(r);
        }
        if (refused_rows[row].a2 != NULL)
            r = harness_redis_command(g_redis, "%s %s %s %s", refused_rows[row].verb, key,
                                      refused_rows[row].a1, refused_rows[row].a2);
        else
            r = harness_redis_command(g_redis, "%s %s %s", refused_rows[row].verb, key,
                                      refused_rows[row].a1);
        assert_non_null(r);
        assert_int_not_equal(r->type, REDIS_REPLY_ERROR);
        freeReplyObject(r);

        /* The next batch: same minute, hour, country and operation. */
        for (int i = 3; i < 6; i++) {
            ops_event_t ev = event(i, 100);
            ev.occurred_at = at;
            assert_int_equal(ops_counter_add_event(c, "opstream.rescues", 0, i, &ev),
                             OPS_COUNTER_ADDED);
        }
        snapshot_take(&before);
        err[0] = '\0';
        ops_counter_step_t step = ops_counter_redis_apply(cr, c, now_ms(), NULL, err, sizeof err);
        if (step != OPS_COUNTER_STEP_REFUSED || strstr(err, key) == NULL ||
            strstr(err, refused_rows[row].says) == NULL)
            fail_msg("row %zu (%s, %s %s): step %d, error '%s'", row, refused_rows[row].key,
                     refused_rows[row].verb, refused_rows[row].a1, (int)step, err);
        snapshot_take(&after);
        snapshot_assert_equal(&before, &after);      /* not one byte written */
        assert_int_equal(ops_counter_pending(c), 3); /* the batch is kept for the retry */
        snapshot_free(&before);
        snapshot_free(&after);
        /* A retry before the fix is refused again, still writing nothing. */
        assert_int_equal(ops_counter_redis_apply(cr, c, now_ms(), NULL, err, sizeof err),
                         OPS_COUNTER_STEP_REFUSED);

        /* The operator restores the key; the same batch now applies whole. */
        r = harness_redis_command(g_redis, "DEL %s", key);
        freeReplyObject(r);
        r = harness_redis_command(g_redis, "RESTORE %s %lld %b", key, ttl > 0 ? ttl : 0LL,
                                  dump->str, dump->len);
        assert_non_null(r);
        assert_int_not_equal(r->type, REDIS_REPLY_ERROR);
        freeReplyObject(r);
        freeReplyObject(dump);
        assert_int_equal(ops_counter_redis_apply(cr, c, now_ms(), NULL, err, sizeof err),
                         OPS_COUNTER_STEP_APPLIED);
        assert_int_equal(hget("opstream:offsets:g", "opstream.rescues:0"), 6);
        assert_int_equal(hget("opstream:{LIBERTERRA-II}:total", "victims"), 330);
        assert_int_equal(hget("opstream:{LIBERTERRA-II}:total", "events"), 6);
        assert_int_equal(hget("opstream:{LIBERTERRA-II}:country:BR", "victims"), 330);
        char mk[OPS_KEY_MAX], hk[OPS_KEY_MAX];
        ops_key_minute("LIBERTERRA-II", at, mk, sizeof mk);
        ops_key_hour("LIBERTERRA-II", at, hk, sizeof hk);
        assert_int_equal(hget(mk, "victims"), 330);
        assert_int_equal(hget(mk, "BR:victims"), 330);
        assert_int_equal(hget(hk, "BR:events"), 6);
        assert_true(pttl(mk) > 0);
        assert_true(pttl(hk) > 0);
        assert_true(is_member("opstream:{LIBERTERRA-II}:countries", "BR"));
        assert_true(is_member("opstream:operations", "LIBERTERRA-II"));
        ops_counter_redis_destroy(cr);
        ops_counter_destroy(c);
    }
}

/* An event time the step's expiry arithmetic cannot take (near the end of
 * int64, which validation keeps away from the step) is refused before
 * anything is written, instead of leaving increments behind with no TTL. */
static void an_expiry_redis_would_refuse_is_refused_before_any_write(void **state) {
    ops_counter_t *c = counter();
    ops_counter_redis_t *cr = connect_step();
    char err[512];
    redisReply *r;

    (void)state;
    ops_event_t good = event(0, 10), absurd = event(1, 10);
    absurd.occurred_at = INT64_MAX - 1;
    assert_int_equal(ops_counter_add_event(c, "opstream.rescues", 0, 0, &good), OPS_COUNTER_ADDED);
    assert_int_equal(ops_counter_add_event(c, "opstream.rescues", 0, 1, &absurd),
                     OPS_COUNTER_ADDED);
    assert_int_equal(ops_counter_redis_apply(cr, c, now_ms(), NULL, err, sizeof err),
                     OPS_COUNTER_STEP_REFUSED);
    assert_non_null(strstr(err, "expiry time"));
    r = harness_redis_command(g_redis, "DBSIZE");
    assert_non_null(r);
    assert_int_equal(r->integer, 0); /* nothing at all */
    freeReplyObject(r);
    ops_counter_redis_destroy(cr);
    ops_counter_destroy(c);
}

/* A applies its batch, then the offsets write is undone (as if the
 * consumer died between the operations' steps and it); B replays. Returns
 * how many of B's events the step dropped as already counted. */
static size_t replay_after_a_lost_offsets_write(ops_counter_redis_t *cr, ops_counter_t *a,
                                                ops_counter_t *b) {
    char err[256];
    size_t seen = 0;

    assert_int_equal(ops_counter_redis_apply(cr, a, now_ms(), NULL, err, sizeof err),
                     OPS_COUNTER_STEP_APPLIED);
    redis_do("DEL opstream:offsets:g");
    assert_int_equal(ops_counter_redis_apply(cr, b, now_ms(), &seen, err, sizeof err),
                     OPS_COUNTER_STEP_APPLIED);
    return seen;
}

/* A crash after the operations' steps and before the offsets write leaves
 * the watermarks ahead of the stored offsets: recreated here by applying a
 * batch and putting the offsets back to what they were. The consumer that
 * takes over replays the same messages; the watermarks refuse every event,
 * nothing is counted twice, and the offsets write goes through. */
static void a_step_replayed_after_a_crash_before_the_offsets_write_counts_nothing_twice(
    void **state) {
    ops_counter_t *a = counter_no_dedupe(), *b = counter_no_dedupe();
    ops_counter_redis_t *cr = connect_step();

    (void)state;
    for (int i = 0; i < 6; i++) {
        ops_event_t ev = event(i, 10);
        assert_int_equal(ops_counter_add_event(a, "opstream.rescues", i % 2, i / 2, &ev),
                         OPS_COUNTER_ADDED);
        assert_int_equal(ops_counter_add_event(b, "opstream.rescues", i % 2, i / 2, &ev),
                         OPS_COUNTER_ADDED);
    }
    assert_int_equal(replay_after_a_lost_offsets_write(cr, a, b), 6);
    assert_int_equal(hget("opstream:{LIBERTERRA-II}:applied:g", "opstream.rescues:0"), 3);
    assert_int_equal(hget("opstream:{LIBERTERRA-II}:applied:g", "opstream.rescues:1"), 3);
    assert_int_equal(hget("opstream:{LIBERTERRA-II}:total", "victims"), 60);
    assert_int_equal(hget("opstream:{LIBERTERRA-II}:total", "events"), 6);
    assert_int_equal(hget("opstream:{LIBERTERRA-II}:country:BR", "events"), 6);
    assert_int_equal(hget("opstream:offsets:g", "opstream.rescues:0"), 3);
    assert_int_equal(hget("opstream:offsets:g", "opstream.rescues:1"), 3);
    ops_counter_redis_destroy(cr);
    ops_counter_destroy(a);
    ops_counter_destroy(b);
}

/* The replay reaches past what was counted: offsets 0..2 of partition 0
 * were counted (watermark 3) when the consumer died; the next one reads
 * 0..5. Exactly the events at 3..5 count, the ones below are dropped. */
static void a_replay_past_the_watermark_counts_exactly_the_events_past_it(void **state) {
    ops_counter_t *a = counter_no_dedupe(), *b = counter_no_dedupe();
    ops_counter_redis_t *cr = connect_step();

    (void)state;
    for (int i = 0; i < 6; i++) {
        ops_event_t ev = event(i, 1 << i); /* victims tell the events apart */
        if (i < 3)
            assert_int_equal(ops_counter_add_event(a, "opstream.rescues", 0, i, &ev),
                             OPS_COUNTER_ADDED);
        assert_int_equal(ops_counter_add_event(b, "opstream.rescues", 0, i, &ev),
                         OPS_COUNTER_ADDED);
    }
    assert_int_equal(replay_after_a_lost_offsets_write(cr, a, b), 3);
    assert_int_equal(hget("opstream:{LIBERTERRA-II}:total", "victims"), 63);
    assert_int_equal(hget("opstream:{LIBERTERRA-II}:total", "events"), 6);
    assert_int_equal(hget("opstream:{LIBERTERRA-II}:applied:g", "opstream.rescues:0"), 6);
    assert_int_equal(hget("opstream:offsets:g", "opstream.rescues:0"), 6);
    ops_counter_redis_destroy(cr);
    ops_counter_destroy(a);
    ops_counter_destroy(b);
}

/* Two operations in one batch, one of them with a broken key: the other's
 * step is applied, the batch is REFUSED and the offsets stay; the retries
 * (before and after the fix) do not count the applied operation again. */
static void a_refused_operation_holds_the_offsets_and_the_other_counts_once(void **state) {
    ops_counter_t *c = counter_no_dedupe();
    ops_counter_redis_t *cr = connect_step();
    char err[512];

    (void)state;
    redis_do("SET opstream:{WEKA-II}:total oops");
    for (int i = 0; i < 4; i++) {
        ops_event_t ev = event(i, 10);
        if (i % 2)
            snprintf(ev.operation, sizeof ev.operation, "WEKA-II");
        assert_int_equal(ops_counter_add_event(c, "opstream.rescues", 0, i, &ev),
                         OPS_COUNTER_ADDED);
    }
    for (int round = 0; round < 2; round++) {
        assert_int_equal(ops_counter_redis_apply(cr, c, now_ms(), NULL, err, sizeof err),
                         OPS_COUNTER_STEP_REFUSED);
        assert_non_null(strstr(err, "opstream:{WEKA-II}:total holds a string, not a hash"));
        assert_int_equal(hget("opstream:{LIBERTERRA-II}:total", "victims"), 20);
        assert_int_equal(hget("opstream:offsets:g", "opstream.rescues:0"), -1);
        assert_int_equal(ops_counter_pending(c), 4);
    }
    /* Even a fresh consumer replaying the batch does not count it again. */
    ops_counter_t *d = counter_no_dedupe();
    for (int i = 0; i < 4; i++) {
        ops_event_t ev = event(i, 10);
        if (i % 2)
            snprintf(ev.operation, sizeof ev.operation, "WEKA-II");
        ops_counter_add_event(d, "opstream.rescues", 0, i, &ev);
    }
    redis_do("DEL opstream:{WEKA-II}:total");
    assert_int_equal(ops_counter_redis_apply(cr, d, now_ms(), NULL, err, sizeof err),
                     OPS_COUNTER_STEP_APPLIED);
    assert_int_equal(hget("opstream:{LIBERTERRA-II}:total", "victims"), 20);
    assert_int_equal(hget("opstream:{WEKA-II}:total", "victims"), 20);
    assert_int_equal(hget("opstream:offsets:g", "opstream.rescues:0"), 4);
    assert_true(is_member("opstream:operations", "WEKA-II"));
    assert_true(is_member("opstream:operations", "LIBERTERRA-II"));
    /* The first consumer's batch is now stale: fenced. */
    assert_int_equal(ops_counter_redis_apply(cr, c, now_ms(), NULL, err, sizeof err),
                     OPS_COUNTER_STEP_FENCED);
    assert_int_equal(hget("opstream:{WEKA-II}:total", "victims"), 20);
    ops_counter_redis_destroy(cr);
    ops_counter_destroy(c);
    ops_counter_destroy(d);
}

/* With opstream.redis.wait.replicas set, each step ends with WAIT: a
 * server without replicas answers 0 (the program logs it; the step is
 * applied all the same). Without it no WAIT is sent. */
static void wait_after_the_step_reports_the_replicas(void **state) {
    ops_counter_t *c = counter();
    ops_counter_redis_t *cr = connect_step();
    char err[256];

    (void)state;
    ops_event_t e0 = event(0, 1), e1 = event(1, 1);
    ops_counter_add_event(c, "opstream.rescues", 0, 0, &e0);
    assert_int_equal(ops_counter_redis_apply(cr, c, now_ms(), NULL, err, sizeof err),
                     OPS_COUNTER_STEP_APPLIED);
    assert_int_equal(ops_counter_redis_wait_acked(cr), -1);
    ops_counter_redis_set_wait(cr, 1, 50);
    ops_counter_add_event(c, "opstream.rescues", 0, 1, &e1);
    assert_int_equal(ops_counter_redis_apply(cr, c, now_ms(), NULL, err, sizeof err),
                     OPS_COUNTER_STEP_APPLIED);
    assert_int_equal(ops_counter_redis_wait_acked(cr), 0);
    assert_int_equal(hget("opstream:{LIBERTERRA-II}:total", "events"), 2);
    ops_counter_redis_destroy(cr);
    ops_counter_destroy(c);
}

/* The step's integer check takes a short path for values under 16 digits
 * and an exact one beyond (HINCRBY past 2^53): fields on both sides of
 * both limits take the batch's increments exactly, and a value the short
 * path's pattern does not accept but is an integer (a minus sign) too. */
static void counter_values_around_the_short_paths_limits_add_exactly(void **state) {
    static const struct {
        const char *field, *value;
        long long want; /* after 3 events of 10 victims */
    } rows[] = {
        {"victims", "999999999999990", 999999999999990LL + 30},       /* 15 digits */
        {"events", "1000000000000000", 1000000000000000LL + 3},       /* 16 digits, < 2^53 */
        {"minor_victims", "9007199254740993", 9007199254740993LL},    /* > 2^53, unchanged */
    };
    ops_counter_t *c = counter();
    ops_counter_redis_t *cr = connect_step();
    char err[256], ck[OPS_KEY_MAX];
    redisReply *r;

    (void)state;
    snprintf(ck, sizeof ck, "opstream:{LIBERTERRA-II}:country:BR");
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        r = harness_redis_command(g_redis, "HSET opstream:{LIBERTERRA-II}:total %s %s",
                                  rows[i].field, rows[i].value);
        freeReplyObject(r);
    }
    /* past 2^53 and changed: the HINCRBY path; a negative total: the long path */
    r = harness_redis_command(g_redis, "HSET %s victims 9007199254740993 events -5", ck);
    freeReplyObject(r);
    for (int i = 0; i < 3; i++) {
        ops_event_t ev = event(i, 10);
        assert_int_equal(ops_counter_add_event(c, "opstream.rescues", 0, i, &ev),
                         OPS_COUNTER_ADDED);
    }
    assert_int_equal(ops_counter_redis_apply(cr, c, now_ms(), NULL, err, sizeof err),
                     OPS_COUNTER_STEP_APPLIED);
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        assert_int_equal(hget("opstream:{LIBERTERRA-II}:total", rows[i].field), rows[i].want);
    assert_int_equal(hget(ck, "victims"), 9007199254740993LL + 30);
    assert_int_equal(hget(ck, "events"), -5 + 3);
    ops_counter_redis_destroy(cr);
    ops_counter_destroy(c);
}

/* A counter hash the step adds a field to also gets the metrics the batch
 * does not change (created at 0), so they are checked too: one of them
 * holding a non-integer refuses the step with nothing written, and once it
 * is fixed the same batch applies whole. */
static void a_metric_the_batch_does_not_change_is_checked_when_the_hash_gains_fields(
    void **state) {
    ops_counter_t *c = counter();
    ops_counter_redis_t *cr = connect_step();
    char err[512];
    snapshot_t before = {0}, after = {0};
    redisReply *r;

    (void)state;
    /* a total that holds only a broken arrests field: the rescues' fields
     * are new to it */
    r = harness_redis_command(g_redis, "HSET opstream:{LIBERTERRA-II}:total arrests abc");
    freeReplyObject(r);
    for (int i = 0; i < 3; i++) {
        ops_event_t ev = event(i, 10);
        assert_int_equal(ops_counter_add_event(c, "opstream.rescues", 0, i, &ev),
                         OPS_COUNTER_ADDED);
    }
    snapshot_take(&before);
    err[0] = '\0';
    assert_int_equal(ops_counter_redis_apply(cr, c, now_ms(), NULL, err, sizeof err),
                     OPS_COUNTER_STEP_REFUSED);
    assert_non_null(strstr(err, "opstream:{LIBERTERRA-II}:total"));
    assert_non_null(strstr(err, "field arrests holds abc, not an integer"));
    snapshot_take(&after);
    snapshot_assert_equal(&before, &after); /* not one byte written */
    snapshot_free(&before);
    snapshot_free(&after);
    r = harness_redis_command(g_redis, "HDEL opstream:{LIBERTERRA-II}:total arrests");
    freeReplyObject(r);
    assert_int_equal(ops_counter_redis_apply(cr, c, now_ms(), NULL, err, sizeof err),
                     OPS_COUNTER_STEP_APPLIED);
    assert_int_equal(hget("opstream:{LIBERTERRA-II}:total", "victims"), 30);
    assert_int_equal(hget("opstream:{LIBERTERRA-II}:total", "arrests"), 0);
    assert_int_equal(hget("opstream:offsets:g", "opstream.rescues:0"), 3);
    ops_counter_redis_destroy(cr);
    ops_counter_destroy(c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(stale_batch_of_a_consumer_that_lost_its_partition_is_refused_whole,
                               flush_redis),
        cmocka_unit_test_setup(already_counted_ids_are_dropped_and_the_rest_applied, flush_redis),
        cmocka_unit_test_setup(an_id_is_remembered_across_generations_for_exactly_the_window,
                               flush_redis),
        cmocka_unit_test_setup(script_is_reloaded_after_script_flush, flush_redis),
        cmocka_unit_test_setup(redis_down_fails_the_step_and_keeps_the_batch, flush_redis),
        cmocka_unit_test_setup(a_key_that_cannot_take_the_write_refuses_the_whole_step_until_fixed,
                               flush_redis),
        cmocka_unit_test_setup(an_expiry_redis_would_refuse_is_refused_before_any_write,
                               flush_redis),
        cmocka_unit_test_setup(
            a_step_replayed_after_a_crash_before_the_offsets_write_counts_nothing_twice,
            flush_redis),
        cmocka_unit_test_setup(a_replay_past_the_watermark_counts_exactly_the_events_past_it,
                               flush_redis),
        cmocka_unit_test_setup(a_refused_operation_holds_the_offsets_and_the_other_counts_once,
                               flush_redis),
        cmocka_unit_test_setup(wait_after_the_step_reports_the_replicas, flush_redis),
        cmocka_unit_test_setup(counter_values_around_the_short_paths_limits_add_exactly,
                               flush_redis),
        cmocka_unit_test_setup(
            a_metric_the_batch_does_not_change_is_checked_when_the_hash_gains_fields,
            flush_redis),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
