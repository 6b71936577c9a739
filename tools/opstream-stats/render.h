/*
 * opstream-stats output: the human table and the one-object JSON form of an
 * ops_stats_t, and the operations list.
 */
#ifndef OPSTREAM_STATS_RENDER_H
#define OPSTREAM_STATS_RENDER_H

#include <stdbool.h>
#include <stdio.h>

#include "opstream/stats.h"

/* window: -1 for all three, else the one ops_stats_window_id_t to show.
 * rows: 0 for everything; else the text takes at most rows lines: the
 * header, totals and windows always, the alerts next, and the country table
 * cut to the rows left, closed by "... N more countries". */
void render_text(FILE *out, const ops_stats_t *s, int window, int rows);
void render_json(FILE *out, const ops_stats_t *s, int window);
void render_list(FILE *out, char **ops, size_t n, bool json);

#endif
