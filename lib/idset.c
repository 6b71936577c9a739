/*
 * opstream id set: open addressing with linear probing over fixed 37-byte
 * slots (an empty string marks a free slot), grown at half load.
 */
#include "opstream/idset.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t id_hash(const char *s) {
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < OPS_EVENT_ID_LEN && s[i] != '\0'; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return h;
}

static bool slot_is(const char *slot, const char *id) {
    return strncmp(slot, id, OPS_EVENT_ID_LEN) == 0;
}

bool ops_idset_has(const ops_idset_t *s, const char *id) {
    if (s->cap == 0 || id[0] == '\0')
        return false;
    for (size_t j = id_hash(id) & (s->cap - 1); s->v[j][0] != '\0'; j = (j + 1) & (s->cap - 1)) {
        if (slot_is(s->v[j], id))
            return true;
    }
    return false;
}

static size_t free_slot(char (*v)[OPS_EVENT_ID_LEN + 1], size_t cap, const char *id) {
    size_t j = id_hash(id) & (cap - 1);
    while (v[j][0] != '\0')
        j = (j + 1) & (cap - 1);
    return j;
}

int ops_idset_add(ops_idset_t *s, const char *id) {
    if (id[0] == '\0' || ops_idset_has(s, id))
        return 0;
    if ((s->n + 1) * 2 > s->cap) {
        size_t ncap = s->cap == 0 ? 256 : s->cap * 2;
        char(*nv)[OPS_EVENT_ID_LEN + 1] = calloc(ncap, sizeof(*nv));
        if (nv == NULL)
            return -1;
        for (size_t i = 0; i < s->cap; i++) {
            if (s->v[i][0] != '\0')
                memcpy(nv[free_slot(nv, ncap, s->v[i])], s->v[i], sizeof(nv[0]));
        }
        free(s->v);
        s->v = nv;
        s->cap = ncap;
    }
    snprintf(s->v[free_slot(s->v, s->cap, id)], sizeof(s->v[0]), "%.*s", OPS_EVENT_ID_LEN, id);
    s->n++;
    return 1;
}

void ops_idset_clear(ops_idset_t *s) {
    if (s == NULL)
        return;
    free(s->v);
    s->v = NULL;
    s->cap = s->n = 0;
}
