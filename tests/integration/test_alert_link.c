/*
 * opstream-alert's Redis mirror across a lost connection, against the
 * embedded broker and a real redis-server (AOF on): between alerts the
 * program's connections are killed (CLIENT KILL TYPE normal), or the
 * server is restarted on the same port with its AOF. Every alert lands in
 * opstream:{OP}:alerts exactly once, the mirror logs no error (the link
 * reconnects and sends the pipeline again at once), and the process goes
 * on and stops cleanly. opstream-count, opstream-alert and opstream-alerts
 * ignore SIGPIPE, so a write to a closed connection is an error they
 * handle, not the end of the process.
 */
#include <signal.h>

#include "test_alert_common.h"

static int link_group_setup(void **state) {
    return group_setup_with(state, true); /* AOF: a restart keeps the stream */
}

/* How a test cuts the program's Redis connections between alerts. */
typedef enum cut { CUT_CLIENT_KILL, CUT_RESTART } cut_t;

static void cut_connections(cut_t how) {
    if (how == CUT_RESTART) {
        assert_int_equal(harness_redis_restart(g_redis), 0);
        return;
    }
    /* the program's mirror, offsets and heartbeat links */
    assert_true(harness_redis_kill_clients(g_redis) >= 1);
}

typedef struct stream_len_arg {
    const char *op;
    long long want;
} stream_len_arg_t;

static bool stream_holds(void *arg) {
    const stream_len_arg_t *s = arg;
    char key[OPS_KEY_MAX];
    ops_key_alerts(s->op, key, sizeof(key));
    redisReply *r = harness_redis_command(g_redis, "XLEN %s", key);
    bool ok = r != NULL && r->type == REDIS_REPLY_INTEGER && r->integer >= s->want;
    if (r != NULL)
        freeReplyObject(r);
    return ok;
}

#define SINGLES 5
#define BURST 200

/*
 * SINGLES mass rescues one at a time, each mirrored before the connections
 * are cut; then a burst of BURST mass rescues (more than one pipeline of
 * alerts) read after a last cut. Events are hours apart in event time, so that
 * no spike rule fires: every alert is a mass-rescue alert with a known id.
 */
static void alerts_are_mirrored_once_without_an_error_line_across(cut_t how, const char *op,
                                                                  const char *group) {
    static const char *const ccs[] = {"PH", "NG", "GH", "CM", "SN", "ML", "CI", "GR"};
    static ops_event_t evs[SINGLES + BURST];
    static char expected[SINGLES + BURST][OPS_EVENT_ID_LEN + 1];
    char ref[64];

    for (size_t i = 0; i < SINGLES + BURST; i++) {
        snprintf(ref, sizeof(ref), "%s-raid-%zu", op, i);
        evs[i] = make_event(op, OPS_KIND_RESCUE, ccs[i % 8], T0 + (int64_t)i * 120 * MIN, 60, ref);
        ops_alert_id_derive("mass-rescue", op, ccs[i % 8], evs[i].event_id, expected[i]);
    }
    harness_proc_t *p = start_alert(group);
    for (size_t i = 0; i < SINGLES; i++) {
        produce(&evs[i], 1);
        stream_len_arg_t want = {op, (long long)i + 1};
        assert_int_equal(harness_wait_until(stream_holds, &want, 60000), 0);
        if (i + 1 < SINGLES)
            cut_connections(how); /* the last cut comes before the burst */
    }
    /* the burst waits on the topics while the program is stopped, so that
     * its first write after the cut is one long pipeline: a write to a
     * socket the server reset, which raises SIGPIPE unless it is ignored */
    assert_int_equal(harness_proc_signal(p, SIGSTOP), 0);
    produce(evs + SINGLES, BURST);
    cut_connections(how);
    assert_int_equal(harness_proc_signal(p, SIGCONT), 0);
    stream_len_arg_t all = {op, SINGLES + BURST};
    assert_int_equal(harness_wait_until(stream_holds, &all, 60000), 0);
    wait_consumed(group);
    assert_true(harness_proc_running(p)); /* a write to a closed socket did not end it */

    char *err = harness_proc_stderr(p);
    assert_non_null(err);
    for (char *line = strtok(err, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        /* the mirror's failures are logged as "REASON (retrying)" */
        if (strstr(line, "(retrying)") != NULL || strstr(line, "XADD") != NULL)
            fail_msg("the mirror logged an error: %s", line);
    }
    free(err);
    stop_alert(p);

    assert_each_mirrored_once(op, expected, SINGLES + BURST);
    assert_each_published_once(op, expected, SINGLES + BURST);
}

static void connections_killed_between_alerts_cost_no_mirror_error_and_no_alert(void **state) {
    (void)state;
    alerts_are_mirrored_once_without_an_error_line_across(CUT_CLIENT_KILL, "LINK-KILL",
                                                          "alert-link-kill");
}

static void redis_restarted_between_alerts_costs_no_mirror_error_and_no_alert(void **state) {
    (void)state;
    alerts_are_mirrored_once_without_an_error_line_across(CUT_RESTART, "LINK-RESTART",
                                                          "alert-link-restart");
}

/* True once the process (its pid in arg) ignores SIGPIPE: bit SIGPIPE-1
 * of the SigIgn mask in /proc/PID/status. */
static bool ignores_sigpipe(void *arg) {
    const harness_proc_t *p = arg;
    char path[64], line[256];
    bool yes = false;
    snprintf(path, sizeof(path), "/proc/%d/status", (int)p->pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return false;
    while (fgets(line, sizeof(line), f) != NULL) {
        unsigned long long mask;
        if (sscanf(line, "SigIgn: %llx", &mask) == 1)
            yes = (mask >> (SIGPIPE - 1)) & 1u;
    }
    fclose(f);
    return yes;
}

/*
 * A write to a connection the server closed raises SIGPIPE once the
 * server's reset came back (the test above reaches that only by chance: a
 * first write of up to 512 KiB to a closed loopback socket succeeds, and
 * the link reads, finds the end, and reconnects). Each program that writes
 * to Redis or a pipe must therefore ignore SIGPIPE; they start with the
 * default action (the harness resets it), so this fails when one does not.
 */
static void programs_that_write_to_redis_or_a_pipe_ignore_sigpipe(void **state) {
    (void)state;
    const char *count[] = {"opstream-count", "-b", g_broker->bootstrap, "--redis",
                           g_redis->url,     "-g", "link-count",        NULL};
    const char *alerts[] = {"opstream-alerts", "-b", g_broker->bootstrap, NULL};
    harness_proc_t *p[3] = {harness_spawn(count, NULL, 0), spawn_alert_with("link-sigpipe", NULL),
                            harness_spawn(alerts, NULL, 0)};
    for (size_t i = 0; i < 3; i++) {
        assert_non_null(p[i]);
        if (harness_wait_until(ignores_sigpipe, p[i], 30000) != 0)
            fail_msg("%s does not ignore SIGPIPE", p[i]->name);
    }
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(harness_proc_stop(p[i], 20000), 0);
        harness_proc_free(p[i]);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(connections_killed_between_alerts_cost_no_mirror_error_and_no_alert),
        cmocka_unit_test(redis_restarted_between_alerts_costs_no_mirror_error_and_no_alert),
        cmocka_unit_test(programs_that_write_to_redis_or_a_pipe_ignore_sigpipe),
    };
    return cmocka_run_group_tests(tests, link_group_setup, group_teardown);
}
