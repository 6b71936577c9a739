/*
 * opstream counter batch: partition positions, one batch of events with
 * in-batch duplicates removed, and its aggregation into the argument vector
 * of the atomic Redis step (totals, per country, sets, minute and hour
 * buckets, dedupe marks, next offsets). Pure; the Redis half is
 * counter_redis.c.
 */
#include "opstream/counter.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "opstream/keys.h"
#include "opstream/validate.h"
#include "err_priv.h"

#define SEEN_SLOTS_PER_WINDOW 7

/* ------------------------------------------------------------------------
 * A small insertion-ordered hash map: fixed-size string keys, a value blob of
 * vsize bytes per entry (zeroed when the entry is created). Used for the
 * in-batch dedupe set and for the per-key aggregation.
 * ------------------------------------------------------------------------ */

#define SMAP_KEY (OPS_KEY_MAX + 8)

typedef struct smap {
    uint32_t *slots; /* entry index + 1; 0 = empty */
    size_t nslots;   /* power of two */
    char (*keys)[SMAP_KEY];
    unsigned char *vals;
    size_t vsize;
    size_t n, cap;
} smap_t;

static uint64_t hash_bytes(const char *s, size_t len) {
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */

    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ULL;
    }
    return h;
}

static void smap_init(smap_t *m, size_t vsize) {
    memset(m, 0, sizeof(*m));
    m->vsize = vsize;
}

static void smap_free(smap_t *m) {
    free(m->slots);
    free(m->keys);
    free(m->vals);
    smap_init(m, m->vsize);
}

static void smap_clear(smap_t *m) {
    if (m->slots != NULL)
        memset(m->slots, 0, m->nslots * sizeof(*m->slots));
    m->n = 0;
}

static void *smap_val(const smap_t *m, size_t i) {
    return m->vals + i * m->vsize;
}

static int smap_rehash(smap_t *m, size_t nslots) {
    uint32_t *slots = calloc(nslots, sizeof(*slots));

    if (slots == NULL)
        return -1;
    for (size_t i = 0; i < m->n; i++) {
        size_t s = hash_bytes(m->keys[i], strlen(m->keys[i])) & (nslots - 1);
        while (slots[s] != 0)
            s = (s + 1) & (nslots - 1);
        slots[s] = (uint32_t)(i + 1);
    }
    free(m->slots);
    m->slots = slots;
    m->nslots = nslots;
    return 0;
}

/* Finds key (a string of at most SMAP_KEY-1 bytes). With create, adds it when
 * absent (*createdp set). Returns the entry index, -1 when absent (or the key
 * is too long), -2 when out of memory. */
static long smap_get(smap_t *m, const char *key, bool create, bool *createdp) {
    size_t len = strlen(key), s;

    if (createdp != NULL)
        *createdp = false;
    if (len >= SMAP_KEY)
        return -1;
    if (m->nslots == 0 || (m->n + 1) * 2 > m->nslots) {
        if (!create && m->nslots == 0)
            return -1;
        if (create && smap_rehash(m, m->nslots ? m->nslots * 2 : 64) != 0)
            return -2;
    }
    s = hash_bytes(key, len) & (m->nslots - 1);
    while (m->slots[s] != 0) {
        size_t i = m->slots[s] - 1;
        if (strcmp(m->keys[i], key) == 0)
            return (long)i;
        s = (s + 1) & (m->nslots - 1);
    }
    if (!create)
        return -1;
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 64;
        void *k = realloc(m->keys, cap * sizeof(*m->keys));
        if (k == NULL)
            return -2;
        m->keys = k;
        void *v = realloc(m->vals, cap * m->vsize);
        if (v == NULL)
            return -2;
        m->vals = v;
        m->cap = cap;
    }
    memcpy(m->keys[m->n], key, len + 1);
    memset(smap_val(m, m->n), 0, m->vsize);
    m->slots[s] = (uint32_t)(m->n + 1);
    if (createdp != NULL)
        *createdp = true;
    return (long)m->n++;
}

/* Copies the string src into dst of size bytes, cut to fit (what
 * snprintf("%s") did, without the format parsing on the per-event path). */
static void copy_str(char *dst, size_t size, const char *src) {
    size_t n = strnlen(src, size - 1);

    memcpy(dst, src, n);
    dst[n] = '\0';
}


/* ------------------------------------------------------------------------ */

typedef struct part {
    char topic[OPS_COUNTER_TOPIC_MAX + 1];
    char field[OPS_COUNTER_TOPIC_MAX + 16]; /* "topic:partition" */
    size_t field_len;
    int32_t partition;
    int64_t stored; /* value in the offsets hash; -1: none */
    int64_t first;  /* first offset in the batch; -1: none in the batch */
    int64_t next;   /* offset after the last one in the batch */
} part_t;

/* What counting needs of one event, compact (56 bytes): a batch grown in a
 * catch-up holds up to 80,000 of them, twice (the batch being filled and
 * the one being stepped; see GROW_MAX in consumer.c). The operation is its number in the batch,
 * the metrics are derived from kind, count and minors when aggregating. */
typedef struct cev {
    uint8_t id[16]; /* event_id, raw (with the dedupe on) */
    int64_t off;    /* offset */
    int64_t at;     /* occurred_at, ms */
    uint32_t opi;   /* operation number in the batch */
    uint32_t pi;    /* partition index */
    int32_t count, minors;
    char cc[2];   /* country (not NUL-terminated when two letters) */
    uint8_t kind; /* ops_kind_t; 255 for a value out of range */
    bool dropped; /* reported as already counted */
    bool done;    /* its operation's step was applied */
    bool here;    /* applied by a step of this batch (not a duplicate if reported again) */
    bool doubt;   /* sent in a step whose reply was lost: applied or not, unknown */
    bool bad_id;  /* event_id not a canonical UUID (with the dedupe on) */
} cev_t;

/* The batch's events by (operation, event id): open addressing over event
 * indices + 1 (0: empty), for the in-batch dedupe and the SEEN replies. */
typedef struct idtab {
    uint32_t *slots;
    size_t nslots; /* power of two, 0 before the first event */
    size_t n;
} idtab_t;

struct ops_counter {
    char *group;
    size_t max_events;
    int64_t window_s, minute_ttl_s, hour_ttl_s;

    part_t *parts;
    size_t nparts, parts_cap;
    size_t last_part; /* cache for the common case of runs from one partition */

    cev_t *evs;
    size_t nevs, evs_cap;
    idtab_t ids; /* in-batch dedupe */
    smap_t ops;  /* operation -> its number in the batch */
    size_t nmsgs, nskips, ndupes;
    size_t gaps;                           /* batches that started past the stored offset */
    bool offsets_doubt;                    /* the batch's offsets write was sent, its reply lost */
    uint64_t seen_by_kind[OPS_KIND_COUNT]; /* dropped as already counted, since creation */
};

ops_counter_t *ops_counter_new(const ops_counter_options_t *opts, char *errstr,
                               size_t errstr_size) {
    ops_counter_t *c = NULL;

    if (opts == NULL || opts->group == NULL || opts->group[0] == '\0') {
        ops_err_format(errstr, errstr_size, "counter: a consumer group is required");
        goto fail;
    }
    if (opts->minute_ttl_s < 0 || opts->hour_ttl_s < 0) {
        ops_err_format(errstr, errstr_size, "counter: TTLs must not be negative");
        goto fail;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL || (c->group = strdup(opts->group)) == NULL) {
        ops_err_format(errstr, errstr_size, "counter: out of memory");
        goto fail;
    }
    c->max_events = opts->max_events ? opts->max_events : OPS_COUNTER_DEFAULT_MAX_EVENTS;
    c->window_s = opts->dedupe_window_s < 0 ? OPS_COUNTER_DEFAULT_DEDUPE_WINDOW_S
                                            : opts->dedupe_window_s; /* 0: off */
    c->minute_ttl_s = opts->minute_ttl_s ? opts->minute_ttl_s : 172800;
    c->hour_ttl_s = opts->hour_ttl_s ? opts->hour_ttl_s : 3024000;
    smap_init(&c->ops, 1);
    return c;

fail:
    ops_counter_destroy(c);
    return NULL;
}

void ops_counter_destroy(ops_counter_t *c) {
    if (c == NULL)
        return;
    free(c->group);
    free(c->parts);
    free(c->evs);
    free(c->ids.slots);
    smap_free(&c->ops);
    free(c);
}

static long find_part(ops_counter_t *c, const char *topic, int32_t partition) {
    if (c->last_part < c->nparts && c->parts[c->last_part].partition == partition &&
        strcmp(c->parts[c->last_part].topic, topic) == 0)
        return (long)c->last_part;
    for (size_t i = 0; i < c->nparts; i++) {
        if (c->parts[i].partition == partition && strcmp(c->parts[i].topic, topic) == 0) {
            c->last_part = i;
            return (long)i;
        }
    }
    return -1;
}

/* Empties the batch, keeping the partitions and their stored offsets. */
static void batch_reset(ops_counter_t *c) {
    for (size_t i = 0; i < c->nparts; i++)
        c->parts[i].first = c->parts[i].next = -1;
    c->nevs = c->nmsgs = c->nskips = 0;
    if (c->ids.slots != NULL)
        memset(c->ids.slots, 0, c->ids.nslots * sizeof(*c->ids.slots));
    c->ids.n = 0;
    c->offsets_doubt = false;
    smap_clear(&c->ops);
}

int ops_counter_assign(ops_counter_t *c, const char *topic, int32_t partition, int64_t stored,
                       char *errstr, size_t errstr_size) {
    long i;

    if (strlen(topic) > OPS_COUNTER_TOPIC_MAX) {
        ops_err_format(errstr, errstr_size, "counter: topic name too long: %.40s...", topic);
        return -1;
    }
    i = find_part(c, topic, partition);
    if (i >= 0) {
        /* A re-seek: what the batch holds of this partition is void, and the
         * simplest exact answer is to drop the whole batch. */
        if (c->parts[i].first >= 0)
            batch_reset(c);
        c->parts[i].stored = stored < 0 ? -1 : stored;
        return 0;
    }
    if (c->nparts == c->parts_cap) {
        size_t cap = c->parts_cap ? c->parts_cap * 2 : 16;
        part_t *p = realloc(c->parts, cap * sizeof(*p));
        if (p == NULL) {
            ops_err_format(errstr, errstr_size, "counter: out of memory");
            return -1;
        }
        c->parts = p;
        c->parts_cap = cap;
    }
    part_t *p = &c->parts[c->nparts++];
    snprintf(p->topic, sizeof(p->topic), "%s", topic);
    p->field_len = (size_t)snprintf(p->field, sizeof(p->field), "%s:%d", topic, (int)partition);
    p->partition = partition;
    p->stored = stored < 0 ? -1 : stored;
    p->first = p->next = -1;
    return 0;
}

void ops_counter_unassign_all(ops_counter_t *c) {
    batch_reset(c);
    c->nparts = 0;
    c->last_part = 0;
}

int ops_counter_follow(ops_counter_t *dst, const ops_counter_t *src, char *errstr,
                       size_t errstr_size) {
    ops_counter_unassign_all(dst);
    for (size_t i = 0; i < src->nparts; i++) {
        const part_t *p = &src->parts[i];
        if (ops_counter_assign(dst, p->topic, p->partition, p->first >= 0 ? p->next : p->stored,
                               errstr, errstr_size) != 0) {
            ops_counter_unassign_all(dst);
            return -1;
        }
    }
    return 0;
}

size_t ops_counter_partitions(const ops_counter_t *c) {
    return c->nparts;
}

void ops_counter_partition(const ops_counter_t *c, size_t i, const char **topicp,
                           int32_t *partitionp, int64_t *storedp) {
    if (topicp != NULL)
        *topicp = c->parts[i].topic;
    if (partitionp != NULL)
        *partitionp = c->parts[i].partition;
    if (storedp != NULL)
        *storedp = c->parts[i].stored;
}

/* Records the message position; the common gate of both add functions. */
static ops_counter_add_result_t take_offset(ops_counter_t *c, const char *topic, int32_t partition,
                                            int64_t offset) {
    long i = find_part(c, topic, partition);
    part_t *p;

    if (i < 0)
        return OPS_COUNTER_NOT_ASSIGNED;
    c->last_part = (size_t)i;
    p = &c->parts[i];
    if (offset < 0 || (p->next >= 0 && offset < p->next) ||
        (p->first < 0 && p->stored >= 0 && offset < p->stored))
        return OPS_COUNTER_STALE;
    if (p->first < 0) {
        if (p->stored >= 0 && offset > p->stored)
            c->gaps++; /* the log no longer starts where Redis says we were */
        p->first = offset;
    }
    p->next = offset + 1;
    c->nmsgs++;
    return OPS_COUNTER_ADDED;
}

/* The raw ids come from UUIDs (random or hash-derived bits): a few of
 * their bytes, mixed with the operation, spread them well enough. */
static size_t id_hash(uint32_t opi, const uint8_t id[16]) {
    uint64_t a, b;

    memcpy(&a, id, 8);
    memcpy(&b, id + 8, 8);
    a ^= b ^ ((uint64_t)opi + 1) * 0x9E3779B97F4A7C15ULL;
    a *= 0xff51afd7ed558ccdULL;
    return (size_t)(a ^ (a >> 32));
}

/* The index of the batch's event (opi, id), or -1. */
static long id_find(const ops_counter_t *c, uint32_t opi, const uint8_t id[16]) {
    size_t mask = c->ids.nslots - 1, s;

    if (c->ids.nslots == 0)
        return -1;
    for (s = id_hash(opi, id) & mask; c->ids.slots[s] != 0; s = (s + 1) & mask) {
        const cev_t *e = &c->evs[c->ids.slots[s] - 1];
        if (e->opi == opi && memcmp(e->id, id, 16) == 0)
            return (long)(c->ids.slots[s] - 1);
    }
    return -1;
}

/* Adds event i (not in the table yet). -1 when out of memory. */
static int id_insert(ops_counter_t *c, size_t i) {
    idtab_t *t = &c->ids;
    size_t mask, s;

    if ((t->n + 1) * 2 > t->nslots) {
        size_t nslots = t->nslots ? t->nslots * 2 : 1024;
        uint32_t *slots = calloc(nslots, sizeof(*slots));
        if (slots == NULL)
            return -1;
        for (size_t k = 0; k < t->nslots; k++) {
            if (t->slots[k] == 0)
                continue;
            const cev_t *e = &c->evs[t->slots[k] - 1];
            for (s = id_hash(e->opi, e->id) & (nslots - 1); slots[s] != 0;
                 s = (s + 1) & (nslots - 1))
                ;
            slots[s] = t->slots[k];
        }
        free(t->slots);
        t->slots = slots;
        t->nslots = nslots;
    }
    mask = t->nslots - 1;
    for (s = id_hash(c->evs[i].opi, c->evs[i].id) & mask; t->slots[s] != 0; s = (s + 1) & mask)
        ;
    t->slots[s] = (uint32_t)(i + 1);
    t->n++;
    return 0;
}

ops_counter_add_result_t ops_counter_add_event(ops_counter_t *c, const char *topic,
                                               int32_t partition, int64_t offset,
                                               const ops_event_t *ev) {
    long idx;
    ops_counter_add_result_t r;
    cev_t *e;

    /* Room first, so that a failure leaves the position untouched. */
    if (c->nevs == c->evs_cap) {
        size_t cap = c->evs_cap ? c->evs_cap * 2 : 1024;
        cev_t *ne = realloc(c->evs, cap * sizeof(*ne));
        if (ne == NULL)
            return OPS_COUNTER_NO_MEMORY;
        c->evs = ne;
        c->evs_cap = cap;
    }
    /* An operation not in the batch yet has no event in it to repeat; it
     * is taken in only once the event is. */
    idx = smap_get(&c->ops, ev->operation, false, NULL);
    e = &c->evs[c->nevs]; /* filled in place, taken by nevs++ below */
    memset(e, 0, sizeof(*e));
    if (c->window_s == 0) {
        /* Dedupe off: every message counts, a repeated id too; only the
         * offsets keep the counts exact. */
        r = take_offset(c, topic, partition, offset);
        if (r != OPS_COUNTER_ADDED)
            return r;
    } else {
        e->bad_id = ops_uuid_raw(ev->event_id, e->id) != 0;
        if (idx >= 0 && !e->bad_id && id_find(c, (uint32_t)idx, e->id) >= 0) {
            r = take_offset(c, topic, partition, offset);
            if (r != OPS_COUNTER_ADDED)
                return r;
            c->ndupes++;
            return OPS_COUNTER_DUPLICATE;
        }
        r = take_offset(c, topic, partition, offset);
        if (r != OPS_COUNTER_ADDED)
            return r;
    }
    if (idx < 0 && (idx = smap_get(&c->ops, ev->operation, true, NULL)) < 0) {
        /* The position was taken: keep the batch exact by dropping it whole
         * (it will be consumed again from the stored offsets). */
        batch_reset(c);
        return OPS_COUNTER_NO_MEMORY;
    }
    e->opi = (uint32_t)idx;
    if (c->window_s != 0 && !e->bad_id && id_insert(c, c->nevs) != 0) {
        batch_reset(c);
        return OPS_COUNTER_NO_MEMORY;
    }
    c->nevs++;
    e->pi = (uint32_t)c->last_part;
    e->off = offset;
    memcpy(e->cc, ev->country, strnlen(ev->country, sizeof(e->cc)));
    e->kind = (unsigned)ev->kind < 255 ? (uint8_t)ev->kind : 255;
    e->count = ev->count;
    e->minors = ev->minors;
    e->at = ev->occurred_at;
    return OPS_COUNTER_ADDED;
}

ops_counter_add_result_t ops_counter_add_skip(ops_counter_t *c, const char *topic,
                                              int32_t partition, int64_t offset) {
    ops_counter_add_result_t r = take_offset(c, topic, partition, offset);

    if (r != OPS_COUNTER_ADDED)
        return r;
    c->nskips++;
    return OPS_COUNTER_SKIPPED;
}

size_t ops_counter_pending(const ops_counter_t *c) {
    return c->nmsgs;
}

size_t ops_counter_pending_events(const ops_counter_t *c) {
    size_t n = 0;

    for (size_t i = 0; i < c->nevs; i++)
        n += !c->evs[i].dropped;
    return n;
}

size_t ops_counter_pending_skips(const ops_counter_t *c) {
    return c->nskips;
}

size_t ops_counter_dupes(const ops_counter_t *c) {
    return c->ndupes;
}

size_t ops_counter_gaps(const ops_counter_t *c) {
    return c->gaps;
}

/* Derived from the batch itself (first vs stored), so a batch that is
 * discarded and consumed again reports the same gap, not a second one. */
size_t ops_counter_pending_gaps(const ops_counter_t *c, ops_counter_gap_t *out, size_t max) {
    size_t n = 0;

    for (size_t i = 0; i < c->nparts; i++) {
        const part_t *p = &c->parts[i];
        if (p->first < 0 || p->stored < 0 || p->first <= p->stored)
            continue;
        if (out != NULL && n < max) {
            out[n].topic = p->topic;
            out[n].partition = p->partition;
            out[n].from = p->stored;
            out[n].to = p->first - 1;
        }
        n++;
    }
    return n;
}

bool ops_counter_full(const ops_counter_t *c) {
    return c->nmsgs >= c->max_events;
}

/* Leaves e out of the builds from now on. An event applied by an earlier
 * step of this batch (a retry after a failure sent it again) is not
 * counted as a duplicate: only one counted before this batch is. Below an
 * applied watermark (applied), an event sent in a step whose reply was
 * lost is taken as applied by that step (the watermark is written with the
 * counts; only another consumer counting the same partition at the same
 * time could have written it instead): counted once either way. */
static void drop_event(ops_counter_t *c, cev_t *e, bool applied) {
    e->dropped = true;
    if (applied && e->doubt)
        e->here = true;
    if (e->here)
        return;
    c->ndupes++;
    if ((unsigned)e->kind < OPS_KIND_COUNT)
        c->seen_by_kind[e->kind]++;
}

int ops_counter_drop_seen(ops_counter_t *c, const char *operation, const char *event_id) {
    long opi = smap_get(&c->ops, operation, false, NULL), idx;
    uint8_t raw[16];

    if (opi < 0 || ops_uuid_raw(event_id, raw) != 0 || (idx = id_find(c, (uint32_t)opi, raw)) < 0)
        return 0;
    cev_t *e = &c->evs[idx];
    if (e->dropped)
        return 0;
    drop_event(c, e, false);
    return 1;
}

size_t ops_counter_drop_applied(ops_counter_t *c, const char *operation, const char *field,
                                int64_t watermark) {
    long opi = smap_get(&c->ops, operation, false, NULL);
    size_t n = 0;

    if (opi < 0)
        return 0;
    for (size_t i = 0; i < c->nevs; i++) {
        cev_t *e = &c->evs[i];
        if (e->dropped || e->done || e->opi != (uint32_t)opi || e->off >= watermark ||
            strcmp(c->parts[e->pi].field, field) != 0)
            continue;
        drop_event(c, e, true);
        n++;
    }
    return n;
}

size_t ops_counter_operations(const ops_counter_t *c) {
    return c->ops.n;
}

const char *ops_counter_operation(const ops_counter_t *c, size_t i) {
    return c->ops.keys[i];
}

/* The events of a's operation call o still in the batch: applied (done
 * and here), or else in doubt. */
static void mark_op(ops_counter_t *c, const ops_counter_args_t *a, size_t o, bool applied) {
    const ops_counter_op_args_t *op = &a->ops[o];

    for (size_t i = op->ev_from; i < op->ev_from + op->ev_n; i++) {
        cev_t *e = &c->evs[a->order[i]];
        if (e->dropped)
            continue;
        if (applied)
            e->done = e->here = true;
        else
            e->doubt = true;
    }
}

void ops_counter_op_applied(ops_counter_t *c, const ops_counter_args_t *a, size_t o) {
    mark_op(c, a, o, true);
}

void ops_counter_op_in_doubt(ops_counter_t *c, const ops_counter_args_t *a, size_t o) {
    mark_op(c, a, o, false);
}

void ops_counter_offsets_in_doubt(ops_counter_t *c) {
    c->offsets_doubt = true;
}

bool ops_counter_offsets_doubted(const ops_counter_t *c) {
    return c->offsets_doubt;
}

void ops_counter_ops_retry(ops_counter_t *c) {
    for (size_t i = 0; i < c->nevs; i++) {
        cev_t *e = &c->evs[i];
        e->done = false;
        if (!e->dropped)
            continue;
        e->dropped = false;
        if (e->here)
            continue; /* dropped without being counted as a duplicate */
        c->ndupes--;
        if ((unsigned)e->kind < OPS_KIND_COUNT)
            c->seen_by_kind[e->kind]--;
    }
}

uint64_t ops_counter_seen_of_kind(const ops_counter_t *c, ops_kind_t kind) {
    return (unsigned)kind < OPS_KIND_COUNT ? c->seen_by_kind[kind] : 0;
}

void ops_counter_applied(ops_counter_t *c) {
    for (size_t i = 0; i < c->nparts; i++)
        if (c->parts[i].first >= 0)
            c->parts[i].stored = c->parts[i].next;
    batch_reset(c);
}

void ops_counter_discard(ops_counter_t *c) {
    batch_reset(c);
}

int64_t ops_counter_seen_generation(int64_t now_s, int64_t dedupe_window_s) {
    if (dedupe_window_s <= 0)
        return now_s;
    return now_s - ((now_s % dedupe_window_s) + dedupe_window_s) % dedupe_window_s;
}

/* ------------------------------------------------------------------------
 * Argument vector
 * ------------------------------------------------------------------------ */

void ops_counter_args_free(ops_counter_args_t *a) {
    if (a == NULL)
        return;
    free(a->argv);
    free(a->argvlen);
    free(a->buf);
    free(a->off);
    free(a->ops);
    free(a->order);
    memset(a, 0, sizeof(*a));
}

static int args_push(ops_counter_args_t *a, const char *s, size_t len) {
    if (a->argc == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 256;
        size_t *off = realloc(a->off, cap * sizeof(*off));
        if (off == NULL)
            return -1;
        a->off = off;
        size_t *lens = realloc(a->argvlen, cap * sizeof(*lens));
        if (lens == NULL)
            return -1;
        a->argvlen = lens;
        a->cap = cap;
    }
    if (a->buf_len + len + 1 > a->buf_cap) {
        size_t cap = a->buf_cap ? a->buf_cap : 4096;
        while (a->buf_len + len + 1 > cap)
            cap *= 2;
        char *b = realloc(a->buf, cap);
        if (b == NULL)
            return -1;
        a->buf = b;
        a->buf_cap = cap;
    }
    memcpy(a->buf + a->buf_len, s, len);
    a->buf[a->buf_len + len] = '\0';
    a->off[a->argc] = a->buf_len;
    a->argvlen[a->argc] = len;
    a->buf_len += len + 1;
    a->argc++;
    return 0;
}

static int args_str(ops_counter_args_t *a, const char *s) {
    return args_push(a, s, strlen(s));
}

/* Decimal digits of v into buf (at least 21 bytes), by hand: the step is
 * built without printf-family formatting. Returns the length. */
static size_t fmt_i64(char *buf, int64_t v) {
    char tmp[24];
    size_t n = 0, len = 0;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;

    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (v < 0)
        buf[len++] = '-';
    while (n > 0)
        buf[len++] = tmp[--n];
    buf[len] = '\0';
    return len;
}

static int args_int(ops_counter_args_t *a, int64_t v) {
    char num[24];

    return args_push(a, num, fmt_i64(num, v));
}

/* Reserves a count argument to fill in later with args_set_count. */
static int args_count_slot(ops_counter_args_t *a, size_t *slotp) {
    *slotp = a->argc;
    return args_push(a, "0000000000", 10);
}

static void args_set_count(ops_counter_args_t *a, size_t slot, size_t count) {
    a->argvlen[slot] = fmt_i64(a->buf + a->off[slot], (int64_t)count);
}

/* Points argv[from .. from + n) into the buffer (valid until it moves). */
static int args_view(ops_counter_args_t *a, size_t from, size_t n) {
    if (a->argc + 1 > a->argv_cap) {
        size_t cap = a->argv_cap ? a->argv_cap : 256;
        while (cap < a->argc + 1)
            cap *= 2;
        const char **argv = realloc(a->argv, cap * sizeof(*argv));
        if (argv == NULL)
            return -1;
        a->argv = argv;
        a->argv_cap = cap;
    }
    for (size_t i = from; i < from + n; i++)
        a->argv[i] = a->buf + a->off[i];
    a->argv[a->argc] = NULL;
    return 0;
}

/* Points argv into the buffer once it stops moving. */
static int args_finish(ops_counter_args_t *a) {
    return args_view(a, 0, a->argc);
}

/* Aggregated increments of one hash (or of one country's fields in it). */
typedef struct hagg {
    size_t key_len; /* the Redis key is the map key up to here */
    char cc[3];     /* "": plain metric fields; else "CC:metric" fields */
    int64_t expireat;
    int64_t m[OPS_METRIC_COUNT];
} hagg_t;

/* Adds an event group's metrics to the entry (key, cc). */
static int hagg_add(smap_t *h, const char *key, const char *cc, int64_t expireat,
                    const int64_t m[OPS_METRIC_COUNT]) {
    char mk[SMAP_KEY];
    size_t kl = strlen(key), cl = strlen(cc);
    long i;

    if (kl + cl + 2 > sizeof mk)
        return -1;
    memcpy(mk, key, kl);
    mk[kl] = '\x1f';
    memcpy(mk + kl + 1, cc, cl + 1);
    i = smap_get(h, mk, true, NULL);
    if (i < 0)
        return -1;
    hagg_t *v = smap_val(h, (size_t)i);
    v->key_len = kl;
    copy_str(v->cc, sizeof(v->cc), cc);
    v->expireat = expireat;
    for (int k = 0; k < OPS_METRIC_COUNT; k++)
        v->m[k] += m[k];
    return 0;
}

/* Events of one operation grouped by (country, minute) before any key is
 * formatted: a batch usually holds few such groups, so key building and the
 * per-key maps run per group instead of per event. */
typedef struct grp {
    char cc[3];
    int64_t at; /* the minute's start, ms */
    int64_t m[OPS_METRIC_COUNT];
} grp_t;

typedef struct grouping {
    grp_t *g;
    size_t n, cap;
    uint32_t *slots; /* index + 1 */
    size_t nslots;
} grouping_t;

static uint64_t group_hash(const char cc[2], int64_t minute) {
    uint64_t h = ((uint64_t)(unsigned char)cc[0] << 8 | (unsigned char)cc[1]) * 0x100000001b3ULL;

    h ^= (uint64_t)minute * 0x9E3779B97F4A7C15ULL;
    return h ^ (h >> 29);
}

static int group_rehash(grouping_t *gr, size_t nslots) {
    uint32_t *slots = calloc(nslots, sizeof(*slots));

    if (slots == NULL)
        return -1;
    for (size_t i = 0; i < gr->n; i++) {
        size_t s = group_hash(gr->g[i].cc, gr->g[i].at) & (nslots - 1);
        while (slots[s] != 0)
            s = (s + 1) & (nslots - 1);
        slots[s] = (uint32_t)(i + 1);
    }
    free(gr->slots);
    gr->slots = slots;
    gr->nslots = nslots;
    return 0;
}

static void group_clear(grouping_t *gr) {
    if (gr->slots != NULL)
        memset(gr->slots, 0, gr->nslots * sizeof(*gr->slots));
    gr->n = 0;
}

static int group_add(grouping_t *gr, const cev_t *e) {
    int64_t minute = ops_minute_floor(e->at), m[OPS_METRIC_COUNT];
    size_t s;

    ops_event_metrics_of((ops_kind_t)e->kind, e->count, e->minors, m);
    if ((gr->n + 1) * 2 > gr->nslots && group_rehash(gr, gr->nslots ? gr->nslots * 2 : 256) != 0)
        return -1;
    s = group_hash(e->cc, minute) & (gr->nslots - 1);
    while (gr->slots[s] != 0) {
        grp_t *g = &gr->g[gr->slots[s] - 1];
        if (g->at == minute && g->cc[0] == e->cc[0] && g->cc[1] == e->cc[1]) {
            for (int k = 0; k < OPS_METRIC_COUNT; k++)
                g->m[k] += m[k];
            return 0;
        }
        s = (s + 1) & (gr->nslots - 1);
    }
    if (gr->n == gr->cap) {
        size_t cap = gr->cap ? gr->cap * 2 : 256;
        grp_t *g = realloc(gr->g, cap * sizeof(*g));
        if (g == NULL)
            return -1;
        gr->g = g;
        gr->cap = cap;
    }
    grp_t *g = &gr->g[gr->n];
    g->cc[0] = e->cc[0];
    g->cc[1] = e->cc[1];
    g->cc[2] = '\0';
    g->at = minute;
    memcpy(g->m, m, sizeof(m));
    gr->slots[s] = (uint32_t)(++gr->n);
    return 0;
}

/* Redis keys of one operation's build, each formatted once: a group's
 * country, minute and hour keys recur across its (country, minute) groups. */
#define KC_N 64
typedef struct kcache {
    int64_t tag[KC_N];
    bool ok[KC_N];
    char key[KC_N][OPS_KEY_MAX];
} kcache_t;

enum { KC_COUNTRY, KC_MINUTE, KC_HOUR, KC_KINDS };

/* The key of (kind, tag) for op: from the cache, or formatted into it.
 * NULL when the key does not fit. */
static const char *cached_key(kcache_t kc[KC_KINDS], int kind, int64_t tag, const char *op,
                              const char *cc, int64_t at) {
    kcache_t *k = &kc[kind];
    size_t s = (size_t)(((uint64_t)tag * 0x9E3779B97F4A7C15ULL) >> 58); /* 0..63 */
    int n;

    if (k->ok[s] && k->tag[s] == tag)
        return k->key[s];
    n = kind == KC_COUNTRY  ? ops_key_country(op, cc, k->key[s], sizeof k->key[s])
        : kind == KC_MINUTE ? ops_key_minute(op, at, k->key[s], sizeof k->key[s])
                            : ops_key_hour(op, at, k->key[s], sizeof k->key[s]);
    k->ok[s] = n >= 0;
    k->tag[s] = tag;
    return n >= 0 ? k->key[s] : NULL;
}

/* Adds one group to every aggregate it touches. Buckets past their TTL at
 * now_s are left out (see counter.h). countries gets the country (value
 * unused). total is the operation's total key. */
static int aggregate_group(const ops_counter_t *c, const char *op, const char *total,
                           kcache_t kc[KC_KINDS], const grp_t *e, int64_t now_s, smap_t *h,
                           smap_t *countries) {
    const char *key;
    int64_t exp;

    if (smap_get(countries, e->cc, true, NULL) < 0)
        return -1;
    if (hagg_add(h, total, "", 0, e->m) != 0)
        return -1;
    if ((key = cached_key(kc, KC_COUNTRY, (unsigned char)e->cc[0] << 8 | (unsigned char)e->cc[1],
                          op, e->cc, 0)) == NULL ||
        hagg_add(h, key, "", 0, e->m) != 0)
        return -1;
    exp = ops_minute_floor(e->at) / 1000 + c->minute_ttl_s;
    if (exp > now_s) {
        if ((key = cached_key(kc, KC_MINUTE, ops_minute_floor(e->at), op, NULL, e->at)) == NULL ||
            hagg_add(h, key, "", exp, e->m) != 0 || hagg_add(h, key, e->cc, exp, e->m) != 0)
            return -1;
    }
    exp = ops_hour_floor(e->at) / 1000 + c->hour_ttl_s;
    if (exp > now_s) {
        if ((key = cached_key(kc, KC_HOUR, ops_hour_floor(e->at), op, NULL, e->at)) == NULL ||
            hagg_add(h, key, "", exp, e->m) != 0 || hagg_add(h, key, e->cc, exp, e->m) != 0)
            return -1;
    }
    return 0;
}

/* Hash entries in key order, so that one Redis key (a bucket with its plain
 * and per-country fields) is one record of the step. */
typedef struct hrec {
    const char *key;
    const hagg_t *v;
} hrec_t;

static int hrec_cmp(const void *x, const void *y) {
    const hrec_t *a = x, *b = y;
    size_t la = a->v->key_len, lb = b->v->key_len;
    int r = memcmp(a->key, b->key, la < lb ? la : lb);

    return r != 0 ? r : (la > lb) - (la < lb);
}

/* Working storage of one build. */
typedef struct build_ws {
    smap_t h, countries;
    grouping_t gr;
    hrec_t *recs;
    size_t recs_cap;
    int64_t *low; /* per partition: lowest offset of the operation's events; -1 none */
    kcache_t kc[KC_KINDS];
} build_ws_t;

/* One operation's script call: events idx[0..n) of the batch. */
static int build_op(const ops_counter_t *c, size_t opi, const size_t *idx, size_t n, int64_t now_s,
                    build_ws_t *w, ops_counter_args_t *a) {
    const char *op = c->ops.keys[opi];
    size_t oplen = strlen(op), nrec = 0, nkeys, slot, np = 0;
    const bool dedupe = c->window_s > 0;
    const int64_t gen = ops_counter_seen_generation(now_s, c->window_s);
    char key[OPS_KEY_MAX], sk[OPS_KEY_MAX + 32], num[24], field[8 + 32];

    smap_clear(&w->h);
    smap_clear(&w->countries);
    group_clear(&w->gr);
    for (size_t p = 0; p < c->nparts; p++)
        w->low[p] = -1;
    for (size_t i = 0; i < n; i++) {
        const cev_t *e = &c->evs[idx[i]];
        /* an operation's events are spread over the batch: fetch ahead */
        if (i + 8 < n)
            __builtin_prefetch(&c->evs[idx[i + 8]]);
        if (group_add(&w->gr, e) != 0)
            return -1;
        if (w->low[e->pi] < 0 || e->off < w->low[e->pi])
            w->low[e->pi] = e->off;
    }
    for (int k = 0; k < KC_KINDS; k++)
        memset(w->kc[k].ok, 0, sizeof w->kc[k].ok);
    if (ops_key_total(op, key, sizeof key) < 0)
        return -1;
    for (size_t g = 0; g < w->gr.n; g++)
        if (aggregate_group(c, op, key, w->kc, &w->gr.g[g], now_s, &w->h, &w->countries) != 0)
            return -1;
    if (w->h.n > w->recs_cap) {
        hrec_t *r = realloc(w->recs, w->h.n * sizeof(*r));
        if (r == NULL)
            return -1;
        w->recs = r;
        w->recs_cap = w->h.n;
    }
    for (size_t i = 0; i < w->h.n; i++) {
        w->recs[i].key = w->h.keys[i];
        w->recs[i].v = smap_val(&w->h, i);
    }
    qsort(w->recs, w->h.n, sizeof(*w->recs), hrec_cmp);
    for (size_t i = 0; i < w->h.n; i++)
        nrec += i == 0 || hrec_cmp(&w->recs[i - 1], &w->recs[i]) != 0;
    nkeys = 2 + (dedupe ? 2 : 0) + nrec;

    if (a->nops == a->ops_cap) {
        size_t cap = a->ops_cap ? a->ops_cap * 2 : 16;
        ops_counter_op_args_t *o = realloc(a->ops, cap * sizeof(*o));
        if (o == NULL)
            return -1;
        a->ops = o;
        a->ops_cap = cap;
    }
    ops_counter_op_args_t *o = &a->ops[a->nops++];
    o->opi = opi;
    o->ev_from = (size_t)(idx - a->order);
    o->ev_n = n;
    o->name = a->argc;
    if (args_push(a, op, oplen) != 0)
        return -1;
    o->first = a->argc;
    if (args_push(a, "EVALSHA", 7) != 0 || args_push(a, "", 0) != 0 ||
        args_int(a, (int64_t)nkeys) != 0)
        return -1;
    /* KEYS */
    if (ops_key_countries(op, key, sizeof key) < 0)
        return -1;
    size_t base = strlen(key) - strlen("countries"); /* "opstream:{OP}:" */
    size_t gl = strlen(c->group), nl;
    if (base + 8 + gl >= sizeof sk)
        return -1;
    memcpy(sk, key, base);
    memcpy(sk + base, "applied:", 8);
    memcpy(sk + base + 8, c->group, gl);
    if (args_push(a, sk, base + 8 + gl) != 0 || args_push(a, key, strlen(key)) != 0)
        return -1;
    if (dedupe) {
        memcpy(sk + base, "seen:", 5);
        nl = fmt_i64(num, gen);
        memcpy(sk + base + 5, num, nl);
        if (args_push(a, sk, base + 5 + nl) != 0)
            return -1;
        nl = fmt_i64(num, gen - c->window_s);
        memcpy(sk + base + 5, num, nl);
        if (args_push(a, sk, base + 5 + nl) != 0)
            return -1;
    }
    for (size_t i = 0; i < w->h.n; i++)
        if ((i == 0 || hrec_cmp(&w->recs[i - 1], &w->recs[i]) != 0) &&
            args_push(a, w->recs[i].key, w->recs[i].v->key_len) != 0)
            return -1;
    /* ARGV */
    if (args_int(a, now_s) != 0 || args_int(a, c->window_s) != 0 ||
        args_int(a, dedupe ? 2 : 0) != 0 || args_int(a, dedupe ? gen + 2 * c->window_s : 0) != 0 ||
        args_count_slot(a, &slot) != 0)
        return -1;
    for (size_t p = 0; p < c->nparts; p++) {
        if (w->low[p] < 0)
            continue;
        if (args_push(a, c->parts[p].field, c->parts[p].field_len) != 0 ||
            args_int(a, w->low[p]) != 0 || args_int(a, c->parts[p].next) != 0)
            return -1;
        np++;
    }
    args_set_count(a, slot, np);
    if (args_int(a, dedupe ? (int64_t)n : 0) != 0)
        return -1;
    for (size_t i = 0; dedupe && i < n; i++) {
        const cev_t *e = &c->evs[idx[i]];
        if (e->bad_id || args_push(a, (const char *)e->id, 16) != 0)
            return -1;
    }
    if (args_int(a, OPS_METRIC_COUNT) != 0)
        return -1;
    for (int k = 0; k < OPS_METRIC_COUNT; k++)
        if (args_str(a, ops_metric_name((ops_metric_t)k)) != 0)
            return -1;
    for (size_t i = 0; i < w->h.n;) {
        size_t fslot, nf = 0, j = i;
        if (args_int(a, w->recs[i].v->expireat) != 0 || args_count_slot(a, &fslot) != 0)
            return -1;
        /* the key's fields, then their deltas in the same order */
        for (; j < w->h.n && (j == i || hrec_cmp(&w->recs[j - 1], &w->recs[j]) == 0); j++) {
            const hagg_t *v = w->recs[j].v;
            for (int k = 0; k < OPS_METRIC_COUNT; k++) {
                const char *mn = ops_metric_name((ops_metric_t)k);
                size_t ml = strlen(mn), fl = 0;
                if (v->m[k] == 0)
                    continue;
                if (v->cc[0] != '\0') {
                    size_t cl = strlen(v->cc);
                    memcpy(field, v->cc, cl);
                    field[cl] = ':';
                    fl = cl + 1;
                }
                if (fl + ml >= sizeof field)
                    return -1;
                memcpy(field + fl, mn, ml);
                if (args_push(a, field, fl + ml) != 0)
                    return -1;
                nf++;
            }
        }
        for (size_t r = i; r < j; r++) {
            const hagg_t *v = w->recs[r].v;
            for (int k = 0; k < OPS_METRIC_COUNT; k++)
                if (v->m[k] != 0 && args_int(a, v->m[k]) != 0)
                    return -1;
        }
        args_set_count(a, fslot, nf);
        i = j;
    }
    if (args_int(a, (int64_t)w->countries.n) != 0)
        return -1;
    for (size_t i = 0; i < w->countries.n; i++)
        if (args_str(a, w->countries.keys[i]) != 0)
            return -1;
    o->argc = a->argc - o->first;
    return 0;
}

static int build_offsets(const ops_counter_t *c, const char *okey, ops_counter_args_t *a) {
    a->cas_first = a->argc;
    if (args_push(a, "EVALSHA", 7) != 0 || args_push(a, "", 0) != 0 || args_push(a, "1", 1) != 0 ||
        args_str(a, okey) != 0)
        return -1;
    for (size_t i = 0; i < c->nparts; i++) {
        const part_t *p = &c->parts[i];
        if (p->first < 0)
            continue;
        if (args_push(a, p->field, p->field_len) != 0)
            return -1;
        if ((p->stored < 0 ? args_push(a, "", 0) : args_int(a, p->stored)) != 0)
            return -1;
        if (args_int(a, p->next) != 0)
            return -1;
    }
    a->cas_argc = a->argc - a->cas_first;
    return 0;
}

/* Aggregates the batch per operation and key in C, so that each script
 * applies one write per (key, field), however many events the batch holds.
 * Per event: a counting sort by operation, a (country, minute) group
 * look-up and its id copied; keys and fields are formatted per group. */
int ops_counter_build(const ops_counter_t *c, int64_t now_ms, ops_counter_args_t *a, char *errstr,
                      size_t errstr_size) {
    return ops_counter_build_each(c, now_ms, a, NULL, NULL, errstr, errstr_size) == 0 ? 0 : -1;
}

int ops_counter_build_each(const ops_counter_t *c, int64_t now_ms, ops_counter_args_t *a,
                           ops_counter_emit_fn emit, void *opaque, char *errstr,
                           size_t errstr_size) {
    build_ws_t w;
    char key[OPS_KEY_MAX];
    size_t nops = c->ops.n, *start = NULL;
    int rc = -1;
    const int64_t now_s = now_ms / 1000;

    memset(&w, 0, sizeof w);
    smap_init(&w.h, sizeof(hagg_t));
    smap_init(&w.countries, 1);
    a->argc = 0;
    a->buf_len = 0;
    a->nops = 0;
    a->cas_first = a->cas_argc = 0;
    if (ops_key_offsets(c->group, key, sizeof key) < 0) {
        ops_err_format(errstr, errstr_size, "counter: group name too long for a key");
        goto cleanup;
    }
    if (c->nevs > a->order_cap) {
        size_t *o = realloc(a->order, c->nevs * sizeof(*o));
        if (o == NULL)
            goto oom;
        a->order = o;
        a->order_cap = c->nevs;
    }
    start = calloc(nops + 1, sizeof(*start));
    w.low = calloc(c->nparts ? c->nparts : 1, sizeof(*w.low));
    if (start == NULL || w.low == NULL)
        goto oom;
    /* Counting sort of the events to count by operation. */
    for (size_t i = 0; i < c->nevs; i++)
        if (!c->evs[i].dropped && !c->evs[i].done)
            start[c->evs[i].opi + 1]++;
    for (size_t g = 0; g < nops; g++)
        start[g + 1] += start[g];
    for (size_t i = 0; i < c->nevs; i++)
        if (!c->evs[i].dropped && !c->evs[i].done)
            a->order[start[c->evs[i].opi]++] = i;
    /* start[g] is now the end of g's run, i.e. the beginning of g + 1's.
     * The offsets call first: it is what a caller checks before any step. */
    if (build_offsets(c, key, a) != 0)
        goto oom;
    if (emit != NULL && nops > 0 && start[nops - 1] > 0) {
        if (args_view(a, a->cas_first, a->cas_argc) != 0)
            goto oom;
        if (emit(opaque, a, OPS_COUNTER_CALL_OFFSETS) != 0) {
            rc = 1;
            goto cleanup;
        }
    }
    for (size_t g = 0, from = 0; g < nops; g++) {
        size_t to = start[g];
        if (to > from && build_op(c, g, a->order + from, to - from, now_s, &w, a) != 0) {
            ops_err_format(
                errstr, errstr_size,
                "counter: out of memory, a key too long or an event id not a canonical UUID");
            goto cleanup;
        }
        if (to > from && emit != NULL) {
            const ops_counter_op_args_t *o = &a->ops[a->nops - 1];
            if (args_view(a, a->cas_first, a->cas_argc) != 0 ||
                args_view(a, o->name, o->first + o->argc - o->name) != 0)
                goto oom;
            if (emit(opaque, a, a->nops - 1) != 0) {
                rc = 1;
                goto cleanup;
            }
        }
        from = to;
    }
    if (args_finish(a) != 0)
        goto oom;
    rc = 0;
    goto cleanup;
oom:
    ops_err_format(errstr, errstr_size, "counter: out of memory");
cleanup:
    free(start);
    free(w.low);
    free(w.gr.g);
    free(w.gr.slots);
    free(w.recs);
    smap_free(&w.h);
    smap_free(&w.countries);
    return rc;
}
