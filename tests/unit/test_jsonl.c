/*
 * Unit tests of the JSON Lines input: the bounded line reader and the strict
 * flat-object parser (types, escapes, and errors with their column).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "opstream/jsonl.h"

static int parse(ops_json_t *p, const char *text, char *err, size_t errsize) {
    return ops_json_parse(p, text, strlen(text), err, errsize);
}

static void flat_object_gives_typed_members(void **state) {
    ops_json_t *p = ops_json_new();
    char err[256];
    assert_int_equal(parse(p,
                           " {\"kind\":\"arrest\", \"persons\": 3, \"location\": null,"
                           " \"suspect_nationalities\": [\"NG\", \"TG\"], \"x\": [] } ",
                           err, sizeof(err)),
                     0);
    assert_int_equal(ops_json_count(p), 5);
    const ops_json_member_t *m = ops_json_find(p, "kind");
    assert_int_equal(m->type, OPS_JSON_STRING);
    assert_string_equal(m->text, "arrest");
    m = ops_json_find(p, "persons");
    assert_int_equal(m->type, OPS_JSON_NUMBER);
    assert_string_equal(m->text, "3");
    assert_int_equal(ops_json_find(p, "location")->type, OPS_JSON_NULL);
    m = ops_json_find(p, "suspect_nationalities");
    assert_int_equal(m->type, OPS_JSON_ARRAY);
    assert_int_equal(m->n_items, 2);
    assert_string_equal(m->items[0], "NG");
    assert_string_equal(m->items[1], "TG");
    assert_int_equal(ops_json_find(p, "x")->n_items, 0);
    assert_null(ops_json_find(p, "missing"));
    ops_json_destroy(p);
}

static void escapes_decode_to_utf8(void **state) {
    ops_json_t *p = ops_json_new();
    char err[256];
    assert_int_equal(
        parse(p, "{\"l\":\"Yaound\\u00e9 \\\"A\\\"\\n\\/\\\\\", \"e\":\"\\ud83d\\ude00\"}", err,
              sizeof(err)),
        0);
    assert_string_equal(ops_json_find(p, "l")->text, "Yaound\xC3\xA9 \"A\"\n/\\");
    assert_string_equal(ops_json_find(p, "e")->text, "\xF0\x9F\x98\x80");
    ops_json_destroy(p);
}

static void numbers_follow_the_json_grammar(void **state) {
    static const struct {
        const char *text;
        int ok;
    } rows[] = {
        {"{\"n\":0}", 1},  {"{\"n\":-12}", 1}, {"{\"n\":1.5e3}", 1}, {"{\"n\":1E-2}", 1},
        {"{\"n\":01}", 0}, {"{\"n\":1.}", 0},  {"{\"n\":-}", 0},     {"{\"n\":.5}", 0},
        {"{\"n\":1e}", 0}, {"{\"n\":+1}", 0},
    };
    ops_json_t *p = ops_json_new();
    char err[256];
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        int rc = parse(p, rows[i].text, err, sizeof(err));
        if ((rc == 0) != rows[i].ok)
            fail_msg("%s: expected %s, got %s", rows[i].text, rows[i].ok ? "ok" : "error",
                     rc == 0 ? "ok" : err);
    }
    ops_json_destroy(p);
}

/* Each bad line, the column the error must name and a word of the reason. */
static void errors_name_column_and_reason(void **state) {
    static const struct {
        const char *text;
        const char *column;
        const char *reason;
    } rows[] = {
        {"[1,2]", "column 1:", "expected '{'"},
        {"{\"a\":1,}", "column 8:", "expected a key"},
        {"{\"a\" 1}", "column 6:", "expected ':'"},
        {"{\"a\":1 \"b\":2}", "column 8:", "expected ',' or '}'"},
        {"{\"a\":{\"b\":1}}", "column 6:", "nested objects"},
        {"{\"a\":true}", "column 6:", "true/false"},
        {"{\"a\":[1]}", "column 7:", "must be strings"},
        {"{\"a\":\"x}", "column 6:", "never closed"},
        {"{\"a\":\"\\q\"}", "column 7:", "invalid escape"},
        {"{\"a\":\"\\ud800\"}", "column 7:", "surrogate"},
        {"{\"a\":1,\"a\":2}", "column 8:", "duplicate key 'a'"},
        {"{\"a\":1} x", "column 9:", "after the object"},
        {"{\"a\":\"tab\there\"}", "column 10:", "control character"},
        {"{\"a\":", "column 6:", "value missing"},
    };
    ops_json_t *p = ops_json_new();
    char err[256];
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        err[0] = '\0';
        if (parse(p, rows[i].text, err, sizeof(err)) == 0)
            fail_msg("%s: parsed, expected an error", rows[i].text);
        if (strstr(err, rows[i].column) == NULL || strstr(err, rows[i].reason) == NULL)
            fail_msg("%s: error '%s' does not say '%s' '%s'", rows[i].text, err, rows[i].column,
                     rows[i].reason);
    }
    ops_json_destroy(p);
}

static void parser_is_reusable_after_an_error(void **state) {
    ops_json_t *p = ops_json_new();
    char err[256];
    assert_int_equal(parse(p, "{\"a\":", err, sizeof(err)), -1);
    assert_int_equal(parse(p, "{\"b\":\"ok\"}", err, sizeof(err)), 0);
    assert_int_equal(ops_json_count(p), 1);
    assert_string_equal(ops_json_find(p, "b")->text, "ok");
    ops_json_destroy(p);
}

static void line_reader_strips_line_ends_and_keeps_raw_bytes(void **state) {
    const char text[] = "{\"a\":1}\r\n\nlast";
    FILE *fp = fmemopen((void *)text, strlen(text), "r");
    ops_lines_t *l = ops_lines_new(fp, 0);
    const char *line;
    size_t len, raw;
    int trunc;
    assert_int_equal(ops_lines_next(l, &line, &len, &raw, &trunc), 1);
    assert_int_equal(len, 7);
    assert_int_equal(raw, 9);
    assert_memory_equal(line, "{\"a\":1}\r\n", 9);
    assert_int_equal(ops_lines_number(l), 1);
    assert_int_equal(ops_lines_next(l, &line, &len, &raw, &trunc), 1);
    assert_int_equal(len, 0);
    assert_int_equal(ops_lines_next(l, &line, &len, &raw, &trunc), 1);
    assert_int_equal(len, 4);
    assert_int_equal(raw, 4);
    assert_int_equal(ops_lines_number(l), 3);
    assert_int_equal(ops_lines_next(l, &line, &len, &raw, &trunc), 0);
    ops_lines_destroy(l);
    fclose(fp);
}

static void line_reader_cuts_overlong_lines_and_continues(void **state) {
    const char text[] = "0123456789abcdef\nok\n";
    FILE *fp = fmemopen((void *)text, strlen(text), "r");
    ops_lines_t *l = ops_lines_new(fp, 8);
    const char *line;
    size_t len, raw;
    int trunc = 0;
    assert_int_equal(ops_lines_next(l, &line, &len, &raw, &trunc), 1);
    assert_int_equal(trunc, 1);
    assert_int_equal(len, 8);
    assert_int_equal(ops_lines_next(l, &line, &len, &raw, &trunc), 1);
    assert_int_equal(trunc, 0);
    assert_memory_equal(line, "ok", 2);
    assert_int_equal(ops_lines_number(l), 2);
    ops_lines_destroy(l);
    fclose(fp);
}

static void append_string_escapes_what_json_requires(void **state) {
    char buf[64];
    size_t pos = 0;
    assert_int_equal(ops_json_append_string(buf, sizeof(buf), &pos, "a\"b\\c\n\x01"), 0);
    assert_string_equal(buf, "\"a\\\"b\\\\c\\n\\u0001\"");
    pos = 0;
    assert_int_equal(ops_json_append_string(buf, 4, &pos, "long text"), -1);
    assert_true(strlen(buf) < 4);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(flat_object_gives_typed_members),
        cmocka_unit_test(escapes_decode_to_utf8),
        cmocka_unit_test(numbers_follow_the_json_grammar),
        cmocka_unit_test(errors_name_column_and_reason),
        cmocka_unit_test(parser_is_reusable_after_an_error),
        cmocka_unit_test(line_reader_strips_line_ends_and_keeps_raw_bytes),
        cmocka_unit_test(line_reader_cuts_overlong_lines_and_continues),
        cmocka_unit_test(append_string_escapes_what_json_requires),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
