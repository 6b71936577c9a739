/*
 * Unit tests of the record mapping: named CSV/JSON values to a validated
 * event, defaults from the command line, contradictions, one rejection per
 * class with its field, and the JSON line form read back unchanged.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "opstream/jsonl.h"
#include "opstream/record.h"
#include "opstream/validate.h"

#define NOW_MS 1727740800000LL /* 2024-10-01T00:00:00Z */

static void text(ops_record_t *rec, ops_field_t f, const char *s) {
    rec->v[f].type = OPS_VALUE_TEXT;
    rec->v[f].text = s;
}

/* A complete arrest row as a CSV reader would give it. */
static void arrest_row(ops_record_t *rec) {
    ops_record_clear(rec);
    text(rec, OPS_FIELD_KIND, "arrest");
    text(rec, OPS_FIELD_OPERATION, "LIBERTERRA-II");
    text(rec, OPS_FIELD_COUNTRY, "PH");
    text(rec, OPS_FIELD_OCCURRED_AT, "2024-09-30T14:05:00Z");
    text(rec, OPS_FIELD_SOURCE_REF, "PNP-2024-4412");
    text(rec, OPS_FIELD_LOCATION, "Pasay City");
    text(rec, OPS_FIELD_PERSONS, "11");
    text(rec, OPS_FIELD_OFFENCE, "ORGANISED_CRIME");
    text(rec, OPS_FIELD_SUSPECT_NATIONALITIES, "CN; PH");
}

static const ops_record_defaults_t no_defaults = {NULL, NULL, -1, NOW_MS, NULL};

static void csv_row_builds_event_with_derived_id_and_now(void **state) {
    ops_record_t rec;
    ops_event_t ev;
    char err[256] = "";
    char id[OPS_EVENT_ID_LEN + 1];
    arrest_row(&rec);
    assert_int_equal(ops_record_build(&rec, &no_defaults, &ev, NULL, err, sizeof(err)), 0);
    assert_int_equal(ev.kind, OPS_KIND_ARREST);
    assert_string_equal(ev.operation, "LIBERTERRA-II");
    assert_string_equal(ev.country, "PH");
    assert_int_equal(ev.occurred_at, 1727705100000LL);
    assert_int_equal(ev.reported_at, NOW_MS);
    assert_true(ev.has_location);
    assert_string_equal(ev.location, "Pasay City");
    assert_int_equal(ev.count, 11);
    assert_int_equal(ev.offence, OPS_OFFENCE_ORGANISED_CRIME);
    assert_int_equal(ev.n_nationalities, 2);
    assert_string_equal(ev.nationalities[0], "CN");
    assert_string_equal(ev.nationalities[1], "PH");
    ops_event_id_derive("LIBERTERRA-II", "PH", OPS_KIND_ARREST, "PNP-2024-4412", id);
    assert_string_equal(ev.event_id, id);
}

static void command_line_fills_absent_operation_country_and_kind(void **state) {
    ops_record_t rec;
    ops_event_t ev;
    char err[256] = "";
    ops_record_defaults_t d = {"FLASH-WEKA", "SL", OPS_KIND_SEIZURE, NOW_MS, NULL};
    ops_record_clear(&rec);
    text(&rec, OPS_FIELD_OCCURRED_AT, "1684742400000");
    text(&rec, OPS_FIELD_SOURCE_REF, "SLP-1");
    text(&rec, OPS_FIELD_ITEMS, "17");
    text(&rec, OPS_FIELD_CATEGORY, "DOCUMENTS");
    assert_int_equal(ops_record_build(&rec, &d, &ev, NULL, err, sizeof(err)), 0);
    assert_int_equal(ev.kind, OPS_KIND_SEIZURE);
    assert_string_equal(ev.operation, "FLASH-WEKA");
    assert_string_equal(ev.country, "SL");
    assert_int_equal(ev.occurred_at, 1684742400000LL);
    assert_false(ev.has_location);
}

static void given_event_id_is_kept(void **state) {
    ops_record_t rec;
    ops_event_t ev;
    char err[256] = "";
    arrest_row(&rec);
    text(&rec, OPS_FIELD_EVENT_ID, "0b1c2d3e-4f50-5617-8829-3a4b5c6d7e8f");
    assert_int_equal(ops_record_build(&rec, &no_defaults, &ev, NULL, err, sizeof(err)), 0);
    assert_string_equal(ev.event_id, "0b1c2d3e-4f50-5617-8829-3a4b5c6d7e8f");
}

/* One row per rejection class: a change to the good arrest row (field and
 * value; NULL value removes it), the defaults, and what the error says. */
static void every_rejection_class_names_its_field(void **state) {
    static const ops_record_defaults_t fr = {NULL, "FR", -1, NOW_MS, NULL};
    static const ops_record_defaults_t op = {"WEKA-II", NULL, -1, NOW_MS, NULL};
    static const ops_record_defaults_t rescue = {NULL, NULL, OPS_KIND_RESCUE, NOW_MS, NULL};
    static const struct {
        ops_field_t field;
        const char *value;
        const ops_record_defaults_t *d;
        const char *want_field;
        const char *want;
    } rows[] = {
        {OPS_FIELD_KIND, NULL, &no_defaults, "kind", "missing"},
        {OPS_FIELD_KIND, "arrests", &no_defaults, "kind", "unknown value 'arrests'"},
        {OPS_FIELD_KIND, "arrest", &rescue, "kind", "contradicts --kind rescue"},
        {OPS_FIELD_OPERATION, NULL, &no_defaults, "operation", "missing"},
        {OPS_FIELD_OPERATION, "LIBERTERRA-II", &op, "operation", "contradicts --operation"},
        {OPS_FIELD_OPERATION, "flash weka", &no_defaults, "operation", ""},
        {OPS_FIELD_COUNTRY, "PH", &fr, "country", "'PH' contradicts --country FR"},
        {OPS_FIELD_COUNTRY, "XX", &no_defaults, "country", ""},
        {OPS_FIELD_SOURCE_REF, NULL, &no_defaults, "source_ref", "missing"},
        {OPS_FIELD_OCCURRED_AT, NULL, &no_defaults, "occurred_at", "missing"},
        {OPS_FIELD_OCCURRED_AT, "30/09/2024", &no_defaults, "occurred_at", ""},
        {OPS_FIELD_OCCURRED_AT, "2024-09-30T14:05:00", &no_defaults, "occurred_at", ""},
        {OPS_FIELD_OCCURRED_AT, "2031-01-01T00:00:00Z", &no_defaults, "occurred_at", ""},
        {OPS_FIELD_PERSONS, NULL, &no_defaults, "persons", "missing"},
        {OPS_FIELD_PERSONS, "three", &no_defaults, "persons", "not a whole number"},
        {OPS_FIELD_PERSONS, "0", &no_defaults, "persons", ""},
        {OPS_FIELD_PERSONS, "99999999999", &no_defaults, "persons", "out of range"},
        {OPS_FIELD_OFFENCE, "THEFT", &no_defaults, "offence", "expected one of"},
        {OPS_FIELD_SUSPECT_NATIONALITIES, "CN;;PH", &no_defaults, "suspect_nationalities", "empty"},
        {OPS_FIELD_SUSPECT_NATIONALITIES, "CHN", &no_defaults, "suspect_nationalities",
         "two-letter"},
        {OPS_FIELD_SUSPECT_NATIONALITIES, "ZZ", &no_defaults, "suspect_nationalities", ""},
        {OPS_FIELD_VICTIMS, "3", &no_defaults, "victims", "not a field of arrest events"},
        {OPS_FIELD_EVENT_ID, "not-a-uuid", &no_defaults, "event_id", "UUID"},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        ops_record_t rec;
        ops_event_t ev;
        char err[256] = "";
        const char *field = NULL;
        arrest_row(&rec);
        if (rows[i].value == NULL)
            rec.v[rows[i].field].type = OPS_VALUE_ABSENT;
        else
            text(&rec, rows[i].field, rows[i].value);
        if (ops_record_build(&rec, rows[i].d, &ev, &field, err, sizeof(err)) == 0)
            fail_msg("row %zu (%s=%s): accepted", i, ops_field_name(rows[i].field),
                     rows[i].value ? rows[i].value : "(absent)");
        if (field == NULL || strcmp(field, rows[i].want_field) != 0 ||
            strncmp(err, rows[i].want_field, strlen(rows[i].want_field)) != 0 ||
            strstr(err, rows[i].want) == NULL)
            fail_msg("row %zu: field %s, error '%s'; want field %s saying '%s'", i,
                     field ? field : "(null)", err, rows[i].want_field, rows[i].want);
    }
}

static void minors_more_than_victims_is_refused(void **state) {
    ops_record_t rec;
    ops_event_t ev;
    char err[256] = "";
    const char *field = NULL;
    ops_record_clear(&rec);
    text(&rec, OPS_FIELD_KIND, "rescue");
    text(&rec, OPS_FIELD_OPERATION, "FLASH-WEKA");
    text(&rec, OPS_FIELD_COUNTRY, "SL");
    text(&rec, OPS_FIELD_OCCURRED_AT, "2023-05-26T09:20:00Z");
    text(&rec, OPS_FIELD_SOURCE_REF, "SLP-2023-0603");
    text(&rec, OPS_FIELD_VICTIMS, "4");
    text(&rec, OPS_FIELD_MINORS, "7");
    assert_int_equal(ops_record_build(&rec, &no_defaults, &ev, &field, err, sizeof(err)), -1);
    assert_string_equal(field, "minors");
    text(&rec, OPS_FIELD_MINORS, "4");
    assert_int_equal(ops_record_build(&rec, &no_defaults, &ev, &field, err, sizeof(err)), 0);
}

static int json_build(const char *line, ops_event_t *ev, const char **field, char *err,
                      size_t errsize) {
    ops_json_t *p = ops_json_new();
    ops_record_t rec;
    int rc = ops_json_parse(p, line, strlen(line), err, errsize);
    if (rc == 0)
        rc = ops_record_from_json(&rec, p, field, err, errsize);
    if (rc == 0)
        rc = ops_record_build(&rec, &no_defaults, ev, field, err, errsize);
    if (rc != 0 && field != NULL && *field != NULL) {
        /* the field name may live in the parser: copy it before freeing it */
        static char name[64];
        snprintf(name, sizeof(name), "%s", *field);
        *field = name;
    }
    ops_json_destroy(p);
    return rc;
}

static void json_values_keep_their_types(void **state) {
    ops_event_t ev;
    char err[256] = "";
    const char *field = NULL;
    assert_int_equal(json_build("{\"kind\":\"rescue\",\"operation\":\"FLASH-WEKA\",\"country\":"
                                "\"TG\",\"occurred_at\":1684820000000,\"source_ref\":\"TG-1\","
                                "\"victims\":30,\"location\":null,\"site\":\"HOTEL\","
                                "\"victim_nationalities\":[\"NG\"]}",
                                &ev, &field, err, sizeof(err)),
                     0);
    assert_int_equal(ev.count, 30);
    assert_int_equal(ev.site, OPS_SITE_HOTEL);
    assert_false(ev.has_location);
    assert_int_equal(ev.n_nationalities, 1);

    /* a quoted count is a string, not a number */
    assert_int_equal(json_build("{\"kind\":\"rescue\",\"operation\":\"FLASH-WEKA\",\"country\":"
                                "\"TG\",\"occurred_at\":1684820000000,\"source_ref\":\"TG-1\","
                                "\"victims\":\"30\"}",
                                &ev, &field, err, sizeof(err)),
                     -1);
    assert_string_equal(field, "victims");
    assert_non_null(strstr(err, "expected a number"));

    assert_int_equal(
        json_build("{\"kind\":\"rescue\",\"victim_count\":3}", &ev, &field, err, sizeof(err)), -1);
    assert_string_equal(field, "victim_count");
    assert_non_null(strstr(err, "unknown field"));
}

static void json_line_form_reads_back_to_the_same_event(void **state) {
    ops_record_t rec;
    ops_event_t ev, back;
    char err[256] = "", line[OPS_RECORD_JSON_MAX];
    arrest_row(&rec);
    text(&rec, OPS_FIELD_LOCATION, "Quote \" and \\ and \xC3\xA9");
    assert_int_equal(ops_record_build(&rec, &no_defaults, &ev, NULL, err, sizeof(err)), 0);
    assert_true(ops_record_format_json(&ev, line, sizeof(line)) > 0);
    assert_int_equal(json_build(line, &back, NULL, err, sizeof(err)), 0);
    assert_memory_equal(&ev, &back, sizeof(ev));
    assert_int_equal(ops_record_format_json(&ev, line, 20), -1);
}

static void header_with_unknown_or_repeated_column_is_refused(void **state) {
    int map[8];
    char err[256] = "";
    const char *good[] = {"kind", "country", "persons"};
    const char *unknown[] = {"kind", "country", "victim_count"};
    const char *twice[] = {"kind", "country", "kind"};
    assert_int_equal(ops_record_map_header(good, 3, map, err, sizeof(err)), 0);
    assert_int_equal(map[1], OPS_FIELD_COUNTRY);
    assert_int_equal(ops_record_map_header(unknown, 3, map, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "column 3: unknown column 'victim_count'"));
    assert_int_equal(ops_record_map_header(twice, 3, map, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "repeats column 1"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(csv_row_builds_event_with_derived_id_and_now),
        cmocka_unit_test(command_line_fills_absent_operation_country_and_kind),
        cmocka_unit_test(given_event_id_is_kept),
        cmocka_unit_test(every_rejection_class_names_its_field),
        cmocka_unit_test(minors_more_than_victims_is_refused),
        cmocka_unit_test(json_values_keep_their_types),
        cmocka_unit_test(json_line_form_reads_back_to_the_same_event),
        cmocka_unit_test(header_with_unknown_or_repeated_column_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
