/*
 * opstream-alert and opstream-alerts against the embedded broker and a real
 * redis-server: a scam-centre raid among ordinary traffic, a steady stream
 * with no raids, a burst of rescues with its cooldown, kill -9 and restart
 * during a stream with raids, baselines rebuilt on restart, and the
 * subscriber's line and JSON output.
 */
#include "test_alert_common.h"

/* ---- tests --------------------------------------------------------------------- */

static void scam_centre_raid_among_ordinary_traffic_gives_one_critical_alert(void **state) {
    (void)state;
    const char *op = "LIBERTERRA-II";
    static ops_event_t evs[301];
    gen_steady(op, 7, 300, T0, 180, evs);
    ops_event_t raid = make_event(op, OPS_KIND_RESCUE, "PH", T0 + 90 * MIN, 250, "PH-SCAM-0930");
    raid.site = OPS_SITE_SCAM_CENTRE;
    raid.exploitation = OPS_EXPLOITATION_FORCED_CRIMINALITY;
    memmove(&evs[151], &evs[150], 150 * sizeof(evs[0]));
    evs[150] = raid;

    harness_proc_t *p = start_alert("alert-raid");
    produce(evs, 150);
    /* bytes that are no event: to the DLQ, and the stream goes on */
    static const char junk[] = "\x00\x00\x00\x00\x63not avro at all";
    assert_int_equal(harness_produce(g_broker->bootstrap, "opstream.rescues", RD_KAFKA_PARTITION_UA,
                                     "PH", 2, junk, sizeof(junk) - 1, NULL),
                     0);
    produce(evs + 150, 151);
    wait_consumed("alert-raid");
    stop_alert(p);

    alerts_t got;
    read_alerts(op, &got);
    assert_int_equal(got.n, 1); /* not also a scam-centre WARNING, nor a spike */
    ops_alert_t *a = &got.v[0];
    assert_int_equal(a->severity, OPS_SEVERITY_CRITICAL);
    assert_string_equal(a->rule, "mass-rescue");
    assert_int_equal(a->n_event_ids, 1);
    assert_string_equal(a->event_ids[0], raid.event_id);
    assert_string_equal(a->summary, "PH: 250 victims rescued in one SCAM_CENTRE raid, "
                                    "LIBERTERRA-II");
    assert_int_equal(a->observed, 250);
    char id[OPS_EVENT_ID_LEN + 1];
    ops_alert_id_derive("mass-rescue", op, "PH", raid.event_id, id);
    assert_string_equal(a->alert_id, id);

    char ids[4][OPS_EVENT_ID_LEN + 1];
    assert_int_equal(stream_ids(op, ids, 4), 1);
    assert_string_equal(ids[0], id);
    free(got.v);

    harness_msgs_t dlq = {0};
    assert_int_equal(harness_consume_all(g_broker->bootstrap, "opstream.dlq", 300, 30000, &dlq), 0);
    int found = 0;
    for (size_t i = 0; i < dlq.n; i++) {
        char src[64];
        if (dlq.v[i].value_len == sizeof(junk) - 1 &&
            memcmp(dlq.v[i].value, junk, sizeof(junk) - 1) == 0 &&
            harness_msg_header(&dlq.v[i], "opstream.source.topic", src, sizeof(src)) == 0 &&
            strcmp(src, "opstream.rescues") == 0)
            found++;
    }
    assert_int_equal(found, 1);
    harness_msgs_free(&dlq);
}

static void steady_stream_without_raids_raises_no_alert(void **state) {
    (void)state;
    const char *op = "STEADY-OP";
    static ops_event_t evs[400];
    gen_steady(op, 2024, 400, T0, 240, evs);
    harness_proc_t *p = start_alert("alert-steady");
    produce(evs, 400);
    wait_consumed("alert-steady");
    stop_alert(p);
    alerts_t got;
    read_alerts(op, &got);
    if (got.n != 0)
        fail_msg("%zu alerts, first: %s", got.n, got.v[0].summary);
    char ids[1][OPS_EVENT_ID_LEN + 1];
    assert_int_equal(stream_ids(op, ids, 1), 0);
    free(got.v);
}

static void burst_of_rescues_gives_one_spike_alert_and_cooldown_suppresses_repeats(void **state) {
    (void)state;
    const char *op = "SPIKE-OP";
    static ops_event_t evs[64];
    size_t n = 0;
    char ref[32];
    /* an hour of 2 victims every 5 minutes in NG */
    for (int m = 0; m < 60; m += 5) {
        snprintf(ref, sizeof(ref), "bg-%d", m);
        evs[n++] = make_event(op, OPS_KIND_RESCUE, "NG", T0 + m * MIN, 2, ref);
    }
    /* the burst: 12 rescues of 8 victims within 6 minutes, then 8 more while
     * the spike goes on, inside the cooldown */
    for (int i = 0; i < 12; i++) {
        snprintf(ref, sizeof(ref), "burst-%d", i);
        evs[n++] = make_event(op, OPS_KIND_RESCUE, "NG", T0 + (61 + i / 2) * MIN, 8, ref);
    }
    for (int i = 0; i < 8; i++) {
        snprintf(ref, sizeof(ref), "more-%d", i);
        evs[n++] = make_event(op, OPS_KIND_RESCUE, "NG", T0 + (70 + i) * MIN, 8, ref);
    }
    /* four quiet hours later, a second burst is a second alert */
    for (int i = 0; i < 6; i++) {
        snprintf(ref, sizeof(ref), "second-%d", i);
        evs[n++] = make_event(op, OPS_KIND_RESCUE, "NG", T0 + (320 + i / 3) * MIN, 10, ref);
    }
    harness_proc_t *p = start_alert("alert-spike");
    produce(evs, n);
    wait_consumed("alert-spike");
    stop_alert(p);

    alerts_t got;
    read_alerts(op, &got);
    assert_int_equal(got.n, 2);
    for (size_t i = 0; i < 2; i++) {
        ops_alert_t *a = &got.v[i];
        assert_string_equal(a->rule, "country-victims-spike");
        assert_int_equal(a->severity, OPS_SEVERITY_WARNING);
        assert_true(a->has_country);
        assert_string_equal(a->country, "NG");
        assert_string_equal(a->metric, "victims");
        assert_int_equal(a->window_end - a->window_start, 10 * MIN);
        assert_true(a->threshold >= 40.0);
        assert_true(a->threshold >= 3 * a->baseline);
        assert_true((double)a->observed >= a->threshold);
        assert_true(a->n_event_ids >= 3);
    }
    /* the first one had an hour of background behind it */
    assert_true(got.v[0].baseline > 0);
    assert_true(got.v[0].window_end <= T0 + 67 * MIN);
    assert_true(got.v[1].window_start >= T0 + 300 * MIN);
    assert_unique_ids(&got);
    free(got.v);
}

typedef struct count_arg {
    int64_t want;
} count_arg_t;

static bool alerts_reached(void *arg) {
    const count_arg_t *c = arg;
    return harness_topic_count(g_broker->bootstrap, "opstream.alerts", 5000) >= c->want;
}

static void kill_9_and_replays_during_a_stream_with_raids_publish_every_alert_once(void **state) {
    (void)state;
    const char *op = "KILL-OP";
    /* raids in countries without ordinary traffic, so no spike joins in */
    static const char *const ccs[] = {"TH", "VN", "KH", "MY", "ID", "LA", "MM", "BD", "LK", "NP"};
    static ops_event_t steady[600], evs[610];
    char expected[10][OPS_EVENT_ID_LEN + 1];
    gen_steady(op, 99, 600, T0, 600, steady);
    /* a mass rescue (60 victims, hotel) after every 60 ordinary events */
    size_t n = add_raids(op, steady, 600, 60, ccs, "raid", 60, evs, expected);
    assert_int_equal(n, 610);
    int64_t before = harness_topic_count(g_broker->bootstrap, "opstream.alerts", 5000);
    harness_proc_t *p = start_alert("alert-kill");
    produce(evs, 305); /* five raids */
    count_arg_t c = {before + 3};
    assert_int_equal(harness_wait_until(alerts_reached, &c, 60000), 0);
    assert_int_equal(harness_proc_kill(p), 0); /* kill -9 mid-stream */
    harness_proc_free(p);

    p = start_alert("alert-kill");
    produce(evs + 305, 610 - 305);
    wait_consumed("alert-kill");
    stop_alert(p);

    /* the worst moment for a crash: every offset lost, so the whole stream
     * is replayed; what was published is not published again */
    int64_t published = harness_topic_count(g_broker->bootstrap, "opstream.alerts", 5000);
    redisReply *del = harness_redis_command(g_redis, "DEL opstream:offsets:alert-kill");
    assert_non_null(del);
    freeReplyObject(del);
    p = start_alert("alert-kill");
    wait_consumed("alert-kill");
    stop_alert(p);
    assert_int_equal(harness_topic_count(g_broker->bootstrap, "opstream.alerts", 5000), published);

    alerts_t got;
    read_alerts(op, &got);
    assert_unique_ids(&got);
    for (int r = 0; r < 10; r++) {
        bool found = false;
        for (size_t i = 0; i < got.n; i++)
            found |= strcmp(got.v[i].alert_id, expected[r]) == 0;
        if (!found)
            fail_msg("the alert of raid %d (%s) is missing", r, expected[r]);
    }
    assert_int_equal(got.n, 10);
    char ids[16][OPS_EVENT_ID_LEN + 1];
    assert_int_equal(stream_ids(op, ids, 16), 10);
    free(got.v);
}

static void restart_rebuilds_the_spike_baseline_instead_of_starting_at_zero(void **state) {
    (void)state;
    const char *op = "BASE-OP";
    static ops_event_t evs[64];
    size_t n = 0;
    char ref[32];
    /* run 1: an hour of 3 victims a minute in NG (30 per 10 minutes) */
    for (int m = 0; m < 60; m++) {
        snprintf(ref, sizeof(ref), "bg-%d", m);
        evs[n++] = make_event(op, OPS_KIND_RESCUE, "NG", T0 + m * MIN, 3, ref);
    }
    harness_proc_t *p = start_alert("alert-base");
    produce(evs, n);
    wait_consumed("alert-base");
    stop_alert(p);

    /* run 2: 60 victims in 3 rescues at minute 75, in NG (baseline 27,
     * threshold 81: no spike) and in GH (no history: threshold 40, spike) */
    n = 0;
    for (int i = 0; i < 3; i++) {
        snprintf(ref, sizeof(ref), "ng-%d", i);
        evs[n++] = make_event(op, OPS_KIND_RESCUE, "NG", T0 + 75 * MIN, 20, ref);
        snprintf(ref, sizeof(ref), "gh-%d", i);
        evs[n++] = make_event(op, OPS_KIND_RESCUE, "GH", T0 + 75 * MIN, 20, ref);
    }
    p = start_alert("alert-base");
    produce(evs, n);
    wait_consumed("alert-base");
    stop_alert(p);

    alerts_t got;
    read_alerts(op, &got);
    assert_int_equal(got.n, 1);
    assert_string_equal(got.v[0].country, "GH");
    assert_int_equal(got.v[0].observed, 60);
    free(got.v);
}

static char *run_alerts(const char *const *args) {
    const char *argv[16] = {"opstream-alerts", "-b", g_broker->bootstrap};
    size_t k = 3;
    for (; *args != NULL && k < 15; args++)
        argv[k++] = *args;
    argv[k] = NULL;
    harness_proc_t *p = harness_spawn(argv, (const char *const[]){"NO_COLOR", NULL}, 0);
    assert_non_null(p);
    assert_int_equal(harness_proc_wait(p, 30000), 0);
    assert_int_equal(harness_proc_exit_code(p), 0);
    char *out = harness_proc_stdout(p);
    harness_proc_free(p);
    assert_non_null(out);
    return out;
}

static size_t count_lines(const char *s) {
    size_t n = 0;
    for (; *s != '\0'; s++)
        n += *s == '\n';
    return n;
}

static void opstream_alerts_prints_what_was_published_as_lines_and_json(void **state) {
    (void)state;
    const char *op = "FLASH-WEKA";
    ops_event_t evs[3];
    evs[0] = make_event(op, OPS_KIND_RESCUE, "CM", T0 + 14 * 60 * MIN + 5 * MIN, 120, "CM-1");
    evs[1] = make_event(op, OPS_KIND_RESCUE, "GH", T0 + 15 * 60 * MIN, 12, "GH-\"quoted\"");
    evs[1].site = OPS_SITE_SCAM_CENTRE;
    evs[1].has_location = true;
    snprintf(evs[1].location, sizeof(evs[1].location), "Accra \"Ring Road\"");
    evs[2] = make_event("OTHER-OP", OPS_KIND_RESCUE, "CM", T0, 99, "other");
    harness_proc_t *p = start_alert("alert-print");
    produce(evs, 3);
    wait_consumed("alert-print");
    stop_alert(p);

    const char *lines_args[] = {"--from-beginning", "--exit-at-end", "--operation", op, NULL};
    char *lines = run_alerts(lines_args);
    assert_int_equal(count_lines(lines), 2);
    assert_non_null(strstr(lines, "2024-09-30T14:05:00Z CRITICAL FLASH-WEKA CM  CM: 120 victims "
                                  "rescued in one HOTEL raid, FLASH-WEKA\n"));
    assert_non_null(strstr(lines, "2024-09-30T15:00:00Z WARNING  FLASH-WEKA GH  GH: 12 victims "
                                  "rescued in one SCAM_CENTRE raid at Accra \"Ring Road\", "
                                  "FLASH-WEKA\n"));
    assert_null(strchr(lines, '\033')); /* not a terminal: no colour */
    assert_null(strstr(lines, "OTHER-OP"));

    const char *json_args[] = {"--json", "--from-beginning", "--exit-at-end", "--operation",
                               op,       "--min-severity",   "warning",       NULL};
    char *json = run_alerts(json_args);
    assert_int_equal(count_lines(json), 2);
    char want[256];
    char id[OPS_EVENT_ID_LEN + 1];
    ops_alert_id_derive("mass-rescue", op, "CM", evs[0].event_id, id);
    snprintf(want, sizeof(want), "{\"alert_id\":\"%s\",\"operation\":\"FLASH-WEKA\"", id);
    assert_non_null(strstr(json, want));
    snprintf(want, sizeof(want), "\"event_ids\":[\"%s\"]", evs[0].event_id);
    assert_non_null(strstr(json, want));
    assert_non_null(strstr(json, "\"summary\":\"GH: 12 victims rescued in one SCAM_CENTRE raid "
                                 "at Accra \\\"Ring Road\\\", FLASH-WEKA\""));

    const char *crit_args[] = {"--json", "--from-beginning", "--exit-at-end", "--operation",
                               op,       "--min-severity",   "CRITICAL",      NULL};
    char *crit = run_alerts(crit_args);
    assert_int_equal(count_lines(crit), 1);
    assert_non_null(strstr(crit, "\"severity\":\"CRITICAL\""));
    free(lines);
    free(json);
    free(crit);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(scam_centre_raid_among_ordinary_traffic_gives_one_critical_alert),
        cmocka_unit_test(steady_stream_without_raids_raises_no_alert),
        cmocka_unit_test(burst_of_rescues_gives_one_spike_alert_and_cooldown_suppresses_repeats),
        cmocka_unit_test(kill_9_and_replays_during_a_stream_with_raids_publish_every_alert_once),
        cmocka_unit_test(restart_rebuilds_the_spike_baseline_instead_of_starting_at_zero),
        cmocka_unit_test(opstream_alerts_prints_what_was_published_as_lines_and_json),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
