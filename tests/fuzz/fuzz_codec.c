/*
 * libFuzzer target: the Confluent frame decoder. Bytes from Kafka are
 * untrusted, so any input must give a clean error class or a decoded event
 * (or alert), never a crash, an overread or an allocation the bytes do not
 * justify. A decoded event must re-encode: the codec accepted it as valid.
 * The codec is created and destroyed per input so that LeakSanitizer sees
 * every allocation a decode leaves behind (avro-c caches in its values).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "opstream/codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static unsigned char out[OPS_CODEC_MAX_FRAME];
    char err[256];
    ops_event_t ev;
    ops_alert_t alert;
    size_t len;
    ops_codec_t *codec = ops_codec_new(NULL, err, sizeof err);

    if (codec == NULL)
        abort();
    if (ops_codec_decode_event(codec, data, size, &ev, err, sizeof err) == OPS_CODEC_OK &&
        ops_codec_encode_event(codec, &ev, out, sizeof out, &len, err, sizeof err) != 0)
        abort(); /* decoded but cannot be written back: the decoder let it through */
    if (ops_codec_decode_alert(codec, data, size, &alert, err, sizeof err) == OPS_CODEC_OK &&
        ops_codec_encode_alert(codec, &alert, out, sizeof out, &len, err, sizeof err) != 0)
        abort();
    ops_codec_destroy(codec);
    return 0;
}
