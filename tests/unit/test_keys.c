/*
 * Unit tests for lib/keys.c: the Redis key names of the query contract and
 * the UTC minute/hour bucket arithmetic, table-driven.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "opstream/keys.h"

static void keys_are_spelled_as_the_contract_says(void **state) {
    char buf[OPS_KEY_MAX];
    const int64_t t = 1727705100000LL; /* 2024-09-30T14:05:00Z */

    (void)state;
    assert_int_equal(ops_key_operations(buf, sizeof buf), 19);
    assert_string_equal(buf, "opstream:operations");
    assert_int_equal(ops_key_total("FLASH-WEKA", buf, sizeof buf), 27);
    assert_string_equal(buf, "opstream:{FLASH-WEKA}:total");
    ops_key_country("FLASH-WEKA", "NG", buf, sizeof buf);
    assert_string_equal(buf, "opstream:{FLASH-WEKA}:country:NG");
    ops_key_countries("WEKA-II", buf, sizeof buf);
    assert_string_equal(buf, "opstream:{WEKA-II}:countries");
    ops_key_minute("WEKA-II", t, buf, sizeof buf);
    assert_string_equal(buf, "opstream:{WEKA-II}:min:202409301405");
    ops_key_hour("WEKA-II", t, buf, sizeof buf);
    assert_string_equal(buf, "opstream:{WEKA-II}:hour:2024093014");
    ops_key_alerts("LIBERTERRA-II", buf, sizeof buf);
    assert_string_equal(buf, "opstream:{LIBERTERRA-II}:alerts");
    ops_key_alert_ids("LIBERTERRA-II", buf, sizeof buf);
    assert_string_equal(buf, "opstream:{LIBERTERRA-II}:alerts:ids");
    ops_key_offsets("opstream-count", buf, sizeof buf);
    assert_string_equal(buf, "opstream:offsets:opstream-count");
}

static void key_that_does_not_fit_is_refused_not_truncated(void **state) {
    char small[20];
    char buf[OPS_KEY_MAX];
    const char *longest_op = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"; /* 32 chars */

    (void)state;
    assert_int_equal(ops_key_total("FLASH-WEKA", small, sizeof small), -1);
    assert_string_equal(small, "");
    assert_int_equal(ops_key_total("FLASH-WEKA", buf, 0), -1);
    assert_int_equal(ops_key_total(NULL, buf, sizeof buf), -1);
    assert_int_equal(ops_key_country("X", NULL, buf, sizeof buf), -1);
    /* The longest operation code fits every key in OPS_KEY_MAX. */
    assert_true(ops_key_minute(longest_op, 0, buf, sizeof buf) > 0);
    assert_true(ops_key_country(longest_op, "NG", buf, sizeof buf) > 0);
    assert_true(ops_key_hour(longest_op, 0, buf, sizeof buf) > 0);
}

static void bucket_ids_follow_the_utc_calendar(void **state) {
    static const struct {
        int64_t ms;
        const char *minute;
        const char *hour;
    } rows[] = {
        {0, "197001010000", "1970010100"},
        {59999, "197001010000", "1970010100"},
        {60000, "197001010001", "1970010100"},
        {-1, "196912312359", "1969123123"},
        {946684800000LL, "200001010000", "2000010100"},
        {951782400000LL, "200002290000", "2000022900"},  /* leap day 2000 */
        {1709251199999LL, "202402292359", "2024022923"}, /* end of a leap day */
        {1709251200000LL, "202403010000", "2024030100"},
        {1727705100000LL, "202409301405", "2024093014"},
        {1735689599999LL, "202412312359", "2024123123"},
        {1735689600000LL, "202501010000", "2025010100"},
        {4102444800000LL, "210001010000", "2100010100"}, /* 2100 is not a leap year */
        {4107542400000LL, "210003010000", "2100030100"},
    };
    char m[13], h[11];

    (void)state;
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        ops_minute_id(rows[i].ms, m);
        ops_hour_id(rows[i].ms, h);
        assert_string_equal(m, rows[i].minute);
        assert_string_equal(h, rows[i].hour);
    }
}

static void floors_round_down_also_before_1970(void **state) {
    (void)state;
    assert_int_equal(ops_minute_floor(0), 0);
    assert_int_equal(ops_minute_floor(59999), 0);
    assert_int_equal(ops_minute_floor(60000), 60000);
    assert_int_equal(ops_minute_floor(-1), -60000);
    assert_int_equal(ops_minute_floor(-60000), -60000);
    assert_int_equal(ops_minute_floor(-60001), -120000);
    assert_int_equal(ops_hour_floor(1727705100000LL), 1727704800000LL);
    assert_int_equal(ops_hour_floor(-1), -3600000LL);
    assert_int_equal(ops_hour_floor(3599999), 0);
    /* Extremes stay defined (no overflow) and keep the id's fixed width. */
    assert_true(ops_minute_floor(INT64_MIN) <= INT64_MIN + OPS_MINUTE_MS);
    char m[13];
    ops_minute_id(INT64_MIN, m);
    assert_int_equal(strlen(m), 12);
    ops_minute_id(INT64_MAX, m);
    assert_int_equal(strlen(m), 12);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(keys_are_spelled_as_the_contract_says),
        cmocka_unit_test(key_that_does_not_fit_is_refused_not_truncated),
        cmocka_unit_test(bucket_ids_follow_the_utc_calendar),
        cmocka_unit_test(floors_round_down_also_before_1970),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
