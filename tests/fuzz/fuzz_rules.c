/*
 * libFuzzer target: the alert rules parser. A rules file is operator input;
 * any text must give a rule set or "FILE:LINE: reason", and a rule set that
 * parses must build a rule engine.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "opstream/rules.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[512];
    ops_rules_t *rules = NULL;
    ops_rule_engine_t *eng;

    if (ops_rules_parse((const char *)data, size, "fuzz.conf", &rules, err, sizeof err) != 0)
        return 0;
    for (size_t i = 0; i < ops_rules_count(rules); i++)
        if (ops_rules_name(rules, i) == NULL)
            abort();
    (void)ops_rules_span_ms(rules);
    eng = ops_rule_engine_new(rules, err, sizeof err);
    if (eng == NULL)
        abort();
    ops_rule_engine_destroy(eng);
    ops_rules_destroy(rules);
    return 0;
}
