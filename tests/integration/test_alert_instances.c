/*
 * Alerts once across instances: three opstream-alert instances in one
 * group against the embedded broker (opstream-broker) and a real
 * redis-server; one is killed with SIGKILL right after it published an
 * alert (partitions move to the others), and the brokers answer slower
 * than the alert producer waits (a publish whose outcome is unknown: the
 * alert is on the topic but the producer reports a timeout). Every expected
 * alert id is on opstream.alerts exactly once.
 */
#include <time.h>

#include "test_alert_common.h"

/* ---- the test ---------------------------------------------------------------- */

#define RAIDS 24

static harness_proc_t *g_inst[3];

static int instance_that_published(const char *alert_id) {
    char line[128];
    snprintf(line, sizeof(line), "alert %.100s", alert_id);
    for (int i = 0; i < 3; i++) {
        if (g_inst[i] == NULL)
            continue;
        char *err = harness_proc_stderr(g_inst[i]);
        bool yes = err != NULL && strstr(err, line) != NULL;
        free(err);
        if (yes)
            return i;
    }
    return -1;
}


/* Every surviving instance was assigned partitions again (with -v each
 * assignment is said after its read-back of the alert topic is done). */
static int g_assigned_before[3];
static bool survivors_reassigned(void *arg) {
    (void)arg;
    for (int i = 0; i < 3; i++)
        if (g_inst[i] != NULL &&
            harness_proc_stderr_count(g_inst[i], "assigned ") <= g_assigned_before[i])
            return false;
    return true;
}

static bool someone_says(void *arg) {
    for (int i = 0; i < 3; i++) {
        if (g_inst[i] == NULL)
            continue;
        char *err = harness_proc_stderr(g_inst[i]);
        bool yes = err != NULL && strstr(err, (const char *)arg) != NULL;
        free(err);
        if (yes)
            return true;
    }
    return false;
}

static void
three_instances_a_kill_and_unknown_publish_outcomes_give_every_alert_once(void **state) {
    (void)state;
    const char *op = "MULTI-OP";
    const char *group = "alert-multi";
    static const char *const ccs[] = {"TH", "VN", "KH", "MY", "ID", "LA", "MM", "BD",
                                      "LK", "NP", "JP", "KR", "MN", "BT", "MV", "TL",
                                      "FJ", "PG", "WS", "TO", "SB", "VU", "NR", "TV"};
    static ops_event_t steady[RAIDS * 20], evs[RAIDS * 21];
    char expected[RAIDS][OPS_EVENT_ID_LEN + 1];
    gen_steady(op, 5, RAIDS * 20, T0, RAIDS * 20, steady);
    size_t n = add_raids(op, steady, RAIDS * 20, 20, ccs, "multi-raid", 70, evs, expected);
    size_t third = n / 3;
    static const char *const slow[] = {"-v", "-X", "session.timeout.ms=10000", "-X",
                                       "message.timeout.ms=1500", NULL};
    /* the alert producer gives up after 1.5 s: with the brokers answering
     * after 2.5 s, a delivered alert is reported as timed out (a longer
     * session timeout keeps the group together through the slow phase) */
    for (int i = 0; i < 3; i++)
        g_inst[i] = start_alert_with(group, slow);

    /* part one, then a SIGKILL right after an alert was published, before
     * its offsets were likely stored */
    produce(evs, third);
    int victim = -1;
    /* up to 30 s: under a loaded machine the first alert can take a while */
    for (int tries = 0; victim < 0 && tries < 3000; tries++) {
        for (int r = 0; r < RAIDS && victim < 0; r++)
            victim = instance_that_published(expected[r]);
        if (victim < 0)
            nanosleep(&(struct timespec){0, 10000000L}, NULL);
    }
    assert_true(victim >= 0);
    for (int i = 0; i < 3; i++)
        g_assigned_before[i] = harness_proc_stderr_count(g_inst[i], "assigned ");
    assert_int_equal(harness_proc_kill(g_inst[victim]), 0);
    harness_proc_free(g_inst[victim]);
    g_inst[victim] = NULL;
    /* the survivors take the victim's partitions over (and read the alert
     * topic back) before the brokers slow down: the slow phase is about
     * publishes whose outcome is unknown, not about a read-back that a
     * 2.5 s round trip cannot finish */
    assert_int_equal(harness_wait_until(survivors_reassigned, NULL, 60000), 0);

    /* part two with slow brokers: publishes whose outcome is unknown */
    set_rtt(2500);
    produce(evs + third, third);
    int waited =
        harness_wait_until(someone_says, "checking opstream.alerts before trying again", 60000);
    set_rtt(0);
    if (waited != 0) {
        for (int i = 0; i < 3; i++) {
            char *err = g_inst[i] != NULL ? harness_proc_stderr(g_inst[i]) : NULL;
            fprintf(stderr, "--- instance %d:\n%s\n", i, err != NULL ? err : "(killed)");
            free(err);
        }
    }
    assert_int_equal(waited, 0);

    /* part three, then everything handled */
    produce(evs + 2 * third, n - 2 * third);
    wait_consumed(group);
    for (int i = 0; i < 3; i++) {
        if (g_inst[i] != NULL)
            stop_alert(g_inst[i]);
        g_inst[i] = NULL;
    }

    assert_each_published_once(op, expected, RAIDS);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(three_instances_a_kill_and_unknown_publish_outcomes_give_every_alert_once),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
