/*
 * Unit tests for lib/consumer_metrics.c: a batch's tallies reach the
 * counters only when the batch is applied, events Redis already knew count
 * as duplicates on the topic they came from, a fenced or dropped batch
 * counts nothing, and DLQ copies are counted by reason class. Uses a real
 * batch (counter.h), no server.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "opstream/consumer_metrics.h"

static const char TOPICS[2][256] = {"opstream.arrests", "opstream.rescues"};

static ops_event_t ev(ops_kind_t kind, int id) {
    ops_event_t e;
    ops_event_init(&e);
    e.kind = kind;
    snprintf(e.operation, sizeof e.operation, "OP");
    snprintf(e.country, sizeof e.country, "NG");
    snprintf(e.event_id, sizeof e.event_id, "00000000-0000-4000-8000-%012d", id);
    e.count = 1;
    e.occurred_at = e.reported_at = 1727705100000LL;
    return e;
}

static double sample(ops_metrics_t *reg, const char *series) {
    char *text = NULL;
    double v = -1;
    assert_int_equal(ops_metrics_render(reg, &text, NULL, NULL, 0), 0);
    char want[256];
    snprintf(want, sizeof want, "\n%s ", series); /* a sample line, not # HELP */
    const char *p = strstr(text, want);
    if (p)
        v = strtod(p + strlen(want), NULL);
    free(text);
    return v;
}

#define COUNTED(t)                                                                                 \
    "opstream_events_total{program=\"p\",topic=\"opstream." t "\",result=\"counted\"}"
#define DUPE(t) "opstream_events_total{program=\"p\",topic=\"opstream." t "\",result=\"duplicate\"}"
#define DLQ(t) "opstream_events_total{program=\"p\",topic=\"opstream." t "\",result=\"dlq\"}"

static void tallies_count_when_the_batch_is_applied(void **state) {
    char err[256];
    ops_counter_options_t o = {.group = "g", .max_events = 100, .dedupe_window_s = 604800};
    ops_counter_t *batch = ops_counter_new(&o, err, sizeof err);
    ops_metrics_t *reg = ops_metrics_new();
    ops_consumer_metrics_t cm;
    (void)state;
    assert_non_null(batch);
    assert_int_equal(ops_counter_assign(batch, "opstream.arrests", 0, -1, err, sizeof err), 0);
    assert_int_equal(ops_counter_assign(batch, "opstream.rescues", 0, -1, err, sizeof err), 0);
    assert_int_equal(ops_consumer_metrics_init(&cm, reg, "p", "g", TOPICS, 2, err, sizeof err), 0);

    /* A batch: 3 arrests (one re-sent in the batch), 2 rescues, 2 DLQ. */
    ops_consumer_metrics_batch_start(&cm, batch);
    ops_event_t a1 = ev(OPS_KIND_ARREST, 1), a2 = ev(OPS_KIND_ARREST, 2),
                r1 = ev(OPS_KIND_RESCUE, 3), r2 = ev(OPS_KIND_RESCUE, 4);
    assert_int_equal(ops_counter_add_event(batch, "opstream.arrests", 0, 0, &a1),
                     OPS_COUNTER_ADDED);
    ops_consumer_metrics_added(&cm, "opstream.arrests", OPS_KIND_ARREST);
    assert_int_equal(ops_counter_add_event(batch, "opstream.arrests", 0, 1, &a2),
                     OPS_COUNTER_ADDED);
    ops_consumer_metrics_added(&cm, "opstream.arrests", OPS_KIND_ARREST);
    assert_int_equal(ops_counter_add_event(batch, "opstream.arrests", 0, 2, &a1),
                     OPS_COUNTER_DUPLICATE);
    ops_consumer_metrics_duplicate(&cm, "opstream.arrests");
    assert_int_equal(ops_counter_add_event(batch, "opstream.rescues", 0, 0, &r1),
                     OPS_COUNTER_ADDED);
    ops_consumer_metrics_added(&cm, "opstream.rescues", OPS_KIND_RESCUE);
    assert_int_equal(ops_counter_add_event(batch, "opstream.rescues", 0, 1, &r2),
                     OPS_COUNTER_ADDED);
    ops_consumer_metrics_added(&cm, "opstream.rescues", OPS_KIND_RESCUE);
    ops_consumer_metrics_dlq(&cm, "opstream.rescues", "magic");
    ops_consumer_metrics_dlq(&cm, "opstream.rescues", "no-such-class"); /* internal */

    /* A failed step counts an error and nothing else. */
    ops_consumer_metrics_step(&cm, batch, 0.002, OPS_COUNTER_STEP_FAILED);
    assert_true(sample(reg, COUNTED("arrests")) == 0);
    assert_true(sample(reg, "opstream_redis_errors_total") == 1);
    /* A refused one (the batch is retried) neither. */
    ops_consumer_metrics_step(&cm, batch, 0.002, OPS_COUNTER_STEP_REFUSED);
    assert_true(sample(reg, COUNTED("arrests")) == 0);
    assert_true(sample(reg, DLQ("rescues")) == 0);
    assert_true(sample(reg, "opstream_redis_errors_total") == 2);
    /* Redis knew r1 already (dropped as seen), then the step applied. */
    assert_int_equal(ops_counter_drop_seen(batch, "OP", r1.event_id), 1);
    ops_consumer_metrics_step(&cm, batch, 0.004, OPS_COUNTER_STEP_APPLIED);
    assert_true(sample(reg, COUNTED("arrests")) == 2);
    assert_true(sample(reg, DUPE("arrests")) == 1);
    assert_true(sample(reg, COUNTED("rescues")) == 1);
    assert_true(sample(reg, DUPE("rescues")) == 1);
    assert_true(sample(reg, DLQ("rescues")) == 2);
    assert_true(sample(reg, DLQ("arrests")) == 0);
    assert_true(sample(reg, "opstream_dlq_total{reason=\"magic\"}") == 1);
    assert_true(sample(reg, "opstream_dlq_total{reason=\"internal\"}") == 1);
    assert_true(sample(reg, "opstream_redis_step_seconds_count") == 3);
    ops_counter_applied(batch);

    /* A fenced batch counts nothing but the fence. */
    ops_consumer_metrics_batch_start(&cm, batch);
    ops_event_t a3 = ev(OPS_KIND_ARREST, 5);
    assert_int_equal(ops_counter_add_event(batch, "opstream.arrests", 0, 3, &a3),
                     OPS_COUNTER_ADDED);
    ops_consumer_metrics_added(&cm, "opstream.arrests", OPS_KIND_ARREST);
    ops_consumer_metrics_step(&cm, batch, 0.001, OPS_COUNTER_STEP_FENCED);
    assert_true(sample(reg, "opstream_fenced_total") == 1);
    assert_true(sample(reg, COUNTED("arrests")) == 2);
    /* Gaps. */
    ops_consumer_metrics_gap(&cm);
    assert_true(sample(reg, "opstream_gaps_total") == 1);

    ops_consumer_metrics_free(&cm);
    ops_counter_destroy(batch);
    ops_metrics_destroy(reg);
}

/* A batch handed to a step that runs while the next one fills: each
 * batch's tallies count when its own step applies, not the other's. */
static void held_batch_tallies_count_apart_from_the_next_one(void **state) {
    char err[256];
    ops_counter_options_t o = {.group = "g", .max_events = 100, .dedupe_window_s = 604800};
    ops_counter_t *held = ops_counter_new(&o, err, sizeof err);
    ops_counter_t *next = ops_counter_new(&o, err, sizeof err);
    ops_metrics_t *reg = ops_metrics_new();
    ops_consumer_metrics_t cm;
    (void)state;
    assert_non_null(held);
    assert_non_null(next);
    assert_int_equal(ops_counter_assign(held, "opstream.arrests", 0, -1, err, sizeof err), 0);
    assert_int_equal(ops_consumer_metrics_init(&cm, reg, "p", "g", TOPICS, 2, err, sizeof err), 0);

    /* The first batch: two arrests, one DLQ copy; handed to its step. */
    ops_consumer_metrics_batch_start(&cm, held);
    ops_event_t a1 = ev(OPS_KIND_ARREST, 1), a2 = ev(OPS_KIND_ARREST, 2),
                a3 = ev(OPS_KIND_ARREST, 3);
    assert_int_equal(ops_counter_add_event(held, "opstream.arrests", 0, 0, &a1),
                     OPS_COUNTER_ADDED);
    ops_consumer_metrics_added(&cm, "opstream.arrests", OPS_KIND_ARREST);
    assert_int_equal(ops_counter_add_event(held, "opstream.arrests", 0, 1, &a2),
                     OPS_COUNTER_ADDED);
    ops_consumer_metrics_added(&cm, "opstream.arrests", OPS_KIND_ARREST);
    ops_consumer_metrics_dlq(&cm, "opstream.arrests", "magic");
    assert_int_equal(ops_counter_follow(next, held, err, sizeof err), 0);
    ops_consumer_metrics_hold(&cm);

    /* The next batch fills: one arrest. */
    ops_consumer_metrics_batch_start(&cm, next);
    assert_int_equal(ops_counter_add_event(next, "opstream.arrests", 0, 2, &a3),
                     OPS_COUNTER_ADDED);
    ops_consumer_metrics_added(&cm, "opstream.arrests", OPS_KIND_ARREST);

    /* The held step fails (kept), then applies with a2 known to Redis. */
    ops_consumer_metrics_step_held(&cm, held, 0.001, OPS_COUNTER_STEP_FAILED);
    assert_true(sample(reg, COUNTED("arrests")) == 0);
    assert_int_equal(ops_counter_drop_seen(held, "OP", a2.event_id), 1);
    ops_consumer_metrics_step_held(&cm, held, 0.001, OPS_COUNTER_STEP_APPLIED);
    assert_true(sample(reg, COUNTED("arrests")) == 1);
    assert_true(sample(reg, DUPE("arrests")) == 1);
    assert_true(sample(reg, DLQ("arrests")) == 1);
    ops_counter_applied(held);

    /* The next batch's step: its one arrest, nothing of the first again. */
    ops_consumer_metrics_step(&cm, next, 0.001, OPS_COUNTER_STEP_APPLIED);
    assert_true(sample(reg, COUNTED("arrests")) == 2);
    assert_true(sample(reg, DUPE("arrests")) == 1);
    assert_true(sample(reg, DLQ("arrests")) == 1);

    ops_consumer_metrics_free(&cm);
    ops_counter_destroy(held);
    ops_counter_destroy(next);
    ops_metrics_destroy(reg);
}

/* Without a registry every call is harmless. */
static void no_registry_counts_nothing_and_fails_nothing(void **state) {
    char err[256];
    ops_counter_options_t o = {.group = "g", .max_events = 10};
    ops_counter_t *batch = ops_counter_new(&o, err, sizeof err);
    ops_consumer_metrics_t cm;
    (void)state;
    assert_int_equal(ops_consumer_metrics_init(&cm, NULL, "p", "g", TOPICS, 2, err, sizeof err), 0);
    ops_consumer_metrics_batch_start(&cm, batch);
    ops_consumer_metrics_added(&cm, "opstream.arrests", OPS_KIND_ARREST);
    ops_consumer_metrics_dlq(&cm, "opstream.other", "magic");
    ops_consumer_metrics_step(&cm, batch, 0.001, OPS_COUNTER_STEP_APPLIED);
    ops_consumer_metrics_gap(&cm);
    ops_consumer_metrics_free(&cm);
    ops_counter_destroy(batch);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(tallies_count_when_the_batch_is_applied),
        cmocka_unit_test(held_batch_tallies_count_apart_from_the_next_one),
        cmocka_unit_test(no_registry_counts_nothing_and_fails_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
