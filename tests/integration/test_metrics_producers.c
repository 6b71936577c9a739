/*
 * The producers' metrics endpoints (--metrics): opstream-produce counts
 * every input record in opstream_produced_total{result} as it is delivered
 * or rejected and is ready once a broker answered; opstream-simulate counts
 * what it delivers while it runs; a busy or invalid --metrics address, or
 * -X opstream.metrics.listen, is exit 2 with the reason before anything is
 * read or sent.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <signal.h>

#include <cmocka.h>

#include "metrics_common.h"
#include "test_produce_common.h"

typedef struct feed {
    harness_proc_t *p;
    int port;
    int extra;      /* good records written after the fixture */
    int fixture_ok; /* good records of the fixture */
} feed_t;

/* Writes one more good record each call, until the endpoint shows every
 * record of the fixture delivered. */
static bool delivered_all_before(void *arg) {
    feed_t *f = arg;
    char line[512];
    double d = mc_sample(f->port, "opstream_produced_total{result=\"delivered\"}");
    if (d >= f->fixture_ok)
        return true;
    snprintf(line, sizeof line,
             "{\"kind\": \"arrest\", \"occurred_at\": \"2023-05-23T05:30:00Z\", "
             "\"source_ref\": \"MET-%d\", \"persons\": 1, \"offence\": \"DRUGS\"}\n",
             f->extra++);
    return harness_proc_write(f->p, line) != 0; /* stop on a broken pipe */
}

static void produce_counts_delivered_and_rejected_records_while_it_runs(void **state) {
    char fixture[HARNESS_PATH_MAX];
    (void)state;
    const char *argv[] = {"opstream-produce",
                          "-b",
                          g_broker->bootstrap,
                          "--format",
                          "jsonl",
                          "--operation",
                          "FLASH-WEKA",
                          "--country",
                          "SL",
                          "--metrics",
                          "127.0.0.1:0",
                          "-",
                          NULL};
    harness_proc_t *p = harness_spawn(argv, NULL, HARNESS_STDIN_PIPE);
    assert_non_null(p);
    int port = mc_port(p, 15000);
    assert_true(port > 0);
    assert_int_equal(mc_status(port, "/healthz"), 200);
    /* Nothing delivered yet: every result is there, at zero. */
    assert_true(mc_sample(port, "opstream_produced_total{result=\"delivered\"}") == 0);
    assert_true(mc_sample(port, "opstream_produced_total{result=\"rejected\"}") == 0);
    assert_true(mc_sample(port, "opstream_build_info{version=\"" OPS_VERSION "\"}") == 1);
    assert_true(mc_sample(port, "process_resident_memory_bytes") > 0);

    /* The fixture: its .errors file names the rejected lines. */
    snprintf(fixture, sizeof fixture, "%s/tests/fixtures/produce/mixed.jsonl", harness_src_dir());
    char *text = harness_read_file(fixture, NULL);
    snprintf(fixture, sizeof fixture, "%s/tests/fixtures/produce/mixed.jsonl.errors",
             harness_src_dir());
    char *errors = harness_read_file(fixture, NULL);
    assert_non_null(text);
    assert_non_null(errors);
    int lines = 0, bad = 0;
    for (const char *c = text; *c; c++)
        lines += *c == '\n';
    for (const char *c = errors; *c; c++)
        bad += *c == '\n';
    assert_int_equal(harness_proc_write(p, text), 0);

    /* Rejections count as they are read (stdin still open). */
    assert_true(mc_wait_sample(port, "opstream_produced_total{result=\"rejected\"}", bad, 10000) ==
                bad);
    /* Delivery reports are served as records are sent: while more records
     * arrive, every one sent before shows as delivered. */
    feed_t f = {p, port, 0, lines - bad};
    assert_int_equal(harness_wait_until(delivered_all_before, &f, 30000), 0);
    assert_true(mc_sample(port, "opstream_produced_total{result=\"rejected\"}") == bad);
    assert_true(mc_sample(port, "opstream_produced_total{result=\"failed\"}") == 0);
    assert_int_equal(mc_wait_status(port, "/readyz", 200, 10000), 0);
    close(p->stdin_fd);
    p->stdin_fd = -1;
    assert_int_equal(harness_proc_wait(p, 30000), 0);
    assert_int_equal(harness_proc_exit_code(p), 1); /* some rejected */
    harness_proc_free(p);
    free(text);
    free(errors);
}

static void simulate_counts_deliveries_while_it_runs(void **state) {
    (void)state;
    int port;
    harness_proc_t *p = mc_spawn_simulate(g_broker->bootstrap, "SIM-MET", &port);
    assert_non_null(p);
    assert_true(port > 0);
    assert_true(mc_wait_sample(port, "opstream_produced_total{result=\"delivered\"}", 100, 30000) >=
                100);
    assert_int_equal(mc_wait_status(port, "/readyz", 200, 10000), 0);
    assert_int_equal(mc_status(port, "/healthz"), 200);
    double before = mc_sample(port, "opstream_produced_total{result=\"delivered\"}");
    assert_int_equal(harness_proc_stop(p, 20000), 0);
    /* The summary accounts for at least what the endpoint showed. */
    char *err = harness_proc_stderr(p);
    const char *sum = strstr(err, "delivered ");
    assert_non_null(sum);
    assert_true(strtod(sum + 10, NULL) >= before);
    free(err);
    harness_proc_free(p);
}

/* Runs argv to its end; returns the exit code and stderr in *errp. */
static int exit_code_of(const char *const argv[], char **errp) {
    harness_proc_t *p = NULL;
    int code = run_to_end(argv, 20000, &p);
    assert_non_null(p);
    *errp = harness_proc_stderr(p);
    harness_proc_free(p);
    return code;
}

static void busy_or_invalid_address_is_exit_2_with_the_reason(void **state) {
    char *err = NULL, listen[64], want[128];
    (void)state;
    /* Another program holds the port. */
    const char *holder_argv[] = {"opstream-simulate",
                                 "-b",
                                 g_broker->bootstrap,
                                 "--operation",
                                 "SIM-HOLD",
                                 "--rate",
                                 "1",
                                 "--events",
                                 "100000",
                                 "--metrics",
                                 "127.0.0.1:0",
                                 NULL};
    harness_proc_t *holder = harness_spawn(holder_argv, NULL, 0);
    int port = mc_port(holder, 15000);
    assert_true(port > 0);
    snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
    snprintf(want, sizeof want, "--metrics: cannot listen on %s: Address already in use", listen);

    const char *produce[] = {"opstream-produce",
                             "-b",
                             g_broker->bootstrap,
                             "--format",
                             "jsonl",
                             "--metrics",
                             listen,
                             "-",
                             NULL};
    assert_int_equal(exit_code_of(produce, &err), 2);
    assert_non_null(strstr(err, want));
    free(err);
    const char *simulate[] = {
        "opstream-simulate", "-b", g_broker->bootstrap, "--operation", "SIM-X",
        "--events",          "1",  "--metrics",         listen,        NULL};
    assert_int_equal(exit_code_of(simulate, &err), 2);
    assert_non_null(strstr(err, want));
    free(err);
    /* The same through -X. */
    char kv[96];
    snprintf(kv, sizeof kv, "opstream.metrics.listen=%s", listen);
    const char *via_x[] = {"opstream-simulate",
                           "-b",
                           g_broker->bootstrap,
                           "--operation",
                           "SIM-X",
                           "--events",
                           "1",
                           "-X",
                           kv,
                           NULL};
    assert_int_equal(exit_code_of(via_x, &err), 2);
    assert_non_null(strstr(err, "cannot listen on"));
    free(err);
    harness_proc_free(holder);

    /* Not an address at all. */
    const char *bad[] = {"opstream-produce",
                         "-b",
                         g_broker->bootstrap,
                         "--format",
                         "jsonl",
                         "--metrics",
                         "9464",
                         "-",
                         NULL};
    assert_int_equal(exit_code_of(bad, &err), 2);
    assert_non_null(strstr(err, "--metrics: opstream.metrics.listen: '9464': expected HOST:PORT"));
    free(err);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN); /* a child that exited closes its stdin */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(produce_counts_delivered_and_rejected_records_while_it_runs),
        cmocka_unit_test(simulate_counts_deliveries_while_it_runs),
        cmocka_unit_test(busy_or_invalid_address_is_exit_2_with_the_reason),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
