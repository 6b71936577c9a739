/*
 * opstream alert formatting: an alert as one readable line for a duty
 * officer's terminal (optionally coloured) or as one JSON object. Alerts come
 * from Kafka, so every string is treated as untrusted: control characters
 * never reach the terminal and the JSON is valid whatever the bytes. Pure.
 */
#ifndef OPSTREAM_ALERT_FMT_H
#define OPSTREAM_ALERT_FMT_H

#include <stdbool.h>
#include <stddef.h>

#include "opstream/event.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A buffer of this size holds any formatted alert, line or JSON. */
#define OPS_ALERT_FMT_MAX 8192

/* One line, no newline:
 *   2024-09-30T14:05:00Z CRITICAL LIBERTERRA-II PH  PH: 250 victims rescued ...
 * (time: the event's time for single-event alerts, where window_start ==
 * window_end; for spikes the time the alert was raised (raised_at), not the
 * end of its still open window; country "--" for operation-wide alerts). colour adds
 * ANSI colours by severity. Control characters in the alert's strings are
 * shown as '?'. Returns the length, or -1 when buf is too small (buf then
 * holds a cut, NUL-terminated line). */
int ops_alert_format_line(const ops_alert_t *a, bool colour, char *buf, size_t size);

/* One JSON object, no newline, with every alert field; times as ISO 8601
 * UTC strings ("2024-09-30T14:05:00.000Z"), country null when operation-wide.
 * Strings are escaped per RFC 8259; invalid UTF-8 becomes U+FFFD. Returns the
 * length, or -1 when buf is too small. */
int ops_alert_format_json(const ops_alert_t *a, char *buf, size_t size);

#ifdef __cplusplus
}
#endif
#endif
