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

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(added_ids_are_found_and_others_are_not),
        cmocka_unit_test(many_ids_survive_growth),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
