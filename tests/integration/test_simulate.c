/*
 * opstream-simulate against the embedded broker: a fixed seed gives the same
 * events twice and exactly those reach the topics; the totals it writes
 * equal the totals of what reached the topics.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "opstream/simulate.h"
#include "test_produce_common.h"

#define SIM_ARGS                                                                                   \
    "--operation", "SIM-SEED", "--seed", "2024", "--events", "400", "--rate", "0", "--base-time",  \
        "2024-10-01T12:00:00Z", "--scenario", "weka-ii"

static void same_seed_gives_the_same_events_and_exactly_those_reach_the_topics(void **state) {
    harness_proc_t *a = NULL, *b = NULL, *c = NULL;
    const char *print[] = {"opstream-simulate", "--print", SIM_ARGS, NULL};
    const char *produce[] = {"opstream-simulate", "-b", g_broker->bootstrap, SIM_ARGS, NULL};

    assert_int_equal(run_to_end(print, 30000, &a), 0);
    assert_int_equal(run_to_end(print, 30000, &b), 0);
    char *out_a = harness_proc_stdout(a), *out_b = harness_proc_stdout(b);
    assert_string_equal(out_a, out_b);
    strlist_t printed = {0};
    split_lines(out_a, &printed);
    assert_int_equal(printed.n, 400);
    strlist_sort(&printed);

    assert_int_equal(run_to_end(produce, 60000, &c), 0);
    char *err = harness_proc_stderr(c);
    assert_non_null(strstr(err, "generated 400, delivered 400, failed 0"));
    strlist_t got = {0};
    assert_int_equal(events_of_operation(g_broker->bootstrap, "SIM-SEED", &got, NULL, NULL), 0);
    assert_int_equal(got.n, printed.n);
    for (size_t i = 0; i < got.n; i++)
        assert_string_equal(got.v[i], printed.v[i]);

    strlist_free(&printed);
    strlist_free(&got);
    free(out_a);
    free(out_b);
    free(err);
    harness_proc_free(a);
    harness_proc_free(b);
    harness_proc_free(c);
}

static void printed_totals_equal_the_totals_of_what_reached_the_topics(void **state) {
    char totals_path[HARNESS_PATH_MAX];
    harness_proc_t *p = NULL;
    harness_path(totals_path, sizeof(totals_path), "totals.json");
    const char *argv[] = {"opstream-simulate",
                          "-b",
                          g_broker->bootstrap,
                          "--operation",
                          "SIM-TOTALS",
                          "--scenario",
                          "liberterra-ii",
                          "--seed",
                          "77",
                          "--events",
                          "3000",
                          "--rate",
                          "0",
                          "--span-days",
                          "6",
                          "--totals",
                          totals_path,
                          NULL};
    assert_int_equal(run_to_end(argv, 60000, &p), 0);
    char *printed = harness_read_file(totals_path, NULL);
    assert_non_null(printed);

    strlist_t got = {0};
    ops_event_t *evs = NULL;
    size_t n = 0;
    assert_int_equal(events_of_operation(g_broker->bootstrap, "SIM-TOTALS", &got, &evs, &n), 0);
    assert_int_equal(n, 3000);
    ops_sim_totals_t *t = malloc(sizeof(*t));
    ops_sim_totals_init(t, "SIM-TOTALS");
    for (size_t i = 0; i < n; i++)
        ops_sim_totals_add(t, &evs[i]);
    char *json = ops_sim_totals_json(t);
    assert_string_equal(printed, json);
    /* realistic traffic: many countries, every kind */
    for (int k = 0; k < OPS_KIND_COUNT; k++)
        assert_true(t->by_kind[k] > 0);

    free(json);
    free(t);
    free(evs);
    strlist_free(&got);
    free(printed);
    harness_proc_free(p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(same_seed_gives_the_same_events_and_exactly_those_reach_the_topics),
        cmocka_unit_test(printed_totals_equal_the_totals_of_what_reached_the_topics),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
