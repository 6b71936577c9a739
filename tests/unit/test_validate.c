/*
 * Unit tests of validation: UUID v5 against the RFC 9562 example, the ISO
 * 3166-1 table, operation and UUID formats, one bad row per event rule, the
 * deterministic v5 event_id, and timestamp parsing and formatting.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "opstream/config.h"
#include "opstream/validate.h"

#include "../../lib/uuid5_priv.h"

/* The country table, exposed by lib/validate.c for these tests only. */
size_t ops_validate_country_table(const char (**tablep)[3]);

#define NOW_MS 1727705100000LL /* 2024-09-30T14:05:00Z */
#define DAY_MS (24LL * 3600 * 1000)

#define N_ROWS(a) (sizeof(a) / sizeof((a)[0]))

/* ---- UUID v5 ------------------------------------------------------------ */

/* RFC 9562 appendix A.4: the DNS namespace and "www.example.com". */
static void uuid5_matches_the_rfc_9562_example(void **state) {
    (void)state;
    static const uint8_t dns_ns[16] = {0x6b, 0xa7, 0xb8, 0x10, 0x9d, 0xad, 0x11, 0xd1,
                                       0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8};
    const char *parts[1] = {"www.example.com"};
    char id[37];
    ops_uuid5_derive(dns_ns, parts, 1, id);
    assert_string_equal(id, "2ed6657d-e927-568b-95e1-2665a8aea6a2");
}

/* A name past the stack buffer (the heap path), NULL and empty parts. */
static void uuid5_of_a_long_name_and_empty_parts_is_pinned(void **state) {
    (void)state;
    static const uint8_t dns_ns[16] = {0x6b, 0xa7, 0xb8, 0x10, 0x9d, 0xad, 0x11, 0xd1,
                                       0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8};
    static char long_part[3001];
    memset(long_part, 'a', 3000);
    const char *parts[4] = {long_part, NULL, "", "b"};
    char id[37];
    ops_uuid5_derive(dns_ns, parts, 4, id);
    assert_string_equal(id, "ec997cde-337b-59c4-96a6-b8ec404aa4a1");
}

/* ---- countries, operations, uuids ---------------------------------------- */

static void country_table_is_sorted_with_249_assigned_codes(void **state) {
    (void)state;
    const char(*table)[3];
    size_t n = ops_validate_country_table(&table);
    assert_int_equal(n, 249);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(strlen(table[i]), 2);
        assert_true(ops_valid_country(table[i]));
        if (i > 0)
            assert_true(strcmp(table[i - 1], table[i]) < 0);
    }
    /* Binary search finds exactly the table: 249 of all 676 letter pairs. */
    size_t valid = 0;
    for (char a = 'A'; a <= 'Z'; a++) {
        for (char b = 'A'; b <= 'Z'; b++) {
            char cc[3] = {a, b, '\0'};
            valid += ops_valid_country(cc);
        }
    }
    assert_int_equal(valid, 249);
}

static void country_codes_accept_assigned_and_refuse_others(void **state) {
    (void)state;
    static const struct {
        const char *cc;
        bool want;
    } rows[] = {
        {"FR", true},   {"CM", true},  {"PH", true},  {"SL", true},  {"TG", true},  {"SS", true},
        {"GB", true},   {"AD", true},  {"ZW", true},  {"BQ", true},  {"CW", true},  {"SX", true},
        {"XK", false},  {"UK", false}, {"ZZ", false}, {"fr", false}, {"Fr", false}, {"F", false},
        {"FRA", false}, {"", false},   {"EU", false}, {"AN", false}, {"F1", false}, {" FR", false},
    };
    for (size_t i = 0; i < N_ROWS(rows); i++) {
        if (ops_valid_country(rows[i].cc) != rows[i].want)
            fail_msg("country \"%s\": expected %s", rows[i].cc, rows[i].want ? "valid" : "invalid");
    }
    assert_false(ops_valid_country(NULL));
}

static void operation_codes_follow_the_pattern(void **state) {
    (void)state;
    static const struct {
        const char *op;
        bool want;
    } rows[] = {
        {"LIBERTERRA-II", true},
        {"FLASH-WEKA", true},
        {"WEKA-II", true},
        {"A", true},
        {"7", true},
        {"2024-OP-1", true},
        {"WEKA-", true},
        {"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345", true},   /* 32 */
        {"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456", false}, /* 33 */
        {"", false},
        {"-WEKA", false},
        {"weka-ii", false},
        {"WEKA II", false},
        {"WEKA_II", false},
        {"WEKA.II", false},
        {"WEKA\n", false},
    };
    for (size_t i = 0; i < N_ROWS(rows); i++) {
        if (ops_valid_operation(rows[i].op) != rows[i].want)
            fail_msg("operation \"%s\": expected %s", rows[i].op,
                     rows[i].want ? "valid" : "invalid");
    }
    assert_false(ops_valid_operation(NULL));
}

static void uuids_must_be_canonical_lower_case(void **state) {
    (void)state;
    static const struct {
        const char *s;
        bool want;
    } rows[] = {
        {"2adfa995-4ed5-5357-a6ef-8a8df4755b2f", true},
        {"00000000-0000-0000-0000-000000000000", true},
        {"2ADFA995-4ED5-5357-A6EF-8A8DF4755B2F", false},
        {"2adfa9954ed55357a6ef8a8df4755b2f", false},
        {"{2adfa995-4ed5-5357-a6ef-8a8df4755b2f}", false},
        {"2adfa995-4ed5-5357-a6ef-8a8df4755b2", false},
        {"2adfa995-4ed5-5357-a6ef-8a8df4755b2f0", false},
        {"2adfa995-4ed5-5357-a6ef_8a8df4755b2f", false},
        {"2adfa995-4ed5-5357-a6eg-8a8df4755b2f", false},
        {"2adfa995-4ed5-5357-a6ef-8a8df4755-2f", false},
        {"2adfa995-4ed5-5357-a6ef-8a8df4755b2\xff", false},
        {"2adfa995-", false},
        {"", false},
    };
    for (size_t i = 0; i < N_ROWS(rows); i++) {
        uint8_t raw[16];
        char back[OPS_EVENT_ID_LEN + 1];
        if (ops_valid_uuid(rows[i].s) != rows[i].want)
            fail_msg("uuid \"%s\": expected %s", rows[i].s, rows[i].want ? "valid" : "invalid");
        /* the 16 bytes say the same and give the same text back */
        if ((ops_uuid_raw(rows[i].s, raw) == 0) != rows[i].want)
            fail_msg("uuid \"%s\": raw form disagrees", rows[i].s);
        if (rows[i].want) {
            ops_uuid_text(raw, back);
            assert_string_equal(back, rows[i].s);
        }
    }
    assert_false(ops_valid_uuid(NULL));
}

/* ---- event validation ---------------------------------------------------- */

/* A valid event of each kind, modelled on a Flash-Weka report from Cameroon. */
static void good_event(ops_event_t *ev, ops_kind_t kind) {
    ops_event_init(ev);
    ev->kind = kind;
    strcpy(ev->operation, "FLASH-WEKA");
    strcpy(ev->country, "CM");
    ev->occurred_at = NOW_MS - 3600 * 1000;
    ev->reported_at = NOW_MS;
    strcpy(ev->source_ref, "CM-2023-0042");
    ev->has_location = true;
    strcpy(ev->location, "Yaounde");
    ev->count = 30;
    if (kind == OPS_KIND_RESCUE || kind == OPS_KIND_MIGRANT)
        ev->minors = 5;
    if (kind == OPS_KIND_RESCUE) {
        ev->referred = 20;
        ev->exploitation = OPS_EXPLOITATION_SEXUAL;
        ev->site = OPS_SITE_HOTEL;
    }
    ev->offence = OPS_OFFENCE_HUMAN_TRAFFICKING;
    ev->category = OPS_CATEGORY_DOCUMENTS;
    if (kind != OPS_KIND_SEIZURE) {
        ev->n_nationalities = 2;
        strcpy(ev->nationalities[0], "NG");
        strcpy(ev->nationalities[1], "CM");
    }
    ops_event_id_derive(ev->operation, ev->country, kind, ev->source_ref, ev->event_id);
}

static void good_events_of_every_kind_pass(void **state) {
    (void)state;
    for (int k = 0; k < OPS_KIND_COUNT; k++) {
        ops_event_t ev;
        const char *field = "untouched";
        char err[256] = "untouched";
        good_event(&ev, (ops_kind_t)k);
        assert_int_equal(ops_validate_event(&ev, NOW_MS, &field, err, sizeof(err)), 0);
        assert_null(field);
        assert_string_equal(err, "");
    }
}

/* Each edge of each rule, on the accepting side. */
static void values_on_the_bounds_pass(void **state) {
    (void)state;
    ops_event_t ev;
    char err[256];
    good_event(&ev, OPS_KIND_RESCUE);
    ev.occurred_at = OPS_VALID_MIN_TIME_MS;
    ev.reported_at = NOW_MS + OPS_VALID_MAX_FUTURE_MS;
    ev.count = OPS_COUNT_MAX;
    ev.minors = OPS_COUNT_MAX;
    ev.referred = OPS_COUNT_MAX;
    ev.has_location = false;
    strcpy(ev.location, "\t ignored when absent");
    memset(ev.source_ref, 'R', OPS_SOURCE_REF_MAX);
    ev.source_ref[OPS_SOURCE_REF_MAX] = '\0';
    ev.n_nationalities = OPS_NATIONALITIES_MAX;
    for (int i = 0; i < OPS_NATIONALITIES_MAX; i++)
        strcpy(ev.nationalities[i], "PH");
    assert_int_equal(ops_validate_event(&ev, NOW_MS, NULL, err, sizeof(err)), 0);

    good_event(&ev, OPS_KIND_MIGRANT);
    ev.minors = 0;
    ev.count = 1;
    ev.n_nationalities = 0;
    memset(ev.location, 'L', OPS_LOCATION_MAX);
    ev.location[OPS_LOCATION_MAX] = '\0';
    assert_int_equal(ops_validate_event(&ev, NOW_MS, NULL, err, sizeof(err)), 0);
}

/* National systems export late and correct earlier records, so a report may
 * carry an export time before the event time; only the bounds apply. */
static void reported_at_before_occurred_at_passes(void **state) {
    (void)state;
    ops_event_t ev;
    char err[256];
    good_event(&ev, OPS_KIND_ARREST);
    ev.reported_at = ev.occurred_at - 7 * DAY_MS;
    assert_int_equal(ops_validate_event(&ev, NOW_MS, NULL, err, sizeof(err)), 0);
}

/* An enum the kind does not carry never reaches the wire, so it is not judged. */
static void enums_of_other_kinds_are_not_judged(void **state) {
    (void)state;
    ops_event_t ev;
    char err[256];
    good_event(&ev, OPS_KIND_ARREST);
    ev.category = (ops_category_t)99;
    ev.site = (ops_site_t)-1;
    ev.exploitation = (ops_exploitation_t)42;
    assert_int_equal(ops_validate_event(&ev, NOW_MS, NULL, err, sizeof(err)), 0);
}

/* Mutations that each break exactly one rule of a good event. */
static void bad_uuid_upper(ops_event_t *ev) {
    strcpy(ev->event_id, "2ADFA995-4ED5-5357-A6EF-8A8DF4755B2F");
}
static void bad_uuid_empty(ops_event_t *ev) {
    ev->event_id[0] = '\0';
}
static void bad_op_lower(ops_event_t *ev) {
    strcpy(ev->operation, "flash-weka");
}
static void bad_op_dash(ops_event_t *ev) {
    strcpy(ev->operation, "-WEKA");
}
static void bad_op_empty(ops_event_t *ev) {
    ev->operation[0] = '\0';
}
static void bad_cc_xk(ops_event_t *ev) {
    strcpy(ev->country, "XK");
}
static void bad_cc_uk(ops_event_t *ev) {
    strcpy(ev->country, "UK");
}
static void bad_cc_lower(ops_event_t *ev) {
    strcpy(ev->country, "cm");
}
static void bad_occurred_early(ops_event_t *ev) {
    ev->occurred_at = OPS_VALID_MIN_TIME_MS - 1;
}
static void bad_occurred_future(ops_event_t *ev) {
    ev->occurred_at = NOW_MS + OPS_VALID_MAX_FUTURE_MS + 1;
}
static void bad_reported_zero(ops_event_t *ev) {
    ev->reported_at = 0;
}
static void bad_reported_future(ops_event_t *ev) {
    ev->reported_at = NOW_MS + 2 * DAY_MS;
}
static void bad_ref_empty(ops_event_t *ev) {
    ev->source_ref[0] = '\0';
}
static void bad_ref_control(ops_event_t *ev) {
    strcpy(ev->source_ref, "CM-42\n7");
}
static void bad_ref_unterminated(ops_event_t *ev) {
    memset(ev->source_ref, 'Q', sizeof(ev->source_ref));
}
static void bad_location_control(ops_event_t *ev) {
    strcpy(ev->location, "Yaounde\x1b[2J");
}
static void bad_location_unterminated(ops_event_t *ev) {
    memset(ev->location, 'W', sizeof(ev->location));
}
static void bad_count_zero(ops_event_t *ev) {
    ev->count = 0;
}
static void bad_count_negative(ops_event_t *ev) {
    ev->count = -5;
}
static void bad_count_huge(ops_event_t *ev) {
    ev->count = OPS_COUNT_MAX + 1;
}
static void bad_minors_over(ops_event_t *ev) {
    ev->minors = 31;
}
static void bad_minors_negative(ops_event_t *ev) {
    ev->minors = -1;
}
static void bad_minors_on_arrest(ops_event_t *ev) {
    ev->minors = 3;
}
static void bad_referred_over(ops_event_t *ev) {
    ev->referred = 44;
}
static void bad_referred_negative(ops_event_t *ev) {
    ev->referred = -2;
}
static void bad_referred_on_migrant(ops_event_t *ev) {
    ev->referred = 2;
}
static void bad_offence(ops_event_t *ev) {
    ev->offence = OPS_OFFENCE_COUNT;
}
static void bad_exploitation(ops_event_t *ev) {
    ev->exploitation = (ops_exploitation_t)99;
}
static void bad_site(ops_event_t *ev) {
    ev->site = (ops_site_t)-1;
}
static void bad_category(ops_event_t *ev) {
    ev->category = (ops_category_t)77;
}
static void bad_nationality_xk(ops_event_t *ev) {
    strcpy(ev->nationalities[1], "XK");
}
static void bad_nationality_unterminated(ops_event_t *ev) {
    memcpy(ev->nationalities[0], "NGA", 3);
}
static void bad_nationalities_many(ops_event_t *ev) {
    ev->n_nationalities = OPS_NATIONALITIES_MAX + 1;
}
static void bad_nationalities_on_seizure(ops_event_t *ev) {
    ev->n_nationalities = 1;
    strcpy(ev->nationalities[0], "FR");
}
static void bad_kind(ops_event_t *ev) {
    ev->kind = OPS_KIND_COUNT;
}

static void each_broken_rule_names_its_field_and_value(void **state) {
    (void)state;
    static const struct {
        ops_kind_t kind;
        void (*mutate)(ops_event_t *);
        const char *field;
        const char *mentions; /* the offending value, as the message shows it */
    } rows[] = {
        {OPS_KIND_ARREST, bad_uuid_upper, "event_id", "2ADFA995-4ED5"},
        {OPS_KIND_ARREST, bad_uuid_empty, "event_id", "\"\""},
        {OPS_KIND_ARREST, bad_op_lower, "operation", "\"flash-weka\""},
        {OPS_KIND_RESCUE, bad_op_dash, "operation", "\"-WEKA\""},
        {OPS_KIND_RESCUE, bad_op_empty, "operation", "\"\""},
        {OPS_KIND_MIGRANT, bad_cc_xk, "country", "\"XK\""},
        {OPS_KIND_MIGRANT, bad_cc_uk, "country", "\"UK\""},
        {OPS_KIND_SEIZURE, bad_cc_lower, "country", "\"cm\""},
        {OPS_KIND_ARREST, bad_occurred_early, "occurred_at", "1999-12-31T23:59:59.999Z"},
        {OPS_KIND_RESCUE, bad_occurred_future, "occurred_at", "2024-10-01T14:05:00.001Z"},
        {OPS_KIND_MIGRANT, bad_reported_zero, "reported_at", "1970-01-01T00:00:00.000Z"},
        {OPS_KIND_SEIZURE, bad_reported_future, "reported_at", "2024-10-02T14:05:00.000Z"},
        {OPS_KIND_ARREST, bad_ref_empty, "source_ref", "empty"},
        {OPS_KIND_ARREST, bad_ref_control, "source_ref", "\"CM-42\\x0a7\""},
        {OPS_KIND_RESCUE, bad_ref_unterminated, "source_ref", "QQQQ"},
        {OPS_KIND_MIGRANT, bad_location_control, "location", "Yaounde\\x1b[2J"},
        {OPS_KIND_SEIZURE, bad_location_unterminated, "location", "WWWW"},
        {OPS_KIND_ARREST, bad_count_zero, "persons", "0 is not in 1..100000"},
        {OPS_KIND_MIGRANT, bad_count_negative, "migrants", "-5"},
        {OPS_KIND_SEIZURE, bad_count_huge, "items", "100001"},
        {OPS_KIND_RESCUE, bad_count_huge, "victims", "100001"},
        {OPS_KIND_RESCUE, bad_minors_over, "minors", "31 is more than victims (30)"},
        {OPS_KIND_MIGRANT, bad_minors_over, "minors", "31 is more than migrants (30)"},
        {OPS_KIND_MIGRANT, bad_minors_negative, "minors", "-1"},
        {OPS_KIND_ARREST, bad_minors_on_arrest, "minors", "3"},
        {OPS_KIND_RESCUE, bad_referred_over, "referred", "44 is more than victims (30)"},
        {OPS_KIND_RESCUE, bad_referred_negative, "referred", "-2"},
        {OPS_KIND_MIGRANT, bad_referred_on_migrant, "referred", "2"},
        {OPS_KIND_ARREST, bad_offence, "offence", "7"},
        {OPS_KIND_RESCUE, bad_exploitation, "exploitation", "99"},
        {OPS_KIND_RESCUE, bad_site, "site", "-1"},
        {OPS_KIND_SEIZURE, bad_category, "category", "77"},
        {OPS_KIND_RESCUE, bad_nationality_xk, "victim_nationalities", "\"XK\""},
        {OPS_KIND_ARREST, bad_nationality_unterminated, "suspect_nationalities", "\"NG\""},
        {OPS_KIND_ARREST, bad_nationalities_many, "suspect_nationalities", "65"},
        {OPS_KIND_SEIZURE, bad_nationalities_on_seizure, "nationalities", "1"},
        {OPS_KIND_ARREST, bad_kind, "kind", "4"},
    };
    for (size_t i = 0; i < N_ROWS(rows); i++) {
        ops_event_t ev;
        const char *field = NULL;
        char err[256];
        char prefix[64];
        good_event(&ev, rows[i].kind);
        rows[i].mutate(&ev);
        if (ops_validate_event(&ev, NOW_MS, &field, err, sizeof(err)) != -1)
            fail_msg("row %zu (%s): accepted", i, rows[i].field);
        assert_non_null(field);
        assert_string_equal(field, rows[i].field);
        snprintf(prefix, sizeof(prefix), "%s: ", rows[i].field);
        if (strncmp(err, prefix, strlen(prefix)) != 0 || strstr(err, rows[i].mentions) == NULL)
            fail_msg("row %zu: message \"%s\" lacks \"%s\" or \"%s\"", i, err, prefix,
                     rows[i].mentions);
    }
}

/* The message names the value but never copies control bytes or a whole
 * oversized field into a terminal or rejects file. */
static void error_messages_are_escaped_and_bounded(void **state) {
    (void)state;
    ops_event_t ev;
    char err[512];
    good_event(&ev, OPS_KIND_ARREST);
    memset(ev.source_ref, '\x07', sizeof(ev.source_ref));
    assert_int_equal(ops_validate_event(&ev, NOW_MS, NULL, err, sizeof(err)), -1);
    assert_null(strchr(err, '\x07'));
    assert_true(strlen(err) < 250);
    assert_non_null(strstr(err, "..."));

    /* Tiny, absent buffers are fine. */
    char tiny[6];
    const char *field = NULL;
    assert_int_equal(ops_validate_event(&ev, NOW_MS, &field, tiny, sizeof(tiny)), -1);
    assert_string_equal(tiny, "sourc");
    assert_string_equal(field, "source_ref");
    assert_int_equal(ops_validate_event(&ev, NOW_MS, NULL, NULL, 0), -1);
    assert_int_equal(ops_validate_event(NULL, NOW_MS, &field, err, sizeof(err)), -1);
}

/* ---- the consumers' form and the accepted time range ---------------------- */

static void hv_occ_int64_max(ops_event_t *ev) {
    ev->occurred_at = INT64_MAX;
}
static void hv_occ_year_9999(ops_event_t *ev) {
    ev->occurred_at = 253402300799000LL;
}
static void hv_occ_1969(ops_event_t *ev) {
    ev->occurred_at = -86400000LL;
}
static void hv_occ_int64_min(ops_event_t *ev) {
    ev->occurred_at = INT64_MIN;
}
static void hv_rep_future(ops_event_t *ev) {
    ev->reported_at = NOW_MS + DAY_MS + 1;
}
static void hv_victims_negative(ops_event_t *ev) {
    ev->count = -3;
}
static void hv_victims_zero(ops_event_t *ev) {
    ev->count = 0;
    ev->minors = 0;
    ev->referred = 0;
}
static void hv_victims_int32_max(ops_event_t *ev) {
    ev->count = INT32_MAX;
}
static void hv_minors_above(ops_event_t *ev) {
    ev->count = 5;
    ev->minors = 6;
    ev->referred = 0;
}
static void hv_country(ops_event_t *ev) {
    strcpy(ev->country, "zz");
}

/* ops_event_validate, the form opstream-count and opstream-alert put in
 * opstream.error: the class word "invalid", then the producer's message
 * naming the field and the value, for the absurd values a foreign producer
 * can send. One implementation behind both forms. */
static void consumer_form_names_the_field_and_the_value(void **state) {
    (void)state;
    static const struct {
        void (*mutate)(ops_event_t *);
        const char *want;
    } rows[] = {
        {hv_occ_int64_max, "invalid: occurred_at: 292278994-08-17T07:12:55.807Z "
                           "(9223372036854775807) is more than 1 day in the future "
                           "(now is 2024-09-30T14:05:00.000Z)"},
        {hv_occ_year_9999, "invalid: occurred_at: 9999-12-31T23:59:59.000Z (253402300799000) is "
                           "more than 1 day in the future (now is 2024-09-30T14:05:00.000Z)"},
        {hv_occ_1969, "invalid: occurred_at: 1969-12-31T00:00:00.000Z (-86400000) is before "
                      "2000-01-01T00:00:00.000Z"},
        {hv_occ_int64_min, "invalid: occurred_at: -292275055-05-16T16:47:04.192Z "
                           "(-9223372036854775808) is before 2000-01-01T00:00:00.000Z"},
        {hv_rep_future, "invalid: reported_at: 2024-10-01T14:05:00.001Z (1727791500001) is more "
                        "than 1 day in the future (now is 2024-09-30T14:05:00.000Z)"},
        {hv_victims_negative, "invalid: victims: -3 is not in 1..100000"},
        {hv_victims_zero, "invalid: victims: 0 is not in 1..100000"},
        {hv_victims_int32_max, "invalid: victims: 2147483647 is not in 1..100000"},
        {hv_minors_above, "invalid: minors: 6 is more than victims (5)"},
        {hv_country, "invalid: country: \"zz\" is not an assigned ISO 3166-1 alpha-2 code"},
    };
    for (size_t i = 0; i < N_ROWS(rows); i++) {
        ops_event_t ev;
        char err[512], perr[512];
        const char *field = NULL;
        good_event(&ev, OPS_KIND_RESCUE);
        rows[i].mutate(&ev);
        assert_int_equal(ops_event_validate(&ev, NULL, NOW_MS, err, sizeof(err)), -1);
        if (strcmp(err, rows[i].want) != 0)
            fail_msg("row %zu: \"%s\", expected \"%s\"", i, err, rows[i].want);
        /* The producer's form is the same judgement and the same words. */
        assert_int_equal(ops_validate_event(&ev, NOW_MS, &field, perr, sizeof(perr)), -1);
        assert_string_equal(perr, err + strlen("invalid: "));
    }
    ops_event_t ev;
    char err[64] = "untouched";
    good_event(&ev, OPS_KIND_MIGRANT);
    assert_int_equal(ops_event_validate(&ev, NULL, NOW_MS, err, sizeof(err)), 0);
    assert_string_equal(err, "");
    assert_int_equal(ops_event_validate(NULL, NULL, NOW_MS, err, sizeof(err)), -1);
}

/* Limits move both bounds, for both forms, exactly at their edges. */
static void time_limits_are_applied_at_their_edges(void **state) {
    (void)state;
    const ops_event_limits_t lim = {.time_min_ms = NOW_MS - 30 * DAY_MS,
                                    .time_max_future_ms = 3600 * 1000};
    static const struct {
        int64_t occurred_at;
        int ok;
    } rows[] =
        {
            {NOW_MS - 30 * DAY_MS, 0},   {NOW_MS - 30 * DAY_MS - 1, -1},
            {NOW_MS + 3600 * 1000, 0},   {NOW_MS + 3600 * 1000 + 1, -1},
            {OPS_VALID_MIN_TIME_MS, -1}, /* fine by default, too old here */
        };
    for (size_t i = 0; i < N_ROWS(rows); i++) {
        ops_event_t ev;
        char err[256];
        good_event(&ev, OPS_KIND_ARREST);
        ev.occurred_at = ev.reported_at = rows[i].occurred_at;
        if (ops_event_validate(&ev, &lim, NOW_MS, err, sizeof(err)) != rows[i].ok)
            fail_msg("row %zu: %d expected, message \"%s\"", i, rows[i].ok, err);
        assert_int_equal(ops_validate_event_limits(&ev, &lim, NOW_MS, NULL, err, sizeof(err)),
                         rows[i].ok);
    }
    ops_event_t ev;
    char err[256];
    good_event(&ev, OPS_KIND_ARREST);
    ev.occurred_at = NOW_MS + 3600 * 1000 + 1;
    assert_int_equal(ops_event_validate(&ev, &lim, NOW_MS, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "more than 1 hour in the future"));
    /* A now near the end of int64 cannot overflow the bound. */
    good_event(&ev, OPS_KIND_ARREST);
    ev.occurred_at = INT64_MAX;
    assert_int_equal(ops_event_validate(&ev, NULL, INT64_MAX - 5, err, sizeof(err)), 0);
}

static void time_limits_come_from_the_config(void **state) {
    (void)state;
    static const struct {
        const char *min, *future; /* NULL: not set */
        int rc;
        int64_t want_min, want_future_ms;
    } rows[] = {
        {NULL, NULL, 0, OPS_VALID_MIN_TIME_MS, OPS_VALID_MAX_FUTURE_MS},
        {"2024-09-01T00:00:00Z", NULL, 0, 1725148800000LL, OPS_VALID_MAX_FUTURE_MS},
        {"1725148800000", "3600", 0, 1725148800000LL, 3600 * 1000LL},
        {"2024-09-01T02:00:00+02:00", "0", 0, 1725148800000LL, 0},
        {"1970-01-01T00:00:00Z", "31622400", 0, 0, 31622400 * 1000LL},
    };
    for (size_t i = 0; i < N_ROWS(rows); i++) {
        ops_config_t *cfg = ops_config_new();
        ops_event_limits_t lim;
        char err[256];
        assert_non_null(cfg);
        if (rows[i].min != NULL)
            assert_int_equal(
                ops_config_set(cfg, "opstream.event.time.min", rows[i].min, err, sizeof(err)), 0);
        if (rows[i].future != NULL)
            assert_int_equal(ops_config_set(cfg, "opstream.event.time.max.future.s", rows[i].future,
                                            err, sizeof(err)),
                             0);
        assert_int_equal(ops_event_limits_from_config(cfg, &lim, err, sizeof(err)), rows[i].rc);
        assert_int_equal(lim.time_min_ms, rows[i].want_min);
        assert_int_equal(lim.time_max_future_ms, rows[i].want_future_ms);
        ops_config_destroy(cfg);
    }
    /* Bad values are refused when set, naming the key. */
    static const struct {
        const char *key, *value;
    } bad[] = {
        {"opstream.event.time.min", "yesterday"},
        {"opstream.event.time.min", "2024-09-01T00:00:00"}, /* no zone */
        {"opstream.event.time.min", "1969-12-31T23:59:59Z"},
        {"opstream.event.time.max.future.s", "-1"},
        {"opstream.event.time.max.future.s", "31622401"},
        {"opstream.dedupe.window.s", "-1"},
    };
    for (size_t i = 0; i < N_ROWS(bad); i++) {
        ops_config_t *cfg = ops_config_new();
        char err[256] = "";
        assert_non_null(cfg);
        if (ops_config_set(cfg, bad[i].key, bad[i].value, err, sizeof(err)) != -1)
            fail_msg("%s=%s accepted", bad[i].key, bad[i].value);
        assert_true(strlen(err) > 0);
        ops_config_destroy(cfg);
    }
    /* 0 is a valid dedupe window: off. */
    ops_config_t *cfg = ops_config_new();
    char err[256];
    assert_int_equal(ops_config_set(cfg, "opstream.dedupe.window.s", "0", err, sizeof(err)), 0);
    assert_int_equal(ops_config_get_int(cfg, "opstream.dedupe.window.s"), 0);
    ops_config_destroy(cfg);
    ops_event_limits_t lim;
    assert_int_equal(ops_event_limits_from_config(NULL, &lim, err, sizeof(err)), 0);
    assert_int_equal(lim.time_min_ms, OPS_VALID_MIN_TIME_MS);
}

/* ---- event ids ----------------------------------------------------------- */

static void event_id_is_a_pinned_version_5_uuid(void **state) {
    (void)state;
    char id[OPS_EVENT_ID_LEN + 1];
    /* Pinned: uuid5(8df60a3b-629c-40fe-badc-30dbe57ba70d,
     * "FLASH-WEKA\x1fCM\x1frescue\x1fCM-2023-0042"), computed independently.
     * A change here changes every derived id in every deployment. */
    ops_event_id_derive("FLASH-WEKA", "CM", OPS_KIND_RESCUE, "CM-2023-0042", id);
    assert_string_equal(id, "2adfa995-4ed5-5357-a6ef-8a8df4755b2f");
    assert_true(ops_valid_uuid(id));
    assert_int_equal(id[14], '5');
    assert_non_null(strchr("89ab", id[19]));
}

/* Pinned vectors, one per row: each expected id was computed once, outside
 * this code base (Python's uuid.uuid5 over the namespace and the parts
 * joined by 0x1f), and written here as a literal. Any change of the
 * derivation (namespace, order or separator of the parts, kind names, the
 * SHA-1 or UUID code behind it) fails a row: re-sent records would stop
 * counting once. Covers every kind, an empty and a 128-byte source_ref
 * (a multi-block SHA-1 input) and UTF-8 text. */
static void event_ids_are_pinned_literals(void **state) {
    (void)state;
    static const struct {
        const char *op, *cc;
        ops_kind_t kind;
        const char *ref, *want;
    } rows[] = {
        {"FLASH-WEKA", "CM", OPS_KIND_RESCUE, "CM-2023-0042",
         "2adfa995-4ed5-5357-a6ef-8a8df4755b2f"},
        {"FLASH-WEKA", "CM", OPS_KIND_ARREST, "CM-2023-0042",
         "84f2afd8-714f-54d8-bbeb-110fc90f3d71"},
        {"FLASH-WEKA", "CM", OPS_KIND_MIGRANT, "CM-2023-0042",
         "e1d86a7f-17e6-5e90-a137-78cb7bb1a0b5"},
        {"FLASH-WEKA", "CM", OPS_KIND_SEIZURE, "CM-2023-0042",
         "1977af95-eb50-5640-a353-8acda5e9b77a"},
        {"LIBERTERRA-II", "PH", OPS_KIND_RESCUE, "PH-2024-0001",
         "b8430c19-d97b-56a8-b1de-842d1f64d2ff"},
        {"WEKA-II", "NG", OPS_KIND_ARREST, "NGP-17", "53bd04b9-c749-5b8e-8653-fb1f86c40726"},
        {"LIBERTERRA-II", "BR", OPS_KIND_MIGRANT, "BR/PF/2024/000123",
         "acc6b540-7492-5a68-9bb0-a3da100eca02"},
        {"OP1", "GB", OPS_KIND_SEIZURE, "x", "fbaea7d9-c5d9-50a6-9ec0-2a60c7bbc8ad"},
        {"FLASH-WEKA", "CM", OPS_KIND_RESCUE, "", "8c9b59d7-7eab-5d23-8a08-6d52450b51b6"},
        {"FLASH-WEKA", "CM", OPS_KIND_RESCUE, "S\xc3\xa3o Paulo #7",
         "423ef26a-b535-59a7-a87b-45aaac17804f"},
        {"A", "AD", OPS_KIND_ARREST,
         "RRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRR"
         "RRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRR",
         "d51723a9-3fd3-5758-bde9-9ee1f46fe4b2"},
        {"LIBERTERRA-II", "PH", OPS_KIND_ARREST, "PNP-2024-4412",
         "75f036ed-a95d-5cd6-bf8f-f77f24e4f42f"},
        {"FLASH-WEKA", "CM", OPS_KIND_RESCUE, "", "8c9b59d7-7eab-5d23-8a08-6d52450b51b6"},
        {"WEKA-II", "SL", OPS_KIND_SEIZURE, "SL/2024/\xc3\xa4-7",
         "ee153083-3dff-570c-8d4e-b42b4dddc5f1"},
        {"FLASH-WEKAC", "M", OPS_KIND_MIGRANT, "CM-2023-0042",
         "4e402a0a-c5fb-5af7-bd80-ef7780965b15"},
    };
    for (size_t i = 0; i < N_ROWS(rows); i++) {
        char id[OPS_EVENT_ID_LEN + 1];
        ops_event_id_derive(rows[i].op, rows[i].cc, rows[i].kind, rows[i].ref, id);
        if (strcmp(id, rows[i].want) != 0)
            fail_msg("row %zu (%s, %s, %s, '%s'): derived %s, pinned %s", i, rows[i].op, rows[i].cc,
                     ops_kind_name(rows[i].kind), rows[i].ref, id, rows[i].want);
    }
}

static void event_id_is_deterministic_and_depends_on_every_component(void **state) {
    (void)state;
    static const struct {
        const char *op, *cc;
        ops_kind_t kind;
        const char *ref;
    } rows[] = {
        {"FLASH-WEKA", "CM", OPS_KIND_RESCUE, "CM-2023-0042"}, /* the base */
        {"WEKA-II", "CM", OPS_KIND_RESCUE, "CM-2023-0042"},
        {"FLASH-WEKA", "CI", OPS_KIND_RESCUE, "CM-2023-0042"},
        {"FLASH-WEKA", "CM", OPS_KIND_ARREST, "CM-2023-0042"},
        {"FLASH-WEKA", "CM", OPS_KIND_MIGRANT, "CM-2023-0042"},
        {"FLASH-WEKA", "CM", OPS_KIND_SEIZURE, "CM-2023-0042"},
        {"FLASH-WEKA", "CM", OPS_KIND_RESCUE, "CM-2023-0043"},
        {"FLASH-WEKA", "CM", OPS_KIND_RESCUE, "cm-2023-0042"},
        /* The separator keeps moved boundaries apart. */
        {"FLASH-WEKAC", "M", OPS_KIND_RESCUE, "CM-2023-0042"},
        {"FLASH-WEKA", "CM", OPS_KIND_RESCUE, ""},
    };
    char ids[N_ROWS(rows)][OPS_EVENT_ID_LEN + 1];
    for (size_t i = 0; i < N_ROWS(rows); i++) {
        char again[OPS_EVENT_ID_LEN + 1];
        ops_event_id_derive(rows[i].op, rows[i].cc, rows[i].kind, rows[i].ref, ids[i]);
        ops_event_id_derive(rows[i].op, rows[i].cc, rows[i].kind, rows[i].ref, again);
        assert_string_equal(ids[i], again);
        assert_true(ops_valid_uuid(ids[i]));
        assert_int_equal(ids[i][14], '5');
        assert_non_null(strchr("89ab", ids[i][19]));
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(ids[i], ids[j]);
    }
}

/* ---- timestamps ---------------------------------------------------------- */

static void timestamps_in_every_accepted_form_parse(void **state) {
    (void)state;
    static const struct {
        const char *s;
        int64_t want;
    } rows[] = {
        {"2024-09-30T14:05:00Z", 1727705100000LL},
        {"2024-09-30T16:05:00.250+02:00", 1727705100250LL},
        {"2024-09-30T16:05:00.250+0200", 1727705100250LL},
        {"2024-09-30T09:05:00-05:00", 1727705100000LL},
        {"2024-09-30T19:35:00+05:30", 1727705100000LL},
        {"2024-09-30T14:05:00+00:00", 1727705100000LL},
        {"2024-09-30T14:05:00-00:00", 1727705100000LL},
        {"2024-09-30T14:05Z", 1727705100000LL},
        {"2024-09-30T14:05:00.1Z", 1727705100100LL},
        {"2024-09-30T14:05:00.12Z", 1727705100120LL},
        {"2024-09-30T14:05:00.123456789Z", 1727705100123LL},
        {"2024-09-30T14:05:00,5Z", 1727705100500LL},
        {"1727705100000", 1727705100000LL},
        {"0", 0},
        {"9223372036854775807", INT64_MAX},
        {"1970-01-01T00:00:00Z", 0},
        {"1969-12-31T23:59:59.999Z", -1},
        {"2000-01-01T00:00:00Z", OPS_VALID_MIN_TIME_MS},
        {"2000-02-29T12:00:00Z", 951825600000LL},
        {"2024-02-29T00:00:00Z", 1709164800000LL},
        {"2024-12-31T23:59:59.999Z", 1735689599999LL},
        {"2025-01-01T00:30:00+01:00", 1735687800000LL},
        {"9999-12-31T23:59:59.999Z", 253402300799999LL},
        {"0001-01-01T00:00:00Z", -62135596800000LL},
    };
    for (size_t i = 0; i < N_ROWS(rows); i++) {
        int64_t ms = -42;
        char err[256] = "";
        if (ops_validate_parse_timestamp(rows[i].s, &ms, err, sizeof(err)) != 0)
            fail_msg("\"%s\" refused: %s", rows[i].s, err);
        if (ms != rows[i].want)
            fail_msg("\"%s\" gave %lld, want %lld", rows[i].s, (long long)ms,
                     (long long)rows[i].want);
    }
}

static void bad_timestamps_are_refused_with_a_reason(void **state) {
    (void)state;
    static const struct {
        const char *s;
        const char *mentions;
    } rows[] = {
        {"2024-09-30T14:05:00", "zone"},
        {"2024-09-30T14:05:00.250", "zone"},
        {"2024-13-01T00:00:00Z", "month 13"},
        {"2024-00-10T00:00:00Z", "month 00"},
        {"2024-02-30T00:00:00Z", "day 30"},
        {"2023-02-29T00:00:00Z", "day 29"},
        {"1900-02-29T00:00:00Z", "day 29"},
        {"2024-04-31T00:00:00Z", "day 31"},
        {"2024-01-00T00:00:00Z", "day 00"},
        {"2024-09-30T24:00:00Z", "hour 24"},
        {"2024-09-30T14:60:00Z", "minute 60"},
        {"2024-09-30T14:05:60Z", "second 60"},
        {"2024-09-30 14:05:00Z", "'T'"},
        {"2024-09-30", "'T'"},
        {"2024-09-30T14Z", "HH:MM"},
        {"2024-09-30T14:05:00.Z", "fraction"},
        {"2024-09-30T14:05:00.1234567891Z", "fraction"},
        {"2024-09-30T14:05:00+24:00", "offset"},
        {"2024-09-30T14:05:00+02:60", "offset"},
        {"2024-09-30T14:05:00+2", "offset hours"},
        {"2024-09-30T14:05:00+02:", "offset minutes"},
        {"2024-09-30T14:05:00Zjunk", "after the time zone"},
        {"2024-09-30T14:05:00 UTC", "time zone"},
        {"24-09-30T14:05:00Z", "not a timestamp"},
        {"garbage", "not a timestamp"},
        {"", "empty"},
        {"9223372036854775808", "out of range"},
        {"99999999999999999999999", "out of range"},
        {"-1727705100000", "negative"},
        {"+1727705100000", "not a timestamp"},
        {"1727705100000ms", "not a timestamp"},
        {"2024-9-30T14:05:00Z", "not a timestamp"},
    };
    for (size_t i = 0; i < N_ROWS(rows); i++) {
        int64_t ms = -42;
        char err[256] = "";
        if (ops_validate_parse_timestamp(rows[i].s, &ms, err, sizeof(err)) != -1)
            fail_msg("\"%s\" accepted as %lld", rows[i].s, (long long)ms);
        assert_int_equal(ms, -42); /* untouched */
        if (strstr(err, rows[i].mentions) == NULL)
            fail_msg("\"%s\": message \"%s\" lacks \"%s\"", rows[i].s, err, rows[i].mentions);
    }
    char err[256];
    int64_t ms;
    assert_int_equal(ops_validate_parse_timestamp(NULL, &ms, err, sizeof(err)), -1);
    assert_int_equal(ops_validate_parse_timestamp("garbage", &ms, NULL, 0), -1);
}

static void formatted_timestamps_are_pinned_and_parse_back(void **state) {
    (void)state;
    static const struct {
        int64_t ms;
        const char *want;
    } rows[] = {
        {1727705100000LL, "2024-09-30T14:05:00.000Z"},
        {1727705100250LL, "2024-09-30T14:05:00.250Z"},
        {0, "1970-01-01T00:00:00.000Z"},
        {-1, "1969-12-31T23:59:59.999Z"},
        {OPS_VALID_MIN_TIME_MS, "2000-01-01T00:00:00.000Z"},
        {951825600000LL, "2000-02-29T12:00:00.000Z"},
        {1709164800000LL, "2024-02-29T00:00:00.000Z"},
        {1735689599999LL, "2024-12-31T23:59:59.999Z"},
        {253402300799999LL, "9999-12-31T23:59:59.999Z"},
        {-62135596800000LL, "0001-01-01T00:00:00.000Z"},
    };
    for (size_t i = 0; i < N_ROWS(rows); i++) {
        char buf[32];
        int64_t back = -42;
        char err[256];
        ops_validate_format_timestamp(rows[i].ms, buf, sizeof(buf));
        assert_string_equal(buf, rows[i].want);
        assert_int_equal(strlen(buf), 24);
        assert_int_equal(ops_validate_parse_timestamp(buf, &back, err, sizeof(err)), 0);
        assert_int_equal(back, rows[i].ms);
    }
    /* A sweep over 30 years in uneven steps: every instant formats and parses back. */
    for (int64_t ms = OPS_VALID_MIN_TIME_MS; ms < OPS_VALID_MIN_TIME_MS + 30 * 366 * DAY_MS;
         ms += 3 * DAY_MS + 3723456) {
        char buf[32];
        int64_t back = -42;
        char err[256];
        ops_validate_format_timestamp(ms, buf, sizeof(buf));
        assert_int_equal(ops_validate_parse_timestamp(buf, &back, err, sizeof(err)), 0);
        assert_int_equal(back, ms);
    }
    /* Extreme values do not crash and stay within the buffer. */
    char small[25];
    ops_validate_format_timestamp(INT64_MIN, small, sizeof(small));
    ops_validate_format_timestamp(INT64_MAX, small, sizeof(small));
    assert_true(strlen(small) < sizeof(small));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(uuid5_matches_the_rfc_9562_example),
        cmocka_unit_test(event_ids_are_pinned_literals),
        cmocka_unit_test(consumer_form_names_the_field_and_the_value),
        cmocka_unit_test(time_limits_are_applied_at_their_edges),
        cmocka_unit_test(time_limits_come_from_the_config),
        cmocka_unit_test(uuid5_of_a_long_name_and_empty_parts_is_pinned),
        cmocka_unit_test(country_table_is_sorted_with_249_assigned_codes),
        cmocka_unit_test(country_codes_accept_assigned_and_refuse_others),
        cmocka_unit_test(operation_codes_follow_the_pattern),
        cmocka_unit_test(uuids_must_be_canonical_lower_case),
        cmocka_unit_test(good_events_of_every_kind_pass),
        cmocka_unit_test(values_on_the_bounds_pass),
        cmocka_unit_test(reported_at_before_occurred_at_passes),
        cmocka_unit_test(enums_of_other_kinds_are_not_judged),
        cmocka_unit_test(each_broken_rule_names_its_field_and_value),
        cmocka_unit_test(error_messages_are_escaped_and_bounded),
        cmocka_unit_test(event_id_is_a_pinned_version_5_uuid),
        cmocka_unit_test(event_id_is_deterministic_and_depends_on_every_component),
        cmocka_unit_test(timestamps_in_every_accepted_form_parse),
        cmocka_unit_test(bad_timestamps_are_refused_with_a_reason),
        cmocka_unit_test(formatted_timestamps_are_pinned_and_parse_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
