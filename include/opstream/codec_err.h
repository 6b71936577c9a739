/*
 * opstream codec error classes: the outcome of decoding or checking an Avro
 * frame, shared by the codec and the Avro guard (which the codec runs before
 * avro-c reads a body), so that neither includes the other.
 */
#ifndef OPSTREAM_CODEC_ERR_H
#define OPSTREAM_CODEC_ERR_H

#ifdef __cplusplus
extern "C" {
#endif

/* Error classes. ops_codec_err_name() gives the short name used in the
 * opstream.error DLQ header ("magic", "unknown-schema-id", ...). */
typedef enum ops_codec_err {
    OPS_CODEC_OK = 0,
    OPS_CODEC_ERR_MAGIC,      /* first byte is not 0x00 */
    OPS_CODEC_ERR_UNKNOWN_ID, /* schema id not in the embedded registry */
    OPS_CODEC_ERR_TRUNCATED,  /* frame or body ends before the schema says */
    OPS_CODEC_ERR_MALFORMED,  /* bad varint, negative length, bad union or
                               * enum index, trailing bytes, a value outside
                               * the event model */
    OPS_CODEC_ERR_TOO_LARGE,  /* message over the size limit, or a string or
                               * array over the event model's bound */
    OPS_CODEC_ERR_WRONG_TYPE, /* a valid record of another type (an alert
                               * where an event was expected, or the reverse) */
    OPS_CODEC_ERR_INTERNAL    /* avro-c failed on valid input; out of memory */
} ops_codec_err_t;

const char *ops_codec_err_name(ops_codec_err_t err);

#ifdef __cplusplus
}
#endif
#endif
