/*
 * Unit tests of the codec: round trips of every kind and of alerts, schema
 * evolution between rescue v1 and v2, every class of malformed frame, and the
 * memory bound (a counting avro-c allocator tracks live and peak bytes).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <cmocka.h>

#include <avro.h>

#include "opstream/codec.h"
#include "opstream/event.h"
#include "opstream/schemas_embedded.h"

/* ------------------------------------------------ differential decoding */

/*
 * Every decode in this file goes through both decoders: the direct one of
 * ops_codec_decode_event and the avro-c reference. They must give the same
 * class, the same message and, on success, the same event byte for byte.
 */
static ops_codec_err_t decode_both(ops_codec_t *c, const void *buf, size_t len, ops_event_t *ev,
                                   char *errstr, size_t errstr_size) {
    char ref_err[512] = "";
    ops_event_t ref;
    ops_codec_err_t got, want;

    if (errstr_size > 0)
        errstr[0] = '\0';
    got = ops_codec_decode_event(c, buf, len, ev, errstr, errstr_size);
    want = ops_codec_decode_event_reference(c, buf, len, &ref, ref_err,
                                            errstr_size < sizeof(ref_err) ? errstr_size
                                                                          : sizeof(ref_err));
    if (got != want)
        fail_msg("direct decode gives %s (%s), avro-c %s (%s)", ops_codec_err_name(got),
                 got == OPS_CODEC_OK ? "" : errstr, ops_codec_err_name(want), ref_err);
    if (got == OPS_CODEC_OK && memcmp(ev, &ref, sizeof(ref)) != 0)
        fail_msg("direct decode and avro-c give different events");
    if (got != OPS_CODEC_OK && errstr_size > 0 && strcmp(errstr, ref_err) != 0)
        fail_msg("direct decode says '%s', avro-c '%s'", errstr, ref_err);
    return got;
}
#define ops_codec_decode_event(...) decode_both(__VA_ARGS__)

/* Every encode likewise: the direct encoder and avro-c write the same bytes,
 * or fail with the same message. */
static int encode_both(ops_codec_t *c, const ops_event_t *ev, void *buf, size_t bufsize,
                       size_t *lenp, char *errstr, size_t errstr_size) {
    static uint8_t ref_buf[OPS_CODEC_MAX_FRAME * 2];
    char ref_err[512] = "";
    size_t ref_len = 0, len = 0;
    int got, want;

    if (errstr_size > 0)
        errstr[0] = '\0';
    got = ops_codec_encode_event(c, ev, buf, bufsize, &len, errstr, errstr_size);
    want = ops_codec_encode_event_reference(c, ev, bufsize <= sizeof(ref_buf) ? ref_buf : NULL,
                                            bufsize, &ref_len, ref_err,
                                            errstr_size < sizeof(ref_err) ? errstr_size
                                                                          : sizeof(ref_err));
    if (got != want)
        fail_msg("direct encode returns %d (%s), avro-c %d (%s)", got, errstr, want, ref_err);
    if (got == 0 && (len != ref_len || memcmp(buf, ref_buf, len) != 0))
        fail_msg("direct encode and avro-c write different frames (%zu and %zu bytes)", len,
                 ref_len);
    if (got != 0 && errstr_size > 0 && strcmp(errstr, ref_err) != 0)
        fail_msg("direct encode says '%s', avro-c '%s'", errstr, ref_err);
    if (lenp != NULL)
        *lenp = len;
    return got;
}
#define ops_codec_encode_event(...) encode_both(__VA_ARGS__)

/* ---------------------------------------------------- counting allocator */

static size_t mem_current;   /* bytes avro-c holds now */
static size_t mem_peak;      /* highest mem_current since the last reset */
static long mem_live_blocks; /* allocations not yet freed */
static long mem_calls;       /* allocations and reallocations made */

static void *counting_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    void *p;
    (void)ud;
    if (nsize == 0) {
        if (ptr != NULL) {
            mem_current -= osize;
            mem_live_blocks--;
        }
        free(ptr);
        return NULL;
    }
    mem_calls++;
    p = realloc(ptr, nsize);
    if (p == NULL)
        return NULL;
    if (ptr == NULL)
        mem_live_blocks++;
    mem_current = mem_current - osize + nsize;
    if (mem_current > mem_peak)
        mem_peak = mem_current;
    return p;
}

#define PEAK_LIMIT (1024 * 1024) /* per malformed decode, far under 64 MiB */

static long max_rss_kib(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

/* ------------------------------------------------------------- fixtures */

static ops_codec_t *codec; /* defaults: rescue v2 writer and reader */

static int group_setup(void **state) {
    char err[256] = "";
    (void)state;
    codec = ops_codec_new(NULL, err, sizeof(err));
    if (codec == NULL)
        fprintf(stderr, "ops_codec_new: %s\n", err);
    return codec == NULL ? -1 : 0;
}

static int group_teardown(void **state) {
    (void)state;
    ops_codec_destroy(codec);
    codec = NULL;
    return 0;
}

static void base_event(ops_event_t *ev, ops_kind_t kind) {
    ops_event_init(ev);
    ev->kind = kind;
    strcpy(ev->event_id, "6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b");
    strcpy(ev->operation, "FLASH-WEKA");
    strcpy(ev->country, "CM");
    ev->occurred_at = 1719835500000LL;
    ev->reported_at = 1719839100000LL;
    strcpy(ev->source_ref, "CM-DGSN-2024-000417");
    ev->count = 12;
}

static void set_nationalities(ops_event_t *ev, unsigned n) {
    static const char *codes[] = {"NG", "BD", "IN", "PK", "LK", "VN", "CM", "GH"};
    unsigned i;
    ev->n_nationalities = n;
    for (i = 0; i < n; i++)
        strcpy(ev->nationalities[i], codes[i % 8]);
}

static void base_alert(ops_alert_t *a, int with_country, unsigned n_ids) {
    unsigned i;
    ops_alert_init(a);
    strcpy(a->alert_id, "0b7e4c1d-2f3a-4b5c-8d6e-7f8091a2b3c4");
    strcpy(a->operation, "LIBERTERRA-II");
    a->has_country = with_country != 0;
    if (with_country)
        strcpy(a->country, "PH");
    strcpy(a->rule, "scam-centre-raid");
    strcpy(a->metric, "victims");
    a->severity = OPS_SEVERITY_WARNING;
    a->observed = 250;
    a->baseline = 12.5;
    a->threshold = 50.0;
    a->window_start = 1700000000000LL;
    a->window_end = 1700000600000LL;
    a->n_event_ids = n_ids;
    for (i = 0; i < n_ids; i++)
        snprintf(a->event_ids[i], sizeof(a->event_ids[i]), "00000000-0000-4000-8000-%012u", i);
    strcpy(a->summary, "250 victims rescued in one raid on a scam centre in Manila.");
    a->raised_at = 1700000601234LL;
}

static size_t encode_ok(ops_codec_t *c, const ops_event_t *ev, uint8_t *buf, size_t size) {
    char err[256] = "";
    size_t len = 0;
    int rc = ops_codec_encode_event(c, ev, buf, size, &len, err, sizeof(err));
    if (rc != 0)
        fail_msg("encode: %s", err);
    return len;
}

/* ------------------------------------------------------------ round trip */

static void test_every_kind_round_trips_with_all_fields(void **state) {
    struct {
        ops_kind_t kind;
        int with_location;
        unsigned n_nat;
    } rows[] = {
        {OPS_KIND_ARREST, 1, OPS_NATIONALITIES_MAX},
        {OPS_KIND_ARREST, 0, 0},
        {OPS_KIND_RESCUE, 1, 3},
        {OPS_KIND_RESCUE, 0, 0},
        {OPS_KIND_MIGRANT, 1, 0},
        {OPS_KIND_MIGRANT, 0, OPS_NATIONALITIES_MAX},
        {OPS_KIND_SEIZURE, 1, 0},
        {OPS_KIND_SEIZURE, 0, 0},
    };
    size_t i;
    (void)state;
    for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        static uint8_t buf[OPS_CODEC_MAX_FRAME];
        ops_event_t in, out;
        char err[256] = "";
        int32_t id = 0;
        size_t len;

        base_event(&in, rows[i].kind);
        if (rows[i].with_location) {
            in.has_location = true;
            memset(in.location, 'y', OPS_LOCATION_MAX); /* at the bound */
        }
        switch (rows[i].kind) {
        case OPS_KIND_ARREST:
            in.offence = OPS_OFFENCE_MIGRANT_SMUGGLING;
            set_nationalities(&in, rows[i].n_nat);
            break;
        case OPS_KIND_RESCUE:
            in.minors = 4;
            in.referred = 9;
            in.exploitation = OPS_EXPLOITATION_FORCED_CRIMINALITY;
            in.site = OPS_SITE_SCAM_CENTRE;
            set_nationalities(&in, rows[i].n_nat);
            break;
        case OPS_KIND_MIGRANT:
            in.minors = 2;
            set_nationalities(&in, rows[i].n_nat);
            break;
        default:
            in.category = OPS_CATEGORY_FIREARMS;
            break;
        }
        len = encode_ok(codec, &in, buf, sizeof(buf));
        assert_int_equal(ops_codec_frame_schema_id(buf, len, &id), OPS_CODEC_OK);
        assert_int_equal(id, ops_codec_writer_id(codec, rows[i].kind));
        memset(&out, 0x5a, sizeof(out));
        assert_int_equal(ops_codec_decode_event(codec, buf, len, &out, err, sizeof(err)),
                         OPS_CODEC_OK);
        assert_memory_equal(&in, &out, sizeof(in));
    }
}

static void test_alert_round_trips_with_and_without_country(void **state) {
    unsigned rows[][2] = {{1, OPS_ALERT_EVENT_IDS_MAX}, {0, 0}, {1, 1}};
    size_t i;
    (void)state;
    for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        uint8_t buf[OPS_CODEC_MAX_FRAME];
        ops_alert_t in, out;
        char err[256] = "";
        int32_t id = 0;
        size_t len = 0;

        base_alert(&in, (int)rows[i][0], rows[i][1]);
        assert_int_equal(
            ops_codec_encode_alert(codec, &in, buf, sizeof(buf), &len, err, sizeof(err)), 0);
        assert_int_equal(ops_codec_frame_schema_id(buf, len, &id), OPS_CODEC_OK);
        assert_int_equal(id, ops_codec_alert_writer_id(codec));
        assert_int_equal(ops_codec_decode_alert(codec, buf, len, &out, err, sizeof(err)),
                         OPS_CODEC_OK);
        assert_memory_equal(&in, &out, sizeof(in));
    }
}

static void test_writer_ids_follow_the_schema_id_file(void **state) {
    (void)state;
    assert_int_equal(ops_codec_writer_id(codec, OPS_KIND_ARREST), 1);
    assert_int_equal(ops_codec_writer_id(codec, OPS_KIND_RESCUE), 6);
    assert_int_equal(ops_codec_writer_id(codec, OPS_KIND_MIGRANT), 3);
    assert_int_equal(ops_codec_writer_id(codec, OPS_KIND_SEIZURE), 4);
    assert_int_equal(ops_codec_alert_writer_id(codec), 5);
    assert_int_equal(ops_codec_writer_id(codec, OPS_KIND_COUNT), -1);
}

/* The event model's name of symbol i of an enum field. */
static const char *model_symbol(const char *field, int i) {
    if (strcmp(field, "offence") == 0)
        return ops_offence_name((ops_offence_t)i);
    if (strcmp(field, "exploitation") == 0)
        return ops_exploitation_name((ops_exploitation_t)i);
    if (strcmp(field, "site") == 0)
        return ops_site_name((ops_site_t)i);
    if (strcmp(field, "category") == 0)
        return ops_category_name((ops_category_t)i);
    return ops_severity_name((ops_severity_t)i);
}

/* Schema enums must list the event model's symbols in its order, the last
 * one being the default. */
static void test_schema_enum_symbols_match_the_event_model(void **state) {
    struct {
        const char *topic, *field;
        int count;
    } rows[] = {
        {"arrests", "offence", OPS_OFFENCE_COUNT},
        {"rescues", "exploitation", OPS_EXPLOITATION_COUNT},
        {"rescues", "site", OPS_SITE_COUNT},
        {"seizures", "category", OPS_CATEGORY_COUNT},
        {"alerts", "severity", OPS_SEVERITY_COUNT},
    };
    size_t r, s;
    int checked = 0;
    (void)state;
    for (s = 0; s < ops_schemas_embedded_count; s++) {
        const ops_schema_embedded_t *emb = &ops_schemas_embedded[s];
        avro_schema_t schema = NULL;
        assert_int_equal(avro_schema_from_json_length(emb->json, strlen(emb->json), &schema), 0);
        for (r = 0; r < sizeof(rows) / sizeof(rows[0]); r++) {
            avro_schema_t e;
            int i;
            if (strcmp(rows[r].topic, emb->topic) != 0)
                continue;
            e = avro_schema_record_field_get(schema, rows[r].field);
            assert_non_null(e);
            assert_int_equal(avro_schema_enum_number_of_symbols(e), rows[r].count);
            for (i = 0; i < rows[r].count; i++)
                assert_string_equal(avro_schema_enum_get(e, i), model_symbol(rows[r].field, i));
            checked++;
        }
        avro_schema_decref(schema);
    }
    assert_int_equal(checked, 7); /* rescue v1 and v2 have two enums each */
}

/* ------------------------------------------------------------- evolution */

static void test_rescue_v1_record_reads_as_v2_with_referred_zero(void **state) {
    ops_codec_options_t o = {0, OPS_CODEC_RESCUE_V1, 0};
    char err[256] = "";
    ops_codec_t *v1 = ops_codec_new(&o, err, sizeof(err));
    uint8_t buf[4096];
    ops_event_t in, out;
    int32_t id = 0;
    size_t len;
    (void)state;
    assert_non_null(v1);
    base_event(&in, OPS_KIND_RESCUE);
    in.minors = 3;
    in.referred = 7; /* v1 cannot carry it */
    in.site = OPS_SITE_HOTEL;
    set_nationalities(&in, 2);
    len = encode_ok(v1, &in, buf, sizeof(buf));
    assert_int_equal(ops_codec_frame_schema_id(buf, len, &id), OPS_CODEC_OK);
    assert_int_equal(id, 2);
    assert_int_equal(ops_codec_decode_event(codec, buf, len, &out, err, sizeof(err)), OPS_CODEC_OK);
    assert_int_equal(out.referred, 0);
    in.referred = 0;
    assert_memory_equal(&in, &out, sizeof(in));
    ops_codec_destroy(v1);
}

static void test_rescue_v2_record_reads_as_v1_without_referred(void **state) {
    ops_codec_options_t o = {0, 0, OPS_CODEC_RESCUE_V1};
    char err[256] = "";
    ops_codec_t *v1 = ops_codec_new(&o, err, sizeof(err));
    uint8_t buf[4096];
    ops_event_t in, out;
    size_t len;
    (void)state;
    assert_non_null(v1);
    base_event(&in, OPS_KIND_RESCUE);
    in.referred = 11;
    in.exploitation = OPS_EXPLOITATION_SEXUAL;
    len = encode_ok(codec, &in, buf, sizeof(buf));
    assert_int_equal(ops_codec_decode_event(v1, buf, len, &out, err, sizeof(err)), OPS_CODEC_OK);
    assert_int_equal(out.referred, 0);
    assert_int_equal(out.exploitation, OPS_EXPLOITATION_SEXUAL);
    assert_int_equal(out.count, 12);
    ops_codec_destroy(v1);
}

static void test_unknown_rescue_version_is_refused(void **state) {
    ops_codec_options_t o = {0, 3, 0};
    char err[256] = "";
    (void)state;
    assert_null(ops_codec_new(&o, err, sizeof(err)));
    assert_non_null(strstr(err, "rescue_writer_version 3"));
}

/* -------------------------------------------------------- frame building */

typedef struct frame {
    uint8_t b[8192];
    size_t n;
} frame_t;

static void f_raw(frame_t *f, const void *p, size_t n) {
    memcpy(f->b + f->n, p, n);
    f->n += n;
}

static void f_long(frame_t *f, int64_t v) {
    uint64_t z = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
    while (z >= 0x80) {
        f->b[f->n++] = (uint8_t)(z | 0x80);
        z >>= 7;
    }
    f->b[f->n++] = (uint8_t)z;
}

static void f_str(frame_t *f, const char *s) {
    f_long(f, (int64_t)strlen(s));
    f_raw(f, s, strlen(s));
}

static void f_header(frame_t *f, uint32_t id) {
    uint8_t h[5] = {0, (uint8_t)(id >> 24), (uint8_t)(id >> 16), (uint8_t)(id >> 8), (uint8_t)id};
    f->n = 0;
    f_raw(f, h, 5);
}

/* An arrest frame (id 1) up to and including the location union. */
static void arrest_prefix(frame_t *f, int64_t union_index, const char *operation) {
    f_header(f, 1);
    f_str(f, "6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b");
    f_str(f, operation);
    f_str(f, "NG");
    f_long(f, 1719835500000LL);
    f_long(f, 1719839100000LL);
    f_str(f, "NG-NAPTIP-88");
    f_long(f, union_index);
    if (union_index == 1)
        f_str(f, "Lagos");
}

/* An arrest frame up to its nationalities array: 3 persons, first offence. */
static void arrest_up_to_array(frame_t *f, int64_t union_index) {
    arrest_prefix(f, union_index, "FLASH-WEKA");
    f_long(f, 3);
    f_long(f, 0);
}

static void arrest_frame(frame_t *f, int64_t persons, int64_t offence, unsigned n_nat) {
    unsigned i;
    arrest_prefix(f, 1, "FLASH-WEKA");
    f_long(f, persons);
    f_long(f, offence);
    if (n_nat > 0) {
        f_long(f, n_nat);
        for (i = 0; i < n_nat; i++)
            f_str(f, "NG");
    }
    f_long(f, 0);
}

/* ------------------------------------------------------- malformed cases */

typedef struct bad_case {
    const char *name;
    void (*build)(frame_t *f);
    ops_codec_err_t expect;
} bad_case_t;

static void b_magic(frame_t *f) {
    arrest_frame(f, 1, 0, 0);
    f->b[0] = 0x7b; /* a JSON body */
}
static void b_unknown_id(frame_t *f) {
    arrest_frame(f, 1, 0, 0);
    f->b[4] = 99;
}
static void b_empty(frame_t *f) {
    f->n = 0;
}
static void b_short_header(frame_t *f) {
    f_header(f, 1);
    f->n = 3;
}
static void b_string_2gib(frame_t *f) {
    f_header(f, 1);
    f_long(f, 2147483648LL);
    f_raw(f, "abc", 3);
}
static void b_string_negative(frame_t *f) {
    f_header(f, 1);
    f_long(f, -5);
    f_raw(f, "abcdef", 6);
}
static void b_string_past_end(frame_t *f) {
    f_header(f, 1);
    f_long(f, 40);
    f_raw(f, "abcdefghijkl", 12);
}
static void b_varint_11_bytes(frame_t *f) {
    static const uint8_t v[11] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
    f_header(f, 1);
    f_raw(f, v, sizeof(v));
}
static void b_varint_continues_past_10_bytes(frame_t *f) {
    static const uint8_t v[11] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00};
    f_header(f, 1);
    f_raw(f, v, sizeof(v));
}
static void b_int_overflows_32_bits(frame_t *f) {
    arrest_frame(f, (int64_t)1 << 31, 0, 0); /* 5 varint bytes, the last over 0x0f */
}
static void b_array_2_62(frame_t *f) {
    arrest_up_to_array(f, 0);
    f_long(f, (int64_t)1 << 62);
    f_str(f, "NG");
    f_long(f, 0);
}
static void b_array_2_62_under_limit(frame_t *f) {
    /* 900 items fit the item budget but not the 3 bytes left */
    arrest_up_to_array(f, 0);
    f_long(f, 900);
    f_str(f, "NG");
}
static void b_array_negative_count_huge_size(frame_t *f) {
    arrest_up_to_array(f, 0);
    f_long(f, -((int64_t)1 << 62));
    f_long(f, (int64_t)1 << 40);
    f_str(f, "NG");
}
static void b_array_block_size_lies(frame_t *f) {
    arrest_up_to_array(f, 0);
    f_long(f, -2);
    f_long(f, 5); /* two "NG" strings take 6 */
    f_str(f, "NG");
    f_str(f, "NG");
    f_long(f, 0);
}
static void b_union_index(frame_t *f) {
    arrest_up_to_array(f, 2);
    f_long(f, 0);
}
static void b_union_negative(frame_t *f) {
    arrest_up_to_array(f, -1);
    f_long(f, 0);
}
static void b_enum_index(frame_t *f) {
    arrest_frame(f, 3, OPS_OFFENCE_COUNT, 0);
}
static void b_enum_negative(frame_t *f) {
    arrest_frame(f, 3, -1, 0);
}
static void b_trailing(frame_t *f) {
    arrest_frame(f, 3, 0, 1);
    f_raw(f, "\0\0", 2);
}
static void b_operation_too_long(frame_t *f) {
    arrest_prefix(f, 0, "OPERATION-NAME-FAR-LONGER-THAN-32-CHARACTERS");
    f_long(f, 3);
    f_long(f, 0);
    f_long(f, 0);
}
static void b_count_negative(frame_t *f) {
    arrest_frame(f, -4, 0, 0);
}
static void b_count_over_model(frame_t *f) {
    arrest_frame(f, OPS_COUNT_MAX + 1, 0, 0);
}
static void b_count_over_int32(frame_t *f) {
    arrest_frame(f, (int64_t)1 << 40, 0, 0);
}
static void b_nationalities_over_model(frame_t *f) {
    arrest_frame(f, 3, 0, OPS_NATIONALITIES_MAX + 1);
}
static void b_nul_in_string(frame_t *f) {
    f_header(f, 1);
    f_str(f, "6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b");
    f_long(f, 5);
    f_raw(f, "AB\0CD", 5);
    f_str(f, "NG");
    f_long(f, 1);
    f_long(f, 2);
    f_str(f, "X");
    f_long(f, 0);
    f_long(f, 3);
    f_long(f, 0);
    f_long(f, 0);
}
static void b_alert_as_event(frame_t *f) {
    ops_alert_t a;
    char err[256];
    base_alert(&a, 1, 2);
    assert_int_equal(ops_codec_encode_alert(codec, &a, f->b, sizeof(f->b), &f->n, err, sizeof(err)),
                     0);
}

static const bad_case_t bad_cases[] = {
    {"wrong magic", b_magic, OPS_CODEC_ERR_MAGIC},
    {"unknown schema id", b_unknown_id, OPS_CODEC_ERR_UNKNOWN_ID},
    {"empty frame", b_empty, OPS_CODEC_ERR_TRUNCATED},
    {"header cut short", b_short_header, OPS_CODEC_ERR_TRUNCATED},
    {"2 GiB string length", b_string_2gib, OPS_CODEC_ERR_TOO_LARGE},
    {"negative string length", b_string_negative, OPS_CODEC_ERR_MALFORMED},
    {"string past the end", b_string_past_end, OPS_CODEC_ERR_TRUNCATED},
    {"varint overflowing 64 bits", b_varint_11_bytes, OPS_CODEC_ERR_MALFORMED},
    {"varint longer than 10 bytes", b_varint_continues_past_10_bytes, OPS_CODEC_ERR_MALFORMED},
    {"int overflowing 32 bits", b_int_overflows_32_bits, OPS_CODEC_ERR_MALFORMED},
    {"array block of 2^62 items", b_array_2_62, OPS_CODEC_ERR_TOO_LARGE},
    {"array block larger than the bytes left", b_array_2_62_under_limit, OPS_CODEC_ERR_TRUNCATED},
    {"negative block count with a huge size", b_array_negative_count_huge_size,
     OPS_CODEC_ERR_TRUNCATED},
    {"block size that lies", b_array_block_size_lies, OPS_CODEC_ERR_MALFORMED},
    {"union index 2", b_union_index, OPS_CODEC_ERR_MALFORMED},
    {"union index -1", b_union_negative, OPS_CODEC_ERR_MALFORMED},
    {"enum index past the symbols", b_enum_index, OPS_CODEC_ERR_MALFORMED},
    {"negative enum index", b_enum_negative, OPS_CODEC_ERR_MALFORMED},
    {"trailing bytes", b_trailing, OPS_CODEC_ERR_MALFORMED},
    {"operation over the model bound", b_operation_too_long, OPS_CODEC_ERR_TOO_LARGE},
    {"negative persons", b_count_negative, OPS_CODEC_ERR_MALFORMED},
    {"persons over the model bound", b_count_over_model, OPS_CODEC_ERR_MALFORMED},
    {"persons over int32", b_count_over_int32, OPS_CODEC_ERR_MALFORMED},
    {"65 nationalities", b_nationalities_over_model, OPS_CODEC_ERR_TOO_LARGE},
    {"NUL inside a string", b_nul_in_string, OPS_CODEC_ERR_MALFORMED},
    {"alert frame given to decode_event", b_alert_as_event, OPS_CODEC_ERR_WRONG_TYPE},
};

/* Decodes a frame expecting an error class, and checks that avro-c's peak
 * allocation during the decode stays under PEAK_LIMIT. */
static void decode_expect(ops_codec_t *c, const char *name, const void *buf, size_t len,
                          ops_codec_err_t expect) {
    char err[512] = "";
    ops_event_t ev;
    ops_codec_err_t got;
    size_t base = mem_current;

    mem_peak = mem_current;
    got = ops_codec_decode_event(c, buf, len, &ev, err, sizeof(err));
    if (got != expect)
        fail_msg("%s: expected %s, got %s (%s)", name, ops_codec_err_name(expect),
                 ops_codec_err_name(got), err);
    assert_true(strncmp(err, ops_codec_err_name(expect), strlen(ops_codec_err_name(expect))) == 0);
    if (getenv("OPS_TEST_VERBOSE") != NULL)
        printf("  %-40s -> %s\n", name, err);
    if (mem_peak - base >= PEAK_LIMIT)
        fail_msg("%s: avro-c peaked at %zu bytes", name, mem_peak - base);
}

static void test_every_malformed_class_is_reported_and_bounded(void **state) {
    size_t i;
    long rss_before = max_rss_kib();
    (void)state;
    for (i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
        frame_t f;
        memset(&f, 0, sizeof(f));
        bad_cases[i].build(&f);
        decode_expect(codec, bad_cases[i].name, f.b, f.n, bad_cases[i].expect);
    }
    assert_true(max_rss_kib() - rss_before < 64 * 1024);
}

static void test_builder_makes_a_valid_arrest(void **state) {
    /* guards the malformed table: its base frame must decode */
    frame_t f;
    ops_event_t ev;
    char err[256] = "";
    (void)state;
    arrest_frame(&f, 3, OPS_OFFENCE_DRUGS, 2);
    assert_int_equal(ops_codec_decode_event(codec, f.b, f.n, &ev, err, sizeof(err)), OPS_CODEC_OK);
    assert_int_equal(ev.count, 3);
    assert_int_equal(ev.offence, OPS_OFFENCE_DRUGS);
    assert_int_equal(ev.n_nationalities, 2);
    assert_string_equal(ev.location, "Lagos");
}

static void test_error_message_names_offset_and_field(void **state) {
    frame_t f;
    ops_event_t ev;
    char err[256] = "";
    (void)state;
    b_string_past_end(&f);
    assert_int_equal(ops_codec_decode_event(codec, f.b, f.n, &ev, err, sizeof(err)),
                     OPS_CODEC_ERR_TRUNCATED);
    assert_string_equal(err, "truncated: string length 40 at body offset 0 exceeds the 12 bytes "
                             "left (field event_id)");
}

static void test_frame_truncated_at_every_offset_is_an_error(void **state) {
    ops_kind_t k;
    (void)state;
    for (k = 0; k < OPS_KIND_COUNT; k++) {
        uint8_t buf[OPS_CODEC_MAX_FRAME];
        ops_event_t in;
        size_t len, cut;
        base_event(&in, k);
        in.has_location = true;
        strcpy(in.location, "Yaounde");
        set_nationalities(&in, 5);
        len = encode_ok(codec, &in, buf, sizeof(buf));
        for (cut = 0; cut < len; cut++) {
            /* a copy of exactly cut bytes, so ASan sees any over-read */
            uint8_t *copy = malloc(cut > 0 ? cut : 1);
            char err[256] = "";
            ops_event_t ev;
            ops_codec_err_t got;
            memcpy(copy, buf, cut);
            mem_peak = mem_current;
            got = ops_codec_decode_event(codec, copy, cut, &ev, err, sizeof(err));
            free(copy);
            if (got == OPS_CODEC_OK)
                fail_msg("kind %d cut at %zu of %zu decoded", (int)k, cut, len);
            assert_true(got == OPS_CODEC_ERR_TRUNCATED || got == OPS_CODEC_ERR_MALFORMED);
            assert_true(err[0] != '\0');
        }
    }
}

static void test_frame_over_the_size_limit_is_too_large(void **state) {
    ops_codec_options_t o = {64, 0, 0};
    char err[256] = "";
    ops_codec_t *small = ops_codec_new(&o, err, sizeof(err));
    uint8_t buf[4096];
    uint8_t *big;
    ops_event_t in;
    size_t len;
    (void)state;
    assert_non_null(small);
    base_event(&in, OPS_KIND_ARREST);
    len = encode_ok(small, &in, buf, sizeof(buf));
    assert_true(len > 64);
    decode_expect(small, "over a 64-byte limit", buf, len, OPS_CODEC_ERR_TOO_LARGE);
    ops_codec_destroy(small);

    big = calloc(1, 1024 * 1024 + 1);
    assert_non_null(big);
    memcpy(big, buf, len);
    decode_expect(codec, "over the 1 MiB default", big, 1024 * 1024 + 1, OPS_CODEC_ERR_TOO_LARGE);
    free(big);
}

static void test_event_frame_given_to_decode_alert_is_wrong_type(void **state) {
    uint8_t buf[4096];
    ops_event_t in;
    ops_alert_t a;
    char err[256] = "";
    size_t len;
    (void)state;
    base_event(&in, OPS_KIND_SEIZURE);
    len = encode_ok(codec, &in, buf, sizeof(buf));
    assert_int_equal(ops_codec_decode_alert(codec, buf, len, &a, err, sizeof(err)),
                     OPS_CODEC_ERR_WRONG_TYPE);
}

/* ---------------------------------------------------------------- encode */

static void test_encode_refuses_a_small_buffer_and_bad_enum(void **state) {
    uint8_t buf[OPS_CODEC_MAX_FRAME];
    ops_event_t in;
    char err[256] = "";
    size_t len = 0;
    (void)state;
    base_event(&in, OPS_KIND_ARREST);
    assert_int_equal(ops_codec_encode_event(codec, &in, buf, 20, &len, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "too small"));
    assert_int_equal(ops_codec_encode_event(codec, &in, buf, 4, &len, err, sizeof(err)), -1);
    in.offence = OPS_OFFENCE_COUNT;
    assert_int_equal(ops_codec_encode_event(codec, &in, buf, sizeof(buf), &len, err, sizeof(err)),
                     -1);
    assert_non_null(strstr(err, "offence"));
    /* the codec still works after a failed encode */
    in.offence = OPS_OFFENCE_FIREARMS;
    assert_int_equal(ops_codec_encode_event(codec, &in, buf, sizeof(buf), &len, err, sizeof(err)),
                     0);
}

static void test_largest_event_fits_the_max_frame(void **state) {
    static uint8_t buf[OPS_CODEC_MAX_FRAME];
    ops_event_t in;
    (void)state;
    base_event(&in, OPS_KIND_RESCUE);
    memset(in.source_ref, 'r', OPS_SOURCE_REF_MAX);
    memset(in.operation, 'O', OPS_OPERATION_MAX);
    in.has_location = true;
    memset(in.location, 'l', OPS_LOCATION_MAX);
    set_nationalities(&in, OPS_NATIONALITIES_MAX);
    assert_true(encode_ok(codec, &in, buf, sizeof(buf)) <= OPS_CODEC_MAX_FRAME);
}

static void test_frame_schema_id_reads_header_only(void **state) {
    const uint8_t ok[5] = {0, 0, 0, 1, 2};
    const uint8_t bad[5] = {1, 0, 0, 0, 1};
    int32_t id = 0;
    (void)state;
    assert_int_equal(ops_codec_frame_schema_id(ok, 5, &id), OPS_CODEC_OK);
    assert_int_equal(id, 258);
    assert_int_equal(ops_codec_frame_schema_id(bad, 5, &id), OPS_CODEC_ERR_MAGIC);
    assert_int_equal(ops_codec_frame_schema_id(ok, 4, &id), OPS_CODEC_ERR_TRUNCATED);
    assert_string_equal(ops_codec_err_name(OPS_CODEC_ERR_UNKNOWN_ID), "unknown-schema-id");
}

/* ---------------------------------------------------------------- memory */

static void test_ten_thousand_decodes_do_not_grow_live_allocations(void **state) {
    uint8_t buf[4096];
    ops_event_t in, out;
    char err[256] = "";
    long live_after_warmup;
    size_t bytes_after_warmup, len;
    int i;
    (void)state;
    base_event(&in, OPS_KIND_RESCUE);
    in.has_location = true;
    strcpy(in.location, "Nouakchott");
    set_nationalities(&in, 8);
    len = encode_ok(codec, &in, buf, sizeof(buf));
    for (i = 0; i < 10; i++)
        assert_int_equal(ops_codec_decode_event(codec, buf, len, &out, err, sizeof(err)),
                         OPS_CODEC_OK);
    live_after_warmup = mem_live_blocks;
    bytes_after_warmup = mem_current;
    for (i = 0; i < 10000; i++)
        if (ops_codec_decode_event(codec, buf, len, &out, err, sizeof(err)) != OPS_CODEC_OK)
            fail_msg("decode %d: %s", i, err);
    assert_int_equal(mem_live_blocks, live_after_warmup);
    assert_int_equal(mem_current, bytes_after_warmup);
}

static void test_destroy_returns_every_avro_allocation(void **state) {
    long live_before = mem_live_blocks;
    size_t bytes_before = mem_current;
    char err[256] = "";
    ops_codec_t *c = ops_codec_new(NULL, err, sizeof(err));
    uint8_t buf[4096];
    ops_event_t ev;
    size_t len;
    (void)state;
    assert_non_null(c);
    base_event(&ev, OPS_KIND_MIGRANT);
    set_nationalities(&ev, 3);
    len = encode_ok(c, &ev, buf, sizeof(buf));
    assert_int_equal(ops_codec_decode_event(c, buf, len, &ev, err, sizeof(err)), OPS_CODEC_OK);
    assert_true(mem_live_blocks > live_before);
    ops_codec_destroy(c);
    ops_codec_destroy(NULL);
    assert_int_equal(mem_live_blocks, live_before);
    assert_int_equal(mem_current, bytes_before);
}

/* ------------------------------------------------- direct vs avro-c */

/* Every byte of a valid frame of each writer schema (ids 1-4 and 6, and the
 * rescue v1 record read by a v1 reader) replaced by a set of values: both
 * decoders agree on each (decode_both fails the test otherwise). */
static void mutate_and_compare(ops_codec_t *c, const uint8_t *frame, size_t len) {
    static const uint8_t values[] = {0x00, 0x01, 0x02, 0x03, 0x0e, 0x0f, 0x10, 0x7f, 0x80, 0x81, 0xfe, 0xff};
    uint8_t buf[OPS_CODEC_MAX_FRAME];
    char err[512];
    ops_event_t ev;
    size_t pos, v;
    for (pos = 0; pos < len; pos++)
        for (v = 0; v < sizeof(values) + 2; v++) {
            memcpy(buf, frame, len);
            buf[pos] = v < sizeof(values) ? values[v] : (uint8_t)(frame[pos] ^ (v == sizeof(values) ? 1 : 0x40));
            (void)ops_codec_decode_event(c, buf, len, &ev, err, sizeof(err));
        }
}

static void test_direct_decoder_agrees_with_avro_c_on_mutated_frames(void **state) {
    ops_codec_options_t o1 = {0, OPS_CODEC_RESCUE_V1, OPS_CODEC_RESCUE_V1};
    ops_codec_options_t w1 = {0, OPS_CODEC_RESCUE_V1, 0};
    ops_codec_options_t r1 = {0, 0, OPS_CODEC_RESCUE_V1};
    char err[256] = "";
    ops_codec_t *v1 = ops_codec_new(&o1, err, sizeof(err));
    ops_codec_t *wv1 = ops_codec_new(&w1, err, sizeof(err));
    ops_codec_t *rv1 = ops_codec_new(&r1, err, sizeof(err));
    ops_codec_t *const readers[] = {codec, v1, rv1};
    ops_codec_t *const writers[] = {codec, wv1};
    uint8_t buf[OPS_CODEC_MAX_FRAME];
    size_t w, r, len;
    ops_kind_t k;
    (void)state;
    assert_non_null(v1);
    assert_non_null(wv1);
    assert_non_null(rv1);
    for (w = 0; w < 2; w++)
        for (k = 0; k < OPS_KIND_COUNT; k++) {
            ops_event_t in;
            base_event(&in, k);
            in.has_location = k % 2 == 0;
            strcpy(in.location, "Yaounde");
            in.referred = 2;
            set_nationalities(&in, k == OPS_KIND_SEIZURE ? 0 : 3);
            len = encode_ok(writers[w], &in, buf, sizeof(buf));
            for (r = 0; r < 3; r++)
                mutate_and_compare(readers[r], buf, len);
        }
    ops_codec_destroy(v1);
    ops_codec_destroy(wv1);
    ops_codec_destroy(rv1);
}

/* Legal encodings an encoder rarely writes: non-minimal varints, an array in
 * several blocks, a sized (negative count) block, an empty array. Both
 * decoders read the same event from each. */
static void test_direct_decoder_agrees_on_unusual_legal_encodings(void **state) {
    frame_t f;
    ops_event_t ev;
    char err[256] = "";
    (void)state;
    /* persons = 3 as a two-byte varint */
    arrest_prefix(&f, 1, "FLASH-WEKA");
    f_raw(&f, "\x86\x00", 2);
    f_long(&f, 2);
    f_long(&f, 0);
    assert_int_equal(ops_codec_decode_event(codec, f.b, f.n, &ev, err, sizeof(err)), OPS_CODEC_OK);
    assert_int_equal(ev.count, 3);
    /* nationalities in two blocks */
    arrest_up_to_array(&f, 1);
    f_long(&f, 1);
    f_str(&f, "NG");
    f_long(&f, 2);
    f_str(&f, "BD");
    f_str(&f, "IN");
    f_long(&f, 0);
    assert_int_equal(ops_codec_decode_event(codec, f.b, f.n, &ev, err, sizeof(err)), OPS_CODEC_OK);
    assert_int_equal(ev.n_nationalities, 3);
    assert_string_equal(ev.nationalities[2], "IN");
    /* a sized block: count -2, 6 bytes */
    arrest_up_to_array(&f, 0);
    f_long(&f, -2);
    f_long(&f, 6);
    f_str(&f, "NG");
    f_str(&f, "BD");
    f_long(&f, 0);
    assert_int_equal(ops_codec_decode_event(codec, f.b, f.n, &ev, err, sizeof(err)), OPS_CODEC_OK);
    assert_int_equal(ev.n_nationalities, 2);
    assert_false(ev.has_location);
    /* 65 nationalities in two blocks: over the model's bound */
    arrest_up_to_array(&f, 1);
    f_long(&f, 64);
    for (int i = 0; i < 64; i++)
        f_str(&f, "NG");
    f_long(&f, 1);
    f_str(&f, "BD");
    f_long(&f, 0);
    assert_int_equal(ops_codec_decode_event(codec, f.b, f.n, &ev, err, sizeof(err)),
                     OPS_CODEC_ERR_TOO_LARGE);
}

/* Events at and past every bound of the model, and buffers of every size
 * around the frame: both encoders write the same bytes or refuse alike. */
static void test_direct_encoder_agrees_with_avro_c_at_every_bound(void **state) {
    uint8_t buf[OPS_CODEC_MAX_FRAME];
    char err[256];
    ops_kind_t k;
    size_t len, cut;
    int v;
    (void)state;
    for (k = 0; k < OPS_KIND_COUNT; k++) {
        ops_event_t ev;
        base_event(&ev, k);
        ev.has_location = true;
        memset(ev.location, 'x', OPS_LOCATION_MAX);
        ev.location[OPS_LOCATION_MAX] = '\0';
        set_nationalities(&ev, OPS_NATIONALITIES_MAX);
        ev.occurred_at = INT64_MIN;
        ev.reported_at = INT64_MAX;
        ev.count = INT32_MAX;
        ev.minors = -1;
        ev.referred = INT32_MIN;
        len = 0;
        assert_int_equal(ops_codec_encode_event(codec, &ev, buf, sizeof(buf), &len, err,
                                                sizeof(err)),
                         0);
        for (cut = 0; cut <= len; cut++)
            (void)ops_codec_encode_event(codec, &ev, buf, cut, &len, err, sizeof(err));
        ev.n_nationalities = OPS_NATIONALITIES_MAX + 1;
        (void)ops_codec_encode_event(codec, &ev, buf, sizeof(buf), &len, err, sizeof(err));
        ev.n_nationalities = 1;
        ev.location[OPS_LOCATION_MAX] = 'x'; /* not NUL-terminated */
        (void)ops_codec_encode_event(codec, &ev, buf, sizeof(buf), &len, err, sizeof(err));
        ev.has_location = false;
        (void)ops_codec_encode_event(codec, &ev, buf, sizeof(buf), &len, err, sizeof(err));
        memset(ev.nationalities[0], 'N', 3);
        (void)ops_codec_encode_event(codec, &ev, buf, sizeof(buf), &len, err, sizeof(err));
        base_event(&ev, k);
        for (v = -2; v < 12; v++) {
            ev.offence = (ops_offence_t)v;
            ev.exploitation = (ops_exploitation_t)v;
            ev.site = (ops_site_t)(v + 1);
            ev.category = (ops_category_t)v;
            (void)ops_codec_encode_event(codec, &ev, buf, sizeof(buf), &len, err, sizeof(err));
        }
        ev.country[2] = 'X';
        (void)ops_codec_encode_event(codec, &ev, buf, sizeof(buf), &len, err, sizeof(err));
    }
}

/* The direct paths are the ones taken: encoding and decoding a valid event
 * of each kind makes no avro-c allocation at all, not even the first time. */
static void test_direct_encode_and_decode_make_no_avro_allocation(void **state) {
    uint8_t buf[OPS_CODEC_MAX_FRAME];
    char err[256] = "";
    ops_event_t in, out;
    ops_kind_t k;
    size_t len;
    char e2[256] = "";
    ops_codec_t *c = ops_codec_new(NULL, e2, sizeof(e2));
    (void)state;
    assert_non_null(c);
    for (k = 0; k < OPS_KIND_COUNT; k++) {
        long calls;
        base_event(&in, k);
        in.has_location = true;
        strcpy(in.location, "Nouakchott");
        set_nationalities(&in, k == OPS_KIND_SEIZURE ? 0 : 8);
        len = encode_ok(c, &in, buf, sizeof(buf));
        calls = mem_calls;
        assert_int_equal((ops_codec_encode_event)(c, &in, buf, sizeof(buf), &len, err, sizeof(err)), 0);
        if (mem_calls != calls)
            fail_msg("kind %s: %ld avro-c allocations to encode", ops_kind_name(k), mem_calls - calls);
        assert_int_equal((ops_codec_decode_event)(c, buf, len, &out, err, sizeof(err)),
                         OPS_CODEC_OK);
        if (mem_calls != calls)
            fail_msg("kind %s: %ld avro-c allocations", ops_kind_name(k), mem_calls - calls);
        assert_memory_equal(&in, &out, sizeof(in));
    }
    ops_codec_destroy(c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_kind_round_trips_with_all_fields),
        cmocka_unit_test(test_alert_round_trips_with_and_without_country),
        cmocka_unit_test(test_writer_ids_follow_the_schema_id_file),
        cmocka_unit_test(test_schema_enum_symbols_match_the_event_model),
        cmocka_unit_test(test_rescue_v1_record_reads_as_v2_with_referred_zero),
        cmocka_unit_test(test_rescue_v2_record_reads_as_v1_without_referred),
        cmocka_unit_test(test_unknown_rescue_version_is_refused),
        cmocka_unit_test(test_builder_makes_a_valid_arrest),
        cmocka_unit_test(test_every_malformed_class_is_reported_and_bounded),
        cmocka_unit_test(test_error_message_names_offset_and_field),
        cmocka_unit_test(test_frame_truncated_at_every_offset_is_an_error),
        cmocka_unit_test(test_frame_over_the_size_limit_is_too_large),
        cmocka_unit_test(test_event_frame_given_to_decode_alert_is_wrong_type),
        cmocka_unit_test(test_encode_refuses_a_small_buffer_and_bad_enum),
        cmocka_unit_test(test_largest_event_fits_the_max_frame),
        cmocka_unit_test(test_frame_schema_id_reads_header_only),
        cmocka_unit_test(test_ten_thousand_decodes_do_not_grow_live_allocations),
        cmocka_unit_test(test_destroy_returns_every_avro_allocation),
        cmocka_unit_test(test_direct_decoder_agrees_with_avro_c_on_mutated_frames),
        cmocka_unit_test(test_direct_decoder_agrees_on_unusual_legal_encodings),
        cmocka_unit_test(test_direct_encoder_agrees_with_avro_c_at_every_bound),
        cmocka_unit_test(test_direct_encode_and_decode_make_no_avro_allocation),
    };
    /* Before any avro-c call, so every allocation is counted. */
    avro_set_allocator(counting_alloc, NULL);
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
