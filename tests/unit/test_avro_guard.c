/*
 * Unit tests of the Avro guard on schemas the event schemas do not exercise:
 * zero-size array items, maps, recursion, booleans, fixed and floating point,
 * so the guard holds for any writer schema a registry might hand it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <avro.h>

#include "opstream/avro_guard.h"

typedef struct guard_case {
    const char *name;
    const char *schema;
    const uint8_t body[32];
    size_t len;
    ops_codec_err_t expect;
} guard_case_t;

#define LIST_SCHEMA                                                                                \
    "{\"type\":\"record\",\"name\":\"Node\",\"fields\":[{\"name\":\"next\",\"type\":[\"null\","    \
    "\"Node\"]}]}"

/* Bodies are hand-encoded: varints are zig-zag (1 -> 0x02, -1 -> 0x01). */
static const guard_case_t cases[] = {
    {"null array of 3 items",
     "{\"type\":\"array\",\"items\":\"null\"}",
     {0x06, 0x00},
     2,
     OPS_CODEC_OK},
    {"null array claiming 2^62 items",
     "{\"type\":\"array\",\"items\":\"null\"}",
     {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01, 0x00},
     11,
     OPS_CODEC_ERR_TOO_LARGE},
    {"null array over the item budget in small blocks",
     "{\"type\":\"array\",\"items\":\"null\"}",
     {0xfe, 0x0f, 0xfe, 0x0f, 0x00},
     5,
     OPS_CODEC_ERR_TOO_LARGE}, /* 1023 + 1023 items */
    {"map of one entry",
     "{\"type\":\"map\",\"values\":\"int\"}",
     {0x02, 0x02, 'k', 0x54, 0x00},
     5,
     OPS_CODEC_OK},
    {"map key past the end",
     "{\"type\":\"map\",\"values\":\"int\"}",
     {0x02, 0x0a, 'k'},
     3,
     OPS_CODEC_ERR_TRUNCATED},
    {"map with two entries in one byte",
     "{\"type\":\"map\",\"values\":\"int\"}",
     {0x04, 0x00},
     2,
     OPS_CODEC_ERR_TRUNCATED},
    {"boolean true", "\"boolean\"", {0x01}, 1, OPS_CODEC_OK},
    {"boolean byte 2", "\"boolean\"", {0x02}, 1, OPS_CODEC_ERR_MALFORMED},
    {"double with 7 bytes", "\"double\"", {1, 2, 3, 4, 5, 6, 7}, 7, OPS_CODEC_ERR_TRUNCATED},
    {"float with 4 bytes", "\"float\"", {1, 2, 3, 4}, 4, OPS_CODEC_OK},
    {"fixed 4 with 3 bytes",
     "{\"type\":\"fixed\",\"name\":\"F\",\"size\":4}",
     {1, 2, 3},
     3,
     OPS_CODEC_ERR_TRUNCATED},
    {"bytes of negative length", "\"bytes\"", {0x03}, 1, OPS_CODEC_ERR_MALFORMED},
    {"linked list of three nodes", LIST_SCHEMA, {0x02, 0x02, 0x00}, 3, OPS_CODEC_OK},
    {"linked list deeper than the limit",
     LIST_SCHEMA,
     {2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 0},
     30,
     OPS_CODEC_ERR_MALFORMED},
    {"empty body for an int", "\"int\"", {0}, 0, OPS_CODEC_ERR_TRUNCATED},
    {"null with a trailing byte", "\"null\"", {0x00}, 1, OPS_CODEC_ERR_MALFORMED},
};

static void test_guard_cases_give_the_expected_class(void **state) {
    size_t i;
    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        avro_schema_t schema = NULL;
        ops_avro_guard_limits_t lim = {0, 0, 0};
        char err[256] = "";
        ops_codec_err_t got;

        if (avro_schema_from_json_length(cases[i].schema, strlen(cases[i].schema), &schema) != 0)
            fail_msg("%s: schema: %s", cases[i].name, avro_strerror());
        lim.max_depth = 16; /* the list case nests two levels per node */
        got = ops_avro_guard_check(schema, cases[i].body, cases[i].len, &lim, err, sizeof(err));
        avro_schema_decref(schema);
        if (getenv("OPS_TEST_VERBOSE") != NULL)
            printf("  %-48s -> %s\n", cases[i].name, got == OPS_CODEC_OK ? "ok" : err);
        if (got != cases[i].expect)
            fail_msg("%s: expected %s, got %s (%s)", cases[i].name,
                     ops_codec_err_name(cases[i].expect), ops_codec_err_name(got), err);
        if (got != OPS_CODEC_OK)
            assert_true(strncmp(err, ops_codec_err_name(got), strlen(ops_codec_err_name(got))) ==
                        0);
    }
}

static void test_min_size_counts_the_fewest_bytes(void **state) {
    struct {
        const char *schema;
        size_t min;
    } rows[] = {
        {"\"null\"", 0},
        {"\"double\"", 8},
        {"[\"null\",\"double\"]", 1},
        {"{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"a\",\"type\":\"float\"},"
         "{\"name\":\"b\",\"type\":\"string\"}]}",
         5},
        {"{\"type\":\"array\",\"items\":\"double\"}", 1},
    };
    size_t i;
    (void)state;
    for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        avro_schema_t s = NULL;
        assert_int_equal(avro_schema_from_json_length(rows[i].schema, strlen(rows[i].schema), &s),
                         0);
        assert_int_equal(ops_avro_guard_min_size(s), rows[i].min);
        avro_schema_decref(s);
    }
}

static void test_string_limit_is_configurable(void **state) {
    const uint8_t body[] = {0x0a, 'h', 'e', 'l', 'l', 'o'};
    ops_avro_guard_limits_t lim = {4, 0, 0};
    avro_schema_t s = avro_schema_string();
    char err[256] = "";
    (void)state;
    assert_int_equal(ops_avro_guard_check(s, body, sizeof(body), NULL, err, sizeof(err)),
                     OPS_CODEC_OK);
    assert_int_equal(ops_avro_guard_check(s, body, sizeof(body), &lim, err, sizeof(err)),
                     OPS_CODEC_ERR_TOO_LARGE);
    avro_schema_decref(s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_guard_cases_give_the_expected_class),
        cmocka_unit_test(test_min_size_counts_the_fewest_bytes),
        cmocka_unit_test(test_string_limit_is_configurable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
