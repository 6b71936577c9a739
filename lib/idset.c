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

/* FNV-1a over len bytes. */
static uint64_t fnv(const void *p, size_t len) {
    const unsigned char *b = p;
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < len; i++)
        h = (h ^ b[i]) * 1099511628211ULL;
    return h;
}

/* An id as the set compares it: the 16 bytes of a canonical UUID other than
 * the nil one, else its text (the first OPS_EVENT_ID_LEN characters).
 * Parsed once per call of has or add. */
typedef struct id_key {
    bool bin;
    uint8_t b[16];
    const char *text;
    size_t text_len;
} id_key_t;

static void key_of(const char *id, id_key_t *k) {
    static const uint8_t nil[16];
    char head[OPS_EVENT_ID_LEN + 1];

    k->text = id;
    k->text_len = strnlen(id, OPS_EVENT_ID_LEN);
    memcpy(head, id, k->text_len);
    head[k->text_len] = '\0';
    k->bin = ops_uuid_raw(head, k->b) == 0 && memcmp(k->b, nil, 16) != 0;
}

static bool free_bin(const uint8_t *slot) {
    static const uint8_t zero[16];
    return memcmp(slot, zero, 16) == 0;
}

/* The slot holding b, or the free slot where it goes. */
static size_t bin_slot(uint8_t (*v)[16], size_t cap, const uint8_t b[16]) {
    size_t j = fnv(b, 16) & (cap - 1);
    while (!free_bin(v[j]) && memcmp(v[j], b, 16) != 0)
        j = (j + 1) & (cap - 1);
    return j;
}

/* The same for a text id of len characters (len <= OPS_EVENT_ID_LEN). */
static size_t text_slot(char (*v)[OPS_EVENT_ID_LEN + 1], size_t cap, const char *text, size_t len) {
    size_t j = fnv(text, len) & (cap - 1);
    while (v[j][0] != '\0' && !(strncmp(v[j], text, len) == 0 && v[j][len] == '\0'))
        j = (j + 1) & (cap - 1);
    return j;
}

/* Probes k's table once: true when k is held. *slot gets the slot that
 * holds it or the free one where it goes (untouched while the table is
 * empty). */
static bool find(const ops_idset_t *s, const id_key_t *k, size_t *slot) {
    if (k->bin) {
        if (s->cap == 0)
            return false;
        *slot = bin_slot(s->v, s->cap, k->b);
        return !free_bin(s->v[*slot]);
    }
    if (s->text_cap == 0)
        return false;
    *slot = text_slot(s->text, s->text_cap, k->text, k->text_len);
    return s->text[*slot][0] != '\0';
}

bool ops_idset_has(const ops_idset_t *s, const char *id) {
    id_key_t k;
    size_t j;
    if (id[0] == '\0')
        return false;
    key_of(id, &k);
    return find(s, &k, &j);
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
            memcpy(nv[text_slot(nv, ncap, s->text[i], strlen(s->text[i]))], s->text[i],
                   sizeof(nv[0]));
    free(s->text);
    s->text = nv;
    s->text_cap = ncap;
    return 0;
}

/* One probe finds the id or the free slot it takes; only when the table
 * must grow first is the slot looked up again, in the grown table. */
int ops_idset_add(ops_idset_t *s, const char *id) {
    id_key_t k;
    size_t j = 0;
    if (id[0] == '\0')
        return 0;
    key_of(id, &k);
    if (find(s, &k, &j))
        return 0;
    if (k.bin) {
        if ((s->n_bin + 1) * 2 > s->cap) {
            if (grow_bin(s) != 0)
                return -1;
            j = bin_slot(s->v, s->cap, k.b);
        }
        memcpy(s->v[j], k.b, 16);
        s->n_bin++;
    } else {
        if ((s->n - s->n_bin + 1) * 2 > s->text_cap) {
            if (grow_text(s) != 0)
                return -1;
            j = text_slot(s->text, s->text_cap, k.text, k.text_len);
        }
        memcpy(s->text[j], k.text, k.text_len);
        s->text[j][k.text_len] = '\0';
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
