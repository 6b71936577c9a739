/*
 * opstream-alert stopped by SIGTERM with alerts in flight: once while the
 * alert topic does not confirm what was sent (every Produce request fails
 * with a retriable error), once while the alerts are confirmed but their
 * Redis mirror writes are held back (CLIENT PAUSE WRITE). It exits 0, as
 * its --help says of SIGTERM, and a restart in the same group resumes from
 * the stored offsets: every alert is then on the alert topic and in
 * opstream:{OP}:alerts exactly once, none lost. Every event is a raid that
 * one rule alone alerts on, so the alerts expected are known in advance.
 */
#include <signal.h>

#include "metrics_common.h"
#include "test_alert_common.h"

#define RAIDS 400

static char g_raid_rules[HARNESS_PATH_MAX];
static ops_event_t g_raids[RAIDS];
static char g_expected[RAIDS][OPS_EVENT_ID_LEN + 1]; /* the alert id of each raid */

/* The shipped rules file's mass-rescue rule alone: one alert per raid. */
static int stop_group_setup(void **state) {
    static const char rules[] = "[rule mass-rescue]\n"
                                "kind     = rescue\n"
                                "when     = victims >= 50\n"
                                "severity = CRITICAL\n"
                                "summary  = {country}: {victims} victims rescued in one {site} "
                                "raid{at_location}, {operation}\n";
    if (group_setup(state) != 0)
        return -1;
    if (harness_path(g_raid_rules, sizeof(g_raid_rules), "raids.conf") != 0)
        return -1;
    return harness_write_file(g_raid_rules, rules, (size_t)-1);
}

/* A test that failed half-way leaves neither errors queued on the broker
 * nor Redis paused for the next one. */
static int stop_teardown(void **state) {
    (void)state;
    harness_broker_command(g_broker, "clear-errors Produce", NULL, 0);
    redisReply *r = harness_redis_command(g_redis, "CLIENT UNPAUSE");
    if (r != NULL)
        freeReplyObject(r);
    return 0;
}

/* RAIDS rescues of op of 60 victims into g_raids, spread over ten
 * countries and ten hours of event time, each raising one mass-rescue
 * alert: its id into g_expected. */
static void make_raids(const char *op) {
    static const char *const ccs[] = {"TH", "VN", "KH", "MY", "ID", "LA", "MM", "BD", "LK", "NP"};
    for (int r = 0; r < RAIDS; r++) {
        char ref[64];
        snprintf(ref, sizeof(ref), "%s-raid-%d", op, r);
        g_raids[r] = make_event(op, OPS_KIND_RESCUE, ccs[r % 10], T0 + (int64_t)r * 90000, 60, ref);
        ops_alert_id_derive("mass-rescue", op, ccs[r % 10], g_raids[r].event_id, g_expected[r]);
    }
}

/* opstream-alert in group with the raid rules and a metrics endpoint. */
static harness_proc_t *start_raid_alert(const char *group) {
    const char *const extra[] = {"--rules", g_raid_rules, "--metrics", "127.0.0.1:0", NULL};
    return start_alert_with(group, extra);
}

/* The alerts of op on the alert topic. */
static size_t on_topic(const char *op) {
    alerts_t got;
    read_alerts(op, &got);
    free(got.v);
    return got.n;
}

/* The alert ids opstream:{OP}:alerts holds (each once: stream_ids asserts
 * it). */
static size_t mirrored(const char *op) {
    static char ids[RAIDS * 2][OPS_EVENT_ID_LEN + 1];
    return stream_ids(op, ids, RAIDS * 2);
}

typedef struct raised_arg {
    int port;
    double raised, published;
} raised_arg_t;

/* True once opstream-alert has raised (and sent) alerts that the alert
 * topic has not confirmed: events alerted beyond alerts published. */
static bool raised_beyond_published(void *arg) {
    raised_arg_t *r = arg;
    r->raised = mc_sample(r->port, "opstream_events_total{program=\"opstream-alert\","
                                   "topic=\"opstream.rescues\",result=\"alerted\"}");
    r->published =
        mc_sample(r->port, "opstream_alerts_total{rule=\"mass-rescue\",severity=\"CRITICAL\"}");
    return r->raised > 0 && r->published >= 0 && r->raised > r->published;
}

/* SIGTERM; the exit code --help documents for it is 0. Waits long enough
 * for Redis writes that time out on the way. */
static void sigterm_exits_0(harness_proc_t *p) {
    int rc = harness_proc_stop(p, 60000);
    if (rc != 0) {
        char *err = harness_proc_stderr(p);
        fail_msg("opstream-alert exit %d after SIGTERM; stderr:\n%s", rc, err != NULL ? err : "");
    }
}

/* A restart in group handles the rest, and each of the RAIDS alerts of op
 * is on the alert topic and in the mirror exactly once. */
static void restart_and_check_each_once(const char *group, const char *op) {
    harness_proc_t *p = start_raid_alert(group);
    wait_consumed(group);
    stop_alert(p);
    assert_int_equal(assert_each_published_once(op, g_expected, RAIDS), RAIDS); /* no other */
    assert_each_mirrored_once(op, g_expected, RAIDS);
}

/* The raids of op made; the first half produced, and alerted by
 * opstream-alert in group (offsets stored past them); opstream-alert then
 * frozen (SIGSTOP) while the second half is produced. Returns it, still
 * frozen. */
static harness_proc_t *first_half_done_then_freeze(const char *op, const char *group) {
    make_raids(op);
    produce(g_raids, RAIDS / 2);
    harness_proc_t *p = start_raid_alert(group);
    wait_consumed(group);
    assert_int_equal(harness_proc_signal(p, SIGSTOP), 0);
    produce(g_raids + RAIDS / 2, RAIDS - RAIDS / 2);
    return p;
}

static void
sigterm_while_alerts_await_delivery_exits_0_and_a_restart_publishes_each_once(void **state) {
    (void)state;
    const char *op = "STOP-SEND";
    const char *group = "alert-stop-send";
    harness_proc_t *p = first_half_done_then_freeze(op, group);
    /* from now on the alert topic confirms nothing: what opstream-alert
     * sends for the second half stays in flight (librdkafka retries) */
    assert_int_equal(harness_broker_command(
                         g_broker, "push-errors Produce 1000000 NOT_ENOUGH_REPLICAS", NULL, 0),
                     0);
    assert_int_equal(harness_proc_signal(p, SIGCONT), 0);
    raised_arg_t ra = {mc_port(p, 30000), 0, 0};
    assert_true(ra.port > 0);
    assert_int_equal(harness_wait_until(raised_beyond_published, &ra, 60000), 0);
    size_t published = on_topic(op);
    assert_true(published < RAIDS);
    sigterm_exits_0(p);
    assert_true(
        harness_proc_stderr_has(p, "stopping: the alerts of the batch are not all confirmed"));
    assert_false(harness_proc_stderr_has(p, "waiting for Redis")); /* Redis was never away */
    print_message("stopped with %.0f alerts raised, %.0f published, %zu on the topic\n", ra.raised,
                  ra.published, published);
    harness_proc_free(p);
    assert_int_equal(harness_broker_command(g_broker, "clear-errors Produce", NULL, 0), 0);

    restart_and_check_each_once(group, op);
}

typedef struct unmirrored_arg {
    const char *op;
    size_t mirrored;
} unmirrored_arg_t;

/* True once a write waits in Redis and the alert topic holds alerts of op
 * beyond the ones mirrored. */
static bool confirmed_beyond_mirrored(void *arg) {
    const unmirrored_arg_t *u = arg;
    return harness_redis_held_back(g_redis, NULL) > 0 && on_topic(u->op) > u->mirrored;
}

static void
sigterm_while_alerts_are_mirrored_exits_0_and_a_restart_mirrors_each_once(void **state) {
    (void)state;
    const char *op = "STOP-MIRROR";
    const char *group = "alert-stop-mirror";
    harness_proc_t *p = first_half_done_then_freeze(op, group);
    unmirrored_arg_t u = {op, mirrored(op)};
    assert_int_equal(u.mirrored, RAIDS / 2);
    /* Redis takes no writes: the mirror writes of the second half's alerts,
     * confirmed on the alert topic, wait in Redis */
    redisReply *r = harness_redis_command(g_redis, "CLIENT PAUSE %d WRITE", 120000);
    assert_non_null(r);
    assert_int_not_equal(r->type, REDIS_REPLY_ERROR);
    freeReplyObject(r);
    assert_int_equal(harness_proc_signal(p, SIGCONT), 0);
    assert_int_equal(harness_wait_until(confirmed_beyond_mirrored, &u, 60000), 0);
    size_t delivered = on_topic(op);
    assert_int_equal(mirrored(op), RAIDS / 2);
    sigterm_exits_0(p);
    harness_proc_free(p);
    r = harness_redis_command(g_redis, "CLIENT UNPAUSE");
    assert_non_null(r);
    freeReplyObject(r);
    print_message("stopped with %zu alerts on the topic, %d mirrored\n", delivered, RAIDS / 2);

    restart_and_check_each_once(group, op);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(
            sigterm_while_alerts_await_delivery_exits_0_and_a_restart_publishes_each_once,
            stop_teardown),
        cmocka_unit_test_teardown(
            sigterm_while_alerts_are_mirrored_exits_0_and_a_restart_mirrors_each_once,
            stop_teardown),
    };
    return cmocka_run_group_tests(tests, stop_group_setup, group_teardown);
}
