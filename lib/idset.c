/*
 * opstream id set: open addressing with linear probing, grown at half load.
 * A canonical UUID (lowercase, 8-4-4-4-12) takes 16 bytes (all zero marks a
 * free slot); any other id (and the nil UUID) goes to a second table of
 * 37-byte text slots (an empty string marks a free slot).
 */
#include "opstream/idset.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "opstream/validate.h"

static uint64_t fnv(const void *p, size_t len) {
    const unsigned char *b = p;
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < len && (len != OPS_EVENT_ID_LEN || b[i] != '\0'); i++)
        h = (h ^ b[i]) * 1099511628211ULL;
    return h;
}

/* The first OPS_EVENT_ID_LEN characters of id as a UUID's 16 bytes: 1 when
 * they are a canonical UUID other than the nil one, else 0. */
static int uuid_bytes(const char *id, uint8_t out[16]) {
    static const uint8_t nil[16];
    char head[OPS_EVENT_ID_LEN + 1];

    memcpy(head, id, strnlen(id, OPS_EVENT_ID_LEN));
    head[strnlen(id, OPS_EVENT_ID_LEN)] = '\0';
    return ops_uuid_raw(head, out) == 0 && memcmp(out, nil, 16) != 0;
}

static bool free_bin(const uint8_t *slot) {
    static const uint8_t zero[16];
    return memcmp(slot, zero, 16) == 0;
}

static size_t bin_slot(uint8_t (*v)[16], size_t cap, const uint8_t *b) {
    size_t j = fnv(b, 16) & (cap - 1);
    while (!free_bin(v[j]) && memcmp(v[j], b, 16) != 0)
        j = (j + 1) & (cap - 1);
    return j;
}

static size_t text_slot(char (*v)[OPS_EVENT_ID_LEN + 1], size_t cap, const char *id) {
    size_t j = fnv(id, OPS_EVENT_ID_LEN) & (cap - 1);
    while (v[j][0] != '\0' && strncmp(v[j], id, OPS_EVENT_ID_LEN) != 0)
        j = (j + 1) & (cap - 1);
    return j;
}

bool ops_idset_has(const ops_idset_t *s, const char *id) {
    uint8_t b[16];
    if (id[0] == '\0')
        return false;
    if (uuid_bytes(id, b))
        return s->cap > 0 && !free_bin(s->v[bin_slot(s->v, s->cap, b)]);
    return s->text_cap > 0 && s->text[text_slot(s->text, s->text_cap, id)][0] != '\0';
}

static int grow_bin(ops_idset_t *s) {
    size_t ncap = s->cap == 0 ? 256 : s->cap * 2;
    uint8_t(*nv)[16] = calloc(ncap, sizeof(*nv));
    if (nv == NULL)
        return -1;
    for (size_t i = 0; i < s->cap; i++)
        if (!free_bin(s->v[i]))
            memcpy(nv[bin_slot(nv, ncap, s->v[i])], s->v[i], 16);
    free(s->v);
    s->v = nv;
    s->cap = ncap;
    return 0;
}

static int grow_text(ops_idset_t *s) {
    size_t ncap = s->text_cap == 0 ? 16 : s->text_cap * 2;
    char(*nv)[OPS_EVENT_ID_LEN + 1] = calloc(ncap, sizeof(*nv));
    if (nv == NULL)
        return -1;
    for (size_t i = 0; i < s->text_cap; i++)
        if (s->text[i][0] != '\0')
            memcpy(nv[text_slot(nv, ncap, s->text[i])], s->text[i], sizeof(nv[0]));
    free(s->text);
    s->text = nv;
    s->text_cap = ncap;
    return 0;
}

int ops_idset_add(ops_idset_t *s, const char *id) {
    uint8_t b[16];
    if (id[0] == '\0' || ops_idset_has(s, id))
        return 0;
    if (uuid_bytes(id, b)) {
        if ((s->n_bin + 1) * 2 > s->cap && grow_bin(s) != 0)
            return -1;
        memcpy(s->v[bin_slot(s->v, s->cap, b)], b, 16);
        s->n_bin++;
    } else {
        if ((s->n - s->n_bin + 1) * 2 > s->text_cap && grow_text(s) != 0)
            return -1;
        snprintf(s->text[text_slot(s->text, s->text_cap, id)], sizeof(s->text[0]), "%.*s",
                 OPS_EVENT_ID_LEN, id);
    }
    s->n++;
    return 1;
}

void ops_idset_clear(ops_idset_t *s) {
    if (s == NULL)
        return;
    free(s->v);
    free(s->text);
    memset(s, 0, sizeof(*s));
}
