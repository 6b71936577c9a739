/*
 * opstream HTTP endpoint on libmicrohttpd: our own listening socket (so a
 * busy or bad address is reported with the system's reason before anything
 * runs), handed to a daemon with its own polling thread. The access
 * handler answers on its first call, before any body is read: only GET of
 * /metrics, /healthz and /readyz.
 */
#include "opstream/endpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include "err_priv.h"

struct ops_endpoint {
    struct MHD_Daemon *daemon;
    int fd; /* owned by daemon once it runs */
    int port;
    ops_metrics_t *metrics;
    ops_health_t *health;
    char address[OPS_ENDPOINT_HOST_MAX + 16];
};

int ops_endpoint_parse_listen(const char *listen, char *host, size_t host_size, int *port,
                              char *errstr, size_t errstr_size) {
    const char *colon, *h = listen;
    size_t hlen;
    if (!listen || !*listen) {
        ops_err_format(errstr, errstr_size, "empty address (expected HOST:PORT)");
        return -1;
    }
    if (listen[0] == '[') {
        const char *close = strchr(listen, ']');
        if (!close || close[1] != ':') {
            ops_err_format(errstr, errstr_size, "'%s': expected [IPV6]:PORT", listen);
            return -1;
        }
        h = listen + 1;
        hlen = (size_t)(close - h);
        colon = close + 1;
        if (hlen == 0) {
            ops_err_format(errstr, errstr_size, "'%s': empty IPv6 address", listen);
            return -1;
        }
    } else {
        colon = strrchr(listen, ':');
        if (!colon) {
            ops_err_format(errstr, errstr_size, "'%s': expected HOST:PORT", listen);
            return -1;
        }
        hlen = (size_t)(colon - listen);
        if (memchr(listen, ':', hlen)) {
            ops_err_format(errstr, errstr_size,
                           "'%s': an IPv6 address goes in brackets: [ADDRESS]:PORT", listen);
            return -1;
        }
    }
    if (hlen + 1 > host_size || hlen + 1 > OPS_ENDPOINT_HOST_MAX) {
        ops_err_format(errstr, errstr_size, "'%s': host name too long", listen);
        return -1;
    }
    const char *p = colon + 1;
    long v = 0;
    if (!*p) {
        ops_err_format(errstr, errstr_size, "'%s': no port after ':'", listen);
        return -1;
    }
    for (; *p; p++) {
        if (*p < '0' || *p > '9' || v > 65535) {
            ops_err_format(errstr, errstr_size, "'%s': port is not a number in 0..65535", listen);
            return -1;
        }
        v = v * 10 + (*p - '0');
    }
    if (v > 65535) {
        ops_err_format(errstr, errstr_size, "'%s': port is not a number in 0..65535", listen);
        return -1;
    }
    for (size_t i = 0; i < hlen; i++)
        if ((unsigned char)h[i] <= ' ' || h[i] == '/' || h[i] == '[' || h[i] == ']') {
            ops_err_format(errstr, errstr_size, "'%s': not a host name", listen);
            return -1;
        }
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    *port = (int)v;
    return 0;
}

/* Binds the first address of host:port that accepts, and listens. */
static int listen_on(const char *addr, const char *host, int port, int *bound, char *errstr,
                     size_t errstr_size) {
    struct addrinfo hints = {0}, *res = NULL;
    char service[16];
    int fd = -1, err = 0, gai;

    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    snprintf(service, sizeof service, "%d", port);
    gai = getaddrinfo(*host ? host : NULL, service, &hints, &res);
    if (gai != 0) {
        ops_err_format(errstr, errstr_size, "cannot listen on %s: %s", addr, gai_strerror(gai));
        return -1;
    }
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int one = 1;
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        /* Restarting right after a stop must not fail on TIME_WAIT; a live
         * listener on the port still makes bind fail. */
        (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 128) == 0)
            break;
        err = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        ops_err_format(errstr, errstr_size, "cannot listen on %s: %s", addr, strerror(err));
        return -1;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    *bound = port;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET)
            *bound = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        else if (ss.ss_family == AF_INET6)
            *bound = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    }
    return fd;
}

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status, const char *type,
                             char *body, size_t len, enum MHD_ResponseMemoryMode mode) {
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, mode);
    enum MHD_Result rc;
    if (!r) {
        if (mode == MHD_RESPMEM_MUST_FREE)
            free(body);
        return MHD_NO; /* closes the connection */
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET");
    rc = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result text(struct MHD_Connection *conn, unsigned status, const char *s) {
    return reply(conn, status, "text/plain; charset=utf-8", (char *)s, strlen(s),
                 MHD_RESPMEM_MUST_COPY);
}

static enum MHD_Result health_reply(struct MHD_Connection *conn, bool ok, const char *ok_text,
                                    const char *prefix, const char *reason) {
    char body[OPS_HEALTH_REASON_MAX + 64];
    if (ok)
        return text(conn, MHD_HTTP_OK, ok_text);
    snprintf(body, sizeof body, "%s%s\n", prefix, reason);
    return text(conn, MHD_HTTP_SERVICE_UNAVAILABLE, body);
}

/* Answers on the first call for every request: a body is never read, so a
 * large upload costs nothing but the bounded header buffer. */
static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload_data,
                              size_t *upload_data_size, void **con_cls) {
    ops_endpoint_t *ep = cls;
    char reason[OPS_HEALTH_REASON_MAX];
    const char *len, *te;
    (void)version;
    (void)upload_data;
    (void)upload_data_size;
    (void)con_cls;

    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0)
        return text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET is served here\n");
    len = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    te = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
    if ((len && strcmp(len, "0") != 0) || te)
        return text(conn, MHD_HTTP_CONTENT_TOO_LARGE, "a GET takes no body\n");
    if (strcmp(url, "/metrics") == 0) {
        char *out = NULL;
        size_t outlen = 0;
        if (ops_metrics_render(ep->metrics, &out, &outlen, reason, sizeof reason) != 0)
            return text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot render the metrics\n");
        return reply(conn, MHD_HTTP_OK, OPS_METRICS_CONTENT_TYPE, out, outlen,
                     MHD_RESPMEM_MUST_FREE);
    }
    if (strcmp(url, "/healthz") == 0)
        return health_reply(conn, ops_health_live(ep->health, reason, sizeof reason), "ok\n",
                            "unhealthy: ", reason);
    if (strcmp(url, "/readyz") == 0)
        return health_reply(conn, ops_health_ready(ep->health, reason, sizeof reason), "ready\n",
                            "not ready: ", reason);
    return text(conn, MHD_HTTP_NOT_FOUND, "not found: try /metrics, /healthz or /readyz\n");
}

/* libmicrohttpd's own messages are dropped: the library never prints, and
 * a client's bad request is answered, not logged. */
static void mhd_log(void *cls, const char *fmt, va_list ap) {
    (void)cls;
    (void)fmt;
    (void)ap;
}

ops_endpoint_t *ops_endpoint_start(const ops_endpoint_options_t *opts, char *errstr,
                                   size_t errstr_size) {
    char host[OPS_ENDPOINT_HOST_MAX];
    char inner[256];
    int port;
    ops_endpoint_t *ep = NULL;

    if (!opts || !opts->metrics) {
        ops_err_format(errstr, errstr_size, "invalid argument");
        return NULL;
    }
    if (ops_endpoint_parse_listen(opts->listen, host, sizeof host, &port, inner, sizeof inner) !=
        0) {
        ops_err_format(errstr, errstr_size, "metrics address %s", inner);
        return NULL;
    }
    if (!(ep = calloc(1, sizeof(*ep)))) {
        ops_err_format(errstr, errstr_size, "out of memory");
        return NULL;
    }
    ep->metrics = opts->metrics;
    ep->health = opts->health;
    ep->fd = listen_on(opts->listen, host, port, &ep->port, errstr, errstr_size);
    if (ep->fd < 0) {
        free(ep);
        return NULL;
    }
    snprintf(ep->address, sizeof ep->address, strchr(host, ':') ? "[%s]:%d" : "%s:%d",
             *host ? host : "0.0.0.0", ep->port);
    size_t mem =
        opts->max_request_bytes ? opts->max_request_bytes : OPS_ENDPOINT_DEFAULT_REQUEST_BYTES;
    unsigned conns =
        opts->max_connections ? opts->max_connections : OPS_ENDPOINT_DEFAULT_CONNECTIONS;
    ep->daemon = MHD_start_daemon(
        MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL, handle, ep,
        MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_LISTEN_SOCKET, ep->fd,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, mem, MHD_OPTION_CONNECTION_LIMIT, conns,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10, MHD_OPTION_END);
    if (!ep->daemon) {
        ops_err_format(errstr, errstr_size, "cannot serve on %s: libmicrohttpd did not start",
                       ep->address);
        close(ep->fd);
        free(ep);
        return NULL;
    }
    return ep;
}

int ops_endpoint_port(const ops_endpoint_t *ep) {
    return ep ? ep->port : -1;
}

const char *ops_endpoint_address(const ops_endpoint_t *ep) {
    return ep ? ep->address : "";
}

void ops_endpoint_stop(ops_endpoint_t *ep) {
    if (!ep)
        return;
    /* MHD_stop_daemon closes the listening socket it was given. */
    MHD_stop_daemon(ep->daemon);
    free(ep);
}
