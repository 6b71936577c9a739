/*
 * libFuzzer target: the JSON Lines path of opstream-produce: the bounded
 * line reader, the flat-object parser, record filling and event building.
 * Any line must give an event or an error with a column, never a crash.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "opstream/event.h"
#include "opstream/jsonl.h"
#include "opstream/record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[256], out[OPS_RECORD_JSON_MAX];
    const char *line;
    size_t len, rawlen;
    int cut;
    FILE *fp;
    ops_lines_t *lines;
    ops_json_t *json;
    ops_record_defaults_t d = {NULL, NULL, -1, 1727704800000LL, NULL};

    if (size == 0)
        return 0;
    fp = fmemopen((void *)data, size, "r");
    if (fp == NULL)
        return 0;
    lines = ops_lines_new(fp, 4096);
    json = ops_json_new();
    if (lines == NULL || json == NULL)
        abort();
    while (ops_lines_next(lines, &line, &len, &rawlen, &cut) == 1) {
        if (len > rawlen || len > 4096)
            abort();
        if (ops_json_parse(json, line, len, err, sizeof err) != 0)
            continue;
        for (size_t i = 0; i < ops_json_count(json); i++)
            if (ops_json_member(json, i) == NULL || ops_json_member(json, i)->key == NULL)
                abort();
        ops_record_t rec;
        ops_event_t ev;
        ops_record_clear(&rec);
        if (ops_record_from_json(&rec, json, NULL, err, sizeof err) != 0)
            continue;
        if (ops_record_build(&rec, &d, &ev, NULL, err, sizeof err) == 0 &&
            ops_record_format_json(&ev, out, sizeof out) < 0)
            abort(); /* a built event always fits OPS_RECORD_JSON_MAX */
    }
    ops_json_destroy(json);
    ops_lines_destroy(lines);
    fclose(fp);
    return 0;
}
