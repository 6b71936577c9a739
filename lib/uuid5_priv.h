/*
 * opstream library-internal name-based (version 5) UUIDs, shared by event
 * and alert ids. The SHA-1 work is libuuid's (uuid_generate_sha1); this
 * module only joins the name's parts. Not installed; modules under lib/
 * include it.
 */
#ifndef OPSTREAM_UUID5_PRIV_H
#define OPSTREAM_UUID5_PRIV_H

#include <stddef.h>
#include <stdint.h>

/* The canonical lower-case text of the version 5 UUID of the 16 namespace
 * bytes and the n_parts strings joined by 0x1f (NULL parts are empty).
 * out receives 37 bytes; it is "" only when a name longer than the ids'
 * own bounds (kilobytes) cannot be allocated. */
void ops_uuid5_derive(const uint8_t ns[16], const char *const *parts, size_t n_parts,
                      char out[37]);

#endif
