/*
 * opstream Redis key layout (the query contract of DESIGN.md) and the
 * event-time bucket arithmetic behind the minute and hour buckets and the
 * rolling windows. Pure; no I/O.
 */
#ifndef OPSTREAM_KEYS_H
#define OPSTREAM_KEYS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define OPS_KEY_MAX 160 /* enough for every key below */

#define OPS_MINUTE_MS 60000LL
#define OPS_HOUR_MS   3600000LL

/* Each builder writes a NUL-terminated key into buf and returns its length,
 * or -1 when it does not fit. */
int ops_key_operations(char *buf, size_t bufsize);                   /* opstream:operations */
int ops_key_total(const char *op, char *buf, size_t bufsize);        /* opstream:{OP}:total */
int ops_key_country(const char *op, const char *cc, char *buf, size_t bufsize); /* ...:country:{CC} */
int ops_key_countries(const char *op, char *buf, size_t bufsize);    /* opstream:{OP}:countries */
int ops_key_minute(const char *op, int64_t ms, char *buf, size_t bufsize); /* ...:min:YYYYMMDDHHMM */
int ops_key_hour(const char *op, int64_t ms, char *buf, size_t bufsize);   /* ...:hour:YYYYMMDDHH */
int ops_key_alerts(const char *op, char *buf, size_t bufsize);       /* opstream:{OP}:alerts */
int ops_key_alert_ids(const char *op, char *buf, size_t bufsize);    /* ...:alerts:ids */
int ops_key_offsets(const char *group, char *buf, size_t bufsize);   /* opstream:offsets:{GROUP} */

/* Start of the minute / hour (UTC) containing ms. Correct for negative ms. */
int64_t ops_minute_floor(int64_t ms);
int64_t ops_hour_floor(int64_t ms);

/* "YYYYMMDDHHMM" / "YYYYMMDDHH" for the bucket containing ms. */
void ops_minute_id(int64_t ms, char out[13]);
void ops_hour_id(int64_t ms, char out[11]);

#ifdef __cplusplus
}
#endif
#endif
