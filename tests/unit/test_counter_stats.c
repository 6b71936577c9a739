/*
 * Unit tests for lib/stats.c's pure parts: which buckets make each rolling
 * window, and reading metric fields (plain or per country) out of a bucket.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "opstream/stats.h"

#define NOW 1727705130000LL /* 2024-09-30T14:05:30Z */

static void windows_sum_whole_buckets_ending_now(void **state) {
    char keys[60][OPS_KEY_MAX];

    (void)state;
    assert_int_equal(ops_stats_window_keys(OPS_STATS_10M, "OP", NOW, keys), 10);
    assert_string_equal(keys[0], "opstream:{OP}:min:202409301356");
    assert_string_equal(keys[9], "opstream:{OP}:min:202409301405");
    assert_int_equal(ops_stats_window_keys(OPS_STATS_1H, "OP", NOW, keys), 60);
    assert_string_equal(keys[0], "opstream:{OP}:min:202409301306");
    assert_string_equal(keys[59], "opstream:{OP}:min:202409301405");
    assert_int_equal(ops_stats_window_keys(OPS_STATS_24H, "OP", NOW, keys), 24);
    assert_string_equal(keys[0], "opstream:{OP}:hour:2024092915");
    assert_string_equal(keys[23], "opstream:{OP}:hour:2024093014");
}

static void window_names_round_trip(void **state) {
    (void)state;
    for (int w = 0; w < OPS_STATS_WINDOW_COUNT; w++)
        assert_int_equal(ops_stats_window_from_name(ops_stats_window_name(w)), w);
    assert_int_equal(ops_stats_window_from_name("7d"), -1);
    assert_int_equal(ops_stats_window_from_name(NULL), -1);
    assert_null(ops_stats_window_name(OPS_STATS_WINDOW_COUNT));
}

/* A fake HGETALL reply built by hand (no server). */
static redisReply *str(const char *s) {
    redisReply *r = calloc(1, sizeof(*r));
    r->type = REDIS_REPLY_STRING;
    r->str = strdup(s);
    r->len = strlen(s);
    return r;
}

static redisReply *hash(const char *const *kv, size_t n) {
    redisReply *r = calloc(1, sizeof(*r));
    r->type = REDIS_REPLY_ARRAY;
    r->elements = n;
    r->element = calloc(n, sizeof(*r->element));
    for (size_t i = 0; i < n; i++)
        r->element[i] = str(kv[i]);
    return r;
}

static void bucket_fields_are_read_plain_or_per_country(void **state) {
    static const char *const kv[] = {"events",     "5", "arrests",    "7",  "NG:events", "3",
                                     "NG:arrests", "4", "CM:events",  "2",  "victims",   "x1",
                                     "bogus",      "9", "NGA:events", "100"};
    redisReply *r = hash(kv, sizeof kv / sizeof kv[0]);
    int64_t plain[OPS_METRIC_COUNT] = {0}, ng[OPS_METRIC_COUNT] = {0}, cm[OPS_METRIC_COUNT] = {0};

    (void)state;
    ops_stats_add_fields(r, NULL, plain);
    ops_stats_add_fields(r, "NG", ng);
    ops_stats_add_fields(r, "CM", cm);
    ops_stats_add_fields(r, "", plain); /* "" is the same as NULL: adds again */
    assert_int_equal(plain[OPS_METRIC_EVENTS], 10);
    assert_int_equal(plain[OPS_METRIC_ARRESTS], 14);
    assert_int_equal(plain[OPS_METRIC_VICTIMS], 0); /* not a number: ignored */
    assert_int_equal(ng[OPS_METRIC_EVENTS], 3);
    assert_int_equal(ng[OPS_METRIC_ARRESTS], 4);
    assert_int_equal(cm[OPS_METRIC_EVENTS], 2);
    assert_int_equal(cm[OPS_METRIC_ARRESTS], 0);
    ops_stats_add_fields(NULL, NULL, plain);
    freeReplyObject(r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(windows_sum_whole_buckets_ending_now),
        cmocka_unit_test(window_names_round_trip),
        cmocka_unit_test(bucket_fields_are_read_plain_or_per_country),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
