/*
 * libFuzzer target: the Confluent frame decoder. Bytes from Kafka are
 * untrusted, so any input must give a clean error class or a decoded event
 * (or alert), never a crash, an overread or an allocation the bytes do not
 * justify. A decoded event must re-encode: the codec accepted it as valid.
 * Events are decoded twice, by the direct decoder (ops_codec_decode_event)
 * and by the avro-c reference, with the default reader and with the rescue
 * v1 reader: both must give the same class, message and event, and a
 * decoded event re-encodes to the same bytes with the direct encoder and
 * with avro-c.
 * The codecs are created and destroyed per input so that LeakSanitizer sees
 * every allocation a decode leaves behind (avro-c caches in its values).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "opstream/codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Decodes with both decoders; aborts when they disagree. */
static void decode_both(ops_codec_t *codec, const uint8_t *data, size_t size) {
    static unsigned char out[OPS_CODEC_MAX_FRAME], ref_out[OPS_CODEC_MAX_FRAME];
    char err[256] = "", ref_err[256] = "";
    ops_event_t ev, ref;
    ops_codec_err_t got, want;
    size_t len, ref_len;

    got = ops_codec_decode_event(codec, data, size, &ev, err, sizeof err);
    want = ops_codec_decode_event_reference(codec, data, size, &ref, ref_err, sizeof ref_err);
    if (got != want)
        abort(); /* one decoder accepted what the other refused, or another class */
    if (got == OPS_CODEC_OK && memcmp(&ev, &ref, sizeof ev) != 0)
        abort(); /* same frame, different events */
    if (got != OPS_CODEC_OK && strcmp(err, ref_err) != 0)
        abort();
    if (got != OPS_CODEC_OK)
        return;
    if (ops_codec_encode_event(codec, &ev, out, sizeof out, &len, err, sizeof err) != 0)
        abort(); /* decoded but cannot be written back: the decoder let it through */
    if (ops_codec_encode_event_reference(codec, &ev, ref_out, sizeof ref_out, &ref_len, err,
                                         sizeof err) != 0 ||
        ref_len != len || memcmp(out, ref_out, len) != 0)
        abort(); /* the direct encoder and avro-c write different frames */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static unsigned char out[OPS_CODEC_MAX_FRAME];
    ops_codec_options_t v1 = {0, 0, OPS_CODEC_RESCUE_V1};
    char err[256];
    ops_alert_t alert;
    size_t len;
    ops_codec_t *codec = ops_codec_new(NULL, err, sizeof err);
    ops_codec_t *codec_v1 = ops_codec_new(&v1, err, sizeof err);

    if (codec == NULL || codec_v1 == NULL)
        abort();
    decode_both(codec, data, size);
    decode_both(codec_v1, data, size);
    if (ops_codec_decode_alert(codec, data, size, &alert, err, sizeof err) == OPS_CODEC_OK &&
        ops_codec_encode_alert(codec, &alert, out, sizeof out, &len, err, sizeof err) != 0)
        abort();
    ops_codec_destroy(codec);
    ops_codec_destroy(codec_v1);
    return 0;
}
