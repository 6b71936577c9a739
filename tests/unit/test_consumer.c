/*
 * Unit tests of the consumer runtime's rules (lib/consumer.c) that need no
 * server: where a message belongs (live, replay, offsets gone backwards,
 * already reported as skipped), the skipped range, when a batch is flushed,
 * when a batch may pass the offsets of its DLQ'd messages, the backoff, the
 * --reset-offsets targets and the record formats.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "opstream/consumer.h"

typedef struct class_row {
    const char *what;
    ops_consumer_pos_t pos;
    int64_t offset;
    ops_consumer_class_t want;
} class_row_t;

static void messages_are_classified_by_where_the_partition_stands(void **state) {
    (void)state;
    static const class_row_t rows[] = {
        {"nothing stored: everything is live", {-1, -1, -1, -1}, 0, OPS_CONSUMER_LIVE},
        {"at the stored offset", {20, 20, 20, -1}, 20, OPS_CONSUMER_LIVE},
        {"past it", {20, 20, 25, -1}, 25, OPS_CONSUMER_LIVE},
        {"a gap forward is live (retention)", {20, 20, 20, -1}, 40, OPS_CONSUMER_LIVE},
        {"re-read for state", {20, 5, 5, -1}, 5, OPS_CONSUMER_REPLAY},
        {"re-read for state, later", {20, 5, 12, -1}, 19, OPS_CONSUMER_REPLAY},
        {"the log restarted below the stored offset", {20, 20, 20, -1}, 0, OPS_CONSUMER_REGRESSED},
        {"the log went back while running", {20, 20, 31, -1}, 3, OPS_CONSUMER_REGRESSED},
        {"below the replay start", {20, 5, 5, -1}, 2, OPS_CONSUMER_REGRESSED},
        {"a rewind within what was read", {20, 20, 31, -1}, 30, OPS_CONSUMER_REGRESSED},
        {"within a range reported as skipped", {20, 20, 4, 20}, 4, OPS_CONSUMER_SKIPPED},
        {"the end of the skipped range", {20, 20, 19, 20}, 19, OPS_CONSUMER_SKIPPED},
        {"past the skipped range", {20, 20, 20, 20}, 20, OPS_CONSUMER_LIVE},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        ops_consumer_class_t got = ops_consumer_classify(&rows[i].pos, rows[i].offset);
        if (got != rows[i].want)
            fail_msg("%s: got %d, want %d", rows[i].what, (int)got, (int)rows[i].want);
    }
}

static void the_skipped_range_runs_from_the_first_offset_seen_to_the_stored_one(void **state) {
    (void)state;
    int64_t from = -1, to = -1;
    assert_int_equal(ops_consumer_regressed_range(20, 0, &from, &to), 1);
    assert_int_equal(from, 0);
    assert_int_equal(to, 19);
    assert_int_equal(ops_consumer_regressed_range(20, 7, &from, &to), 1);
    assert_int_equal(from, 7);
    assert_int_equal(to, 19);
    /* nothing below the stored offset: nothing skipped */
    assert_int_equal(ops_consumer_regressed_range(20, 20, &from, &to), 0);
    assert_int_equal(ops_consumer_regressed_range(20, 25, &from, &to), 0);
    assert_int_equal(ops_consumer_regressed_range(-1, 0, &from, &to), 0);
}

typedef struct flush_row {
    const char *what;
    size_t pending;
    bool full, drained;
    int64_t age;
    int flush_ms, drained_ms;
    bool failing, retry_due;
    bool want;
} flush_row_t;

static void a_batch_is_flushed_when_full_old_or_drained_and_redis_allows(void **state) {
    (void)state;
    static const flush_row_t rows[] = {
        {"empty", 0, false, true, 100, 10, 2, false, false, false},
        {"young, more waiting", 5, false, false, 1, 10, 2, false, false, false},
        {"flush_ms reached", 5, false, false, 10, 10, 2, false, false, true},
        {"full", 5000, true, false, 0, 10, 2, false, false, true},
        {"drained and 2 ms old", 5, false, true, 2, 10, 2, false, false, true},
        {"drained but 1 ms old", 5, false, true, 1, 10, 2, false, false, false},
        {"drained, no early flush configured", 5, false, true, 5, 200, 0, false, false, false},
        {"Redis failing, retry not due", 5000, true, true, 999, 10, 2, true, false, false},
        {"Redis failing, retry due", 5, false, false, 50, 10, 2, true, true, true},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const flush_row_t *r = &rows[i];
        bool got = ops_consumer_flush_due(r->pending, r->full, r->drained, r->age, r->flush_ms,
                                          r->drained_ms, r->failing, r->retry_due);
        if (got != r->want)
            fail_msg("%s: got %d, want %d", r->what, got, r->want);
    }
}

static void prefetch_bound_holds_two_batches_within_librdkafkas_default(void **state) {
    (void)state;
    assert_int_equal(ops_consumer_prefetch_messages(5000), 10000); /* --batch default */
    assert_int_equal(ops_consumer_prefetch_messages(12000), 24000);
    assert_int_equal(ops_consumer_prefetch_messages(50), 10000);      /* floor */
    assert_int_equal(ops_consumer_prefetch_messages(100000), 100000); /* librdkafka's default */
}

/* The wake-up comes once per fill: the queue near its bound (3/4), then
 * drained to a quarter; not while it only hovers, not twice per drain. */
static void prefetch_wakes_once_per_fill_drained_to_a_quarter(void **state) {
    static const struct {
        size_t queued;
        bool want;
    } seq[] = {{0, false},    {5000, false}, {2000, false}, /* never near the bound */
               {7500, false}, {5000, false}, {2501, false}, /* near, not yet drained */
               {2500, true},  {0, false},    {2000, false}, /* drained: once */
               {9999, false}, {100, true}};
    bool high = false;

    (void)state;
    for (size_t i = 0; i < sizeof seq / sizeof seq[0]; i++)
        if (ops_consumer_prefetch_drained(seq[i].queued, 10000, &high) != seq[i].want)
            fail_msg("step %zu (%zu queued of 10000): want %d", i, seq[i].queued, seq[i].want);
}

static void a_batch_passes_dlq_offsets_only_once_every_copy_is_confirmed(void **state) {
    (void)state;
    assert_true(ops_consumer_batch_may_pass(0, false));
    assert_true(ops_consumer_batch_may_pass(3, true));
    assert_false(ops_consumer_batch_may_pass(1, false));
}

static void backoff_doubles_from_50_ms_and_stops_at_2_s(void **state) {
    (void)state;
    int b = 0, seen[12];
    for (int i = 0; i < 12; i++)
        seen[i] = b = ops_consumer_backoff_next(b);
    assert_int_equal(seen[0], 50);
    assert_int_equal(seen[1], 100);
    assert_int_equal(seen[5], 1600);
    assert_int_equal(seen[6], 2000);
    assert_int_equal(seen[11], 2000);
}

static void reset_offsets_targets_the_oldest_or_the_newest_offset(void **state) {
    (void)state;
    char err[128];
    ops_consumer_reset_t how;
    assert_int_equal(ops_consumer_reset_parse("earliest", &how, err, sizeof err), 0);
    assert_int_equal(how, OPS_CONSUMER_RESET_EARLIEST);
    assert_int_equal(ops_consumer_reset_parse("latest", &how, err, sizeof err), 0);
    assert_int_equal(how, OPS_CONSUMER_RESET_LATEST);
    assert_int_equal(ops_consumer_reset_parse("beginning", &how, err, sizeof err), -1);
    assert_non_null(strstr(err, "beginning"));
    assert_int_equal(ops_consumer_reset_target(OPS_CONSUMER_RESET_EARLIEST, 100, 150), 100);
    assert_int_equal(ops_consumer_reset_target(OPS_CONSUMER_RESET_LATEST, 100, 150), 150);
    assert_int_equal(ops_consumer_reset_target(OPS_CONSUMER_RESET_LATEST, 0, 0), 0);
    assert_int_equal(ops_consumer_reset_target(OPS_CONSUMER_RESET_EARLIEST, -1, 5), 0);
}

static void skipped_ranges_and_member_heartbeats_have_documented_formats(void **state) {
    (void)state;
    char buf[48];
    assert_string_equal(ops_consumer_gap_value_skipped(1727654400000LL, buf, sizeof buf),
                        "skipped:1727654400000");
    assert_true(ops_consumer_member_live("2000", 1999));
    assert_false(ops_consumer_member_live("2000", 2000));
    assert_false(ops_consumer_member_live("20x0", 1));
    assert_false(ops_consumer_member_live("", 1));
    assert_false(ops_consumer_member_live(NULL, 1));
}

static void lag_counts_from_the_position_else_the_stored_offset(void **state) {
    static const struct {
        int64_t position, stored, lo, hi, lag;
    } rows[] = {
        {90, 80, 0, 100, 10},  /* a message consumed: from the position */
        {-1, 100, 0, 100, 0},  /* sought to the stored end, nothing since */
        {-1, 70, 0, 100, 30},  /* resumes from the stored offset */
        {-1, -1, 20, 100, 80}, /* nothing stored: from the oldest kept */
        {120, 80, 0, 100, 0},  /* past a stale watermark: not negative */
        {-1, -1, -1, -1, 0},   /* nothing known */
    };
    (void)state;
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        assert_int_equal(
            ops_consumer_partition_lag(rows[i].position, rows[i].stored, rows[i].lo, rows[i].hi),
            rows[i].lag);
}

static void redis_urls_in_log_lines_leave_out_user_and_password(void **state) {
    (void)state;
    char buf[256];
    assert_string_equal(ops_consumer_redis_display("redis://127.0.0.1:6379/0", buf, sizeof buf),
                        "redis://127.0.0.1:6379/0");
    assert_string_equal(
        ops_consumer_redis_display("redis://counter:s3cret@redis.example:6380/2", buf, sizeof buf),
        "redis://redis.example:6380/2");
    assert_string_equal(ops_consumer_redis_display("redis://:s3cret@h/0", buf, sizeof buf),
                        "redis://h/0");
    assert_null(strstr(ops_consumer_redis_display("redis://h/0?password=s3cret", buf, sizeof buf),
                       "s3cret"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(messages_are_classified_by_where_the_partition_stands),
        cmocka_unit_test(the_skipped_range_runs_from_the_first_offset_seen_to_the_stored_one),
        cmocka_unit_test(a_batch_is_flushed_when_full_old_or_drained_and_redis_allows),
        cmocka_unit_test(a_batch_passes_dlq_offsets_only_once_every_copy_is_confirmed),
        cmocka_unit_test(backoff_doubles_from_50_ms_and_stops_at_2_s),
        cmocka_unit_test(reset_offsets_targets_the_oldest_or_the_newest_offset),
        cmocka_unit_test(skipped_ranges_and_member_heartbeats_have_documented_formats),
        cmocka_unit_test(lag_counts_from_the_position_else_the_stored_offset),
        cmocka_unit_test(prefetch_bound_holds_two_batches_within_librdkafkas_default),
        cmocka_unit_test(prefetch_wakes_once_per_fill_drained_to_a_quarter),
        cmocka_unit_test(redis_urls_in_log_lines_leave_out_user_and_password),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
