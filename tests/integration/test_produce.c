/*
 * opstream-produce against the embedded broker: the fixture exports (good
 * rows and one row per rejection class) deliver exactly the good records,
 * field for field, and report every bad one with its line; re-sending keeps
 * event ids; a bad header sends nothing; no broker means exit 3, not a hang.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "test_produce_common.h"

static void fixture_path(char *buf, size_t size, const char *name) {
    snprintf(buf, size, "%s/tests/fixtures/produce/%s", harness_src_dir(), name);
}

/* Every "LINE reason" of an .errors file appears as "PATH:LINE: reason". */
static void expect_reported(const char *stderr_text, const char *path, const char *errors_name) {
    char epath[HARNESS_PATH_MAX], want[1024];
    fixture_path(epath, sizeof(epath), errors_name);
    char *errors = harness_read_file(epath, NULL);
    assert_non_null(errors);
    strlist_t lines = {0};
    split_lines(errors, &lines);
    assert_true(lines.n > 0);
    for (size_t i = 0; i < lines.n; i++) {
        char *sp = strchr(lines.v[i], ' ');
        assert_non_null(sp);
        snprintf(want, sizeof(want), "%s:%.*s: %s", path, (int)(sp - lines.v[i]), lines.v[i],
                 sp + 1);
        if (strstr(stderr_text, want) == NULL)
            fail_msg("not reported: %s\nstderr:\n%s", want, stderr_text);
    }
    strlist_free(&lines);
    free(errors);
}

/* The lines of a fixture named by an .errors file are all in the rejects
 * file, verbatim. Returns how many. */
static size_t expect_rejected_verbatim(const char *rejects, const char *fixture,
                                       const char *errors_name) {
    char path[HARNESS_PATH_MAX];
    fixture_path(path, sizeof(path), fixture);
    char *text = harness_read_file(path, NULL);
    fixture_path(path, sizeof(path), errors_name);
    char *errors = harness_read_file(path, NULL);
    assert_non_null(text);
    assert_non_null(errors);
    strlist_t err_lines = {0}, all = {0};
    split_lines(errors, &err_lines);
    /* physical lines, blank ones included, so numbers match */
    for (const char *p = text; *p;) {
        const char *end = strchr(p, '\n');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        strlist_add(&all, p, len);
        p += len + (end != NULL);
    }
    for (size_t i = 0; i < err_lines.n; i++) {
        long no = strtol(err_lines.v[i], NULL, 10);
        assert_true(no >= 1 && (size_t)no <= all.n);
        if (strstr(rejects, all.v[no - 1]) == NULL)
            fail_msg("%s line %ld not in the rejects file", fixture, no);
    }
    size_t n = err_lines.n;
    strlist_free(&err_lines);
    strlist_free(&all);
    free(text);
    free(errors);
    return n;
}

static void fixture_exports_deliver_exactly_the_good_records_and_report_each_bad_one(void **state) {
    char csv[HARNESS_PATH_MAX], jsonl[HARNESS_PATH_MAX], rejects[HARNESS_PATH_MAX];
    char expected_path[HARNESS_PATH_MAX];
    harness_proc_t *p = NULL;
    fixture_path(csv, sizeof(csv), "mixed.csv");
    fixture_path(jsonl, sizeof(jsonl), "mixed.jsonl");
    fixture_path(expected_path, sizeof(expected_path), "mixed.expected.jsonl");
    harness_path(rejects, sizeof(rejects), "fixture-rejects.txt");
    const char *argv[] = {"opstream-produce",
                          "-b",
                          g_broker->bootstrap,
                          "--operation",
                          "FLASH-WEKA",
                          "--country",
                          "SL",
                          "--rejects",
                          rejects,
                          csv,
                          jsonl,
                          NULL};

    assert_int_equal(run_to_end(argv, 60000, &p), 1); /* some rejected, the rest delivered */
    char *err = harness_proc_stderr(p);
    long long r, d, j, f;
    assert_int_equal(parse_summary(err, &r, &d, &j, &f), 0);
    assert_int_equal(r, 36);
    assert_int_equal(d, 10);
    assert_int_equal(j, 26);
    assert_int_equal(f, 0);
    expect_reported(err, csv, "mixed.csv.errors");
    expect_reported(err, jsonl, "mixed.jsonl.errors");

    /* the rejects file: the CSV header, then every bad record verbatim */
    char *rej = harness_read_file(rejects, NULL);
    assert_non_null(rej);
    assert_true(strncmp(rej, "kind,event_id,operation,", 24) == 0);
    size_t n_bad = expect_rejected_verbatim(rej, "mixed.csv", "mixed.csv.errors") +
                   expect_rejected_verbatim(rej, "mixed.jsonl", "mixed.jsonl.errors");
    assert_int_equal(n_bad, 26);

    /* exactly the good records arrived, field for field */
    strlist_t got = {0}, want = {0};
    char *expected = harness_read_file(expected_path, NULL);
    assert_non_null(expected);
    split_lines(expected, &want);
    strlist_sort(&want);
    assert_int_equal(events_of_operation(g_broker->bootstrap, "FLASH-WEKA", &got, NULL, NULL), 0);
    assert_int_equal(got.n, want.n);
    for (size_t i = 0; i < got.n; i++)
        assert_string_equal(got.v[i], want.v[i]);

    strlist_free(&got);
    strlist_free(&want);
    free(expected);
    free(rej);
    free(err);
    harness_proc_free(p);
}

/* A small export of `n` arrests of operation `op`, written to the temp dir. */
static void write_export(const char *name, const char *op, int n, const char *header, char *path,
                         size_t size) {
    size_t cap = (size_t)n * 128 + 256, len = 0;
    char *text = malloc(cap);
    assert_non_null(text);
    len += (size_t)snprintf(text, cap, "%s\n",
                            header ? header : "kind,country,occurred_at,source_ref,persons");
    for (int i = 1; i <= n; i++)
        len += (size_t)snprintf(text + len, cap - len,
                                "arrest,GH,2024-09-30T%02d:%02d:00Z,GH-%s-%05d,%d\n", i / 60 % 24,
                                i % 60, op, i, 1 + i % 3);
    harness_path(path, size, name);
    assert_int_equal(harness_write_file(path, text, len), 0);
    free(text);
}

static void resending_a_file_keeps_every_event_id(void **state) {
    char path[HARNESS_PATH_MAX];
    harness_proc_t *p1 = NULL, *p2 = NULL;
    write_export("resend.csv", "RESEND", 40, NULL, path, sizeof(path));
    const char *argv[] = {
        "opstream-produce", "-b", g_broker->bootstrap, "--operation", "RESEND", path, NULL};
    assert_int_equal(run_to_end(argv, 60000, &p1), 0);
    assert_int_equal(run_to_end(argv, 60000, &p2), 0);

    strlist_t got = {0};
    assert_int_equal(events_of_operation(g_broker->bootstrap, "RESEND", &got, NULL, NULL), 0);
    assert_int_equal(got.n, 80);
    /* sorted lines: each event (same id, same fields) appears exactly twice */
    for (size_t i = 0; i < got.n; i += 2) {
        char a[64], b[64];
        json_field(got.v[i], "event_id", a, sizeof(a));
        json_field(got.v[i + 1], "event_id", b, sizeof(b));
        assert_string_equal(a, b);
        if (i + 2 < got.n) {
            json_field(got.v[i + 2], "event_id", b, sizeof(b));
            assert_string_not_equal(a, b);
        }
    }
    strlist_free(&got);
    harness_proc_free(p1);
    harness_proc_free(p2);
}

static void dry_run_validates_without_any_broker(void **state) {
    char csv[HARNESS_PATH_MAX];
    harness_proc_t *p = NULL;
    fixture_path(csv, sizeof(csv), "mixed.csv");
    const char *argv[] = {
        "opstream-produce", "-b",        "127.0.0.1:1", "--dry-run", "--operation",
        "FLASH-WEKA",       "--country", "SL",          csv,         NULL};
    assert_int_equal(run_to_end(argv, 30000, &p), 1);
    char *err = harness_proc_stderr(p);
    assert_non_null(strstr(err, "read 26, valid 7, rejected 19"));
    expect_reported(err, csv, "mixed.csv.errors");
    free(err);
    harness_proc_free(p);
}

static void unknown_csv_column_is_a_usage_error_and_nothing_is_sent(void **state) {
    char good[HARNESS_PATH_MAX], bad[HARNESS_PATH_MAX];
    harness_proc_t *p = NULL;
    write_export("header-good.csv", "BADHEADER", 5, NULL, good, sizeof(good));
    write_export("header-bad.csv", "BADHEADER", 5,
                 "kind,country,occurred_at,source_ref,person_count", bad, sizeof(bad));
    const char *argv[] = {
        "opstream-produce", "-b", g_broker->bootstrap, "--operation", "BADHEADER", good, bad, NULL};
    assert_int_equal(run_to_end(argv, 30000, &p), 2);
    char *err = harness_proc_stderr(p);
    assert_non_null(strstr(err, "column 5: unknown column 'person_count'"));
    free(err);
    strlist_t got = {0};
    assert_int_equal(events_of_operation(g_broker->bootstrap, "BADHEADER", &got, NULL, NULL), 0);
    assert_int_equal(got.n, 0);
    strlist_free(&got);
    harness_proc_free(p);
}

/* A local port nobody listens on. */
static int closed_port(void) {
    struct sockaddr_in a = {0};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0)
        return -1;
    close(fd);
    return ntohs(a.sin_port);
}

static void unreachable_brokers_fail_every_record_with_exit_3_after_the_timeout(void **state) {
    char path[HARNESS_PATH_MAX], bs[64];
    harness_proc_t *p = NULL;
    int port = closed_port();
    assert_true(port > 0);
    snprintf(bs, sizeof(bs), "127.0.0.1:%d", port);
    write_export("nobroker.csv", "NOBROKER", 3, NULL, path, sizeof(path));
    const char *argv[] = {"opstream-produce", "-b",       bs,   "--timeout", "2",
                          "--operation",      "NOBROKER", path, NULL};
    /* the bound only guards against a hang; the program stops after --timeout */
    assert_int_equal(run_to_end(argv, 60000, &p), 3);
    char *err = harness_proc_stderr(p);
    assert_non_null(strstr(err, "could not reach brokers"));
    for (int line = 2; line <= 4; line++) {
        char want[HARNESS_PATH_MAX + 64];
        snprintf(want, sizeof(want), "%s:%d: delivery failed:", path, line);
        if (strstr(err, want) == NULL)
            fail_msg("not reported: %s\n%s", want, err);
    }
    assert_non_null(strstr(err, "read 3, delivered 0, rejected 0, failed 3"));
    free(err);
    harness_proc_free(p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fixture_exports_deliver_exactly_the_good_records_and_report_each_bad_one),
        cmocka_unit_test(resending_a_file_keeps_every_event_id),
        cmocka_unit_test(dry_run_validates_without_any_broker),
        cmocka_unit_test(unknown_csv_column_is_a_usage_error_and_nothing_is_sent),
        cmocka_unit_test(unreachable_brokers_fail_every_record_with_exit_3_after_the_timeout),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
