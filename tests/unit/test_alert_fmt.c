/*
 * Unit tests of alert formatting (lib/alert_fmt.c): the duty officer's line,
 * colour, and JSON that stays valid for any bytes an alert may carry.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <math.h>
#include <string.h>

#include <cmocka.h>

#include "opstream/alert_fmt.h"
#include "opstream/json.h"

#define T0 1727705100000LL /* 2024-09-30T14:05:00Z */

static ops_alert_t raid_alert(void) {
    ops_alert_t a;
    ops_alert_init(&a);
    snprintf(a.alert_id, sizeof(a.alert_id), "0f8e3c1a-2b4d-5e6f-8a9b-0c1d2e3f4a5b");
    snprintf(a.operation, sizeof(a.operation), "LIBERTERRA-II");
    a.has_country = true;
    snprintf(a.country, sizeof(a.country), "PH");
    snprintf(a.rule, sizeof(a.rule), "mass-rescue");
    snprintf(a.metric, sizeof(a.metric), "victims");
    a.severity = OPS_SEVERITY_CRITICAL;
    a.observed = 250;
    a.threshold = 50;
    a.window_start = a.window_end = T0;
    a.n_event_ids = 1;
    snprintf(a.event_ids[0], sizeof(a.event_ids[0]), "11111111-2222-5333-8444-555555555555");
    snprintf(a.summary, sizeof(a.summary),
             "PH: 250 victims rescued in one SCAM_CENTRE raid, LIBERTERRA-II");
    a.raised_at = T0 + 1500;
    return a;
}

static void line_shows_time_severity_operation_country_and_summary(void **state) {
    (void)state;
    ops_alert_t a = raid_alert();
    char buf[OPS_ALERT_FMT_MAX];
    int n = ops_alert_format_line(&a, false, buf, sizeof(buf));
    assert_string_equal(buf, "2024-09-30T14:05:00Z CRITICAL LIBERTERRA-II PH  PH: 250 victims "
                             "rescued in one SCAM_CENTRE raid, LIBERTERRA-II");
    assert_int_equal(n, (int)strlen(buf));

    a.has_country = false;
    a.severity = OPS_SEVERITY_INFO;
    snprintf(a.summary, sizeof(a.summary), "quiet");
    ops_alert_format_line(&a, false, buf, sizeof(buf));
    assert_string_equal(buf, "2024-09-30T14:05:00Z INFO     LIBERTERRA-II --  quiet");
}

/* A spike's window is still open when it is raised: the line shows when it
 * was raised, never the window's end (a time in the future). */
static void spike_line_shows_when_it_was_raised_not_the_window_end(void **state) {
    (void)state;
    ops_alert_t a = raid_alert();
    char buf[OPS_ALERT_FMT_MAX];
    a.window_start = T0;
    a.window_end = T0 + 10 * 60 * 1000; /* 14:15 */
    a.raised_at = T0 + 3 * 60 * 1000;   /* 14:08 */
    snprintf(a.summary, sizeof(a.summary), "spike");
    ops_alert_format_line(&a, false, buf, sizeof(buf));
    assert_string_equal(buf, "2024-09-30T14:08:00Z CRITICAL LIBERTERRA-II PH  spike");
    ops_alert_format_json(&a, buf, sizeof(buf));
    assert_non_null(strstr(buf, "\"window_start\":\"2024-09-30T14:05:00.000Z\",\"window_end\":"
                                "\"2024-09-30T14:15:00.000Z\""));
    assert_non_null(strstr(buf, "\"raised_at\":\"2024-09-30T14:08:00.000Z\""));
}

static void colour_wraps_the_severity_and_only_when_asked(void **state) {
    (void)state;
    ops_alert_t a = raid_alert();
    char buf[OPS_ALERT_FMT_MAX];
    ops_alert_format_line(&a, true, buf, sizeof(buf));
    assert_non_null(strstr(buf, "\033[1;31mCRITICAL\033[0m"));
    ops_alert_format_line(&a, false, buf, sizeof(buf));
    assert_null(strchr(buf, '\033'));
}

static void control_characters_never_reach_the_terminal(void **state) {
    (void)state;
    ops_alert_t a = raid_alert();
    snprintf(a.summary, sizeof(a.summary), "evil\033[2J\r\nline\x7f end");
    char buf[OPS_ALERT_FMT_MAX];
    ops_alert_format_line(&a, false, buf, sizeof(buf));
    assert_non_null(strstr(buf, "evil?[2J??line? end"));
    assert_null(strchr(buf, '\033'));
    assert_null(strchr(buf, '\n'));
}

static void json_has_every_field_in_order(void **state) {
    (void)state;
    ops_alert_t a = raid_alert();
    char buf[OPS_ALERT_FMT_MAX];
    int n = ops_alert_format_json(&a, buf, sizeof(buf));
    assert_string_equal(
        buf, "{\"alert_id\":\"0f8e3c1a-2b4d-5e6f-8a9b-0c1d2e3f4a5b\",\"operation\":"
             "\"LIBERTERRA-II\",\"country\":\"PH\",\"rule\":\"mass-rescue\",\"metric\":"
             "\"victims\",\"severity\":\"CRITICAL\",\"observed\":250,\"baseline\":0,"
             "\"threshold\":50,\"window_start\":\"2024-09-30T14:05:00.000Z\",\"window_end\":"
             "\"2024-09-30T14:05:00.000Z\",\"event_ids\":[\"11111111-2222-5333-8444-"
             "555555555555\"],\"summary\":\"PH: 250 victims rescued in one SCAM_CENTRE raid, "
             "LIBERTERRA-II\",\"raised_at\":\"2024-09-30T14:05:01.500Z\"}");
    assert_int_equal(n, (int)strlen(buf));
    a.has_country = false;
    a.baseline = 12.5;
    ops_alert_format_json(&a, buf, sizeof(buf));
    assert_non_null(strstr(buf, "\"country\":null"));
    assert_non_null(strstr(buf, "\"baseline\":12.5"));
    /* 15 significant digits, and no JSON form for NaN: null. */
    a.baseline = 1.0 / 3;
    a.threshold = NAN;
    ops_alert_format_json(&a, buf, sizeof(buf));
    assert_non_null(strstr(buf, "\"baseline\":0.333333333333333,\"threshold\":null,"));
}

static void json_escapes_quotes_backslashes_controls_and_bad_utf8(void **state) {
    (void)state;
    static const struct {
        const char *in;
        const char *out;
    } rows[] = {
        {"plain", "\"plain\""},
        {"say \"hi\"", "\"say \\\"hi\\\"\""},
        {"back\\slash", "\"back\\\\slash\""},
        {"a\nb\tc\rd", "\"a\\nb\\tc\\rd\""},
        {"bell\x07", "\"bell\\u0007\""},
        {"esc\x1b", "\"esc\\u001B\""},
        {"Yaound\xc3\xa9", "\"Yaound\xc3\xa9\""},             /* valid UTF-8 passes */
        {"bad\xff", "\"bad\xef\xbf\xbd\""},                   /* invalid byte */
        {"cut\xc3", "\"cut\xef\xbf\xbd\""},                   /* truncated sequence */
        {"over\xc0\xaf", "\"over\xef\xbf\xbd\xef\xbf\xbd\""}, /* overlong '/' */
        {"sur\xed\xa0\x80", "\"sur\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\""},
        {"\xf0\x9f\x9a\xa2", "\"\xf0\x9f\x9a\xa2\""}, /* 4-byte */
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        char buf[128];
        size_t pos = 0;
        assert_int_equal(ops_json_append_string(buf, sizeof(buf), &pos, rows[i].in), 0);
        if (strcmp(buf, rows[i].out) != 0)
            fail_msg("row %zu: got %s, want %s", i, buf, rows[i].out);
        assert_int_equal(pos, strlen(rows[i].out));
    }
}

static void extreme_times_and_a_bad_severity_still_format(void **state) {
    (void)state;
    ops_alert_t a = raid_alert();
    char buf[OPS_ALERT_FMT_MAX];
    static const int64_t times[] = {INT64_MIN, -1, INT64_MAX};
    for (size_t i = 0; i < sizeof(times) / sizeof(times[0]); i++) {
        a.window_start = a.window_end = a.raised_at = times[i];
        assert_true(ops_alert_format_line(&a, true, buf, sizeof(buf)) > 0);
        assert_true(ops_alert_format_json(&a, buf, sizeof(buf)) > 0);
    }
    a.severity = (ops_severity_t)7;
    assert_true(ops_alert_format_line(&a, true, buf, sizeof(buf)) > 0);
    assert_true(ops_alert_format_json(&a, buf, sizeof(buf)) > 0);
    assert_non_null(strstr(buf, "\"severity\":\"\""));
}

static void too_small_buffers_are_reported_and_stay_terminated(void **state) {
    (void)state;
    ops_alert_t a = raid_alert();
    char buf[40];
    memset(buf, 'x', sizeof(buf));
    assert_int_equal(ops_alert_format_json(&a, buf, sizeof(buf)), -1);
    assert_true(memchr(buf, '\0', sizeof(buf)) != NULL);
    assert_int_equal(ops_alert_format_line(&a, false, buf, sizeof(buf)), -1);
    assert_int_equal(strlen(buf), sizeof(buf) - 1);
    size_t pos = 0;
    assert_int_equal(ops_json_append_string(buf, 4, &pos, "long"), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(line_shows_time_severity_operation_country_and_summary),
        cmocka_unit_test(spike_line_shows_when_it_was_raised_not_the_window_end),
        cmocka_unit_test(colour_wraps_the_severity_and_only_when_asked),
        cmocka_unit_test(control_characters_never_reach_the_terminal),
        cmocka_unit_test(json_has_every_field_in_order),
        cmocka_unit_test(json_escapes_quotes_backslashes_controls_and_bad_utf8),
        cmocka_unit_test(extreme_times_and_a_bad_severity_still_format),
        cmocka_unit_test(too_small_buffers_are_reported_and_stay_terminated),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
