/*
 * opstream health: what /healthz and /readyz answer. The program's loop
 * beats (one atomic store per turn) and says when it is ready or why not;
 * the HTTP endpoint's thread reads both. The decisions are pure functions,
 * unit-tested without a clock or a server.
 */
#ifndef OPSTREAM_HEALTH_H
#define OPSTREAM_HEALTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A loop that has not beaten for this long is reported as stalled. */
#define OPS_HEALTH_DEFAULT_STALL_MS 30000
#define OPS_HEALTH_REASON_MAX 256

typedef struct ops_health ops_health_t;

/* Starts not ready ("starting") and alive (the creation counts as a beat).
 * stall_ms 0: OPS_HEALTH_DEFAULT_STALL_MS; below 0: never stalled (a
 * program that blocks on its input, where answering is being alive). NULL
 * when out of memory. */
ops_health_t *ops_health_new(int stall_ms);
void ops_health_destroy(ops_health_t *h); /* accepts NULL */

/* The loop is alive now. One atomic store; h may be NULL. */
void ops_health_beat(ops_health_t *h);

/* Ready (reason NULL or "") or not ready with a short reason ("no
 * partitions assigned", "Redis unreachable: ..."), cut to
 * OPS_HEALTH_REASON_MAX - 1 bytes. Cheap when nothing changes; h may be
 * NULL. */
void ops_health_set_ready(ops_health_t *h, const char *reason);

/* /healthz: true when alive; otherwise false and why in reason. */
bool ops_health_live(ops_health_t *h, char *reason, size_t size);
/* /readyz: true when alive and ready; otherwise false and why. */
bool ops_health_ready(ops_health_t *h, char *reason, size_t size);

/* The liveness rule, pure: alive when the last beat is at most stall_ms
 * before now_ms (monotonic milliseconds), or stall_ms is below 0. */
bool ops_health_check_live(int64_t last_beat_ms, int64_t now_ms, int stall_ms, char *reason,
                           size_t size);

#ifdef __cplusplus
}
#endif
#endif
