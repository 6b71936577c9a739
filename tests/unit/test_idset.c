/*
 * Unit tests of the id set (lib/idset.c) that opstream-alert keeps of the
 * alert ids already published and opstream-alerts of the ids it printed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "opstream/idset.h"
#include "opstream/rules.h"

static void added_ids_are_found_and_others_are_not(void **state) {
    (void)state;
    ops_idset_t s = {0};
    assert_false(ops_idset_has(&s, "3f7c1e52-8a4b-4d09-9c6e-5b2a71d0e8f4"));
    assert_int_equal(ops_idset_add(&s, "3f7c1e52-8a4b-4d09-9c6e-5b2a71d0e8f4"), 1);
    assert_int_equal(ops_idset_add(&s, "3f7c1e52-8a4b-4d09-9c6e-5b2a71d0e8f4"), 0);
    assert_true(ops_idset_has(&s, "3f7c1e52-8a4b-4d09-9c6e-5b2a71d0e8f4"));
    assert_false(ops_idset_has(&s, "3f7c1e52-8a4b-4d09-9c6e-5b2a71d0e8f5"));
    assert_int_equal(s.n, 1);
    /* the empty string is never an id */
    assert_int_equal(ops_idset_add(&s, ""), 0);
    assert_false(ops_idset_has(&s, ""));
    ops_idset_clear(&s);
    assert_false(ops_idset_has(&s, "3f7c1e52-8a4b-4d09-9c6e-5b2a71d0e8f4"));
    ops_idset_clear(NULL);
}

static void many_ids_survive_growth(void **state) {
    (void)state;
    ops_idset_t s = {0};
    char id[OPS_EVENT_ID_LEN + 1], inst[16];
    for (int i = 0; i < 5000; i++) {
        snprintf(inst, sizeof(inst), "%d", i);
        ops_alert_id_derive("r", "OP", "", inst, id);
        assert_int_equal(ops_idset_add(&s, id), 1);
    }
    assert_int_equal(s.n, 5000);
    assert_true(s.cap >= 10000);
    for (int i = 0; i < 5000; i++) {
        snprintf(inst, sizeof(inst), "%d", i);
        ops_alert_id_derive("r", "OP", "", inst, id);
        assert_true(ops_idset_has(&s, id));
        assert_int_equal(ops_idset_add(&s, id), 0);
        snprintf(inst, sizeof(inst), "x%d", i);
        ops_alert_id_derive("r", "OP", "", inst, id);
        assert_false(ops_idset_has(&s, id));
    }
    ops_idset_clear(&s);
}

/* Ids that are no canonical UUID are held as text, apart from the UUIDs;
 * matching stays that of the text (its first 36 characters, case kept). */
static void other_ids_are_held_as_text_and_match_as_before(void **state) {
    (void)state;
    static const struct {
        const char *id;
        const char *same; /* another spelling of the same id, or NULL */
        const char *other;
    } rows[] = {
        {"3F7C1E52-8A4B-4D09-9C6E-5B2A71D0E8F4", NULL, "3f7c1e52-8a4b-4d09-9c6e-5b2a71d0e8f4"},
        {"00000000-0000-0000-0000-000000000000", NULL, "00000000-0000-0000-0000-000000000001"},
        {"not-a-uuid", NULL, "not-a-uuid2"},
        {"3f7c1e52-8a4b-4d09-9c6e-5b2a71d0e8f", NULL, "3f7c1e52-8a4b-4d09-9c6e-5b2a71d0e8f0"},
        {"3f7c1e52x8a4b-4d09-9c6e-5b2a71d0e8f4", NULL, "3f7c1e52-8a4b-4d09-9c6e-5b2a71d0e8f4"},
        {"aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee-tail",
         "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeef"},
        /* longer than an id: its first 36 characters are kept and matched */
        {"operation-PH-source-ref-0123456789-abcdef", "operation-PH-source-ref-0123456789-abXYZ",
         "operation-PH-source-ref-0123456789-b"},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        ops_idset_t s = {0};
        assert_int_equal(ops_idset_add(&s, rows[i].id), 1);
        assert_true(ops_idset_has(&s, rows[i].id));
        assert_int_equal(ops_idset_add(&s, rows[i].id), 0);
        if (rows[i].same != NULL) {
            assert_true(ops_idset_has(&s, rows[i].same));
            assert_int_equal(ops_idset_add(&s, rows[i].same), 0);
        }
        if (ops_idset_has(&s, rows[i].other))
            fail_msg("row %zu: %s taken for %s", i, rows[i].other, rows[i].id);
        assert_int_equal(ops_idset_add(&s, rows[i].other), 1);
        assert_int_equal(s.n, 2);
        ops_idset_clear(&s);
    }
}

static void many_text_ids_survive_growth_beside_uuids(void **state) {
    (void)state;
    ops_idset_t s = {0};
    char id[OPS_EVENT_ID_LEN + 1], inst[16];
    for (int i = 0; i < 3000; i++) {
        snprintf(id, sizeof(id), "ref-%d", i);
        assert_int_equal(ops_idset_add(&s, id), 1);
        snprintf(inst, sizeof(inst), "%d", i);
        ops_alert_id_derive("r", "OP", "", inst, id);
        assert_int_equal(ops_idset_add(&s, id), 1);
    }
    assert_int_equal(s.n, 6000);
    for (int i = 0; i < 3000; i++) {
        snprintf(id, sizeof(id), "ref-%d", i);
        assert_true(ops_idset_has(&s, id));
        snprintf(id, sizeof(id), "ref-%d-", i);
        assert_false(ops_idset_has(&s, id));
        snprintf(inst, sizeof(inst), "%d", i);
        ops_alert_id_derive("r", "OP", "", inst, id);
        assert_true(ops_idset_has(&s, id));
    }
    ops_idset_clear(&s);
}

/* The i-th of the 128 UUIDs (i < 128) or of the 8 text ids (i >= 128) the
 * growth test uses. */
static const char *nth_id(int i, char id[OPS_EVENT_ID_LEN + 1]) {
    char inst[16];
    if (i >= 128) {
        snprintf(id, OPS_EVENT_ID_LEN + 1, "ref-%d", i - 128);
        return id;
    }
    snprintf(inst, sizeof(inst), "%d", i);
    ops_alert_id_derive("r", "OP", "", inst, id);
    return id;
}

/* Adding an id the set holds changes nothing, also when the next new id
 * would make a table grow: the probe comes before any growth. */
static void adding_a_held_id_again_at_the_growth_threshold_does_not_grow(void **state) {
    (void)state;
    ops_idset_t s = {0};
    char id[OPS_EVENT_ID_LEN + 1];
    for (int i = 0; i < 136; i++)
        assert_int_equal(ops_idset_add(&s, nth_id(i, id)), 1);
    size_t cap = s.cap, text_cap = s.text_cap;
    assert_int_equal(cap, 256);     /* one more UUID grows it */
    assert_int_equal(text_cap, 16); /* one more text id grows it */
    for (int i = 0; i < 136; i++)
        assert_int_equal(ops_idset_add(&s, nth_id(i, id)), 0);
    assert_int_equal(s.cap, cap);
    assert_int_equal(s.text_cap, text_cap);
    assert_int_equal(s.n, 136);
    /* the next new ones grow the tables and every id is still found */
    assert_int_equal(ops_idset_add(&s, "3f7c1e52-8a4b-4d09-9c6e-5b2a71d0e8f4"), 1);
    assert_int_equal(ops_idset_add(&s, "ref-new"), 1);
    assert_int_equal(s.cap, 512);
    assert_int_equal(s.text_cap, 32);
    for (int i = 0; i < 136; i++)
        assert_true(ops_idset_has(&s, nth_id(i, id)));
    assert_int_equal(s.n, 138);
    ops_idset_clear(&s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(added_ids_are_found_and_others_are_not),
        cmocka_unit_test(many_ids_survive_growth),
        cmocka_unit_test(other_ids_are_held_as_text_and_match_as_before),
        cmocka_unit_test(many_text_ids_survive_growth_beside_uuids),
        cmocka_unit_test(adding_a_held_id_again_at_the_growth_threshold_does_not_grow),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
