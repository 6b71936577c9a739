/*
 * Unit tests of the event model: every symbol's name round trips, names are
 * the schema spellings, each kind feeds the right metrics, initialisers set
 * the schema defaults and topic names follow the prefix.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "opstream/event.h"

/* One enum's name functions, so every enum runs through the same checks. */
typedef struct name_table {
    const char *label;
    int count;
    const char *(*name)(int);
    int (*from_name)(const char *);
    const char *first, *last; /* spellings pinned by the schemas / Redis contract */
} name_table_t;

static const char *kind_name(int v) {
    return ops_kind_name((ops_kind_t)v);
}
static const char *offence_name(int v) {
    return ops_offence_name((ops_offence_t)v);
}
static const char *exploitation_name(int v) {
    return ops_exploitation_name((ops_exploitation_t)v);
}
static const char *site_name(int v) {
    return ops_site_name((ops_site_t)v);
}
static const char *category_name(int v) {
    return ops_category_name((ops_category_t)v);
}
static const char *severity_name(int v) {
    return ops_severity_name((ops_severity_t)v);
}
static const char *metric_name(int v) {
    return ops_metric_name((ops_metric_t)v);
}

static const name_table_t tables[] = {
    {"kind", OPS_KIND_COUNT, kind_name, ops_kind_from_name, "arrest", "seizure"},
    {"offence", OPS_OFFENCE_COUNT, offence_name, ops_offence_from_name, "HUMAN_TRAFFICKING",
     "OTHER"},
    {"exploitation", OPS_EXPLOITATION_COUNT, exploitation_name, ops_exploitation_from_name,
     "SEXUAL", "UNKNOWN"},
    {"site", OPS_SITE_COUNT, site_name, ops_site_from_name, "SCAM_CENTRE", "OTHER"},
    {"category", OPS_CATEGORY_COUNT, category_name, ops_category_from_name, "FIREARMS", "OTHER"},
    {"severity", OPS_SEVERITY_COUNT, severity_name, ops_severity_from_name, "INFO", "CRITICAL"},
    {"metric", OPS_METRIC_COUNT, metric_name, ops_metric_from_name, "arrests", "events"},
};

static void every_symbol_name_round_trips_and_is_distinct(void **state) {
    (void)state;
    for (size_t t = 0; t < sizeof(tables) / sizeof(tables[0]); t++) {
        const name_table_t *nt = &tables[t];
        for (int v = 0; v < nt->count; v++) {
            const char *name = nt->name(v);
            assert_non_null(name);
            assert_int_equal(nt->from_name(name), v);
            for (int w = 0; w < v; w++)
                assert_string_not_equal(nt->name(w), name);
        }
        assert_string_equal(nt->name(0), nt->first);
        assert_string_equal(nt->name(nt->count - 1), nt->last);
    }
}

static void out_of_range_values_and_unknown_names_are_refused(void **state) {
    (void)state;
    for (size_t t = 0; t < sizeof(tables) / sizeof(tables[0]); t++) {
        const name_table_t *nt = &tables[t];
        assert_null(nt->name(-1));
        assert_null(nt->name(nt->count));
        assert_int_equal(nt->from_name(NULL), -1);
        assert_int_equal(nt->from_name(""), -1);
        assert_int_equal(nt->from_name("NO_SUCH_SYMBOL"), -1);
    }
}

/* Matching is exact: symbols are upper case, kinds and metrics lower case. */
static void name_matching_is_case_sensitive(void **state) {
    (void)state;
    static const struct {
        const char *name;
        int (*from_name)(const char *);
    } rows[] = {
        {"Arrest", ops_kind_from_name},         {"ARREST", ops_kind_from_name},
        {"scam_centre", ops_site_from_name},    {"Other", ops_offence_from_name},
        {"Events", ops_metric_from_name},       {"warning", ops_severity_from_name},
        {"arrest ", ops_kind_from_name},        {"cash", ops_category_from_name},
        {"sexual", ops_exploitation_from_name},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        assert_int_equal(rows[i].from_name(rows[i].name), -1);
}

static void every_schema_symbol_has_its_exact_spelling(void **state) {
    (void)state;
    static const char *const offences[] = {"HUMAN_TRAFFICKING",
                                           "MIGRANT_SMUGGLING",
                                           "DOCUMENT_FRAUD",
                                           "ORGANISED_CRIME",
                                           "FIREARMS",
                                           "DRUGS",
                                           "OTHER"};
    static const char *const exploitations[] = {"SEXUAL",
                                                "FORCED_LABOUR",
                                                "FORCED_CRIMINALITY",
                                                "BEGGING",
                                                "DOMESTIC_SERVITUDE",
                                                "ORGAN_REMOVAL",
                                                "OTHER",
                                                "UNKNOWN"};
    static const char *const sites[] = {"SCAM_CENTRE",  "HOTEL",        "NIGHTCLUB",
                                        "FARM",         "PRIVATE_HOME", "WORKSITE",
                                        "BORDER_POINT", "VESSEL",       "OTHER"};
    static const char *const categories[] = {"FIREARMS", "VEHICLES",    "DOCUMENTS", "CASH",
                                             "DRUGS",    "ELECTRONICS", "OTHER"};
    static const char *const metrics[] = {"arrests",  "victims",        "minor_victims",
                                          "migrants", "minor_migrants", "seized_items",
                                          "events"};
    static const char *const kinds[] = {"arrest", "rescue", "migrant", "seizure"};
    static const char *const suffixes[] = {"arrests", "rescues", "migrants", "seizures"};

    for (int i = 0; i < OPS_OFFENCE_COUNT; i++)
        assert_string_equal(ops_offence_name((ops_offence_t)i), offences[i]);
    for (int i = 0; i < OPS_EXPLOITATION_COUNT; i++)
        assert_string_equal(ops_exploitation_name((ops_exploitation_t)i), exploitations[i]);
    for (int i = 0; i < OPS_SITE_COUNT; i++)
        assert_string_equal(ops_site_name((ops_site_t)i), sites[i]);
    for (int i = 0; i < OPS_CATEGORY_COUNT; i++)
        assert_string_equal(ops_category_name((ops_category_t)i), categories[i]);
    for (int i = 0; i < OPS_METRIC_COUNT; i++)
        assert_string_equal(ops_metric_name((ops_metric_t)i), metrics[i]);
    for (int i = 0; i < OPS_KIND_COUNT; i++) {
        assert_string_equal(ops_kind_name((ops_kind_t)i), kinds[i]);
        assert_string_equal(ops_kind_topic_suffix((ops_kind_t)i), suffixes[i]);
    }
    assert_null(ops_kind_topic_suffix(OPS_KIND_COUNT));
}

/* Each kind's headline number lands in its one metric; events is always 1. */
static void each_kind_feeds_its_own_metrics(void **state) {
    (void)state;
    static const struct {
        ops_kind_t kind;
        int32_t count, minors;
        /* arrests victims minor_victims migrants minor_migrants seized events */
        int64_t want[OPS_METRIC_COUNT];
    } rows[] = {
        {OPS_KIND_ARREST, 1062, 0, {1062, 0, 0, 0, 0, 0, 1}},
        {OPS_KIND_RESCUE, 823, 120, {0, 823, 120, 0, 0, 0, 1}},
        {OPS_KIND_RESCUE, 250, 0, {0, 250, 0, 0, 0, 0, 1}},
        {OPS_KIND_MIGRANT, 2731, 400, {0, 0, 0, 2731, 400, 0, 1}},
        {OPS_KIND_SEIZURE, 74, 0, {0, 0, 0, 0, 0, 74, 1}},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        ops_event_t ev;
        int64_t got[OPS_METRIC_COUNT];
        ops_event_init(&ev);
        ev.kind = rows[i].kind;
        ev.count = rows[i].count;
        ev.minors = rows[i].minors;
        memset(got, 0x55, sizeof(got));
        ops_event_metrics(&ev, got);
        for (int m = 0; m < OPS_METRIC_COUNT; m++)
            assert_int_equal(got[m], rows[i].want[m]);
    }
}

static void init_sets_schema_defaults_and_empty_values(void **state) {
    (void)state;
    ops_event_t ev;
    memset(&ev, 0x7f, sizeof(ev));
    ops_event_init(&ev);
    assert_int_equal(ev.kind, OPS_KIND_ARREST);
    assert_int_equal(ev.offence, OPS_OFFENCE_OTHER);
    assert_int_equal(ev.exploitation, OPS_EXPLOITATION_UNKNOWN);
    assert_int_equal(ev.site, OPS_SITE_OTHER);
    assert_int_equal(ev.category, OPS_CATEGORY_OTHER);
    assert_string_equal(ev.event_id, "");
    assert_string_equal(ev.operation, "");
    assert_string_equal(ev.country, "");
    assert_string_equal(ev.source_ref, "");
    assert_false(ev.has_location);
    assert_int_equal(ev.occurred_at, 0);
    assert_int_equal(ev.count, 0);
    assert_int_equal(ev.minors, 0);
    assert_int_equal(ev.referred, 0);
    assert_int_equal(ev.n_nationalities, 0);

    ops_alert_t a;
    memset(&a, 0x7f, sizeof(a));
    ops_alert_init(&a);
    assert_int_equal(a.severity, OPS_SEVERITY_CRITICAL); /* the schema's default symbol */
    assert_false(a.has_country);
    assert_string_equal(a.alert_id, "");
    assert_string_equal(a.rule, "");
    assert_string_equal(a.summary, "");
    assert_int_equal(a.observed, 0);
    assert_int_equal(a.n_event_ids, 0);
    assert_true(a.baseline == 0.0);
}

static void topic_name_joins_prefix_and_kind(void **state) {
    (void)state;
    char buf[64];
    static const struct {
        const char *prefix;
        ops_kind_t kind;
        const char *want;
    } rows[] = {
        {"opstream.", OPS_KIND_ARREST, "opstream.arrests"},
        {"opstream.", OPS_KIND_RESCUE, "opstream.rescues"},
        {"opstream.", OPS_KIND_MIGRANT, "opstream.migrants"},
        {"opstream.", OPS_KIND_SEIZURE, "opstream.seizures"},
        {"test-42.", OPS_KIND_SEIZURE, "test-42.seizures"},
        {"", OPS_KIND_MIGRANT, "migrants"},
        {NULL, OPS_KIND_RESCUE, "opstream.rescues"},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        assert_int_equal(ops_topic_name(rows[i].prefix, rows[i].kind, buf, sizeof(buf)), 0);
        assert_string_equal(buf, rows[i].want);
    }
}

static void topic_name_refuses_small_buffer_and_unknown_kind(void **state) {
    (void)state;
    char buf[17]; /* "opstream.arrests" needs 17 bytes */
    assert_int_equal(ops_topic_name("opstream.", OPS_KIND_ARREST, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "opstream.arrests");
    assert_int_equal(ops_topic_name("opstream.", OPS_KIND_ARREST, buf, 16), -1);
    assert_string_equal(buf, "");
    assert_int_equal(ops_topic_name("opstream.", OPS_KIND_COUNT, buf, sizeof(buf)), -1);
    assert_int_equal(ops_topic_name("opstream.", OPS_KIND_ARREST, buf, 0), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_symbol_name_round_trips_and_is_distinct),
        cmocka_unit_test(out_of_range_values_and_unknown_names_are_refused),
        cmocka_unit_test(name_matching_is_case_sensitive),
        cmocka_unit_test(every_schema_symbol_has_its_exact_spelling),
        cmocka_unit_test(each_kind_feeds_its_own_metrics),
        cmocka_unit_test(init_sets_schema_defaults_and_empty_values),
        cmocka_unit_test(topic_name_joins_prefix_and_kind),
        cmocka_unit_test(topic_name_refuses_small_buffer_and_unknown_kind),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
