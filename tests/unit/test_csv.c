/*
 * Unit tests of the streaming CSV reader: RFC 4180 quoting, line ends,
 * record line numbers and raw bytes, and recovery after a malformed record.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "opstream/csv.h"

typedef struct reader {
    FILE *fp;
    ops_csv_t *csv;
    char err[256];
} reader_t;

static void open_text(reader_t *r, const char *text, size_t record_max) {
    r->fp = fmemopen((void *)text, strlen(text), "r");
    assert_non_null(r->fp);
    r->csv = ops_csv_new(r->fp, record_max);
    assert_non_null(r->csv);
    r->err[0] = '\0';
}

static void close_text(reader_t *r) {
    ops_csv_destroy(r->csv);
    fclose(r->fp);
}

static int next(reader_t *r) {
    return ops_csv_next(r->csv, r->err, sizeof(r->err));
}

static void expect_fields(reader_t *r, size_t n, const char *const *want) {
    assert_int_equal(ops_csv_nfields(r->csv), n);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(ops_csv_field(r->csv, i), want[i]);
}

static void plain_records_split_at_commas_and_line_ends(void **state) {
    reader_t r;
    open_text(&r, "a,b,c\n1,,3\n", 0);
    assert_int_equal(next(&r), OPS_CSV_RECORD);
    expect_fields(&r, 3, (const char *[]){"a", "b", "c"});
    assert_int_equal(ops_csv_line(r.csv), 1);
    assert_int_equal(next(&r), OPS_CSV_RECORD);
    expect_fields(&r, 3, (const char *[]){"1", "", "3"});
    assert_int_equal(ops_csv_line(r.csv), 2);
    assert_int_equal(next(&r), OPS_CSV_EOF);
    close_text(&r);
}

static void quoted_fields_keep_commas_quotes_and_line_breaks(void **state) {
    reader_t r;
    open_text(&r, "\"Lome, Togo\",\"say \"\"hi\"\"\",\"two\nlines\"\nnext,x,y\n", 0);
    assert_int_equal(next(&r), OPS_CSV_RECORD);
    expect_fields(&r, 3, (const char *[]){"Lome, Togo", "say \"hi\"", "two\nlines"});
    assert_int_equal(ops_csv_line(r.csv), 1);
    assert_int_equal(next(&r), OPS_CSV_RECORD);
    assert_int_equal(ops_csv_line(r.csv), 3); /* the quoted line break counts */
    close_text(&r);
}

static void crlf_line_ends_are_not_part_of_fields(void **state) {
    reader_t r;
    open_text(&r, "a,b\r\nc,d\r\n", 0);
    assert_int_equal(next(&r), OPS_CSV_RECORD);
    expect_fields(&r, 2, (const char *[]){"a", "b"});
    assert_int_equal(next(&r), OPS_CSV_RECORD);
    expect_fields(&r, 2, (const char *[]){"c", "d"});
    assert_int_equal(next(&r), OPS_CSV_EOF);
    close_text(&r);
}

static void last_record_without_line_end_is_read(void **state) {
    reader_t r;
    open_text(&r, "a,b\nc,\"d\"", 0);
    assert_int_equal(next(&r), OPS_CSV_RECORD);
    assert_int_equal(next(&r), OPS_CSV_RECORD);
    expect_fields(&r, 2, (const char *[]){"c", "d"});
    assert_int_equal(next(&r), OPS_CSV_EOF);
    close_text(&r);
}

static void blank_lines_are_skipped_but_counted(void **state) {
    reader_t r;
    open_text(&r, "a\n\n\r\nb\n\n", 0);
    assert_int_equal(next(&r), OPS_CSV_RECORD);
    assert_int_equal(next(&r), OPS_CSV_RECORD);
    expect_fields(&r, 1, (const char *[]){"b"});
    assert_int_equal(ops_csv_line(r.csv), 4);
    assert_int_equal(next(&r), OPS_CSV_EOF);
    close_text(&r);
}

static void byte_order_mark_is_skipped(void **state) {
    reader_t r;
    open_text(&r, "\xEF\xBB\xBFkind,country\n", 0);
    assert_int_equal(next(&r), OPS_CSV_RECORD);
    expect_fields(&r, 2, (const char *[]){"kind", "country"});
    close_text(&r);
}

static void raw_bytes_are_the_record_as_written(void **state) {
    reader_t r;
    size_t len = 0;
    int trunc = 1;
    open_text(&r, "x\n\"a,b\",c\r\nz\n", 0);
    assert_int_equal(next(&r), OPS_CSV_RECORD);
    assert_int_equal(next(&r), OPS_CSV_RECORD);
    const char *raw = ops_csv_raw(r.csv, &len, &trunc);
    assert_int_equal(len, strlen("\"a,b\",c\r\n"));
    assert_memory_equal(raw, "\"a,b\",c\r\n", len);
    assert_int_equal(trunc, 0);
    close_text(&r);
}

static void quote_inside_unquoted_field_is_reported_and_reading_goes_on(void **state) {
    reader_t r;
    open_text(&r, "ok,1\nbad\"x,2\nok,3\n", 0);
    assert_int_equal(next(&r), OPS_CSV_RECORD);
    assert_int_equal(next(&r), OPS_CSV_BAD);
    assert_int_equal(ops_csv_line(r.csv), 2);
    assert_non_null(strstr(r.err, "field 1"));
    assert_non_null(strstr(r.err, "quote"));
    assert_int_equal(next(&r), OPS_CSV_RECORD);
    expect_fields(&r, 2, (const char *[]){"ok", "3"});
    assert_int_equal(ops_csv_line(r.csv), 3);
    close_text(&r);
}

static void text_after_closing_quote_is_reported(void **state) {
    reader_t r;
    open_text(&r, "\"a\"b,c\nd,e\n", 0);
    assert_int_equal(next(&r), OPS_CSV_BAD);
    assert_non_null(strstr(r.err, "after the closing quote"));
    assert_int_equal(next(&r), OPS_CSV_RECORD);
    expect_fields(&r, 2, (const char *[]){"d", "e"});
    close_text(&r);
}

static void unterminated_quote_is_reported_with_its_line(void **state) {
    reader_t r;
    open_text(&r, "a\nb,\"never closed\nmore\n", 0);
    assert_int_equal(next(&r), OPS_CSV_RECORD);
    assert_int_equal(next(&r), OPS_CSV_BAD);
    assert_non_null(strstr(r.err, "line 2"));
    assert_int_equal(next(&r), OPS_CSV_EOF);
    close_text(&r);
}

static void record_over_the_limit_is_reported_and_skipped(void **state) {
    reader_t r;
    int trunc = 0;
    size_t len = 0;
    open_text(&r, "0123456789012345678901234567890123456789,x\nshort,y\n", 16);
    assert_int_equal(next(&r), OPS_CSV_BAD);
    assert_non_null(strstr(r.err, "longer than 16"));
    ops_csv_raw(r.csv, &len, &trunc);
    assert_int_equal(trunc, 1);
    assert_int_equal(len, 16);
    assert_int_equal(next(&r), OPS_CSV_RECORD);
    expect_fields(&r, 2, (const char *[]){"short", "y"});
    assert_int_equal(ops_csv_line(r.csv), 2);
    close_text(&r);
}

static void too_many_fields_are_reported(void **state) {
    reader_t r;
    size_t n = OPS_CSV_FIELDS_MAX + 5;
    char *text = calloc(n * 2 + 8, 1);
    assert_non_null(text);
    for (size_t i = 0; i < n; i++)
        strcat(text, i ? ",x" : "x");
    strcat(text, "\nok\n");
    open_text(&r, text, 0);
    assert_int_equal(next(&r), OPS_CSV_BAD);
    assert_non_null(strstr(r.err, "more than"));
    assert_int_equal(next(&r), OPS_CSV_RECORD);
    expect_fields(&r, 1, (const char *[]){"ok"});
    close_text(&r);
    free(text);
}

static void nul_byte_is_reported(void **state) {
    static const char text[] = "a,b\0c\nd\n";
    reader_t r;
    r.fp = fmemopen((void *)text, sizeof(text) - 1, "r");
    assert_non_null(r.fp);
    r.csv = ops_csv_new(r.fp, 0);
    assert_int_equal(next(&r), OPS_CSV_BAD);
    assert_non_null(strstr(r.err, "NUL"));
    assert_int_equal(next(&r), OPS_CSV_RECORD);
    expect_fields(&r, 1, (const char *[]){"d"});
    close_text(&r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(plain_records_split_at_commas_and_line_ends),
        cmocka_unit_test(quoted_fields_keep_commas_quotes_and_line_breaks),
        cmocka_unit_test(crlf_line_ends_are_not_part_of_fields),
        cmocka_unit_test(last_record_without_line_end_is_read),
        cmocka_unit_test(blank_lines_are_skipped_but_counted),
        cmocka_unit_test(byte_order_mark_is_skipped),
        cmocka_unit_test(raw_bytes_are_the_record_as_written),
        cmocka_unit_test(quote_inside_unquoted_field_is_reported_and_reading_goes_on),
        cmocka_unit_test(text_after_closing_quote_is_reported),
        cmocka_unit_test(unterminated_quote_is_reported_with_its_line),
        cmocka_unit_test(record_over_the_limit_is_reported_and_skipped),
        cmocka_unit_test(too_many_fields_are_reported),
        cmocka_unit_test(nul_byte_is_reported),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
