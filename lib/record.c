/*
 * opstream records: turns the named values of one input record (a CSV row or
 * a JSON line) into a validated ops_event_t, filling what the command line
 * fixes and refusing what contradicts it, with every error naming its field.
 * And back: an event as one JSON line of the same input format.
 */
#include "opstream/record.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "opstream/validate.h"
#include "json_priv.h"

#define K_ARREST (1u << OPS_KIND_ARREST)
#define K_RESCUE (1u << OPS_KIND_RESCUE)
#define K_MIGRANT (1u << OPS_KIND_MIGRANT)
#define K_SEIZURE (1u << OPS_KIND_SEIZURE)
#define K_ALL (K_ARREST | K_RESCUE | K_MIGRANT | K_SEIZURE)

static const struct {
    const char *name;
    unsigned kinds; /* the kinds this field belongs to */
} fields[OPS_FIELD_COUNT] = {
    [OPS_FIELD_KIND] = {"kind", K_ALL},
    [OPS_FIELD_EVENT_ID] = {"event_id", K_ALL},
    [OPS_FIELD_OPERATION] = {"operation", K_ALL},
    [OPS_FIELD_COUNTRY] = {"country", K_ALL},
    [OPS_FIELD_OCCURRED_AT] = {"occurred_at", K_ALL},
    [OPS_FIELD_REPORTED_AT] = {"reported_at", K_ALL},
    [OPS_FIELD_SOURCE_REF] = {"source_ref", K_ALL},
    [OPS_FIELD_LOCATION] = {"location", K_ALL},
    [OPS_FIELD_PERSONS] = {"persons", K_ARREST},
    [OPS_FIELD_OFFENCE] = {"offence", K_ARREST},
    [OPS_FIELD_SUSPECT_NATIONALITIES] = {"suspect_nationalities", K_ARREST},
    [OPS_FIELD_VICTIMS] = {"victims", K_RESCUE},
    [OPS_FIELD_MINORS] = {"minors", K_RESCUE | K_MIGRANT},
    [OPS_FIELD_REFERRED] = {"referred", K_RESCUE},
    [OPS_FIELD_EXPLOITATION] = {"exploitation", K_RESCUE},
    [OPS_FIELD_SITE] = {"site", K_RESCUE},
    [OPS_FIELD_VICTIM_NATIONALITIES] = {"victim_nationalities", K_RESCUE},
    [OPS_FIELD_MIGRANTS] = {"migrants", K_MIGRANT},
    [OPS_FIELD_NATIONALITIES] = {"nationalities", K_MIGRANT},
    [OPS_FIELD_ITEMS] = {"items", K_SEIZURE},
    [OPS_FIELD_CATEGORY] = {"category", K_SEIZURE},
};

/* The headline count and the nationality list of each kind. */
static const ops_field_t count_field[OPS_KIND_COUNT] = {OPS_FIELD_PERSONS, OPS_FIELD_VICTIMS,
                                                        OPS_FIELD_MIGRANTS, OPS_FIELD_ITEMS};
static const ops_field_t list_field[OPS_KIND_COUNT] = {
    OPS_FIELD_SUSPECT_NATIONALITIES, OPS_FIELD_VICTIM_NATIONALITIES, OPS_FIELD_NATIONALITIES,
    OPS_FIELD_COUNT /* seizures have none */
};

const char *ops_field_name(ops_field_t f) {
    if ((int)f < 0 || f >= OPS_FIELD_COUNT)
        return NULL;
    return fields[f].name;
}

int ops_field_from_name(const char *name) {
    /* The first byte first: this runs for every field of every input line. */
    for (int f = 0; f < OPS_FIELD_COUNT; f++)
        if (fields[f].name[0] == name[0] && strcmp(fields[f].name, name) == 0)
            return f;
    return -1;
}

void ops_record_clear(ops_record_t *rec) {
    memset(rec, 0, sizeof(*rec));
}

int ops_record_map_header(const char *const *names, size_t n, int *map, char *errstr,
                          size_t errstr_size) {
    for (size_t i = 0; i < n; i++) {
        int f = ops_field_from_name(names[i]);
        if (f < 0) {
            snprintf(errstr, errstr_size,
                     "column %zu: unknown column '%s' (columns are the event field names and "
                     "'kind')",
                     i + 1, names[i]);
            return -1;
        }
        for (size_t j = 0; j < i; j++) {
            if (map[j] == f) {
                snprintf(errstr, errstr_size, "column %zu: column '%s' repeats column %zu", i + 1,
                         names[i], j + 1);
                return -1;
            }
        }
        map[i] = f;
    }
    return 0;
}

int ops_record_from_json(ops_record_t *rec, const ops_json_t *obj, const char **fieldp,
                         char *errstr, size_t errstr_size) {
    ops_record_clear(rec);
    for (size_t i = 0; i < ops_json_count(obj); i++) {
        const ops_json_member_t *m = ops_json_member(obj, i);
        int f = ops_field_from_name(m->key);
        if (f < 0) {
            if (fieldp != NULL)
                *fieldp = m->key;
            snprintf(errstr, errstr_size, "%s: unknown field (column %zu)", m->key, m->column);
            return -1;
        }
        ops_value_t *v = &rec->v[f];
        switch (m->type) {
        case OPS_JSON_STRING:
            v->type = OPS_VALUE_STRING;
            v->text = m->text;
            break;
        case OPS_JSON_NUMBER:
            v->type = OPS_VALUE_NUMBER;
            v->text = m->text;
            break;
        case OPS_JSON_NULL:
            v->type = OPS_VALUE_ABSENT;
            break;
        case OPS_JSON_ARRAY:
            v->type = OPS_VALUE_ARRAY;
            v->items = m->items;
            v->n_items = m->n_items;
            break;
        }
    }
    return 0;
}

/* ---- building an event ---- */

typedef struct build {
    const ops_record_t *rec;
    ops_field_t field; /* the field being worked on, for errors */
    char *errstr;
    size_t errstr_size;
} build_t;

/* Formats "field: reason"; always returns -1. */
static int fail(build_t *b, ops_field_t f, const char *fmt, ...) {
    va_list ap;
    b->field = f;
    int n = snprintf(b->errstr, b->errstr_size, "%s: ", fields[f].name);
    if (n < 0 || (size_t)n >= b->errstr_size)
        return -1;
    va_start(ap, fmt);
    vsnprintf(b->errstr + n, b->errstr_size - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

static int present(const build_t *b, ops_field_t f) {
    return b->rec->v[f].type != OPS_VALUE_ABSENT;
}

/* A string-typed field: CSV text or a JSON string. */
static int get_text(build_t *b, ops_field_t f, const char **out) {
    const ops_value_t *v = &b->rec->v[f];
    if (v->type == OPS_VALUE_TEXT || v->type == OPS_VALUE_STRING) {
        *out = v->text;
        return 0;
    }
    return fail(b, f, "expected a string, not %s",
                v->type == OPS_VALUE_NUMBER ? "a number" : "an array");
}

static int copy_text(build_t *b, ops_field_t f, char *dst, size_t dstsize) {
    const char *s = NULL;
    if (get_text(b, f, &s) != 0)
        return -1;
    size_t len = strlen(s);
    if (len >= dstsize)
        return fail(b, f, "%zu bytes is longer than the limit of %zu", len, dstsize - 1);
    memcpy(dst, s, len + 1);
    return 0;
}

/* A whole number: CSV text or a JSON number (a JSON string is refused, so a
 * quoted "3" in an export is noticed). */
static int get_int(build_t *b, ops_field_t f, int32_t *out) {
    const ops_value_t *v = &b->rec->v[f];
    if (v->type != OPS_VALUE_TEXT && v->type != OPS_VALUE_NUMBER)
        return fail(b, f, "expected a number, not %s",
                    v->type == OPS_VALUE_STRING ? "a string" : "an array");
    const char *s = v->text;
    char *end = NULL;
    errno = 0;
    long long n = strtoll(s, &end, 10);
    if (end == s || *end != '\0' || (s[0] != '-' && (s[0] < '0' || s[0] > '9')))
        return fail(b, f, "'%s' is not a whole number", s);
    if (errno == ERANGE || n < INT32_MIN || n > INT32_MAX)
        return fail(b, f, "%s is out of range", s);
    *out = (int32_t)n;
    return 0;
}

static int get_time(build_t *b, ops_field_t f, int64_t *out) {
    const ops_value_t *v = &b->rec->v[f];
    char err[160];
    if (v->type == OPS_VALUE_ARRAY)
        return fail(b, f, "expected a timestamp, not an array");
    if (ops_validate_parse_timestamp(v->text, out, err, sizeof(err)) != 0)
        return fail(b, f, "%s", err);
    return 0;
}

static int get_enum(build_t *b, ops_field_t f, int (*from_name)(const char *),
                    const char *(*name)(int), int *out) {
    const char *s = NULL;
    if (get_text(b, f, &s) != 0)
        return -1;
    int e = from_name(s);
    if (e >= 0) {
        *out = e;
        return 0;
    }
    char list[512];
    size_t pos = 0;
    list[0] = '\0';
    for (int i = 0; name(i) != NULL && pos < sizeof(list); i++) {
        int n = snprintf(list + pos, sizeof(list) - pos, "%s%s", i ? ", " : "", name(i));
        if (n < 0)
            break;
        pos += (size_t)n;
    }
    return fail(b, f, "unknown value '%s' (expected one of %s)", s, list);
}

/* Adapters so get_enum can take every enum's name function. */
static const char *offence_name(int i) {
    return ops_offence_name((ops_offence_t)i);
}
static const char *exploitation_name(int i) {
    return ops_exploitation_name((ops_exploitation_t)i);
}
static const char *site_name(int i) {
    return ops_site_name((ops_site_t)i);
}
static const char *category_name(int i) {
    return ops_category_name((ops_category_t)i);
}
static const char *kind_name(int i) {
    return ops_kind_name((ops_kind_t)i);
}

static int add_nationality(build_t *b, ops_field_t f, ops_event_t *ev, const char *s, size_t len) {
    if (len == 0)
        return fail(b, f, "empty country code in the list");
    if (len != 2)
        return fail(b, f, "'%.*s' is not a two-letter country code", (int)(len > 16 ? 16 : len), s);
    if (ev->n_nationalities >= OPS_NATIONALITIES_MAX)
        return fail(b, f, "more than %d countries", OPS_NATIONALITIES_MAX);
    memcpy(ev->nationalities[ev->n_nationalities], s, 2);
    ev->nationalities[ev->n_nationalities][2] = '\0';
    ev->n_nationalities++;
    return 0;
}

/* A list of country codes: a JSON array, or CSV text split at ';' with the
 * spaces around each code ignored. */
static int get_list(build_t *b, ops_field_t f, ops_event_t *ev) {
    const ops_value_t *v = &b->rec->v[f];
    if (v->type == OPS_VALUE_ARRAY) {
        for (size_t i = 0; i < v->n_items; i++)
            if (add_nationality(b, f, ev, v->items[i], strlen(v->items[i])) != 0)
                return -1;
        return 0;
    }
    if (v->type != OPS_VALUE_TEXT)
        return fail(b, f, "expected an array of country codes");
    const char *p = v->text;
    for (;;) {
        const char *end = strchr(p, ';');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        const char *s = p;
        while (len > 0 && *s == ' ') {
            s++;
            len--;
        }
        while (len > 0 && s[len - 1] == ' ')
            len--;
        if (add_nationality(b, f, ev, s, len) != 0)
            return -1;
        if (end == NULL)
            return 0;
        p = end + 1;
    }
}

/* operation / country: from the record, or the command line's value; both
 * given and different is a contradiction. */
static int get_fixed(build_t *b, ops_field_t f, const char *fixed, const char *option, char *dst,
                     size_t dstsize) {
    if (!present(b, f)) {
        if (fixed == NULL)
            return fail(b, f, "missing (give a %s column or %s)", fields[f].name, option);
        if (strlen(fixed) >= dstsize)
            return fail(b, f, "'%s' is too long", fixed);
        memcpy(dst, fixed, strlen(fixed) + 1);
        return 0;
    }
    if (copy_text(b, f, dst, dstsize) != 0)
        return -1;
    if (fixed != NULL && strcmp(dst, fixed) != 0)
        return fail(b, f, "'%s' contradicts %s %s", dst, option, fixed);
    return 0;
}

static int build_kind(build_t *b, const ops_record_defaults_t *d, ops_event_t *ev) {
    int kind = d->kind;
    if (present(b, OPS_FIELD_KIND)) {
        if (get_enum(b, OPS_FIELD_KIND, ops_kind_from_name, kind_name, &kind) != 0)
            return -1;
        if (d->kind >= 0 && kind != d->kind)
            return fail(b, OPS_FIELD_KIND, "'%s' contradicts --kind %s",
                        ops_kind_name((ops_kind_t)kind), ops_kind_name((ops_kind_t)d->kind));
    } else if (kind < 0) {
        return fail(b, OPS_FIELD_KIND, "missing (give a kind column or --kind)");
    }
    ev->kind = (ops_kind_t)kind;
    /* Fields of other kinds must be empty: a mixed-kind CSV has them all. */
    for (int f = 0; f < OPS_FIELD_COUNT; f++)
        if (present(b, (ops_field_t)f) && !(fields[f].kinds & (1u << kind)))
            return fail(b, (ops_field_t)f, "not a field of %s events", ops_kind_name(ev->kind));
    return 0;
}

static int build_kind_fields(build_t *b, ops_event_t *ev) {
    ops_field_t cf = count_field[ev->kind];
    int e;
    if (!present(b, cf))
        return fail(b, cf, "missing");
    if (get_int(b, cf, &ev->count) != 0)
        return -1;
    if (present(b, OPS_FIELD_MINORS) && get_int(b, OPS_FIELD_MINORS, &ev->minors) != 0)
        return -1;
    if (present(b, OPS_FIELD_REFERRED) && get_int(b, OPS_FIELD_REFERRED, &ev->referred) != 0)
        return -1;
    if (present(b, OPS_FIELD_OFFENCE)) {
        if (get_enum(b, OPS_FIELD_OFFENCE, ops_offence_from_name, offence_name, &e) != 0)
            return -1;
        ev->offence = (ops_offence_t)e;
    }
    if (present(b, OPS_FIELD_EXPLOITATION)) {
        if (get_enum(b, OPS_FIELD_EXPLOITATION, ops_exploitation_from_name, exploitation_name,
                     &e) != 0)
            return -1;
        ev->exploitation = (ops_exploitation_t)e;
    }
    if (present(b, OPS_FIELD_SITE)) {
        if (get_enum(b, OPS_FIELD_SITE, ops_site_from_name, site_name, &e) != 0)
            return -1;
        ev->site = (ops_site_t)e;
    }
    if (present(b, OPS_FIELD_CATEGORY)) {
        if (get_enum(b, OPS_FIELD_CATEGORY, ops_category_from_name, category_name, &e) != 0)
            return -1;
        ev->category = (ops_category_t)e;
    }
    ops_field_t lf = list_field[ev->kind];
    if (lf != OPS_FIELD_COUNT && present(b, lf) && get_list(b, lf, ev) != 0)
        return -1;
    return 0;
}

/* The order of the checks gives the most useful first error: what the
 * record is (kind), whose it is (operation, country), then its content, and
 * finally the event model's own rules (ops_validate_event_limits: the same
 * implementation the consumers judge decoded events with). */
int ops_record_build(const ops_record_t *rec, const ops_record_defaults_t *d, ops_event_t *ev,
                     const char **fieldp, char *errstr, size_t errstr_size) {
    build_t b = {rec, OPS_FIELD_KIND, errstr, errstr_size};
    const char *vfield = NULL;
    int rc = -1;

    ops_event_init(ev);
    if (build_kind(&b, d, ev) != 0)
        goto out;
    if (get_fixed(&b, OPS_FIELD_OPERATION, d->operation, "--operation", ev->operation,
                  sizeof(ev->operation)) != 0)
        goto out;
    if (get_fixed(&b, OPS_FIELD_COUNTRY, d->country, "--country", ev->country,
                  sizeof(ev->country)) != 0)
        goto out;
    if (!present(&b, OPS_FIELD_SOURCE_REF)) {
        fail(&b, OPS_FIELD_SOURCE_REF, "missing (the national record id is required)");
        goto out;
    }
    if (copy_text(&b, OPS_FIELD_SOURCE_REF, ev->source_ref, sizeof(ev->source_ref)) != 0)
        goto out;
    if (!present(&b, OPS_FIELD_OCCURRED_AT)) {
        fail(&b, OPS_FIELD_OCCURRED_AT, "missing");
        goto out;
    }
    if (get_time(&b, OPS_FIELD_OCCURRED_AT, &ev->occurred_at) != 0)
        goto out;
    ev->reported_at = d->now_ms;
    if (present(&b, OPS_FIELD_REPORTED_AT) &&
        get_time(&b, OPS_FIELD_REPORTED_AT, &ev->reported_at) != 0)
        goto out;
    if (present(&b, OPS_FIELD_LOCATION)) {
        if (copy_text(&b, OPS_FIELD_LOCATION, ev->location, sizeof(ev->location)) != 0)
            goto out;
        ev->has_location = true;
    }
    if (build_kind_fields(&b, ev) != 0)
        goto out;
    if (present(&b, OPS_FIELD_EVENT_ID)) {
        if (copy_text(&b, OPS_FIELD_EVENT_ID, ev->event_id, sizeof(ev->event_id)) != 0)
            goto out;
        if (!ops_valid_uuid(ev->event_id)) {
            fail(&b, OPS_FIELD_EVENT_ID, "'%s' is not a lower-case UUID (8-4-4-4-12 hex)",
                 ev->event_id);
            goto out;
        }
    } else {
        ops_event_id_derive(ev->operation, ev->country, ev->kind, ev->source_ref, ev->event_id);
    }
    if (ops_validate_event_limits(ev, d->limits, d->now_ms, &vfield, errstr, errstr_size) != 0) {
        if (fieldp != NULL)
            *fieldp = vfield;
        return -1;
    }
    rc = 0;
out:
    if (rc != 0 && fieldp != NULL)
        *fieldp = fields[b.field].name;
    return rc;
}

/* ---- an event as a JSON line ---- */

static int put_str(json_t *o, const char *key, const char *s) {
    return json_object_set_new(o, key, s != NULL ? ops_json_string_repaired(s, strlen(s)) : NULL);
}

static int put_int(json_t *o, const char *key, int32_t v) {
    return json_object_set_new(o, key, json_integer(v));
}

/* The fields in the input format's order, through jansson. */
int ops_record_format_json(const ops_event_t *ev, char *buf, size_t bufsize) {
    char occurred[40], reported[40];
    int bad = 0, rc = -1;
    json_t *o = json_object();

    if (bufsize == 0 || o == NULL)
        goto out;
    ops_validate_format_timestamp(ev->occurred_at, occurred, sizeof(occurred));
    ops_validate_format_timestamp(ev->reported_at, reported, sizeof(reported));
    bad |= put_str(o, "kind", ops_kind_name(ev->kind));
    bad |= put_str(o, "event_id", ev->event_id);
    bad |= put_str(o, "operation", ev->operation);
    bad |= put_str(o, "country", ev->country);
    bad |= put_str(o, "occurred_at", occurred);
    bad |= put_str(o, "reported_at", reported);
    bad |= put_str(o, "source_ref", ev->source_ref);
    if (ev->has_location)
        bad |= put_str(o, "location", ev->location);
    bad |= put_int(o, fields[count_field[ev->kind]].name, ev->count);
    switch (ev->kind) {
    case OPS_KIND_ARREST:
        bad |= put_str(o, "offence", ops_offence_name(ev->offence));
        break;
    case OPS_KIND_RESCUE:
        bad |= put_int(o, "minors", ev->minors);
        bad |= put_int(o, "referred", ev->referred);
        bad |= put_str(o, "exploitation", ops_exploitation_name(ev->exploitation));
        bad |= put_str(o, "site", ops_site_name(ev->site));
        break;
    case OPS_KIND_MIGRANT:
        bad |= put_int(o, "minors", ev->minors);
        break;
    case OPS_KIND_SEIZURE:
        bad |= put_str(o, "category", ops_category_name(ev->category));
        break;
    default:
        break;
    }
    if (ev->kind < OPS_KIND_COUNT && list_field[ev->kind] != OPS_FIELD_COUNT) {
        json_t *list = json_array();
        for (uint32_t i = 0; list != NULL && i < ev->n_nationalities && i < OPS_NATIONALITIES_MAX;
             i++) {
            const char *cc = ev->nationalities[i];
            bad |= json_array_append_new(list, ops_json_string_repaired(cc, strnlen(cc, 2)));
        }
        bad |= json_object_set_new(o, fields[list_field[ev->kind]].name, list);
    }
    if (!bad)
        rc = ops_json_write(o, buf, bufsize);
out:
    json_decref(o);
    if (rc < 0 && bufsize > 0)
        buf[0] = '\0';
    return rc;
}
