/*
 * opstream observability of a program: its metrics registry (with the
 * process metrics and opstream_build_info), its health state, and, when
 * opstream.metrics.listen is set (--metrics HOST:PORT), the HTTP endpoint
 * serving them. The registry and the health state exist even when the
 * endpoint is off, so a program updates them without asking. Never prints,
 * never exits.
 */
#ifndef OPSTREAM_OBSERVE_H
#define OPSTREAM_OBSERVE_H

#include <stddef.h>

#include "opstream/config.h"
#include "opstream/endpoint.h"
#include "opstream/health.h"
#include "opstream/metrics.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ops_observe {
    ops_metrics_t *metrics;
    ops_health_t *health;
    ops_endpoint_t *endpoint; /* NULL when the endpoint is off */
} ops_observe_t;

/* Fills *obs from cfg; stall_ms as for ops_health_new (0: the default; -1:
 * a program that waits on its input is never stalled). 0, or -1 with errstr (a busy or invalid
 * address: "cannot listen on 127.0.0.1:9100: Address already in use"); on failure *obs holds
 * nothing to free. */
int ops_observe_start(const ops_config_t *cfg, const char *version, int stall_ms,
                      ops_observe_t *obs, char *errstr, size_t errstr_size);
/* Stops the endpoint, then frees the health state and the registry.
 * Accepts a zeroed or NULL obs; leaves it zeroed. */
void ops_observe_stop(ops_observe_t *obs);

#ifdef __cplusplus
}
#endif
#endif
