/*
 * opstream codec error classes: the short names used in the opstream.error
 * DLQ header and at the start of every decode error message.
 */
#include "opstream/codec_err.h"

const char *ops_codec_err_name(ops_codec_err_t err) {
    switch (err) {
    case OPS_CODEC_OK:
        return "ok";
    case OPS_CODEC_ERR_MAGIC:
        return "magic";
    case OPS_CODEC_ERR_UNKNOWN_ID:
        return "unknown-schema-id";
    case OPS_CODEC_ERR_TRUNCATED:
        return "truncated";
    case OPS_CODEC_ERR_MALFORMED:
        return "malformed";
    case OPS_CODEC_ERR_TOO_LARGE:
        return "too-large";
    case OPS_CODEC_ERR_WRONG_TYPE:
        return "wrong-type";
    case OPS_CODEC_ERR_INTERNAL:
        return "internal";
    }
    return "unknown";
}
