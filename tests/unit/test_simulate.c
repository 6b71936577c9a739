/*
 * Unit tests of the simulator core: determinism by seed, valid and realistic
 * events for every scenario (skewed countries, raids, boats, late reports),
 * and the totals that tests compare with what reached the topics.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "opstream/simulate.h"
#include "opstream/validate.h"

#define REF_MS 1727740800000LL /* 2024-10-01T00:00:00Z */

static ops_sim_t *sim_new(const char *scenario, uint64_t seed, size_t countries, int span) {
    char err[256];
    ops_sim_options_t o = {scenario, NULL, countries, seed, span};
    ops_sim_t *s = ops_sim_new(&o, err, sizeof(err));
    if (s == NULL)
        fail_msg("ops_sim_new: %s", err);
    return s;
}

static void same_seed_gives_identical_events(void **state) {
    ops_sim_t *a = sim_new("flash-weka", 42, 0, 0), *b = sim_new("flash-weka", 42, 0, 0);
    ops_event_t ea, eb;
    for (uint64_t i = 0; i < 500; i++) {
        ops_sim_event(a, i, REF_MS, &ea);
        ops_sim_event(b, i, REF_MS, &eb);
        assert_memory_equal(&ea, &eb, sizeof(ea));
    }
    /* event i does not depend on the events before it */
    ops_sim_event(a, 499, REF_MS, &ea);
    ops_sim_event(b, 499, REF_MS, &eb);
    assert_memory_equal(&ea, &eb, sizeof(ea));
    ops_sim_destroy(a);
    ops_sim_destroy(b);
}

static void other_seed_gives_other_events(void **state) {
    ops_sim_t *a = sim_new("flash-weka", 1, 0, 0), *b = sim_new("flash-weka", 2, 0, 0);
    ops_event_t ea, eb;
    int differ = 0;
    for (uint64_t i = 0; i < 50; i++) {
        ops_sim_event(a, i, REF_MS, &ea);
        ops_sim_event(b, i, REF_MS, &eb);
        differ += strcmp(ea.event_id, eb.event_id) != 0;
    }
    assert_int_equal(differ, 50);
    ops_sim_destroy(a);
    ops_sim_destroy(b);
}

static void scenarios_have_their_published_country_counts(void **state) {
    static const struct {
        const char *name;
        size_t n;
    } rows[] = {{"flash-weka", 54}, {"weka-ii", 44}, {"liberterra-ii", 60}};
    assert_int_equal(ops_sim_scenario_count(), 3);
    for (size_t r = 0; r < 3; r++) {
        const ops_sim_scenario_t *sc = ops_sim_scenario_find(rows[r].name);
        assert_non_null(sc);
        assert_int_equal(sc->n_countries, rows[r].n);
        ops_sim_t *s = sim_new(rows[r].name, 1, 0, 0);
        assert_int_equal(ops_sim_countries(s), rows[r].n);
        for (size_t i = 0; i < rows[r].n; i++) {
            const char *cc = ops_sim_country(s, i);
            if (!ops_valid_country(cc))
                fail_msg("%s: %s is not a country code", rows[r].name, cc);
            for (size_t j = 0; j < i; j++)
                if (strcmp(cc, ops_sim_country(s, j)) == 0)
                    fail_msg("%s: %s listed twice", rows[r].name, cc);
        }
        ops_sim_destroy(s);
    }
    assert_null(ops_sim_scenario_find("weka-iii"));
}

static void bad_options_are_refused(void **state) {
    char err[256];
    ops_sim_options_t unknown = {"weka-iii", NULL, 0, 1, 0};
    ops_sim_options_t too_many = {"weka-ii", NULL, 45, 1, 0};
    ops_sim_options_t bad_op = {NULL, "flash weka", 0, 1, 0};
    assert_null(ops_sim_new(&unknown, err, sizeof(err)));
    assert_non_null(strstr(err, "unknown scenario"));
    assert_null(ops_sim_new(&too_many, err, sizeof(err)));
    assert_non_null(strstr(err, "1 to 44"));
    assert_null(ops_sim_new(&bad_op, err, sizeof(err)));
}

static void every_generated_event_is_valid(void **state) {
    for (size_t sc = 0; sc < ops_sim_scenario_count(); sc++) {
        for (int span = 0; span <= 14; span += 14) {
            ops_sim_t *s = sim_new(ops_sim_scenario_at(sc)->name, 7, 0, span);
            for (uint64_t i = 0; i < 3000; i++) {
                ops_event_t ev;
                char err[256];
                ops_sim_event(s, i, REF_MS, &ev);
                if (ops_validate_event(&ev, REF_MS, NULL, err, sizeof(err)) != 0)
                    fail_msg("%s event %llu: %s", ops_sim_scenario_at(sc)->name,
                             (unsigned long long)i, err);
            }
            ops_sim_destroy(s);
        }
    }
}

/* Realism over 20,000 events: skewed countries, small arrests, the raids
 * and boats of the issue, a few late reports, and unique source_refs. */
static void traffic_is_skewed_with_raids_boats_and_late_reports(void **state) {
    ops_sim_t *s = sim_new("flash-weka", 2023, 0, 0);
    enum { N = 20000 };
    int per_country[54] = {0};
    int kinds[OPS_KIND_COUNT] = {0};
    int small_arrests = 0, scam_raids = 0, hotel_raids = 0, boats = 0, late = 0, recent = 0;
    ops_event_t ev;
    for (uint64_t i = 0; i < N; i++) {
        ops_sim_event(s, i, REF_MS, &ev);
        for (size_t c = 0; c < 54; c++)
            if (strcmp(ev.country, ops_sim_country(s, c)) == 0)
                per_country[c]++;
        kinds[ev.kind]++;
        if (ev.kind == OPS_KIND_ARREST && ev.count <= 3)
            small_arrests++;
        if (ev.kind == OPS_KIND_RESCUE && ev.site == OPS_SITE_SCAM_CENTRE) {
            assert_in_range(ev.count, 100, 300);
            scam_raids++;
        }
        if (ev.kind == OPS_KIND_RESCUE && ev.site == OPS_SITE_HOTEL) {
            assert_in_range(ev.count, 25, 35);
            hotel_raids++;
        }
        if (ev.kind == OPS_KIND_MIGRANT && ev.count >= 50)
            boats++;
        if (REF_MS - ev.occurred_at >= 2 * 3600000LL)
            late++;
        if (REF_MS - ev.occurred_at <= 10 * 60000LL)
            recent++;
    }
    int used = 0;
    for (size_t c = 0; c < 54; c++)
        used += per_country[c] > 0;
    assert_int_equal(used, 54);
    assert_true(per_country[0] > 5 * per_country[53]); /* skewed */
    for (int k = 0; k < OPS_KIND_COUNT; k++)
        assert_true(kinds[k] > N / 20);
    assert_true(small_arrests > kinds[OPS_KIND_ARREST] * 8 / 10);
    assert_true(scam_raids >= 1);
    assert_true(hotel_raids >= 5);
    assert_true(boats >= 10);
    assert_true(late > 0 && late < N / 10);
    assert_true(recent > N * 9 / 10);
    ops_sim_destroy(s);
}

static void span_spreads_times_over_the_days_before_the_reference(void **state) {
    ops_sim_t *s = sim_new("weka-ii", 5, 0, 6);
    int64_t min = REF_MS, max = 0;
    for (uint64_t i = 0; i < 2000; i++) {
        ops_event_t ev;
        ops_sim_event(s, i, REF_MS, &ev);
        assert_true(ev.occurred_at <= REF_MS && ev.occurred_at >= REF_MS - 6 * 86400000LL);
        assert_int_equal(ev.reported_at, REF_MS);
        if (ev.occurred_at < min)
            min = ev.occurred_at;
        if (ev.occurred_at > max)
            max = ev.occurred_at;
    }
    assert_true(max - min > 5 * 86400000LL);
    ops_sim_destroy(s);
}

static void fewer_countries_uses_the_most_active(void **state) {
    ops_sim_t *s = sim_new("liberterra-ii", 9, 3, 0);
    for (uint64_t i = 0; i < 300; i++) {
        ops_event_t ev;
        ops_sim_event(s, i, REF_MS, &ev);
        assert_true(strcmp(ev.country, "PH") == 0 || strcmp(ev.country, "ML") == 0 ||
                    strcmp(ev.country, "AR") == 0);
        assert_string_equal(ev.operation, "LIBERTERRA-II");
    }
    ops_sim_destroy(s);
}

static void totals_add_up_and_print_the_same_for_the_same_events(void **state) {
    ops_sim_t *s = sim_new("flash-weka", 11, 0, 0);
    ops_sim_totals_t *a = malloc(sizeof(*a)), *b = malloc(sizeof(*b));
    int64_t arrests = 0, events = 0;
    ops_sim_totals_init(a, "FLASH-WEKA");
    ops_sim_totals_init(b, "FLASH-WEKA");
    for (uint64_t i = 0; i < 1000; i++) {
        ops_event_t ev;
        ops_sim_event(s, i, REF_MS, &ev);
        ops_sim_totals_add(a, &ev);
        if (ev.kind == OPS_KIND_ARREST)
            arrests += ev.count;
        events++;
    }
    for (uint64_t i = 1000; i-- > 0;) { /* another order */
        ops_event_t ev;
        ops_sim_event(s, i, REF_MS, &ev);
        ops_sim_totals_add(b, &ev);
    }
    assert_int_equal(a->metric[OPS_METRIC_ARRESTS], arrests);
    assert_int_equal(a->metric[OPS_METRIC_EVENTS], events);
    char *ja = ops_sim_totals_json(a), *jb = ops_sim_totals_json(b);
    assert_string_equal(ja, jb);
    assert_non_null(strstr(ja, "\"operation\":\"FLASH-WEKA\",\"events\":1000"));
    assert_non_null(strstr(ja, "\"CM\":{\"arrests\":"));
    free(ja);
    free(jb);
    free(a);
    free(b);
    ops_sim_destroy(s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(same_seed_gives_identical_events),
        cmocka_unit_test(other_seed_gives_other_events),
        cmocka_unit_test(scenarios_have_their_published_country_counts),
        cmocka_unit_test(bad_options_are_refused),
        cmocka_unit_test(every_generated_event_is_valid),
        cmocka_unit_test(traffic_is_skewed_with_raids_boats_and_late_reports),
        cmocka_unit_test(span_spreads_times_over_the_days_before_the_reference),
        cmocka_unit_test(fewer_countries_uses_the_most_active),
        cmocka_unit_test(totals_add_up_and_print_the_same_for_the_same_events),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
