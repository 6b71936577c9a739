/*
 * opstream Avro guard: a non-allocating walk of an untrusted Avro binary body
 * along its writer schema, so that avro-c (which trusts length prefixes and
 * block counts) only ever sees bodies whose every claim fits the bytes left.
 */
#include "opstream/avro_guard.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

typedef struct guard {
    const uint8_t *buf;
    size_t len;
    size_t pos;
    uint64_t items; /* array and map items seen so far */
    ops_avro_guard_limits_t lim;
    const char *field; /* innermost record field, for messages */
    char *errstr;
    size_t errstr_size;
} guard_t;

/* Fills errstr as "<class>: <detail> (field <name>)" and returns the class,
 * so every check reads `return fail(g, ...)`. */
static ops_codec_err_t fail(guard_t *g, ops_codec_err_t err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static ops_codec_err_t fail(guard_t *g, ops_codec_err_t err, const char *fmt, ...) {
    va_list ap;
    int n;

    if (g->errstr == NULL || g->errstr_size == 0)
        return err;
    n = snprintf(g->errstr, g->errstr_size, "%s: ", ops_codec_err_name(err));
    if (n < 0 || (size_t)n >= g->errstr_size)
        return err;
    va_start(ap, fmt);
    vsnprintf(g->errstr + n, g->errstr_size - (size_t)n, fmt, ap);
    va_end(ap);
    if (g->field != NULL) {
        size_t used = strlen(g->errstr);
        snprintf(g->errstr + used, g->errstr_size - used, " (field %s)", g->field);
    }
    return err;
}

static size_t bytes_left(const guard_t *g) {
    return g->len - g->pos;
}

/*
 * Reads one zig-zag varint. Avro ints take at most 5 bytes and longs 10; a
 * longer run, or a last byte carrying bits past 32/64, is malformed rather
 * than silently wrapped, because avro-c would otherwise read a different
 * value than the one we checked.
 */
static ops_codec_err_t read_varint(guard_t *g, int is_int, const char *what, int64_t *out) {
    size_t start = g->pos;
    int maxb = is_int ? 5 : 10;
    uint64_t v = 0;
    int i;

    for (i = 0;; i++) {
        uint8_t b;
        if (i == maxb)
            return fail(g, OPS_CODEC_ERR_MALFORMED,
                        "%s varint at body offset %zu is longer than %d bytes", what, start, maxb);
        if (g->pos >= g->len)
            return fail(g, OPS_CODEC_ERR_TRUNCATED,
                        "body ends inside the %s varint at body offset %zu", what, start);
        b = g->buf[g->pos++];
        if (i == maxb - 1 && (b & 0x7f) > (is_int ? 0x0f : 0x01))
            return fail(g, OPS_CODEC_ERR_MALFORMED,
                        "%s varint at body offset %zu overflows %d bits", what, start,
                        is_int ? 32 : 64);
        v |= (uint64_t)(b & 0x7f) << (7 * i);
        if ((b & 0x80) == 0)
            break;
    }
    *out = (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
    return OPS_CODEC_OK;
}

static ops_codec_err_t need(guard_t *g, size_t n, const char *what) {
    if (bytes_left(g) < n)
        return fail(g, OPS_CODEC_ERR_TRUNCATED, "%s needs %zu bytes at body offset %zu, %zu left",
                    what, n, g->pos, bytes_left(g));
    g->pos += n;
    return OPS_CODEC_OK;
}

/* A string or bytes value: a length, never negative, within the limit and
 * within the bytes left, then the bytes themselves. */
static ops_codec_err_t skip_string(guard_t *g, const char *what) {
    size_t at = g->pos;
    ops_codec_err_t err;
    int64_t v;

    if ((err = read_varint(g, 0, "length", &v)) != OPS_CODEC_OK)
        return err;
    if (v < 0)
        return fail(g, OPS_CODEC_ERR_MALFORMED, "negative %s length %lld at body offset %zu", what,
                    (long long)v, at);
    if ((uint64_t)v > g->lim.max_string_bytes)
        return fail(g, OPS_CODEC_ERR_TOO_LARGE,
                    "%s length %lld at body offset %zu exceeds the limit of %zu bytes", what,
                    (long long)v, at, g->lim.max_string_bytes);
    if ((uint64_t)v > bytes_left(g))
        return fail(g, OPS_CODEC_ERR_TRUNCATED,
                    "%s length %lld at body offset %zu exceeds the %zu bytes left", what,
                    (long long)v, at, bytes_left(g));
    g->pos += (size_t)v;
    return OPS_CODEC_OK;
}

static size_t min_size_depth(avro_schema_t s, int depth) {
    size_t i, n, sum, best;

    if (s == NULL || depth > OPS_AVRO_GUARD_MAX_DEPTH)
        return 0;
    switch (avro_typeof(s)) {
    case AVRO_NULL:
        return 0;
    case AVRO_FLOAT:
        return 4;
    case AVRO_DOUBLE:
        return 8;
    case AVRO_FIXED:
        return (size_t)avro_schema_fixed_size(s);
    case AVRO_RECORD:
        n = avro_schema_record_size(s);
        for (i = 0, sum = 0; i < n; i++)
            sum += min_size_depth(avro_schema_record_field_get_by_index(s, (int)i), depth + 1);
        return sum;
    case AVRO_UNION:
        n = avro_schema_union_size(s);
        for (i = 0, best = SIZE_MAX; i < n; i++) {
            size_t m = min_size_depth(avro_schema_union_branch(s, (int)i), depth + 1);
            if (m < best)
                best = m;
        }
        return 1 + (best == SIZE_MAX ? 0 : best);
    case AVRO_LINK:
        return min_size_depth(avro_schema_link_target(s), depth + 1);
    default: /* boolean, int, long, string, bytes, enum: one byte; array, map: the end block */
        return 1;
    }
}

size_t ops_avro_guard_min_size(avro_schema_t schema) {
    return min_size_depth(schema, 0);
}

static ops_codec_err_t walk(guard_t *g, avro_schema_t s, int depth);

/*
 * Array and map blocks: a count, and for a negative count a byte size, then
 * the items. A count is checked against the item budget (so zero-size items
 * such as null cannot make avro-c append billions of elements) and against
 * the bytes left divided by the item's minimum size, before any item is read.
 */
static ops_codec_err_t walk_blocks(guard_t *g, avro_schema_t s, int is_map, int depth) {
    avro_schema_t item = is_map ? avro_schema_map_values(s) : avro_schema_array_items(s);
    size_t min_item = ops_avro_guard_min_size(item) + (is_map ? 1 : 0);
    const char *what = is_map ? "map" : "array";
    ops_codec_err_t err;

    for (;;) {
        size_t at = g->pos, block_start = 0;
        int64_t count, size = -1;
        uint64_t i, n;

        if ((err = read_varint(g, 0, "block count", &count)) != OPS_CODEC_OK)
            return err;
        if (count == 0)
            return OPS_CODEC_OK;
        if (count < 0) {
            if (count == INT64_MIN)
                return fail(g, OPS_CODEC_ERR_MALFORMED,
                            "%s block count at body offset %zu is out of range", what, at);
            count = -count;
            if ((err = read_varint(g, 0, "block size", &size)) != OPS_CODEC_OK)
                return err;
            if (size < 0)
                return fail(g, OPS_CODEC_ERR_MALFORMED,
                            "negative %s block size %lld at body offset %zu", what, (long long)size,
                            at);
            if ((uint64_t)size > bytes_left(g))
                return fail(g, OPS_CODEC_ERR_TRUNCATED,
                            "%s block size %lld at body offset %zu exceeds the %zu bytes left",
                            what, (long long)size, at, bytes_left(g));
            block_start = g->pos;
        }
        n = (uint64_t)count;
        if (n > g->lim.max_items - g->items)
            return fail(g, OPS_CODEC_ERR_TOO_LARGE,
                        "%s block of %llu items at body offset %zu exceeds the limit of %llu items",
                        what, (unsigned long long)n, at, (unsigned long long)g->lim.max_items);
        if (min_item > 0 && n > bytes_left(g) / min_item)
            return fail(
                g, OPS_CODEC_ERR_TRUNCATED,
                "%s block of %llu items at body offset %zu cannot fit in the %zu bytes left", what,
                (unsigned long long)n, at, bytes_left(g));
        g->items += n;
        for (i = 0; i < n; i++) {
            if (is_map && (err = skip_string(g, "map key")) != OPS_CODEC_OK)
                return err;
            if ((err = walk(g, item, depth + 1)) != OPS_CODEC_OK)
                return err;
        }
        if (size >= 0 && g->pos - block_start != (size_t)size)
            return fail(g, OPS_CODEC_ERR_MALFORMED,
                        "%s block at body offset %zu declares %lld bytes but its items take %zu",
                        what, at, (long long)size, g->pos - block_start);
    }
}

/* Checks one datum of schema s at the current position, recursing into
 * records, unions, arrays and maps. */
static ops_codec_err_t walk(guard_t *g, avro_schema_t s, int depth) {
    ops_codec_err_t err = OPS_CODEC_OK;
    size_t at = g->pos;
    int64_t v;

    if (depth > g->lim.max_depth)
        return fail(g, OPS_CODEC_ERR_MALFORMED, "schema nesting deeper than %d at body offset %zu",
                    g->lim.max_depth, at);
    switch (avro_typeof(s)) {
    case AVRO_NULL:
        return OPS_CODEC_OK;
    case AVRO_BOOLEAN:
        if ((err = need(g, 1, "boolean")) != OPS_CODEC_OK)
            return err;
        if (g->buf[at] > 1)
            return fail(g, OPS_CODEC_ERR_MALFORMED, "boolean byte 0x%02x at body offset %zu",
                        g->buf[at], at);
        return OPS_CODEC_OK;
    case AVRO_INT32:
        return read_varint(g, 1, "int", &v);
    case AVRO_INT64:
        return read_varint(g, 0, "long", &v);
    case AVRO_FLOAT:
        return need(g, 4, "float");
    case AVRO_DOUBLE:
        return need(g, 8, "double");
    case AVRO_FIXED:
        return need(g, (size_t)avro_schema_fixed_size(s), "fixed");
    case AVRO_STRING:
        return skip_string(g, "string");
    case AVRO_BYTES:
        return skip_string(g, "bytes");
    case AVRO_ENUM:
        if ((err = read_varint(g, 1, "enum index", &v)) != OPS_CODEC_OK)
            return err;
        if (v < 0 || v >= avro_schema_enum_number_of_symbols(s))
            return fail(g, OPS_CODEC_ERR_MALFORMED,
                        "enum index %lld at body offset %zu is outside %s's %d symbols",
                        (long long)v, at, avro_schema_name(s),
                        avro_schema_enum_number_of_symbols(s));
        return OPS_CODEC_OK;
    case AVRO_UNION:
        if ((err = read_varint(g, 0, "union index", &v)) != OPS_CODEC_OK)
            return err;
        if (v < 0 || (uint64_t)v >= avro_schema_union_size(s))
            return fail(g, OPS_CODEC_ERR_MALFORMED,
                        "union index %lld at body offset %zu is outside the %zu branches",
                        (long long)v, at, avro_schema_union_size(s));
        return walk(g, avro_schema_union_branch(s, (int)v), depth + 1);
    case AVRO_RECORD: {
        size_t i, n = avro_schema_record_size(s);
        const char *outer = g->field;
        for (i = 0; i < n && err == OPS_CODEC_OK; i++) {
            g->field = avro_schema_record_field_name(s, (int)i);
            err = walk(g, avro_schema_record_field_get_by_index(s, (int)i), depth + 1);
        }
        if (err == OPS_CODEC_OK)
            g->field = outer;
        return err;
    }
    case AVRO_ARRAY:
        return walk_blocks(g, s, 0, depth);
    case AVRO_MAP:
        return walk_blocks(g, s, 1, depth);
    case AVRO_LINK:
        return walk(g, avro_schema_link_target(s), depth + 1);
    }
    return fail(g, OPS_CODEC_ERR_INTERNAL, "unknown schema type at body offset %zu", at);
}

ops_codec_err_t ops_avro_guard_check(avro_schema_t writer_schema, const void *body, size_t len,
                                     const ops_avro_guard_limits_t *limits, char *errstr,
                                     size_t errstr_size) {
    guard_t g;
    ops_codec_err_t err;

    memset(&g, 0, sizeof(g));
    g.buf = body;
    g.len = len;
    g.errstr = errstr;
    g.errstr_size = errstr_size;
    if (limits != NULL)
        g.lim = *limits;
    if (g.lim.max_string_bytes == 0)
        g.lim.max_string_bytes = OPS_AVRO_GUARD_MAX_STRING;
    if (g.lim.max_items == 0)
        g.lim.max_items = OPS_AVRO_GUARD_MAX_ITEMS;
    if (g.lim.max_depth <= 0)
        g.lim.max_depth = OPS_AVRO_GUARD_MAX_DEPTH;
    if (writer_schema == NULL || (body == NULL && len > 0))
        return fail(&g, OPS_CODEC_ERR_INTERNAL, "no schema or no body");

    if ((err = walk(&g, writer_schema, 0)) != OPS_CODEC_OK)
        return err;
    if (g.pos != g.len)
        return fail(&g, OPS_CODEC_ERR_MALFORMED,
                    "%zu trailing bytes after the record at body offset %zu", g.len - g.pos, g.pos);
    return OPS_CODEC_OK;
}
