/*
 * libFuzzer target: the CSV reader as opstream-produce drives it. The first
 * record is mapped as a header, every other record is filled into a record
 * and built into an event. A national export is untrusted: every input must
 * end in records or clear errors, with memory bounded by the record limit.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "opstream/csv.h"
#include "opstream/event.h"
#include "opstream/record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[256];
    const char *names[OPS_CSV_FIELDS_MAX];
    int map[OPS_CSV_FIELDS_MAX];
    size_t ncols = 0;
    int have_header = 0;
    FILE *fp;
    ops_csv_t *r = NULL;
    ops_csv_status_t st;
    ops_record_defaults_t d = {NULL, NULL, -1, 1727704800000LL, NULL};

    if (size == 0)
        return 0;
    fp = fmemopen((void *)data, size, "r");
    if (fp == NULL)
        return 0;
    r = ops_csv_new(fp, 4096); /* small bound: the cut path is reached */
    if (r == NULL)
        abort();
    while ((st = ops_csv_next(r, err, sizeof err)) != OPS_CSV_EOF && st != OPS_CSV_IO) {
        size_t raw_len;
        int cut;
        const char *raw = ops_csv_raw(r, &raw_len, &cut);
        if (raw == NULL && raw_len != 0)
            abort();
        if (st != OPS_CSV_RECORD)
            continue;
        size_t n = ops_csv_nfields(r);
        if (n > OPS_CSV_FIELDS_MAX)
            abort();
        if (!have_header) {
            for (size_t i = 0; i < n; i++)
                names[i] = ops_csv_field(r, i);
            if (ops_record_map_header(names, n, map, err, sizeof err) != 0)
                break;
            ncols = n;
            have_header = 1;
            continue;
        }
        ops_record_t rec;
        ops_event_t ev;
        ops_record_clear(&rec);
        for (size_t i = 0; i < n && i < ncols; i++) {
            const char *f = ops_csv_field(r, i);
            if (map[i] < 0 || map[i] >= OPS_FIELD_COUNT || f[0] == '\0')
                continue;
            rec.v[map[i]].type = OPS_VALUE_TEXT;
            rec.v[map[i]].text = f;
        }
        (void)ops_record_build(&rec, &d, &ev, NULL, err, sizeof err);
    }
    ops_csv_destroy(r);
    fclose(fp);
    return 0;
}
