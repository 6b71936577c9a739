/*
 * opstream Redis Cluster router (redis_cluster.h): hash slots, the
 * CLUSTER SLOTS map, MOVED / ASK / TRYAGAIN / CLUSTERDOWN, and the link's
 * pipelining across nodes (one hiredis context per primary). Never prints.
 */
#include "opstream/redis_cluster.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "opstream/clock.h"
#include "opstream/redis.h"
#include "err_priv.h"

#define SCHEME "redis-cluster://"
#define SCHEME_LEN 16
#define DEFAULT_TIMEOUT_MS 5000
#define MAX_REDIRECTS 16 /* a command bounced more often than this: give up */

/* ---- hash slots ------------------------------------------------------------ */

uint16_t ops_redis_cluster_crc16(const char *buf, size_t len) {
    uint16_t crc = 0;

    for (size_t i = 0; i < len; i++) {
        crc ^= (uint16_t)((unsigned char)buf[i] << 8);
        for (int b = 0; b < 8; b++)
            crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
    }
    return crc;
}

int ops_redis_cluster_key_slot(const char *key, size_t len) {
    const char *open = memchr(key, '{', len);

    if (open != NULL) {
        size_t from = (size_t)(open - key) + 1;
        const char *close = memchr(key + from, '}', len - from);
        if (close != NULL && close > key + from)
            return ops_redis_cluster_crc16(key + from, (size_t)(close - (key + from))) &
                   (OPS_REDIS_CLUSTER_SLOTS - 1);
    }
    return ops_redis_cluster_crc16(key, len) & (OPS_REDIS_CLUSTER_SLOTS - 1);
}

/* ---- the URL ---------------------------------------------------------------- */

bool ops_redis_cluster_url_is(const char *url) {
    return url != NULL && strncasecmp(url, SCHEME, SCHEME_LEN) == 0;
}

/* Parses "redis://" + userinfo + "@" + one seed with the single-server
 * parser, so that hosts, ports, brackets and percent-escapes read the same
 * in both forms; its message loses the "Redis URL 'redis:...': " prefix. */
static int parse_with_single(const char *text, ops_redis_url_t *u, char *errstr,
                             size_t errstr_size) {
    static const char prefix[] = "Redis URL 'redis:...': ";
    char inner[256];

    if (ops_redis_url_parse(text, u, inner, sizeof inner) == 0)
        return 0;
    ops_err_format(errstr, errstr_size, "%s",
                   strncmp(inner, prefix, sizeof prefix - 1) == 0 ? inner + sizeof prefix - 1
                                                                  : inner);
    return -1;
}

static int parse_cluster_url(const char *url, ops_redis_cluster_url_t *out, char *errstr,
                             size_t errstr_size) {
    const char *rest = url + SCHEME_LEN;
    size_t before_q = strcspn(rest, "?");
    const char *at = NULL, *hosts, *end;
    char text[1024], inner[256];
    ops_redis_url_t u;
    int rc = -1;

    for (size_t i = 0; i < before_q; i++)
        if (rest[i] == '@')
            at = rest + i;
    hosts = at != NULL ? at + 1 : rest;
    end = hosts + strcspn(hosts, "/?");
    if (*end == '/') {
        const char *db = end + 1;
        size_t dlen = strcspn(db, "?");
        if (!(dlen == 0 || (dlen == 1 && db[0] == '0'))) {
            ops_err_format(errstr, errstr_size, "Redis Cluster has only db 0 (found '/%.*s')",
                           (int)(dlen < 16 ? dlen : 16), db);
            return -1;
        }
    }
    if (end == hosts) {
        ops_err_format(errstr, errstr_size,
                       "no seed node: expected redis-cluster://host:port[,host:port...]");
        return -1;
    }
    /* the credentials (userinfo and query), with a placeholder host */
    if ((size_t)snprintf(text, sizeof text, "redis://%.*s127.0.0.1%s",
                         at ? (int)(at - rest + 1) : 0, rest, rest + before_q) >= sizeof text) {
        ops_err_format(errstr, errstr_size, "URL is too long");
        goto cleanup;
    }
    if (parse_with_single(text, &u, inner, sizeof inner) != 0) {
        ops_err_format(errstr, errstr_size, "%s", inner);
        goto cleanup;
    }
    if (u.db != 0) {
        ops_err_format(errstr, errstr_size, "Redis Cluster has only db 0");
        goto cleanup;
    }
    memcpy(out->user, u.user, sizeof out->user);
    memcpy(out->password, u.password, sizeof out->password);
    for (const char *s = hosts; s <= end;) {
        size_t len = strcspn(s, ",/?");
        if (len == 0) {
            ops_err_format(errstr, errstr_size, "empty seed node %zu in the list (a stray ',')",
                           out->n_seeds + 1);
            goto cleanup;
        }
        if (out->n_seeds == OPS_REDIS_CLUSTER_MAX_SEEDS) {
            ops_err_format(errstr, errstr_size, "more than %d seed nodes",
                           OPS_REDIS_CLUSTER_MAX_SEEDS);
            goto cleanup;
        }
        snprintf(text, sizeof text, "redis://%.*s", (int)(len < 512 ? len : 512), s);
        if (parse_with_single(text, &u, inner, sizeof inner) != 0) {
            ops_err_format(errstr, errstr_size, "seed node %zu '%.*s': %s", out->n_seeds + 1,
                           (int)(len < 64 ? len : 64), s, inner);
            goto cleanup;
        }
        snprintf(out->seeds[out->n_seeds].host, sizeof out->seeds[0].host, "%s", u.host);
        out->seeds[out->n_seeds].port = u.port;
        out->n_seeds++;
        s += len;
        if (s == end)
            break;
        s++; /* ',' */
    }
    rc = 0;
cleanup:
    memset(&u, 0, sizeof u);
    memset(text, 0, sizeof text);
    return rc;
}

int ops_redis_cluster_url_parse(const char *url, ops_redis_cluster_url_t *out, char *errstr,
                                size_t errstr_size) {
    char inner[256];

    if (out == NULL) {
        ops_err_format(errstr, errstr_size, "invalid argument");
        return -1;
    }
    memset(out, 0, sizeof *out);
    if (!ops_redis_cluster_url_is(url)) {
        ops_err_format(errstr, errstr_size, "expected a redis-cluster:// URL");
        return -1;
    }
    if (parse_cluster_url(url, out, inner, sizeof inner) == 0)
        return 0;
    /* the URL may carry a password: only the scheme is shown */
    ops_err_format(errstr, errstr_size, "Redis URL 'redis-cluster:...': %s", inner);
    memset(out, 0, sizeof *out);
    return -1;
}

/* ---- CLUSTER SLOTS and redirections ---------------------------------------- */

int ops_redis_cluster_slots_parse(const redisReply *r, const char *queried_host,
                                  ops_redis_cluster_range_t **ranges, size_t *n, char *errstr,
                                  size_t errstr_size) {
    ops_redis_cluster_range_t *out = NULL;
    size_t k = 0;

    *ranges = NULL;
    *n = 0;
    if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
        ops_err_format(errstr, errstr_size, "CLUSTER SLOTS: %s",
                       r != NULL && r->type == REDIS_REPLY_ERROR ? r->str : "not an array");
        return -1;
    }
    out = calloc(r->elements ? r->elements : 1, sizeof *out);
    if (out == NULL) {
        ops_err_format(errstr, errstr_size, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *e = r->element[i], *node;
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
            e->element[0]->type != REDIS_REPLY_INTEGER ||
            e->element[1]->type != REDIS_REPLY_INTEGER || e->element[2]->type != REDIS_REPLY_ARRAY)
            goto bad;
        node = e->element[2];
        if (node->elements < 2 || node->element[0]->type != REDIS_REPLY_STRING ||
            node->element[1]->type != REDIS_REPLY_INTEGER)
            goto bad;
        long long start = e->element[0]->integer, end = e->element[1]->integer,
                  port = node->element[1]->integer;
        if (start < 0 || end < start || end >= OPS_REDIS_CLUSTER_SLOTS || port < 1 || port > 65535)
            goto bad;
        const char *host = node->element[0]->str;
        if (host[0] == '\0' || strcmp(host, "?") == 0)
            host = queried_host != NULL ? queried_host : "";
        if (host[0] == '\0' || strlen(host) >= sizeof out[k].host)
            goto bad;
        out[k].start = (int)start;
        out[k].end = (int)end;
        out[k].port = (int)port;
        snprintf(out[k].host, sizeof out[k].host, "%s", host);
        k++;
        continue;
    bad:
        ops_err_format(errstr, errstr_size,
                       "CLUSTER SLOTS: entry %zu is not [start, end, [host, port, ...], ...]", i);
        free(out);
        return -1;
    }
    *ranges = out;
    *n = k;
    return 0;
}

ops_redis_cluster_redirect_t ops_redis_cluster_redirect_parse(const char *err,
                                                              const char *current_host, int *slot,
                                                              char *host, size_t host_size,
                                                              int *port) {
    ops_redis_cluster_redirect_t kind;
    const char *p, *addr, *colon;
    char *end;
    long v;

    if (err == NULL)
        return OPS_REDIS_CLUSTER_NO_REDIRECT;
    if (strncmp(err, "MOVED ", 6) == 0) {
        kind = OPS_REDIS_CLUSTER_MOVED;
        p = err + 6;
    } else if (strncmp(err, "ASK ", 4) == 0) {
        kind = OPS_REDIS_CLUSTER_ASK;
        p = err + 4;
    } else {
        return OPS_REDIS_CLUSTER_NO_REDIRECT;
    }
    if (*p < '0' || *p > '9')
        return OPS_REDIS_CLUSTER_NO_REDIRECT;
    v = strtol(p, &end, 10);
    if (*end != ' ' || v < 0 || v >= OPS_REDIS_CLUSTER_SLOTS)
        return OPS_REDIS_CLUSTER_NO_REDIRECT;
    addr = end + 1;
    colon = strrchr(addr, ':');
    if (colon == NULL || colon[1] < '0' || colon[1] > '9')
        return OPS_REDIS_CLUSTER_NO_REDIRECT;
    long pv = strtol(colon + 1, &end, 10);
    if (*end != '\0' || pv < 1 || pv > 65535)
        return OPS_REDIS_CLUSTER_NO_REDIRECT;
    size_t hlen = (size_t)(colon - addr);
    if (hlen >= 2 && addr[0] == '[' && addr[hlen - 1] == ']') {
        addr++;
        hlen -= 2;
    }
    if (hlen == 0) {
        if (current_host == NULL || current_host[0] == '\0')
            return OPS_REDIS_CLUSTER_NO_REDIRECT;
        addr = current_host;
        hlen = strlen(current_host);
    }
    if (hlen >= host_size || memchr(addr, ' ', hlen) != NULL)
        return OPS_REDIS_CLUSTER_NO_REDIRECT;
    memcpy(host, addr, hlen);
    host[hlen] = '\0';
    *slot = (int)v;
    *port = (int)pv;
    return kind;
}

/* ---- the router ------------------------------------------------------------ */

typedef struct node {
    char host[256];
    int port;
    redisContext *ctx; /* NULL until needed; dropped on an error */
} node_t;

/* A command appended and not yet answered: its bytes (to send it again on
 * a redirection), where it went, and its reply when it was read ahead. */
typedef struct pending {
    char *cmd;
    size_t len;
    int slot; /* -1: any node */
    int node;
    bool asking;       /* sent after ASKING: one more reply to skip first */
    redisReply *early; /* read ahead while draining its node */
} pending_t;

struct ops_redis_cluster {
    ops_redis_cluster_url_t url;
    char *password_file;
    int timeout_ms;
    node_t *nodes;
    size_t n_nodes, cap_nodes;
    int slot_node[OPS_REDIS_CLUSTER_SLOTS]; /* index into nodes, -1: not served */
    bool map_loaded, map_stale;
    pending_t *q;
    size_t q_head, q_len, q_cap; /* entries q[q_head..q_len) are pending */
    ops_redis_cluster_stats_t stats;
};

ops_redis_cluster_t *ops_redis_cluster_new(const char *url, const char *password_file,
                                           int timeout_ms, char *errstr, size_t errstr_size) {
    ops_redis_cluster_t *c = calloc(1, sizeof *c);

    if (c == NULL) {
        ops_err_format(errstr, errstr_size, "redis: out of memory");
        return NULL;
    }
    if (ops_redis_cluster_url_parse(url, &c->url, errstr, errstr_size) != 0) {
        free(c);
        return NULL;
    }
    c->password_file = strdup(password_file != NULL ? password_file : "");
    if (c->password_file == NULL) {
        ops_err_format(errstr, errstr_size, "redis: out of memory");
        ops_redis_cluster_destroy(c);
        return NULL;
    }
    c->timeout_ms = timeout_ms > 0 ? timeout_ms : DEFAULT_TIMEOUT_MS;
    for (int s = 0; s < OPS_REDIS_CLUSTER_SLOTS; s++)
        c->slot_node[s] = -1;
    return c;
}

static void drop_node(ops_redis_cluster_t *c, int i) {
    if (c->nodes[i].ctx != NULL)
        redisFree(c->nodes[i].ctx);
    c->nodes[i].ctx = NULL;
}

void ops_redis_cluster_reset(ops_redis_cluster_t *c) {
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->n_nodes; i++)
        drop_node(c, (int)i);
    for (size_t i = c->q_head; i < c->q_len; i++) {
        free(c->q[i].cmd);
        if (c->q[i].early != NULL)
            freeReplyObject(c->q[i].early);
    }
    c->q_head = c->q_len = 0;
    c->map_stale = true;
}

void ops_redis_cluster_destroy(ops_redis_cluster_t *c) {
    if (c == NULL)
        return;
    ops_redis_cluster_reset(c);
    free(c->nodes);
    free(c->q);
    free(c->password_file);
    memset(&c->url, 0, sizeof c->url);
    free(c);
}

size_t ops_redis_cluster_pending(const ops_redis_cluster_t *c) {
    return c != NULL ? c->q_len - c->q_head : 0;
}

void ops_redis_cluster_get_stats(const ops_redis_cluster_t *c, ops_redis_cluster_stats_t *out) {
    memset(out, 0, sizeof *out);
    if (c != NULL)
        *out = c->stats;
}

const char *ops_redis_cluster_slot_addr(const ops_redis_cluster_t *c, int slot, char *buf,
                                        size_t size) {
    int i = c != NULL && slot >= 0 && slot < OPS_REDIS_CLUSTER_SLOTS ? c->slot_node[slot] : -1;

    if (i < 0)
        snprintf(buf, size, "%s", "");
    else
        snprintf(buf, size, strchr(c->nodes[i].host, ':') ? "[%s]:%d" : "%s:%d", c->nodes[i].host,
                 c->nodes[i].port);
    return buf;
}

/* The node at host:port, added when new; -1 when out of memory. */
static int node_index(ops_redis_cluster_t *c, const char *host, int port) {
    for (size_t i = 0; i < c->n_nodes; i++)
        if (c->nodes[i].port == port && strcmp(c->nodes[i].host, host) == 0)
            return (int)i;
    if (c->n_nodes == c->cap_nodes) {
        size_t cap = c->cap_nodes ? c->cap_nodes * 2 : 8;
        node_t *n = realloc(c->nodes, cap * sizeof *n);
        if (n == NULL)
            return -1;
        c->nodes = n;
        c->cap_nodes = cap;
    }
    node_t *n = &c->nodes[c->n_nodes];
    memset(n, 0, sizeof *n);
    snprintf(n->host, sizeof n->host, "%s", host);
    n->port = port;
    return (int)c->n_nodes++;
}

/* Appends s to buf at *o, %-escaping all but the unreserved characters
 * (and keep, e.g. ":" inside an IPv6 host). */
static void url_escape(char *buf, size_t size, size_t *o, const char *s, const char *keep) {
    static const char hex[] = "0123456789ABCDEF";
    for (; *s != '\0' && *o + 4 < size; s++) {
        unsigned char ch = (unsigned char)*s;
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
            strchr("-._~", ch) != NULL || (ch != '\0' && strchr(keep, ch) != NULL)) {
            buf[(*o)++] = (char)ch;
        } else {
            buf[(*o)++] = '%';
            buf[(*o)++] = hex[ch >> 4];
            buf[(*o)++] = hex[ch & 15];
        }
    }
    buf[*o] = '\0';
}

/* Opens an authenticated connection to host:port through ops_redis_connect
 * (so AUTH, the password file and timeouts work as for a single server). */
static redisContext *connect_addr(ops_redis_cluster_t *c, const char *host, int port, char *errstr,
                                  size_t errstr_size) {
    char url[1400];
    size_t o = 0;
    redisContext *ctx;

    memcpy(url, "redis://", 9);
    o = 8;
    if (c->url.user[0] != '\0' || c->url.password[0] != '\0') {
        url_escape(url, sizeof url, &o, c->url.user, "");
        url[o++] = ':';
        url_escape(url, sizeof url, &o, c->url.password, "");
        url[o++] = '@';
    }
    bool v6 = strchr(host, ':') != NULL;
    if (v6)
        url[o++] = '[';
    url_escape(url, sizeof url, &o, host, ":");
    o += (size_t)snprintf(url + o, sizeof url - o, "%s:%d", v6 ? "]" : "", port);
    ctx = ops_redis_connect(url, c->password_file, c->timeout_ms, errstr, errstr_size);
    memset(url, 0, sizeof url);
    return ctx;
}

static redisContext *node_ctx(ops_redis_cluster_t *c, int i, char *errstr, size_t errstr_size) {
    if (c->nodes[i].ctx == NULL) {
        c->nodes[i].ctx = connect_addr(c, c->nodes[i].host, c->nodes[i].port, errstr, errstr_size);
        if (c->nodes[i].ctx == NULL)
            c->stats.unreachable++;
    }
    return c->nodes[i].ctx;
}

/* Loads the slot map with CLUSTER SLOTS on a connection of its own (node
 * contexts may have replies in flight), asking the known nodes and then the
 * seeds until one answers. */
static int refresh_map(ops_redis_cluster_t *c, char *errstr, size_t errstr_size) {
    size_t n_known = c->n_nodes, tries = n_known + c->url.n_seeds;
    char last[512] = "no node to ask";

    for (size_t t = 0; t < tries; t++) {
        char host[256];
        int port;
        if (t < n_known) {
            snprintf(host, sizeof host, "%s", c->nodes[t].host);
            port = c->nodes[t].port;
        } else {
            snprintf(host, sizeof host, "%s", c->url.seeds[t - n_known].host);
            port = c->url.seeds[t - n_known].port;
        }
        redisContext *ctx = connect_addr(c, host, port, last, sizeof last);
        if (ctx == NULL)
            continue;
        redisReply *r = redisCommand(ctx, "CLUSTER SLOTS");
        ops_redis_cluster_range_t *ranges = NULL;
        size_t n = 0;
        int ok = -1;
        if (r == NULL)
            snprintf(last, sizeof last, "redis %s:%d: CLUSTER SLOTS: %s", host, port,
                     ctx->err ? ctx->errstr : "no reply");
        else if (ops_redis_cluster_slots_parse(r, host, &ranges, &n, last, sizeof last) == 0 &&
                 n > 0)
            ok = 0;
        else if (n == 0 && r->type == REDIS_REPLY_ARRAY)
            snprintf(last, sizeof last, "redis %s:%d: CLUSTER SLOTS: no slot is served", host,
                     port);
        if (r != NULL)
            freeReplyObject(r);
        redisFree(ctx);
        if (ok == 0) {
            for (int s = 0; s < OPS_REDIS_CLUSTER_SLOTS; s++)
                c->slot_node[s] = -1;
            for (size_t i = 0; i < n; i++) {
                int idx = node_index(c, ranges[i].host, ranges[i].port);
                if (idx < 0) {
                    free(ranges);
                    ops_err_format(errstr, errstr_size, "redis: out of memory");
                    return -1;
                }
                for (int s = ranges[i].start; s <= ranges[i].end; s++)
                    c->slot_node[s] = idx;
            }
            free(ranges);
            c->map_loaded = true;
            c->map_stale = false;
            c->stats.refreshes++;
            return 0;
        }
        free(ranges);
    }
    ops_err_format(errstr, errstr_size, "redis cluster: cannot load the slot map: %s", last);
    return -1;
}

static void pause_ms(int ms) {
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* The node serving slot (-1: any served node), connected. While a primary
 * cannot be reached (killed, its replica not yet promoted) or the map cannot
 * be loaded, reloads the map with a growing pause until the timeout. */
static int route(ops_redis_cluster_t *c, int slot, char *errstr, size_t errstr_size) {
    int64_t deadline = ops_clock_mono_ms() + c->timeout_ms;
    int wait = 50;

    for (;;) {
        int i = -1;
        if ((!c->map_loaded || c->map_stale) && refresh_map(c, errstr, errstr_size) != 0)
            goto retry;
        i = slot >= 0 ? c->slot_node[slot] : -1;
        if (slot < 0)
            for (int s = 0; s < OPS_REDIS_CLUSTER_SLOTS && i < 0; s++)
                i = c->slot_node[s];
        if (i < 0) {
            ops_err_format(errstr, errstr_size, "redis cluster: slot %d is not served", slot);
            c->map_stale = true;
            goto retry;
        }
        if (node_ctx(c, i, errstr, errstr_size) != NULL)
            return i;
        c->map_stale = true;
    retry:
        if (ops_clock_mono_ms() + wait > deadline)
            return -1;
        pause_ms(wait);
        wait = wait < 400 ? wait * 2 : 500;
        c->map_stale = true;
    }
}

int ops_redis_cluster_append(ops_redis_cluster_t *c, const char *route_key, int argc,
                             const char **argv, const size_t *argvlen, char *errstr,
                             size_t errstr_size) {
    int slot = route_key != NULL ? ops_redis_cluster_key_slot(route_key, strlen(route_key)) : -1;
    char *cmd = NULL;
    int len, node;

    node = route(c, slot, errstr, errstr_size);
    if (node < 0)
        return -1;
    len = redisFormatCommandArgv(&cmd, argc, argv, argvlen);
    if (len < 0 || cmd == NULL) {
        ops_err_format(errstr, errstr_size, "redis: out of memory");
        return -1;
    }
    if (c->q_len == c->q_cap) {
        if (c->q_head > 0) {
            memmove(c->q, c->q + c->q_head, (c->q_len - c->q_head) * sizeof *c->q);
            c->q_len -= c->q_head;
            c->q_head = 0;
        }
        if (c->q_len == c->q_cap) {
            size_t cap = c->q_cap ? c->q_cap * 2 : 64;
            pending_t *q = realloc(c->q, cap * sizeof *q);
            if (q == NULL) {
                free(cmd);
                ops_err_format(errstr, errstr_size, "redis: out of memory");
                return -1;
            }
            c->q = q;
            c->q_cap = cap;
        }
    }
    if (redisAppendFormattedCommand(c->nodes[node].ctx, cmd, (size_t)len) != REDIS_OK) {
        ops_err_format(errstr, errstr_size, "redis: out of memory");
        free(cmd);
        return -1;
    }
    c->q[c->q_len++] = (pending_t){.cmd = cmd, .len = (size_t)len, .slot = slot, .node = node};
    return 0;
}

/* Reads the next reply of entry e from its node (skipping ASKING's). */
static redisReply *read_reply(ops_redis_cluster_t *c, pending_t *e, char *errstr,
                              size_t errstr_size) {
    redisContext *ctx = c->nodes[e->node].ctx;
    void *r = NULL;

    if (e->early != NULL) {
        r = e->early;
        e->early = NULL;
        return r;
    }
    if (ctx == NULL) {
        ops_err_format(errstr, errstr_size, "redis %s:%d: connection lost", c->nodes[e->node].host,
                       c->nodes[e->node].port);
        return NULL;
    }
    void *asking = NULL;
    for (int k = e->asking ? 2 : 1; k > 0; k--) {
        if (r != NULL)
            asking = r; /* ASKING's reply */
        r = NULL;
        if (redisGetReply(ctx, &r) != REDIS_OK || r == NULL) {
            ops_err_format(errstr, errstr_size, "redis %s:%d: %s", c->nodes[e->node].host,
                           c->nodes[e->node].port, ctx->err ? ctx->errstr : "connection lost");
            if (asking != NULL)
                freeReplyObject(asking);
            return NULL;
        }
    }
    e->asking = false;
    if (asking != NULL && ((redisReply *)asking)->type == REDIS_REPLY_ERROR) {
        /* ASKING refused (an ACL without it): that is the answer */
        freeReplyObject(r);
        return asking;
    }
    if (asking != NULL)
        freeReplyObject(asking);
    return r;
}

/* Reads ahead the replies still due from node i (of entries after the
 * head), so that a command sent there again gets the next reply. */
static int drain_node(ops_redis_cluster_t *c, int i, char *errstr, size_t errstr_size) {
    for (size_t k = c->q_head + 1; k < c->q_len; k++) {
        pending_t *e = &c->q[k];
        if (e->node != i || e->early != NULL)
            continue;
        if ((e->early = read_reply(c, e, errstr, errstr_size)) == NULL)
            return -1;
    }
    return 0;
}

/* Sends the head entry again to node i (after ASKING when asked to). */
static int resend(ops_redis_cluster_t *c, pending_t *e, int i, bool asking, char *errstr,
                  size_t errstr_size) {
    redisContext *ctx;

    if (drain_node(c, i, errstr, errstr_size) != 0)
        return -1;
    if ((ctx = node_ctx(c, i, errstr, errstr_size)) == NULL)
        return -1;
    if ((asking && redisAppendCommand(ctx, "ASKING") != REDIS_OK) ||
        redisAppendFormattedCommand(ctx, e->cmd, e->len) != REDIS_OK) {
        ops_err_format(errstr, errstr_size, "redis: out of memory");
        return -1;
    }
    e->node = i;
    e->asking = asking;
    return 0;
}

static bool is_error(const redisReply *r, const char *prefix) {
    return r->type == REDIS_REPLY_ERROR && strncmp(r->str, prefix, strlen(prefix)) == 0;
}

redisReply *ops_redis_cluster_reply(ops_redis_cluster_t *c, char *errstr, size_t errstr_size) {
    pending_t *e;
    redisReply *r = NULL;
    int64_t deadline;
    int wait = 20;

    if (ops_redis_cluster_pending(c) == 0) {
        ops_err_format(errstr, errstr_size, "redis: no reply is pending");
        return NULL;
    }
    e = &c->q[c->q_head];
    deadline = ops_clock_mono_ms() + c->timeout_ms;
    for (int bounces = 0;; bounces++) {
        char host[256];
        int slot, port, to;

        if ((r = read_reply(c, e, errstr, errstr_size)) == NULL)
            goto lost;
        if (r->type != REDIS_REPLY_ERROR || bounces >= MAX_REDIRECTS)
            break;
        switch (ops_redis_cluster_redirect_parse(r->str, c->nodes[e->node].host, &slot, host,
                                                 sizeof host, &port)) {
        case OPS_REDIS_CLUSTER_MOVED:
            if ((to = node_index(c, host, port)) < 0)
                goto oom;
            c->slot_node[slot] = to; /* and the whole map once the pipeline is drained */
            c->map_stale = true;
            c->stats.moved++;
            freeReplyObject(r);
            if (resend(c, e, to, false, errstr, errstr_size) != 0)
                goto lost;
            continue;
        case OPS_REDIS_CLUSTER_ASK:
            if ((to = node_index(c, host, port)) < 0)
                goto oom;
            c->stats.ask++;
            freeReplyObject(r);
            if (resend(c, e, to, true, errstr, errstr_size) != 0)
                goto lost;
            continue;
        case OPS_REDIS_CLUSTER_NO_REDIRECT:
            break;
        }
        bool down = is_error(r, "CLUSTERDOWN");
        if ((down || is_error(r, "TRYAGAIN")) && ops_clock_mono_ms() + wait <= deadline) {
            /* the command did not run: the same node again (a key of a
             * migrating slot), or the node the map names once the cluster
             * is up again (a failover) */
            c->stats.retried++;
            freeReplyObject(r);
            r = NULL;
            pause_ms(wait);
            wait = wait < 200 ? wait * 2 : 250;
            to = e->node;
            if (down && e->slot >= 0 && refresh_map(c, errstr, errstr_size) == 0 &&
                c->slot_node[e->slot] >= 0)
                to = c->slot_node[e->slot];
            if (resend(c, e, to, false, errstr, errstr_size) != 0)
                goto lost;
            continue;
        }
        break;
    }
    if (is_error(r, "READONLY") || is_error(r, "LOADING") || is_error(r, "MASTERDOWN") ||
        is_error(r, "CLUSTERDOWN"))
        c->map_stale = true;
    free(e->cmd);
    c->q_head++;
    if (c->q_head == c->q_len)
        c->q_head = c->q_len = 0;
    return r;
oom:
    ops_err_format(errstr, errstr_size, "redis: out of memory");
lost:
    if (r != NULL)
        freeReplyObject(r);
    c->stats.lost++;
    ops_redis_cluster_reset(c);
    return NULL;
}
