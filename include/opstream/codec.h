/*
 * opstream codec: events and alerts <-> Confluent-framed Avro (magic byte 0,
 * 4-byte big-endian schema id, Avro binary body). Decoding resolves any known
 * writer schema into the current reader schema. Bodies are untrusted: every
 * length, count and index is checked against the schema and the bytes left
 * before avro-c reads the body, so no input makes it allocate more than the
 * message could honestly need. The codec never prints and never exits.
 */
#ifndef OPSTREAM_CODEC_H
#define OPSTREAM_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "opstream/codec_err.h"
#include "opstream/event.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The largest frame an event or alert can encode to (every string and array
 * at its bound). A buffer of this size always suffices for encoding. */
#define OPS_CODEC_MAX_FRAME 65536

/* Schema versions known to this build, for ops_codec_options_t. */
#define OPS_CODEC_RESCUE_V1 1
#define OPS_CODEC_RESCUE_V2 2

typedef struct ops_codec_options {
    size_t max_message_bytes; /* 0: default 1 MiB; frames over it are TOO_LARGE */
    int rescue_writer_version; /* 0: latest (v2) */
    int rescue_reader_version; /* 0: latest (v2) */
} ops_codec_options_t;

typedef struct ops_codec ops_codec_t;

/* Creates a codec with the embedded schemas (schemas/ compiled in). opts may
 * be NULL for defaults. A codec is not thread-safe: one per thread. Returns
 * NULL with errstr filled on failure. Free with ops_codec_destroy(). */
ops_codec_t *ops_codec_new(const ops_codec_options_t *opts, char *errstr, size_t errstr_size);
void ops_codec_destroy(ops_codec_t *codec); /* accepts NULL */

/* Encodes ev into buf (a frame: header + body). ev is not validated here
 * (see validate.h) beyond what the schema needs. Returns 0 and sets *lenp, or
 * -1 with errstr filled (buffer too small, a value the schema cannot hold). */
int ops_codec_encode_event(ops_codec_t *codec, const ops_event_t *ev, void *buf, size_t bufsize,
                           size_t *lenp, char *errstr, size_t errstr_size);

/* The same encode through avro-c's generic values, the reference the direct
 * encoder of ops_codec_encode_event is tested against: both write the same
 * bytes, or fail with the same message. */
int ops_codec_encode_event_reference(ops_codec_t *codec, const ops_event_t *ev, void *buf,
                                     size_t bufsize, size_t *lenp, char *errstr,
                                     size_t errstr_size);

/* Decodes one frame into ev (ev->kind set from the writer schema). Any error
 * leaves ev unspecified and fills errstr with the class and where it was
 * found, e.g. "truncated: string length 40 at body offset 17 exceeds the 12
 * bytes left". */
ops_codec_err_t ops_codec_decode_event(ops_codec_t *codec, const void *buf, size_t len,
                                       ops_event_t *ev, char *errstr, size_t errstr_size);

/* The same decode through avro-c alone (guard, generic value, resolved
 * reader view), the reference the direct decoder of ops_codec_decode_event
 * is tested against: both give the same event, or the same error class and
 * message, for every frame. ops_codec_decode_event reads the project's event
 * schemas straight from the frame with no allocation and hands any frame it
 * does not accept to this decode, which then names the error. */
ops_codec_err_t ops_codec_decode_event_reference(ops_codec_t *codec, const void *buf, size_t len,
                                                 ops_event_t *ev, char *errstr,
                                                 size_t errstr_size);

int ops_codec_encode_alert(ops_codec_t *codec, const ops_alert_t *alert, void *buf, size_t bufsize,
                           size_t *lenp, char *errstr, size_t errstr_size);
ops_codec_err_t ops_codec_decode_alert(ops_codec_t *codec, const void *buf, size_t len,
                                       ops_alert_t *alert, char *errstr, size_t errstr_size);

/* Reads the schema id of a frame without decoding the body. Returns OK,
 * MAGIC or TRUNCATED. */
ops_codec_err_t ops_codec_frame_schema_id(const void *buf, size_t len, int32_t *idp);

/* The schema id this codec writes for a kind (events) or for alerts. */
int32_t ops_codec_writer_id(const ops_codec_t *codec, ops_kind_t kind);
int32_t ops_codec_alert_writer_id(const ops_codec_t *codec);

#ifdef __cplusplus
}
#endif
#endif
