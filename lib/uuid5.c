/*
 * opstream version 5 UUIDs (RFC 9562 section 5.5) through libuuid: the name
 * is the parts joined by the unit separator (0x1f), which keeps "A"+"BC"
 * and "AB"+"C" apart.
 */
#include "uuid5_priv.h"

#include <stdlib.h>
#include <string.h>

#include <uuid/uuid.h>

/* Event and alert names are a few hundred bytes at most (their parts come
 * from bounded fields); the heap is only a fallback for other callers. */
#define NAME_STACK_MAX 1024

void ops_uuid5_derive(const uint8_t ns[16], const char *const *parts, size_t n_parts,
                      char out[37]) {
    size_t len = 0;
    for (size_t i = 0; i < n_parts; i++)
        len += (i > 0) + (parts[i] != NULL ? strlen(parts[i]) : 0);

    char stack[NAME_STACK_MAX] = {0};
    char *name = len <= sizeof(stack) ? stack : malloc(len);
    if (name == NULL) {
        out[0] = '\0';
        return;
    }
    size_t o = 0;
    for (size_t i = 0; i < n_parts; i++) {
        if (i > 0)
            name[o++] = '\x1f';
        if (parts[i] != NULL) {
            size_t n = strlen(parts[i]);
            memcpy(name + o, parts[i], n);
            o += n;
        }
    }

    uuid_t id;
    uuid_generate_sha1(id, ns, name, o);
    uuid_unparse_lower(id, out);
    if (name != stack)
        free(name);
}
