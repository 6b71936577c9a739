/*
 * libFuzzer target: the alert rules parser and the rule engine. A rules file
 * is operator input; any text must give a rule set or "FILE:LINE: reason",
 * and a rule set that parses must build a rule engine. Events come from
 * Kafka: every event the codec decodes from the input is run through the
 * engine, which must neither crash nor raise more alerts than it has rules,
 * and every alert it raises must encode (it is publishable).
 *
 * Input: the rules text, then a line "%%", then events as Confluent frames,
 * each preceded by its length (2 bytes, big-endian). Without the "%%" line
 * the whole input is rules text. When the rules text does not parse, the
 * events run through a fixed rule set with single-event and spike rules, so
 * the engine sees every decoded event.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "opstream/codec.h"
#include "opstream/rules.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_ALERTS 64

static const char fixed_rules[] = "[rule mass-rescue]\n"
                                  "kind = rescue\n"
                                  "when = victims >= 50\n"
                                  "severity = CRITICAL\n"
                                  "cooldown = 10m\n"
                                  "[rule minors]\n"
                                  "kind = rescue\n"
                                  "when = minors > 0\n"
                                  "severity = WARNING\n"
                                  "[rule arrests-spike]\n"
                                  "type = spike\n"
                                  "metric = arrests\n"
                                  "scope = country\n"
                                  "window = 10m\n"
                                  "baseline = 6\n"
                                  "factor = 3\n"
                                  "min = 20\n"
                                  "min_events = 3\n"
                                  "cooldown = 30m\n"
                                  "severity = WARNING\n";

/* The end of the rules text: the start of a "%%" line, or size. */
static size_t rules_end(const uint8_t *data, size_t size, size_t *events_at) {
    for (size_t i = 0; i + 2 <= size; i++) {
        if ((i == 0 || data[i - 1] == '\n') && data[i] == '%' && data[i + 1] == '%' &&
            (i + 2 == size || data[i + 2] == '\n')) {
            *events_at = i + 2 < size ? i + 3 : size;
            return i;
        }
    }
    *events_at = size;
    return size;
}

static void run_events(const ops_rules_t *rules, const uint8_t *p, size_t n) {
    static unsigned char out[OPS_CODEC_MAX_FRAME];
    static ops_alert_t alerts[MAX_ALERTS];
    char err[512];
    ops_codec_t *codec = ops_codec_new(NULL, err, sizeof err);
    ops_rule_engine_t *eng = ops_rule_engine_new(rules, err, sizeof err);
    size_t nrules = ops_rules_count(rules);

    if (codec == NULL || eng == NULL)
        abort();
    while (n >= 2) {
        size_t len = ((size_t)p[0] << 8) | p[1];
        ops_event_t ev;

        p += 2;
        n -= 2;
        if (len > n)
            len = n;
        if (ops_codec_decode_event(codec, p, len, &ev, err, sizeof err) == OPS_CODEC_OK) {
            /* "now" a minute after the event, clamped so that it is a time. */
            int64_t now = ev.occurred_at < INT64_MAX - 60000 ? ev.occurred_at + 60000 : INT64_MAX;
            int fired = ops_rule_engine_process(eng, &ev, now, alerts, MAX_ALERTS, err, sizeof err);

            if (fired < -1 || (size_t)(fired < 0 ? 0 : fired) > nrules)
                abort(); /* at most one alert per rule and event */
            for (int i = 0; i < fired && i < MAX_ALERTS; i++) {
                size_t olen;

                if (ops_codec_encode_alert(codec, &alerts[i], out, sizeof out, &olen, err,
                                           sizeof err) != 0)
                    abort(); /* the engine raised an alert that cannot be published */
            }
        }
        p += len;
        n -= len;
    }
    (void)ops_rule_engine_states(eng);
    ops_rule_engine_destroy(eng);
    ops_codec_destroy(codec);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[512];
    ops_rules_t *rules = NULL;
    ops_rule_engine_t *eng;
    size_t events_at, text_len = rules_end(data, size, &events_at);

    if (ops_rules_parse((const char *)data, text_len, "fuzz.conf", &rules, err, sizeof err) != 0) {
        rules = NULL;
        if (events_at < size &&
            ops_rules_parse(fixed_rules, sizeof fixed_rules - 1, "fixed.conf", &rules, err,
                            sizeof err) != 0)
            abort();
    } else {
        for (size_t i = 0; i < ops_rules_count(rules); i++)
            if (ops_rules_name(rules, i) == NULL)
                abort();
        (void)ops_rules_span_ms(rules);
        eng = ops_rule_engine_new(rules, err, sizeof err);
        if (eng == NULL)
            abort();
        ops_rule_engine_destroy(eng);
    }
    if (rules != NULL && events_at < size)
        run_events(rules, data + events_at, size - events_at);
    ops_rules_destroy(rules);
    return 0;
}
