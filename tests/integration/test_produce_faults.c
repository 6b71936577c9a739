/*
 * opstream-produce under faults, against the embedded broker: a SIGTERM in
 * the middle of the input leaves every record read either delivered or
 * reported; a second SIGTERM while brokers are down reports the unconfirmed
 * records failed; produce errors injected on the broker (not leader, request
 * timed out, transport failure) still deliver every record exactly once; a
 * producer broken for good is recreated and every record still arrives.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "test_produce_common.h"

/* Rows first..last of an export of operation `op`: every kind in turn, so
 * all four topics are used. */
static char *rows(const char *op, int first, int last, int with_header) {
    static const char *const cc[] = {"NG", "GH", "CM", "TG", "SN", "ML"};
    size_t cap = (size_t)(last - first + 1) * 96 + 128, len = 0;
    char *text = malloc(cap);
    assert_non_null(text);
    text[0] = '\0';
    if (with_header)
        len += (size_t)snprintf(text, cap,
                                "kind,country,occurred_at,source_ref,persons,victims,migrants,"
                                "items\n");
    for (int i = first; i <= last; i++) {
        /* one count column per kind, the others empty */
        static const char *const kinds[] = {"arrest", "rescue", "migrant", "seizure"};
        static const char *const counts[] = {"2,,,", ",5,,", ",,12,", ",,,4"};
        len += (size_t)snprintf(text + len, cap - len, "%s,%s,2024-09-30T10:00:00Z,%s-%06d,%s\n",
                                kinds[i % 4], cc[i % 6], op, i, counts[i % 4]);
    }
    return text;
}

typedef struct count_arg {
    const char *topic;
    int64_t at_least;
} count_arg_t;

static bool topic_reached(void *arg) {
    count_arg_t *c = arg;
    return harness_topic_count(g_broker->bootstrap, c->topic, 5000) >= c->at_least;
}

/* The source_ref number of an event line ("...-000123"). */
static long ref_number(const char *line) {
    char ref[160];
    json_field(line, "source_ref", ref, sizeof(ref));
    const char *dash = strrchr(ref, '-');
    return dash ? strtol(dash + 1, NULL, 10) : -1;
}

/* After a SIGTERM: the summary accounts for every record read (delivered or
 * failed, nothing else), exactly the delivered ones are on the topics, once
 * each and all among the records read, and every other one read was
 * reported with its line. `name` is how the input is reported. Returns the
 * number of records read. */
static long long expect_nothing_vanished(harness_proc_t *p, const char *op, const char *name,
                                         long total) {
    char *err = harness_proc_stderr(p);
    long long r, d, j, f;
    if (parse_summary(err, &r, &d, &j, &f) != 0)
        fail_msg("no summary:\n%s", err);
    assert_true(r >= 1 && r <= total);
    assert_int_equal(j, 0);
    assert_int_equal(d + f, r);
    assert_int_equal(harness_proc_exit_code(p), f > 0 ? 3 : 0);

    strlist_t got = {0};
    assert_int_equal(events_of_operation(g_broker->bootstrap, op, &got, NULL, NULL), 0);
    assert_int_equal((long long)got.n, d);
    char *seen = calloc((size_t)total + 1, 1);
    for (size_t i = 0; i < got.n; i++) {
        long no = ref_number(got.v[i]);
        assert_true(no >= 1 && no <= r);
        assert_int_equal(seen[no], 0);
        seen[no] = 1;
    }
    for (long no = 1; no <= r; no++) {
        if (seen[no])
            continue;
        char want[HARNESS_PATH_MAX + 64];
        snprintf(want, sizeof(want), "%s:%ld: delivery failed", name, no + 1); /* row + header */
        if (strstr(err, want) == NULL)
            fail_msg("record %ld neither delivered nor reported", no);
    }
    free(seen);
    strlist_free(&got);
    free(err);
    return r;
}

static void sigterm_mid_input_leaves_every_read_record_delivered_or_reported(void **state) {
    const char *argv[] = {"opstream-produce",
                          "-b",
                          g_broker->bootstrap,
                          "--operation",
                          "SIGTERM-TEST",
                          "--format",
                          "csv",
                          "-",
                          NULL};
    int64_t before = harness_topic_count(g_broker->bootstrap, "opstream.arrests", 5000);
    assert_true(before >= 0);
    harness_proc_t *p = harness_spawn(argv, NULL, HARNESS_STDIN_PIPE);
    assert_non_null(p);

    /* 8000 records, and the input stays open: the signal comes mid-input */
    char *text = rows("SIGTERM-TEST", 1, 8000, 1);
    assert_int_equal(harness_proc_write(p, text), 0);
    free(text);
    count_arg_t arg = {"opstream.arrests", before + 100};
    assert_int_equal(harness_wait_until(topic_reached, &arg, 30000), 0);
    assert_int_equal(harness_proc_signal(p, SIGTERM), 0);
    assert_int_equal(harness_proc_wait(p, 60000), 0);

    char *err = harness_proc_stderr(p);
    assert_non_null(strstr(err, "interrupted: stopped reading at stdin:"));
    free(err);
    assert_true(expect_nothing_vanished(p, "SIGTERM-TEST", "stdin", 8000) >= 400);
    harness_proc_free(p);
}

/* The same with a large file: the signal lands wherever the reading is. */
static void sigterm_in_a_large_file_leaves_every_read_record_delivered_or_reported(void **state) {
    char path[HARNESS_PATH_MAX];
    char *text = rows("SIGTERM-FILE", 1, 200000, 1);
    harness_path(path, sizeof(path), "large.csv");
    assert_int_equal(harness_write_file(path, text, (size_t)-1), 0);
    free(text);
    const char *argv[] = {
        "opstream-produce", "-b", g_broker->bootstrap, "--operation", "SIGTERM-FILE", path, NULL};
    int64_t before = harness_topic_count(g_broker->bootstrap, "opstream.arrests", 5000);
    harness_proc_t *p = harness_spawn(argv, NULL, 0);
    assert_non_null(p);
    count_arg_t arg = {"opstream.arrests", before + 1};
    assert_int_equal(harness_wait_until(topic_reached, &arg, 30000), 0);
    assert_int_equal(harness_proc_signal(p, SIGTERM), 0);
    assert_int_equal(harness_proc_wait(p, 60000), 0);
    expect_nothing_vanished(p, "SIGTERM-FILE", path, 200000);
    harness_proc_free(p);
}

typedef struct text_arg {
    harness_proc_t *p;
    const char *text;
} text_arg_t;

static bool stderr_has(void *arg) {
    text_arg_t *t = arg;
    char *err = harness_proc_stderr(t->p);
    bool found = err != NULL && strstr(err, t->text) != NULL;
    free(err);
    return found;
}

/* SIGTERM while nothing can be confirmed: the final flush is bounded (1 s),
 * then every unconfirmed record is reported with its line, exit 3. */
static void sigterm_with_brokers_down_reports_unconfirmed_records_failed(void **state) {
    char path[HARNESS_PATH_MAX], cmd[64];
    char *text = rows("DOWN-TEST", 1, 300, 1);
    harness_path(path, sizeof(path), "down.csv");
    assert_int_equal(harness_write_file(path, text, (size_t)-1), 0);
    free(text);
    for (int id = 1; id <= 3; id++) {
        snprintf(cmd, sizeof(cmd), "broker-down %d", id);
        assert_int_equal(harness_broker_command(g_broker, cmd, NULL, 0), 0);
    }
    const char *argv[] = {"opstream-produce",
                          "-b",
                          g_broker->bootstrap,
                          "--operation",
                          "DOWN-TEST",
                          "--progress",
                          path,
                          NULL};
    harness_proc_t *p = harness_spawn(argv, NULL, 0);
    assert_non_null(p);
    /* all 300 read and waiting for confirmation that cannot come */
    text_arg_t arg = {p, "read 300, delivered 0"};
    assert_int_equal(harness_wait_until(stderr_has, &arg, 30000), 0);
    /* the signal stops reading and waits briefly, without a second one */
    assert_int_equal(harness_proc_signal(p, SIGTERM), 0);
    assert_int_equal(harness_proc_wait(p, 30000), 0);
    assert_int_equal(harness_proc_exit_code(p), 3);

    char *err = harness_proc_stderr(p);
    assert_non_null(strstr(err, "waiting up to 1000 ms for 300 records to be confirmed"));
    assert_non_null(strstr(err, "read 300, delivered 0, rejected 0, failed 300"));
    for (int line = 2; line <= 301; line++) {
        char want[HARNESS_PATH_MAX + 64];
        snprintf(want, sizeof(want), "%s:%d: delivery failed: interrupted", path, line);
        if (strstr(err, want) == NULL)
            fail_msg("line %d not reported", line);
    }
    free(err);
    harness_proc_free(p);
    for (int id = 1; id <= 3; id++) {
        snprintf(cmd, sizeof(cmd), "broker-up %d", id);
        assert_int_equal(harness_broker_command(g_broker, cmd, NULL, 0), 0);
    }
}

#define INJECTED_ERRORS                                                                            \
    "push-errors Produce 9 NOT_LEADER_FOR_PARTITION REQUEST_TIMED_OUT _TRANSPORT "                 \
    "NOT_LEADER_FOR_PARTITION REQUEST_TIMED_OUT _TRANSPORT NOT_LEADER_FOR_PARTITION "              \
    "REQUEST_TIMED_OUT _TRANSPORT"

/* Produces 3000 records of operation `op` while the broker fails Produce
 * requests with `errors`; extra_x (may be NULL) is one more -X property.
 * Checks the producer's own accounting: each record confirmed once, none
 * failed. Returns how many copies of each record reached the topics in
 * copies[1..3000] (the caller frees it). */
static char *produce_through_errors(const char *op, const char *extra_x) {
    char path[HARNESS_PATH_MAX], name[64];
    char *text = rows(op, 1, 3000, 1);
    snprintf(name, sizeof(name), "%s.csv", op);
    harness_path(path, sizeof(path), name);
    assert_int_equal(harness_write_file(path, text, (size_t)-1), 0);
    free(text);
    assert_int_equal(harness_broker_command(g_broker, INJECTED_ERRORS, NULL, 0), 0);
    const char *argv[] = {"opstream-produce",    "-b",    g_broker->bootstrap,
                          "--operation",         op,      path,
                          extra_x ? "-X" : NULL, extra_x, NULL};
    harness_proc_t *p = NULL;
    assert_int_equal(run_to_end(argv, 120000, &p), 0);
    char *err = harness_proc_stderr(p);
    assert_non_null(strstr(err, "read 3000, delivered 3000, rejected 0, failed 0"));
    free(err);
    harness_proc_free(p);

    strlist_t got = {0};
    assert_int_equal(events_of_operation(g_broker->bootstrap, op, &got, NULL, NULL), 0);
    char *copies = calloc(3001, 1);
    for (size_t i = 0; i < got.n; i++) {
        long no = ref_number(got.v[i]);
        assert_true(no >= 1 && no <= 3000);
        /* sorted lines: a copy is the same event, byte for byte */
        if (copies[no] > 0)
            assert_string_equal(got.v[i], got.v[i - 1]);
        copies[no]++;
    }
    for (long no = 1; no <= 3000; no++)
        if (copies[no] == 0)
            fail_msg("record %ld was not delivered", no);
    strlist_free(&got);
    return copies;
}

/* One request in flight: a retried request cannot have been overtaken, so
 * every record is on the topics exactly once. */
static void injected_produce_errors_still_deliver_every_record_exactly_once(void **state) {
    char *copies =
        produce_through_errors("FAULT-SERIAL", "max.in.flight.requests.per.connection=1");
    for (long no = 1; no <= 3000; no++)
        if (copies[no] != 1)
            fail_msg("record %ld is on the topics %d times", no, copies[no]);
    free(copies);
}

/* The default pipelining: each record is still confirmed exactly once and
 * none is lost. The embedded broker (librdkafka 2.0.2's mock) does not check
 * idempotent sequence numbers, so a batch that a real broker would refuse as
 * out of order after a retry can land twice there; such a copy carries the
 * same event_id and consumers count it once. */
static void injected_produce_errors_with_pipelining_lose_nothing(void **state) {
    free(produce_through_errors("FAULT-PIPELINED", NULL));
}

static void fatal_producer_error_recreates_it_and_delivers_every_record(void **state) {
    char path[HARNESS_PATH_MAX];
    char *text = rows("FATAL-TEST", 1, 2000, 1);
    harness_path(path, sizeof(path), "fatal.csv");
    assert_int_equal(harness_write_file(path, text, (size_t)-1), 0);
    free(text);
    /* a sequence error breaks the idempotent producer for good */
    assert_int_equal(harness_broker_command(
                         g_broker, "push-errors Produce 1 OUT_OF_ORDER_SEQUENCE_NUMBER", NULL, 0),
                     0);
    const char *argv[] = {
        "opstream-produce", "-b", g_broker->bootstrap, "--operation", "FATAL-TEST", path, NULL};
    harness_proc_t *p = NULL;
    assert_int_equal(run_to_end(argv, 120000, &p), 0);
    char *err = harness_proc_stderr(p);
    assert_non_null(strstr(err, "producer failed fatally"));
    assert_non_null(strstr(err, "recreated it"));
    assert_non_null(strstr(err, "read 2000, delivered 2000, rejected 0, failed 0"));

    /* every record is there; a resent one may be there twice, with the
     * same event_id, which consumers count once */
    strlist_t got = {0};
    assert_int_equal(events_of_operation(g_broker->bootstrap, "FATAL-TEST", &got, NULL, NULL), 0);
    char *seen = calloc(2001, 1);
    for (size_t i = 0; i < got.n; i++) {
        long no = ref_number(got.v[i]);
        assert_true(no >= 1 && no <= 2000);
        seen[no] = 1;
    }
    for (long no = 1; no <= 2000; no++)
        if (!seen[no])
            fail_msg("record %ld was not delivered", no);
    free(seen);
    strlist_free(&got);
    free(err);
    harness_proc_free(p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sigterm_mid_input_leaves_every_read_record_delivered_or_reported),
        cmocka_unit_test(sigterm_in_a_large_file_leaves_every_read_record_delivered_or_reported),
        cmocka_unit_test(sigterm_with_brokers_down_reports_unconfirmed_records_failed),
        cmocka_unit_test(injected_produce_errors_still_deliver_every_record_exactly_once),
        cmocka_unit_test(injected_produce_errors_with_pipelining_lose_nothing),
        cmocka_unit_test(fatal_producer_error_recreates_it_and_delivers_every_record),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
