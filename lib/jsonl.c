/*
 * opstream JSON Lines input: reads lines in bounded memory (one enormous line
 * cannot grow memory), so a bad export line is reported precisely and the
 * good lines still go through.
 */
#include "opstream/jsonl.h"

#include <stdlib.h>

/* ---- bounded line reader ---- */

struct ops_lines {
    FILE *fp;
    size_t line_max;
    long number;
    char *buf; /* line_max bytes plus a line end */
};

ops_lines_t *ops_lines_new(FILE *fp, size_t line_max) {
    ops_lines_t *l = calloc(1, sizeof(*l));
    if (l == NULL)
        return NULL;
    l->fp = fp;
    l->line_max = line_max ? line_max : OPS_LINE_MAX_DEFAULT;
    l->buf = malloc(l->line_max + 2);
    if (l->buf == NULL) {
        free(l);
        return NULL;
    }
    return l;
}

void ops_lines_destroy(ops_lines_t *l) {
    if (l == NULL)
        return;
    free(l->buf);
    free(l);
}

/* Keeps at most line_max bytes of a line (plus its line end) and consumes
 * the rest, so one enormous line cannot grow memory. */
int ops_lines_next(ops_lines_t *l, const char **linep, size_t *lenp, size_t *rawlenp,
                   int *truncatedp) {
    size_t n = 0;
    int c, truncated = 0, any = 0;

    /* getc_unlocked: one thread reads the FILE; a lock per byte
     * was a fifth of opstream-produce's time on a large file. */
    while ((c = getc_unlocked(l->fp)) != EOF) {
        any = 1;
        if (c == '\n')
            break;
        if (n < l->line_max)
            l->buf[n++] = (char)c;
        else
            truncated = 1;
    }
    if (ferror(l->fp))
        return -1; /* a line cut short by a read error is not a line */
    if (!any)
        return 0;
    l->number++;
    size_t len = n;
    if (len > 0 && l->buf[len - 1] == '\r' && c == '\n')
        len--;
    if (c == '\n')
        l->buf[n++] = '\n';
    *linep = l->buf;
    *lenp = len;
    *rawlenp = n;
    if (truncatedp != NULL)
        *truncatedp = truncated;
    return 1;
}

long ops_lines_number(const ops_lines_t *l) {
    return l->number;
}
