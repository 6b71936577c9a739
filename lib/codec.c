/*
 * opstream codec: ops_event_t / ops_alert_t <-> Confluent-framed Avro using
 * the schemas embedded from schemas/. Decoding guards the untrusted body
 * (avro_guard.c), reads it with avro-c into one reusable value per writer
 * schema and maps the resolved reader view into the fixed-size event model.
 */
#include "opstream/codec.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <avro.h>

#include "opstream/avro_guard.h"
#include "opstream/schemas_embedded.h"

#define CODEC_HEADER_BYTES 5
#define CODEC_DEFAULT_MAX (1024 * 1024)
#define CODEC_TOPIC_ALERTS "alerts"
#define CODEC_NOT_AN_EVENT (-1) /* kind of an alert schema entry */

/* How a schema field maps onto a member of ops_event_t or ops_alert_t. */
typedef enum field_type {
    FT_STRING,       /* char[size], NUL-terminated */
    FT_OPT_STRING,   /* ["null","string"]: char[size] + bool at aux */
    FT_INT,          /* int32_t within [0, OPS_COUNT_MAX] */
    FT_LONG,         /* int64_t */
    FT_DOUBLE,       /* double */
    FT_ENUM,         /* an ops_*_t enum with `size` symbols */
    FT_STRING_ARRAY, /* char[max][size] + uint32_t count at aux */
} field_type_t;

typedef struct field_desc {
    const char *name;
    field_type_t type;
    size_t off;
    size_t size;
    size_t aux;
    uint32_t max_items;
} field_desc_t;

_Static_assert(sizeof(ops_offence_t) == sizeof(int) && sizeof(ops_site_t) == sizeof(int) &&
                   sizeof(ops_exploitation_t) == sizeof(int) &&
                   sizeof(ops_category_t) == sizeof(int) && sizeof(ops_severity_t) == sizeof(int),
               "enum members are read and written as int");

#define EV_STR(n, m)                                                                               \
    { n, FT_STRING, offsetof(ops_event_t, m), sizeof(((ops_event_t *)0)->m), 0, 0 }
#define EV_NUM(n, t, m)                                                                            \
    { n, t, offsetof(ops_event_t, m), 0, 0, 0 }
#define EV_ENUM(n, m, c)                                                                           \
    { n, FT_ENUM, offsetof(ops_event_t, m), c, 0, 0 }
#define EV_NATIONALITIES(n)                                                                        \
    {                                                                                              \
        n, FT_STRING_ARRAY, offsetof(ops_event_t, nationalities), 3,                               \
            offsetof(ops_event_t, n_nationalities), OPS_NATIONALITIES_MAX                          \
    }

static const field_desc_t common_fields[] = {
    EV_STR("event_id", event_id),
    EV_STR("operation", operation),
    EV_STR("country", country),
    EV_NUM("occurred_at", FT_LONG, occurred_at),
    EV_NUM("reported_at", FT_LONG, reported_at),
    EV_STR("source_ref", source_ref),
    {"location", FT_OPT_STRING, offsetof(ops_event_t, location), OPS_LOCATION_MAX + 1,
     offsetof(ops_event_t, has_location), 0},
    {NULL, FT_STRING, 0, 0, 0, 0},
};

static const field_desc_t arrest_fields[] = {
    EV_NUM("persons", FT_INT, count),
    EV_ENUM("offence", offence, OPS_OFFENCE_COUNT),
    EV_NATIONALITIES("suspect_nationalities"),
    {NULL, FT_STRING, 0, 0, 0, 0},
};

/* referred exists from rescue v2 on; a v1 record keeps the model's 0, which
 * is the v2 schema default. */
static const field_desc_t rescue_fields[] = {
    EV_NUM("victims", FT_INT, count),
    EV_NUM("minors", FT_INT, minors),
    EV_ENUM("exploitation", exploitation, OPS_EXPLOITATION_COUNT),
    EV_ENUM("site", site, OPS_SITE_COUNT),
    EV_NATIONALITIES("victim_nationalities"),
    EV_NUM("referred", FT_INT, referred),
    {NULL, FT_STRING, 0, 0, 0, 0},
};

static const field_desc_t migrant_fields[] = {
    EV_NUM("migrants", FT_INT, count),
    EV_NUM("minors", FT_INT, minors),
    EV_NATIONALITIES("nationalities"),
    {NULL, FT_STRING, 0, 0, 0, 0},
};

static const field_desc_t seizure_fields[] = {
    EV_NUM("items", FT_INT, count),
    EV_ENUM("category", category, OPS_CATEGORY_COUNT),
    {NULL, FT_STRING, 0, 0, 0, 0},
};

static const field_desc_t *const kind_fields[OPS_KIND_COUNT] = {arrest_fields, rescue_fields,
                                                                migrant_fields, seizure_fields};

#define AL_STR(n, m)                                                                               \
    { n, FT_STRING, offsetof(ops_alert_t, m), sizeof(((ops_alert_t *)0)->m), 0, 0 }
#define AL_NUM(n, t, m)                                                                            \
    { n, t, offsetof(ops_alert_t, m), 0, 0, 0 }

static const field_desc_t alert_fields[] = {
    AL_STR("alert_id", alert_id),
    AL_STR("operation", operation),
    {"country", FT_OPT_STRING, offsetof(ops_alert_t, country), 3,
     offsetof(ops_alert_t, has_country), 0},
    AL_STR("rule", rule),
    AL_STR("metric", metric),
    {"severity", FT_ENUM, offsetof(ops_alert_t, severity), OPS_SEVERITY_COUNT, 0, 0},
    AL_NUM("observed", FT_LONG, observed),
    AL_NUM("baseline", FT_DOUBLE, baseline),
    AL_NUM("threshold", FT_DOUBLE, threshold),
    AL_NUM("window_start", FT_LONG, window_start),
    AL_NUM("window_end", FT_LONG, window_end),
    {"event_ids", FT_STRING_ARRAY, offsetof(ops_alert_t, event_ids), OPS_EVENT_ID_LEN + 1,
     offsetof(ops_alert_t, n_event_ids), OPS_ALERT_EVENT_IDS_MAX},
    AL_STR("summary", summary),
    AL_NUM("raised_at", FT_LONG, raised_at),
    {NULL, FT_STRING, 0, 0, 0, 0},
};

/*
 * Direct decoding: one op per writer field, in the writer's order, built
 * from the writer schema, the reader it resolves to and the field tables.
 * SKIP_* reads a field the reader (or the event model) does not have.
 */
typedef enum direct_kind {
    OP_STRING,
    OP_OPT_STRING,
    OP_INT,
    OP_LONG,
    OP_ENUM,
    OP_STRING_ARRAY,
    OP_SKIP_INT,
    OP_SKIP_LONG,
} direct_kind_t;

#define DIRECT_MAX_SYMBOLS 64

typedef struct direct_op {
    direct_kind_t op;
    const field_desc_t *f;
    int n_symbols;                        /* OP_ENUM: writer symbols */
    int8_t reader_index[DIRECT_MAX_SYMBOLS]; /* OP_ENUM: writer index -> reader index */
} direct_op_t;

/* One embedded schema with everything decoding it needs, built once. */
typedef struct codec_schema {
    const ops_schema_embedded_t *emb;
    int kind; /* ops_kind_t, or CODEC_NOT_AN_EVENT for alerts */
    avro_schema_t schema;
    avro_schema_t reader;       /* the reader schema limited to fields this writer has */
    avro_value_iface_t *wiface; /* generic values of the writer schema */
    avro_value_iface_t *resolver;
    avro_value_t wvalue; /* reused for every decode and encode */
    avro_value_t rvalue; /* resolved reader view of wvalue */
    bool has_values;
    direct_op_t *ops; /* direct decoding program, one op per writer field */
    size_t n_ops;
    bool direct; /* false: this writer is decoded through avro-c only */
    direct_op_t *enc; /* direct encoding program: the model field of each writer field */
    size_t n_enc;     /* writer fields, one enc entry each */
    bool direct_enc;  /* false: events are encoded with this writer through avro-c only */
} codec_schema_t;

static int prepare_direct(codec_schema_t *e);

struct ops_codec {
    size_t max_message;
    avro_reader_t areader;
    avro_writer_t awriter;
    size_t n;
    codec_schema_t *schemas;
    codec_schema_t *writer[OPS_KIND_COUNT];
    codec_schema_t *alert_writer;
};

/* Formats "<prefix><detail>" into errstr; prefix may be empty. */
static void vset_err(char *errstr, size_t errstr_size, const char *prefix, const char *fmt,
                     va_list ap) {
    int n;
    if (errstr == NULL || errstr_size == 0)
        return;
    n = snprintf(errstr, errstr_size, "%s", prefix);
    if (n >= 0 && (size_t)n < errstr_size)
        vsnprintf(errstr + n, errstr_size - (size_t)n, fmt, ap);
}

static void set_err(char *errstr, size_t errstr_size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *errstr, size_t errstr_size, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vset_err(errstr, errstr_size, "", fmt, ap);
    va_end(ap);
}

/* Fills errstr as "<class>: <detail>" and returns the class. */
static ops_codec_err_t dec_err(ops_codec_err_t err, char *errstr, size_t errstr_size,
                               const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static ops_codec_err_t dec_err(ops_codec_err_t err, char *errstr, size_t errstr_size,
                               const char *fmt, ...) {
    char prefix[32];
    va_list ap;
    snprintf(prefix, sizeof(prefix), "%s: ", ops_codec_err_name(err));
    va_start(ap, fmt);
    vset_err(errstr, errstr_size, prefix, fmt, ap);
    va_end(ap);
    return err;
}

/* The entry of a topic with the given version, or the highest version when
 * version is 0. */
static codec_schema_t *find_version(ops_codec_t *c, const char *topic, int version) {
    codec_schema_t *best = NULL;
    size_t i;
    for (i = 0; i < c->n; i++) {
        codec_schema_t *e = &c->schemas[i];
        if (strcmp(e->emb->topic, topic) != 0)
            continue;
        if (version != 0 ? e->emb->version == version
                         : (best == NULL || e->emb->version > best->emb->version))
            best = e;
    }
    return best;
}

static codec_schema_t *find_id(ops_codec_t *c, int32_t id) {
    size_t i;
    for (i = 0; i < c->n; i++)
        if (c->schemas[i].emb->id == id)
            return &c->schemas[i];
    return NULL;
}

/*
 * avro-c 1.11.1's resolved reader refuses a reader field the writer lacks,
 * even one with a default. So each writer is resolved against the reader
 * schema minus such fields; the mapping then leaves them at the event
 * model's empty value, which is what every schema default in schemas/ is.
 * Returns a new reference, or NULL.
 */
static avro_schema_t reader_for_writer(avro_schema_t writer, avro_schema_t reader) {
    avro_schema_t rec = NULL;
    size_t i, n = avro_schema_record_size(reader);

    for (i = 0; i < n; i++)
        if (avro_schema_record_field_get_index(writer,
                                               avro_schema_record_field_name(reader, (int)i)) < 0)
            break;
    if (i == n)
        return avro_schema_incref(reader);

    rec = avro_schema_record(avro_schema_name(reader), avro_schema_namespace(reader));
    if (rec == NULL)
        return NULL;
    for (i = 0; i < n; i++) {
        const char *name = avro_schema_record_field_name(reader, (int)i);
        if (avro_schema_record_field_get_index(writer, name) < 0)
            continue;
        if (avro_schema_record_field_append(
                rec, name, avro_schema_record_field_get_by_index(reader, (int)i)) != 0) {
            avro_schema_decref(rec);
            return NULL;
        }
    }
    return rec;
}

static int kind_of_topic(const char *topic) {
    int k;
    if (strcmp(topic, CODEC_TOPIC_ALERTS) == 0)
        return CODEC_NOT_AN_EVENT;
    for (k = 0; k < OPS_KIND_COUNT; k++)
        if (strcmp(topic, ops_kind_topic_suffix((ops_kind_t)k)) == 0)
            return k;
    return -2;
}

/* Builds the resolver and the two reusable values of one writer schema. */
static int prepare_decoding(codec_schema_t *e, codec_schema_t *reader, char *errstr,
                            size_t errstr_size) {
    e->reader = reader_for_writer(e->schema, reader->schema);
    if (e->reader == NULL)
        goto fail;
    e->resolver = avro_resolved_reader_new(e->schema, e->reader);
    if (e->resolver == NULL)
        goto fail;
    e->wiface = avro_generic_class_from_schema(e->schema);
    if (e->wiface == NULL)
        goto fail;
    if (avro_generic_value_new(e->wiface, &e->wvalue) != 0)
        goto fail;
    if (avro_resolved_reader_new_value(e->resolver, &e->rvalue) != 0) {
        avro_value_decref(&e->wvalue);
        goto fail;
    }
    avro_resolved_reader_set_source(&e->rvalue, &e->wvalue);
    e->has_values = true;
    return 0;
fail:
    set_err(errstr, errstr_size, "schema id %d (%s): cannot resolve against version %d: %s",
            (int)e->emb->id, e->emb->file, reader->emb->version, avro_strerror());
    return -1;
}

static int check_version(int v, const char *what, char *errstr, size_t errstr_size) {
    if (v == 0 || v == OPS_CODEC_RESCUE_V1 || v == OPS_CODEC_RESCUE_V2)
        return 0;
    set_err(errstr, errstr_size, "%s %d is not a known rescue schema version (1 or 2)", what, v);
    return -1;
}

/*
 * Parses every embedded schema and prepares, per writer id, the resolver and
 * reusable values, so decoding a message allocates nothing but what avro-c
 * needs for the message's own strings.
 */
ops_codec_t *ops_codec_new(const ops_codec_options_t *opts, char *errstr, size_t errstr_size) {
    ops_codec_options_t o;
    ops_codec_t *c = NULL;
    size_t i;

    memset(&o, 0, sizeof(o));
    if (opts != NULL)
        o = *opts;
    if (check_version(o.rescue_writer_version, "rescue_writer_version", errstr, errstr_size) != 0 ||
        check_version(o.rescue_reader_version, "rescue_reader_version", errstr, errstr_size) != 0)
        goto fail;

    c = calloc(1, sizeof(*c));
    if (c == NULL ||
        (c->schemas = calloc(ops_schemas_embedded_count, sizeof(*c->schemas))) == NULL) {
        set_err(errstr, errstr_size, "out of memory");
        goto fail;
    }
    c->max_message = o.max_message_bytes != 0 ? o.max_message_bytes : CODEC_DEFAULT_MAX;
    for (i = 0; i < ops_schemas_embedded_count; i++) {
        const ops_schema_embedded_t *emb = &ops_schemas_embedded[i];
        codec_schema_t *e = &c->schemas[c->n];
        e->emb = emb;
        e->kind = kind_of_topic(emb->topic);
        if (e->kind == -2) {
            set_err(errstr, errstr_size,
                    "schema id %d (%s): topic %s is not an event kind or alerts", (int)emb->id,
                    emb->file, emb->topic);
            goto fail;
        }
        if (avro_schema_from_json_length(emb->json, strlen(emb->json), &e->schema) != 0) {
            set_err(errstr, errstr_size, "schema id %d (%s): %s", (int)emb->id, emb->file,
                    avro_strerror());
            goto fail;
        }
        c->n++;
    }
    for (i = 0; i < c->n; i++) {
        codec_schema_t *e = &c->schemas[i];
        int rv = e->kind == OPS_KIND_RESCUE ? o.rescue_reader_version : 0;
        codec_schema_t *reader = find_version(c, e->emb->topic, rv);
        if (reader == NULL) {
            set_err(errstr, errstr_size, "no reader schema version %d for %s", rv, e->emb->subject);
            goto fail;
        }
        if (prepare_decoding(e, reader, errstr, errstr_size) != 0)
            goto fail;
        if (prepare_direct(e) != 0) {
            set_err(errstr, errstr_size, "out of memory");
            goto fail;
        }
    }
    for (i = 0; i < OPS_KIND_COUNT; i++) {
        const char *topic = ops_kind_topic_suffix((ops_kind_t)i);
        int wv = i == OPS_KIND_RESCUE ? o.rescue_writer_version : 0;
        if ((c->writer[i] = find_version(c, topic, wv)) == NULL) {
            set_err(errstr, errstr_size, "no writer schema version %d for topic %s", wv, topic);
            goto fail;
        }
    }
    if ((c->alert_writer = find_version(c, CODEC_TOPIC_ALERTS, 0)) == NULL) {
        set_err(errstr, errstr_size, "no schema for alerts");
        goto fail;
    }
    c->areader = avro_reader_memory(NULL, 0);
    c->awriter = avro_writer_memory(NULL, 0);
    if (c->areader == NULL || c->awriter == NULL) {
        set_err(errstr, errstr_size, "out of memory");
        goto fail;
    }
    return c;
fail:
    ops_codec_destroy(c);
    return NULL;
}

void ops_codec_destroy(ops_codec_t *c) {
    size_t i;
    if (c == NULL)
        return;
    for (i = 0; c->schemas != NULL && i < c->n; i++) {
        codec_schema_t *e = &c->schemas[i];
        if (e->has_values) {
            avro_value_decref(&e->rvalue);
            avro_value_decref(&e->wvalue);
        }
        if (e->resolver != NULL)
            avro_value_iface_decref(e->resolver);
        if (e->wiface != NULL)
            avro_value_iface_decref(e->wiface);
        if (e->reader != NULL)
            avro_schema_decref(e->reader);
        if (e->schema != NULL)
            avro_schema_decref(e->schema);
        free(e->ops);
        free(e->enc);
    }
    if (c->areader != NULL)
        avro_reader_free(c->areader);
    if (c->awriter != NULL)
        avro_writer_free(c->awriter);
    free(c->schemas);
    free(c);
}

ops_codec_err_t ops_codec_frame_schema_id(const void *buf, size_t len, int32_t *idp) {
    const uint8_t *p = buf;
    if (len < 1 || buf == NULL)
        return OPS_CODEC_ERR_TRUNCATED;
    if (p[0] != 0)
        return OPS_CODEC_ERR_MAGIC;
    if (len < CODEC_HEADER_BYTES)
        return OPS_CODEC_ERR_TRUNCATED;
    if (idp != NULL)
        *idp = (int32_t)(((uint32_t)p[1] << 24) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 8) |
                         (uint32_t)p[4]);
    return OPS_CODEC_OK;
}

int32_t ops_codec_writer_id(const ops_codec_t *c, ops_kind_t kind) {
    if (c == NULL || (int)kind < 0 || kind >= OPS_KIND_COUNT)
        return -1;
    return c->writer[kind]->emb->id;
}

int32_t ops_codec_alert_writer_id(const ops_codec_t *c) {
    return c == NULL ? -1 : c->alert_writer->emb->id;
}

/* ------------------------------------------------------------------ encode */

/* Copies a NUL-terminated member of at most size bytes into an Avro string. */
static int put_string(avro_value_t *v, const char *s, size_t size, const char *name, char *errstr,
                      size_t errstr_size) {
    size_t n = strnlen(s, size);
    if (n == size) {
        set_err(errstr, errstr_size, "field %s is not NUL-terminated within %zu bytes", name, size);
        return -1;
    }
    if (avro_value_set_string_len(v, s, n + 1) != 0) {
        set_err(errstr, errstr_size, "field %s: %s", name, avro_strerror());
        return -1;
    }
    return 0;
}

/* Sets one field of the writer value from the struct at base. */
static int put_field(avro_value_t *rec, avro_schema_t schema, const field_desc_t *f,
                     const char *base, char *errstr, size_t errstr_size) {
    avro_value_t v, branch, item;
    const char *p = base + f->off;
    int32_t i32;
    int64_t i64;
    double d;
    int e, rc = 0;
    uint32_t n, i;

    if (avro_value_get_by_name(rec, f->name, &v, NULL) != 0)
        return 0; /* this writer version has no such field (rescue v1: referred) */
    switch (f->type) {
    case FT_STRING:
        return put_string(&v, p, f->size, f->name, errstr, errstr_size);
    case FT_OPT_STRING: {
        bool has = *(const bool *)(base + f->aux);
        rc = avro_value_set_branch(&v, has ? 1 : 0, &branch);
        if (rc == 0 && has)
            return put_string(&branch, p, f->size, f->name, errstr, errstr_size);
        if (rc == 0)
            rc = avro_value_set_null(&branch);
        break;
    }
    case FT_INT:
        memcpy(&i32, p, sizeof(i32));
        rc = avro_value_set_int(&v, i32);
        break;
    case FT_LONG:
        memcpy(&i64, p, sizeof(i64));
        rc = avro_value_set_long(&v, i64);
        break;
    case FT_DOUBLE:
        memcpy(&d, p, sizeof(d));
        rc = avro_value_set_double(&v, d);
        break;
    case FT_ENUM:
        memcpy(&e, p, sizeof(e));
        if (e < 0 || (size_t)e >= f->size ||
            e >=
                avro_schema_enum_number_of_symbols(avro_schema_record_field_get(schema, f->name))) {
            set_err(errstr, errstr_size, "field %s: enum value %d has no symbol", f->name, e);
            return -1;
        }
        rc = avro_value_set_enum(&v, e);
        break;
    case FT_STRING_ARRAY:
        memcpy(&n, base + f->aux, sizeof(n));
        if (n > f->max_items) {
            set_err(errstr, errstr_size, "field %s: %u items, at most %u", f->name, n,
                    f->max_items);
            return -1;
        }
        for (i = 0; i < n && rc == 0; i++) {
            rc = avro_value_append(&v, &item, NULL);
            if (rc == 0 && put_string(&item, p + (size_t)i * f->size, f->size, f->name, errstr,
                                      errstr_size) != 0)
                return -1;
        }
        break;
    }
    if (rc != 0) {
        set_err(errstr, errstr_size, "field %s: %s", f->name, avro_strerror());
        return -1;
    }
    return 0;
}

/* The frame header: magic byte 0, big-endian schema id. */
static void put_header(uint8_t *out, uint32_t id) {
    out[0] = 0;
    out[1] = (uint8_t)(id >> 24);
    out[2] = (uint8_t)(id >> 16);
    out[3] = (uint8_t)(id >> 8);
    out[4] = (uint8_t)id;
}

/* Fills the writer's reusable value from the field tables and writes the
 * frame: magic, big-endian id, body. */
static int encode(ops_codec_t *c, codec_schema_t *e, const field_desc_t *const *tables,
                  const void *src, void *buf, size_t bufsize, size_t *lenp, char *errstr,
                  size_t errstr_size) {
    uint8_t *out = buf;
    uint32_t id = (uint32_t)e->emb->id;
    const field_desc_t *f;
    int t, rc;

    if (buf == NULL || bufsize < CODEC_HEADER_BYTES) {
        set_err(errstr, errstr_size, "output buffer of %zu bytes is too small", bufsize);
        return -1;
    }
    if (avro_value_reset(&e->wvalue) != 0) {
        set_err(errstr, errstr_size, "cannot reset value: %s", avro_strerror());
        return -1;
    }
    for (t = 0; tables[t] != NULL; t++)
        for (f = tables[t]; f->name != NULL; f++)
            if (put_field(&e->wvalue, e->schema, f, src, errstr, errstr_size) != 0)
                return -1;

    put_header(out, id);
    avro_writer_memory_set_dest(c->awriter, (const char *)out + CODEC_HEADER_BYTES,
                                (int64_t)(bufsize - CODEC_HEADER_BYTES));
    rc = avro_value_write(c->awriter, &e->wvalue);
    if (rc != 0) {
        set_err(errstr, errstr_size, "%s",
                rc == ENOSPC ? "output buffer too small" : avro_strerror());
        return -1;
    }
    if (lenp != NULL)
        *lenp = CODEC_HEADER_BYTES + (size_t)avro_writer_tell(c->awriter);
    return 0;
}

/* Direct encoding lives with direct decoding below. */
static size_t direct_encode(const codec_schema_t *e, const ops_event_t *ev, uint8_t *out,
                            size_t size);

int ops_codec_encode_event(ops_codec_t *c, const ops_event_t *ev, void *buf, size_t bufsize,
                           size_t *lenp, char *errstr, size_t errstr_size) {
    if (c != NULL && ev != NULL && (int)ev->kind >= 0 && ev->kind < OPS_KIND_COUNT &&
        buf != NULL && bufsize > CODEC_HEADER_BYTES && c->writer[ev->kind]->direct_enc) {
        const codec_schema_t *e = c->writer[ev->kind];
        uint8_t *out = buf;
        uint32_t id = (uint32_t)e->emb->id;
        size_t n = direct_encode(e, ev, out + CODEC_HEADER_BYTES, bufsize - CODEC_HEADER_BYTES);
        if (n > 0) {
            put_header(out, id);
            if (lenp != NULL)
                *lenp = CODEC_HEADER_BYTES + n;
            return 0;
        }
    }
    /* Anything the direct path does not write: avro-c writes it or explains. */
    return ops_codec_encode_event_reference(c, ev, buf, bufsize, lenp, errstr, errstr_size);
}

int ops_codec_encode_event_reference(ops_codec_t *c, const ops_event_t *ev, void *buf,
                                     size_t bufsize, size_t *lenp, char *errstr,
                                     size_t errstr_size) {
    const field_desc_t *tables[3] = {common_fields, NULL, NULL};
    if (c == NULL || ev == NULL || (int)ev->kind < 0 || ev->kind >= OPS_KIND_COUNT) {
        set_err(errstr, errstr_size, "no codec, no event or unknown event kind");
        return -1;
    }
    tables[1] = kind_fields[ev->kind];
    return encode(c, c->writer[ev->kind], tables, ev, buf, bufsize, lenp, errstr, errstr_size);
}

int ops_codec_encode_alert(ops_codec_t *c, const ops_alert_t *alert, void *buf, size_t bufsize,
                           size_t *lenp, char *errstr, size_t errstr_size) {
    const field_desc_t *tables[2] = {alert_fields, NULL};
    if (c == NULL || alert == NULL) {
        set_err(errstr, errstr_size, "no codec or no alert");
        return -1;
    }
    return encode(c, c->alert_writer, tables, alert, buf, bufsize, lenp, errstr, errstr_size);
}

/* ------------------------------------------------------------------ decode */

/* Copies an Avro string into a fixed member; over the bound is TOO_LARGE,
 * an embedded NUL is MALFORMED (it would silently cut the value). */
static ops_codec_err_t get_string(avro_value_t *v, char *dst, size_t size, const char *name,
                                  char *errstr, size_t errstr_size) {
    const char *s = NULL;
    size_t n = 0;
    if (avro_value_get_string(v, &s, &n) != 0)
        return dec_err(OPS_CODEC_ERR_INTERNAL, errstr, errstr_size, "field %s: %s", name,
                       avro_strerror());
    if (n > 0)
        n--; /* avro-c counts the terminating NUL */
    if (n >= size)
        return dec_err(OPS_CODEC_ERR_TOO_LARGE, errstr, errstr_size,
                       "field %s is %zu bytes, at most %zu", name, n, size - 1);
    if (n > 0 && memchr(s, 0, n) != NULL)
        return dec_err(OPS_CODEC_ERR_MALFORMED, errstr, errstr_size, "field %s contains a NUL byte",
                       name);
    memcpy(dst, s, n);
    dst[n] = '\0';
    return OPS_CODEC_OK;
}

/*
 * The reader's index of an enum value. avro-c 1.11.1's resolved reader hands
 * back the writer's index unchanged, so the symbol is looked up by name in the
 * reader schema; a symbol the reader does not know becomes the reader's
 * default, its last symbol (the rule every enum in schemas/ follows).
 */
static int reader_enum_index(const codec_schema_t *e, const char *field, int windex) {
    avro_schema_t ws = avro_schema_record_field_get(e->schema, field);
    avro_schema_t rs = avro_schema_record_field_get(e->reader, field);
    const char *sym = avro_schema_enum_get(ws, windex);
    int r = sym != NULL ? avro_schema_enum_get_by_name(rs, sym) : -1;
    return r >= 0 ? r : avro_schema_enum_number_of_symbols(rs) - 1;
}

/* Reads one field of the resolved record into the struct at base. */
static ops_codec_err_t get_field(const codec_schema_t *e, avro_value_t *rec, const field_desc_t *f,
                                 char *base, char *errstr, size_t errstr_size) {
    avro_value_t v, branch, item;
    char *p = base + f->off;
    ops_codec_err_t err = OPS_CODEC_OK;
    int32_t i32;
    int64_t i64;
    double d;
    int idx, rc = 0;
    size_t n, i;

    if (avro_value_get_by_name(rec, f->name, &v, NULL) != 0)
        return OPS_CODEC_OK; /* the writer lacks it: keep the model's default */
    switch (f->type) {
    case FT_STRING:
        return get_string(&v, p, f->size, f->name, errstr, errstr_size);
    case FT_OPT_STRING:
        rc = avro_value_get_current_branch(&v, &branch);
        if (rc != 0)
            break;
        *(bool *)(base + f->aux) = avro_value_get_type(&branch) != AVRO_NULL;
        if (avro_value_get_type(&branch) != AVRO_NULL)
            return get_string(&branch, p, f->size, f->name, errstr, errstr_size);
        break;
    case FT_INT:
        if ((rc = avro_value_get_int(&v, &i32)) != 0)
            break;
        if (i32 < 0 || i32 > OPS_COUNT_MAX)
            return dec_err(OPS_CODEC_ERR_MALFORMED, errstr, errstr_size,
                           "field %s is %d, outside 0..%d", f->name, (int)i32, OPS_COUNT_MAX);
        memcpy(p, &i32, sizeof(i32));
        break;
    case FT_LONG:
        if ((rc = avro_value_get_long(&v, &i64)) == 0)
            memcpy(p, &i64, sizeof(i64));
        break;
    case FT_DOUBLE:
        if ((rc = avro_value_get_double(&v, &d)) == 0)
            memcpy(p, &d, sizeof(d));
        break;
    case FT_ENUM:
        if ((rc = avro_value_get_enum(&v, &idx)) != 0)
            break;
        idx = reader_enum_index(e, f->name, idx);
        if (idx < 0 || (size_t)idx >= f->size)
            return dec_err(OPS_CODEC_ERR_MALFORMED, errstr, errstr_size,
                           "field %s: symbol index %d outside the event model", f->name, idx);
        memcpy(p, &idx, sizeof(idx));
        break;
    case FT_STRING_ARRAY:
        if ((rc = avro_value_get_size(&v, &n)) != 0)
            break;
        if (n > f->max_items)
            return dec_err(OPS_CODEC_ERR_TOO_LARGE, errstr, errstr_size,
                           "field %s has %zu items, at most %u", f->name, n, f->max_items);
        for (i = 0; i < n && err == OPS_CODEC_OK; i++) {
            if ((rc = avro_value_get_by_index(&v, i, &item, NULL)) != 0)
                break;
            err = get_string(&item, p + i * f->size, f->size, f->name, errstr, errstr_size);
        }
        if (err != OPS_CODEC_OK)
            return err;
        if (rc == 0) {
            uint32_t count = (uint32_t)n;
            memcpy(base + f->aux, &count, sizeof(count));
        }
        break;
    }
    if (rc != 0)
        return dec_err(OPS_CODEC_ERR_INTERNAL, errstr, errstr_size, "field %s: %s", f->name,
                       avro_strerror());
    return OPS_CODEC_OK;
}

/*
 * Frame checks, guard, avro-c read into the writer's reusable value. On OK,
 * *ep is the writer entry whose rvalue holds the record in reader form.
 */
static ops_codec_err_t read_frame(ops_codec_t *c, const void *buf, size_t len, bool want_alert,
                                  codec_schema_t **ep, char *errstr, size_t errstr_size) {
    const char *body;
    size_t blen;
    codec_schema_t *e;
    ops_codec_err_t err;
    ops_avro_guard_limits_t lim = {0, 0, 0};
    int32_t id = 0;

    if (c == NULL)
        return dec_err(OPS_CODEC_ERR_INTERNAL, errstr, errstr_size, "no codec");
    if (len > c->max_message)
        return dec_err(OPS_CODEC_ERR_TOO_LARGE, errstr, errstr_size,
                       "message of %zu bytes exceeds the limit of %zu", len, c->max_message);
    err = ops_codec_frame_schema_id(buf, len, &id);
    if (err == OPS_CODEC_ERR_MAGIC)
        return dec_err(err, errstr, errstr_size, "first byte is 0x%02x, not 0x00",
                       ((const uint8_t *)buf)[0]);
    if (err != OPS_CODEC_OK)
        return dec_err(err, errstr, errstr_size,
                       "frame of %zu bytes is shorter than the %d-byte header", len,
                       CODEC_HEADER_BYTES);
    if ((e = find_id(c, id)) == NULL)
        return dec_err(OPS_CODEC_ERR_UNKNOWN_ID, errstr, errstr_size,
                       "schema id %ld is not in the embedded registry", (long)id);
    if ((e->kind == CODEC_NOT_AN_EVENT) != want_alert)
        return dec_err(OPS_CODEC_ERR_WRONG_TYPE, errstr, errstr_size, "schema id %ld is %s, not %s",
                       (long)id, e->emb->subject, want_alert ? "an alert" : "an event");
    body = (const char *)buf + CODEC_HEADER_BYTES;
    blen = len - CODEC_HEADER_BYTES;
    err = ops_avro_guard_check(e->schema, body, blen, &lim, errstr, errstr_size);
    if (err != OPS_CODEC_OK)
        return err;
    if (avro_value_reset(&e->wvalue) != 0)
        return dec_err(OPS_CODEC_ERR_INTERNAL, errstr, errstr_size, "cannot reset value: %s",
                       avro_strerror());
    avro_reader_memory_set_source(c->areader, body, (int64_t)blen);
    if (avro_value_read(c->areader, &e->wvalue) != 0)
        return dec_err(OPS_CODEC_ERR_MALFORMED, errstr, errstr_size, "schema id %ld: %s", (long)id,
                       avro_strerror());
    *ep = e;
    return OPS_CODEC_OK;
}

/* --------------------------------------------------------- direct decode */

/* The model field a writer field maps to, or NULL. */
static const field_desc_t *model_field(int kind, const char *name) {
    const field_desc_t *const tables[2] = {common_fields, kind_fields[kind]};
    const field_desc_t *f;
    int t;
    for (t = 0; t < 2; t++)
        for (f = tables[t]; f->name != NULL; f++)
            if (strcmp(f->name, name) == 0)
                return f;
    return NULL;
}

/* Whether the writer field's type is the one the model field is read from. */
static bool direct_type_fits(const field_desc_t *f, avro_schema_t ws) {
    switch (f->type) {
    case FT_STRING:
        return avro_typeof(ws) == AVRO_STRING;
    case FT_OPT_STRING:
        return avro_typeof(ws) == AVRO_UNION && avro_schema_union_size(ws) == 2 &&
               avro_typeof(avro_schema_union_branch(ws, 0)) == AVRO_NULL &&
               avro_typeof(avro_schema_union_branch(ws, 1)) == AVRO_STRING;
    case FT_INT:
        return avro_typeof(ws) == AVRO_INT32;
    case FT_LONG:
        return avro_typeof(ws) == AVRO_INT64;
    case FT_ENUM:
        return avro_typeof(ws) == AVRO_ENUM &&
               avro_schema_enum_number_of_symbols(ws) <= DIRECT_MAX_SYMBOLS;
    case FT_STRING_ARRAY:
        return avro_typeof(ws) == AVRO_ARRAY &&
               avro_typeof(avro_schema_array_items(ws)) == AVRO_STRING;
    case FT_DOUBLE:
        break;
    }
    return false;
}

/*
 * Builds the direct decoding program of an event writer schema: what the
 * resolved avro-c read would give, field by field. A writer with a field the
 * program cannot express (another type than the reader's, a skipped field
 * that is not an int or long) keeps avro-c alone. Returns -1 when out of
 * memory only.
 */
static int prepare_direct(codec_schema_t *e) {
    size_t i, n;
    e->direct = false;
    e->direct_enc = false;
    if (e->kind == CODEC_NOT_AN_EVENT)
        return 0;
    n = avro_schema_record_size(e->schema);
    if ((e->ops = calloc(n > 0 ? n : 1, sizeof(*e->ops))) == NULL ||
        (e->enc = calloc(n > 0 ? n : 1, sizeof(*e->enc))) == NULL)
        return -1;
    /* Encoding: every writer field comes from a model field of its type. */
    for (i = 0; i < n; i++) {
        avro_schema_t ws = avro_schema_record_field_get_by_index(e->schema, (int)i);
        const field_desc_t *f =
            model_field(e->kind, avro_schema_record_field_name(e->schema, (int)i));
        if (f == NULL || !direct_type_fits(f, ws))
            break;
        e->enc[i].f = f;
        if (f->type == FT_ENUM)
            e->enc[i].n_symbols = avro_schema_enum_number_of_symbols(ws);
    }
    e->direct_enc = i == n;
    e->n_enc = n;
    for (i = 0; i < n; i++) {
        const char *name = avro_schema_record_field_name(e->schema, (int)i);
        avro_schema_t ws = avro_schema_record_field_get_by_index(e->schema, (int)i);
        /* avro_schema_record_field_get has no "not found" answer: ask the index first */
        int ri = avro_schema_record_field_get_index(e->reader, name);
        avro_schema_t rs = ri >= 0 ? avro_schema_record_field_get_by_index(e->reader, ri) : NULL;
        const field_desc_t *f = model_field(e->kind, name);
        direct_op_t *op = &e->ops[i];
        int s;

        if (f == NULL || rs == NULL) {
            if (avro_typeof(ws) == AVRO_INT32)
                op->op = OP_SKIP_INT;
            else if (avro_typeof(ws) == AVRO_INT64)
                op->op = OP_SKIP_LONG;
            else
                return 0;
            continue;
        }
        if (!direct_type_fits(f, ws) || avro_typeof(rs) != avro_typeof(ws))
            return 0;
        op->f = f;
        switch (f->type) {
        case FT_STRING:
            op->op = OP_STRING;
            break;
        case FT_OPT_STRING:
            op->op = OP_OPT_STRING;
            break;
        case FT_INT:
            op->op = OP_INT;
            break;
        case FT_LONG:
            op->op = OP_LONG;
            break;
        case FT_ENUM:
            op->op = OP_ENUM;
            op->n_symbols = avro_schema_enum_number_of_symbols(ws);
            for (s = 0; s < op->n_symbols; s++) {
                int r = reader_enum_index(e, name, s);
                op->reader_index[s] = (int8_t)(r >= 0 && (size_t)r < f->size ? r : -1);
            }
            break;
        case FT_STRING_ARRAY:
            op->op = OP_STRING_ARRAY;
            break;
        case FT_DOUBLE:
            return 0;
        }
    }
    e->n_ops = n;
    e->direct = true;
    return 0;
}

typedef struct cursor {
    const uint8_t *p;
    const uint8_t *end;
} cursor_t;

/* A zig-zag varint with the guard's rules: at most 5 bytes (int) or 10
 * (long), no bits past 32/64 in the last byte. Returns false otherwise. */
static inline bool direct_varint(cursor_t *c, int is_int, int64_t *out) {
    int maxb = is_int ? 5 : 10, i;
    uint64_t v = 0;
    for (i = 0; i < maxb; i++) {
        uint8_t b;
        if (c->p >= c->end)
            return false;
        b = *c->p++;
        if (i == maxb - 1 && (b & 0x7f) > (is_int ? 0x0f : 0x01))
            return false;
        v |= (uint64_t)(b & 0x7f) << (7 * i);
        if ((b & 0x80) == 0) {
            *out = (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
            return true;
        }
    }
    return false;
}

/* A string into a fixed member of size bytes: within the bytes left and the
 * member, no NUL inside. */
static inline bool direct_string(cursor_t *c, char *dst, size_t size) {
    int64_t n;
    if (!direct_varint(c, 0, &n) || n < 0 || (uint64_t)n >= size ||
        (uint64_t)n > (uint64_t)(c->end - c->p))
        return false;
    if (n > 0 && memchr(c->p, 0, (size_t)n) != NULL)
        return false;
    memcpy(dst, c->p, (size_t)n);
    dst[n] = '\0';
    c->p += n;
    return true;
}

/*
 * Decodes an event body straight into ev along the writer's program. It only
 * accepts what the guard, avro-c's resolved read and the field mapping all
 * accept, giving the same event; anything else returns false and the caller
 * decodes with avro-c, which then names the error. Allocates nothing.
 */
static bool direct_decode(const codec_schema_t *e, const uint8_t *body, size_t len,
                          ops_event_t *ev) {
    cursor_t c = {body, body + len};
    char *base = (char *)ev;
    size_t i;
    int64_t v;

    ops_event_init(ev);
    ev->kind = (ops_kind_t)e->kind;
    for (i = 0; i < e->n_ops; i++) {
        const direct_op_t *op = &e->ops[i];
        const field_desc_t *f = op->f;
        switch (op->op) {
        case OP_STRING:
            if (!direct_string(&c, base + f->off, f->size))
                return false;
            break;
        case OP_OPT_STRING:
            if (!direct_varint(&c, 0, &v) || (v != 0 && v != 1))
                return false;
            *(bool *)(base + f->aux) = v == 1;
            if (v == 1 && !direct_string(&c, base + f->off, f->size))
                return false;
            break;
        case OP_INT: {
            int32_t i32;
            if (!direct_varint(&c, 1, &v) || v < 0 || v > OPS_COUNT_MAX)
                return false;
            i32 = (int32_t)v;
            memcpy(base + f->off, &i32, sizeof(i32));
            break;
        }
        case OP_LONG:
            if (!direct_varint(&c, 0, &v))
                return false;
            memcpy(base + f->off, &v, sizeof(v));
            break;
        case OP_ENUM: {
            int idx;
            if (!direct_varint(&c, 1, &v) || v < 0 || v >= op->n_symbols ||
                op->reader_index[v] < 0)
                return false;
            idx = op->reader_index[v];
            memcpy(base + f->off, &idx, sizeof(idx));
            break;
        }
        case OP_STRING_ARRAY: {
            uint32_t n = 0;
            for (;;) {
                int64_t k;
                if (!direct_varint(&c, 0, &v) || v < 0)
                    return false; /* negative counts (sized blocks): avro-c */
                if (v == 0)
                    break;
                if ((uint64_t)v > f->max_items - n)
                    return false;
                for (k = 0; k < v; k++, n++)
                    if (!direct_string(&c, base + f->off + (size_t)n * f->size, f->size))
                        return false;
            }
            memcpy(base + f->aux, &n, sizeof(n));
            break;
        }
        case OP_SKIP_INT:
        case OP_SKIP_LONG:
            if (!direct_varint(&c, op->op == OP_SKIP_INT, &v))
                return false;
            break;
        }
    }
    return c.p == c.end;
}

/* Appends a zig-zag varint; false when the buffer is full. */
static inline bool put_varint(uint8_t **pp, const uint8_t *end, int64_t v) {
    uint64_t z = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
    uint8_t *p = *pp;
    do {
        if (p >= end)
            return false;
        *p++ = (uint8_t)((z & 0x7f) | (z > 0x7f ? 0x80 : 0));
        z >>= 7;
    } while (z != 0);
    *pp = p;
    return true;
}

/* strnlen, with the two-letter codes (countries, nationalities: members of
 * 3 bytes, many per event) measured in line instead of by a call. */
static inline size_t member_len(const char *s, size_t size) {
    size_t n = 0;
    if (size > 4)
        return strnlen(s, size);
    while (n < size && s[n] != '\0')
        n++;
    return n;
}

/* Appends a NUL-terminated member of at most size bytes as an Avro string. */
static inline bool put_direct_string(uint8_t **pp, const uint8_t *end, const char *s,
                                     size_t size) {
    size_t n = member_len(s, size);
    if (n == size || !put_varint(pp, end, (int64_t)n) || (size_t)(end - *pp) < n)
        return false;
    memcpy(*pp, s, n);
    *pp += n;
    return true;
}

/*
 * Encodes an event body straight from the model along the writer's fields,
 * byte for byte what avro-c writes. Returns the body length, or 0 when it
 * cannot (a value the schema cannot hold, the buffer too small): the caller
 * then encodes with avro-c, which names the problem. A body is never empty.
 */
static size_t direct_encode(const codec_schema_t *e, const ops_event_t *ev, uint8_t *out,
                            size_t size) {
    const uint8_t *end = out + size;
    const char *base = (const char *)ev;
    uint8_t *p = out;
    size_t i;

    /* The fields are spread over the whole event (the fixed string members
     * lie between the numbers): every cache line of it is asked for at
     * once, so an event that is not in the cache costs about one memory
     * wait instead of one per field read. */
    for (i = 0; i < sizeof(*ev); i += 64)
        __builtin_prefetch(base + i);
    for (i = 0; i < e->n_enc; i++) {
        const field_desc_t *f = e->enc[i].f;
        const char *m = base + f->off;
        switch (f->type) {
        case FT_STRING:
            if (!put_direct_string(&p, end, m, f->size))
                return 0;
            break;
        case FT_OPT_STRING: {
            bool has = *(const bool *)(base + f->aux);
            if (!put_varint(&p, end, has ? 1 : 0) ||
                (has && !put_direct_string(&p, end, m, f->size)))
                return 0;
            break;
        }
        case FT_INT: {
            int32_t i32;
            memcpy(&i32, m, sizeof(i32));
            if (!put_varint(&p, end, i32))
                return 0;
            break;
        }
        case FT_LONG: {
            int64_t i64;
            memcpy(&i64, m, sizeof(i64));
            if (!put_varint(&p, end, i64))
                return 0;
            break;
        }
        case FT_ENUM: {
            int v;
            memcpy(&v, m, sizeof(v));
            if (v < 0 || (size_t)v >= f->size || v >= e->enc[i].n_symbols ||
                !put_varint(&p, end, v))
                return 0;
            break;
        }
        case FT_STRING_ARRAY: {
            uint32_t n, k;
            memcpy(&n, base + f->aux, sizeof(n));
            if (n > f->max_items)
                return 0;
            if (n > 0 && !put_varint(&p, end, n))
                return 0;
            for (k = 0; k < n; k++)
                if (!put_direct_string(&p, end, m + (size_t)k * f->size, f->size))
                    return 0;
            if (!put_varint(&p, end, 0))
                return 0;
            break;
        }
        case FT_DOUBLE:
            return 0;
        }
    }
    return (size_t)(p - out);
}

static ops_codec_err_t map_fields(const codec_schema_t *e, const field_desc_t *const *tables,
                                  void *dst, char *errstr, size_t errstr_size) {
    const field_desc_t *f;
    ops_codec_err_t err;
    int t;
    avro_value_t *rec = (avro_value_t *)&e->rvalue;
    for (t = 0; tables[t] != NULL; t++)
        for (f = tables[t]; f->name != NULL; f++)
            if ((err = get_field(e, rec, f, dst, errstr, errstr_size)) != OPS_CODEC_OK)
                return err;
    return OPS_CODEC_OK;
}

ops_codec_err_t ops_codec_decode_event(ops_codec_t *c, const void *buf, size_t len, ops_event_t *ev,
                                       char *errstr, size_t errstr_size) {
    codec_schema_t *e;
    int32_t id = 0;

    if (c != NULL && ev != NULL && len <= c->max_message &&
        ops_codec_frame_schema_id(buf, len, &id) == OPS_CODEC_OK &&
        (e = find_id(c, id)) != NULL && e->direct &&
        direct_decode(e, (const uint8_t *)buf + CODEC_HEADER_BYTES, len - CODEC_HEADER_BYTES, ev))
        return OPS_CODEC_OK;
    /* Anything the direct path does not take: avro-c decides and explains. */
    return ops_codec_decode_event_reference(c, buf, len, ev, errstr, errstr_size);
}

ops_codec_err_t ops_codec_decode_event_reference(ops_codec_t *c, const void *buf, size_t len,
                                                 ops_event_t *ev, char *errstr,
                                                 size_t errstr_size) {
    const field_desc_t *tables[3] = {common_fields, NULL, NULL};
    codec_schema_t *e = NULL;
    ops_codec_err_t err;

    if (ev == NULL)
        return dec_err(OPS_CODEC_ERR_INTERNAL, errstr, errstr_size, "no event");
    if ((err = read_frame(c, buf, len, false, &e, errstr, errstr_size)) != OPS_CODEC_OK)
        return err;
    ops_event_init(ev);
    ev->kind = (ops_kind_t)e->kind;
    tables[1] = kind_fields[e->kind];
    return map_fields(e, tables, ev, errstr, errstr_size);
}

ops_codec_err_t ops_codec_decode_alert(ops_codec_t *c, const void *buf, size_t len,
                                       ops_alert_t *alert, char *errstr, size_t errstr_size) {
    const field_desc_t *tables[2] = {alert_fields, NULL};
    codec_schema_t *e = NULL;
    ops_codec_err_t err;

    if (alert == NULL)
        return dec_err(OPS_CODEC_ERR_INTERNAL, errstr, errstr_size, "no alert");
    if ((err = read_frame(c, buf, len, true, &e, errstr, errstr_size)) != OPS_CODEC_OK)
        return err;
    ops_alert_init(alert);
    return map_fields(e, tables, alert, errstr, errstr_size);
}
