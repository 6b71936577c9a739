/*
 * opstream HTTP endpoint: serves a metrics registry (GET /metrics) and the
 * health of a program (GET /healthz, GET /readyz) from libmicrohttpd, on its
 * own thread. Only GET of those three paths is answered (405 for another
 * method, 404 for another path); a request is bounded in size and a GET with
 * a body is refused. Never prints, never exits.
 */
#ifndef OPSTREAM_ENDPOINT_H
#define OPSTREAM_ENDPOINT_H

#include <stddef.h>

#include "opstream/health.h"
#include "opstream/metrics.h"

#ifdef __cplusplus
extern "C" {
#endif

#define OPS_ENDPOINT_HOST_MAX 256
#define OPS_ENDPOINT_DEFAULT_REQUEST_BYTES 8192
#define OPS_ENDPOINT_DEFAULT_CONNECTIONS 64

/* Parses a listen address: "HOST:PORT", "[IPV6]:PORT" or ":PORT" (every
 * interface; host set to ""). PORT is 0..65535 (0: any free port). Pure.
 * 0, or -1 with errstr saying what is wrong. */
int ops_endpoint_parse_listen(const char *listen, char *host, size_t host_size, int *port,
                              char *errstr, size_t errstr_size);

typedef struct ops_endpoint_options {
    const char *listen;       /* "HOST:PORT", as above */
    ops_metrics_t *metrics;   /* borrowed; outlives the endpoint */
    ops_health_t *health;     /* borrowed; NULL: always alive and ready */
    size_t max_request_bytes; /* request line and headers (0: default above) */
    unsigned max_connections; /* at once (0: default above) */
} ops_endpoint_options_t;

typedef struct ops_endpoint ops_endpoint_t;

/* Binds and listens (so that a busy or invalid address fails here, named
 * in errstr: "cannot listen on 127.0.0.1:9100: Address already in use"),
 * then serves on libmicrohttpd's own thread. NULL with errstr on failure. */
ops_endpoint_t *ops_endpoint_start(const ops_endpoint_options_t *opts, char *errstr,
                                   size_t errstr_size);
/* The port actually bound (the one asked for, or the one chosen for 0). */
int ops_endpoint_port(const ops_endpoint_t *ep);
/* "127.0.0.1:9100" (the host as given, the bound port). */
const char *ops_endpoint_address(const ops_endpoint_t *ep);
/* Stops serving, closes the socket, frees. Accepts NULL. */
void ops_endpoint_stop(ops_endpoint_t *ep);

#ifdef __cplusplus
}
#endif
#endif
