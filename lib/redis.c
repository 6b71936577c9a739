/*
 * opstream Redis adapter: parses redis://, unix:// and redis+unix:// URLs
 * and opens an authenticated hiredis connection on the selected db, with a
 * bound on connect and on every command. Never prints, never exits.
 */
#include "opstream/redis.h"

#include <errno.h>
#include <stdarg.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>

#include "opstream/clock.h"
#include "secret_priv.h"

#define OPS_REDIS_DEFAULT_HOST "127.0.0.1"
#define OPS_REDIS_DEFAULT_PORT 6379
#define OPS_REDIS_DEFAULT_TIMEOUT_MS 5000
#define OPS_REDIS_SENTINEL_PORT 26379
/* one sentinel (or the node it names) answers within this, or the next is
 * tried */
#define OPS_REDIS_SENTINEL_CONNECT_MS 2000

static int hexval(int c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Copies src[0..len) into dst (size dstsize) with %XY decoded. A bad
 * escape, an encoded NUL or a result that does not fit is an error naming
 * `what`. */
static int pct_decode(const char *src, size_t len, char *dst, size_t dstsize, const char *what,
                      char *errstr, size_t errstr_size) {
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        int c = (unsigned char)src[i];
        if (c == '%') {
            int hi = i + 2 < len ? hexval((unsigned char)src[i + 1]) : -1;
            int lo = i + 2 < len ? hexval((unsigned char)src[i + 2]) : -1;
            if (hi < 0 || lo < 0) {
                snprintf(errstr, errstr_size, "bad percent-escape in %s", what);
                return -1;
            }
            c = hi * 16 + lo;
            if (c == 0) {
                snprintf(errstr, errstr_size, "%%00 is not allowed in %s", what);
                return -1;
            }
            i += 2;
        }
        if (o + 1 >= dstsize) {
            snprintf(errstr, errstr_size, "%s is too long (at most %zu bytes)", what, dstsize - 1);
            return -1;
        }
        dst[o++] = (char)c;
    }
    dst[o] = '\0';
    return 0;
}

/* A whole decimal number in [min, max], from s[0..len). */
static int parse_num(const char *s, size_t len, long min, long max, long *out) {
    long v = 0;
    if (len == 0 || len > 10)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static int parse_db(const char *s, size_t len, ops_redis_url_t *out, char *errstr,
                    size_t errstr_size) {
    long v;
    if (parse_num(s, len, 0, INT_MAX, &v) != 0) {
        snprintf(errstr, errstr_size, "db '%.*s' is not a number in 0..%d", (int)len, s, INT_MAX);
        return -1;
    }
    out->db = (int)v;
    return 0;
}

/* user[:password] → out->user / out->password. A lone word without ':' is
 * ambiguous (user or password?) across Redis clients, so it is refused. */
static int parse_userinfo(const char *s, size_t len, ops_redis_url_t *out, char *errstr,
                          size_t errstr_size) {
    const char *colon = memchr(s, ':', len);
    if (!colon) {
        snprintf(errstr, errstr_size,
                 "credentials without ':' are ambiguous: write redis://:PASSWORD@host or "
                 "redis://USER:PASSWORD@host");
        return -1;
    }
    if (pct_decode(s, (size_t)(colon - s), out->user, sizeof(out->user), "user", errstr,
                   errstr_size) != 0)
        return -1;
    return pct_decode(colon + 1, len - (size_t)(colon - s) - 1, out->password,
                      sizeof(out->password), "password", errstr, errstr_size);
}

/* "db=N&user=U&password=P" (each optional). */
static int parse_query(const char *q, ops_redis_url_t *out, char *errstr, size_t errstr_size) {
    while (*q) {
        size_t len = strcspn(q, "&");
        const char *eq = memchr(q, '=', len);
        if (!eq) {
            snprintf(errstr, errstr_size, "URL parameter '%.*s' has no '='", (int)len, q);
            return -1;
        }
        size_t klen = (size_t)(eq - q);
        const char *v = eq + 1;
        size_t vlen = len - klen - 1;
        int rc;
        if (klen == 2 && strncmp(q, "db", 2) == 0)
            rc = parse_db(v, vlen, out, errstr, errstr_size);
        else if (klen == 4 && strncmp(q, "user", 4) == 0)
            rc = pct_decode(v, vlen, out->user, sizeof(out->user), "user", errstr, errstr_size);
        else if (klen == 8 && strncmp(q, "password", 8) == 0)
            rc = pct_decode(v, vlen, out->password, sizeof(out->password), "password", errstr,
                            errstr_size);
        else if (klen > 9 && strncmp(q, "sentinel_", 9) == 0 && !out->sentinel) {
            snprintf(errstr, errstr_size, "URL parameter '%.*s' is only for redis-sentinel://",
                     (int)klen, q);
            return -1;
        } else if (klen == 13 && strncmp(q, "sentinel_user", 13) == 0)
            rc = pct_decode(v, vlen, out->sentinel_user, sizeof(out->sentinel_user),
                            "sentinel_user", errstr, errstr_size);
        else if (klen == 22 && strncmp(q, "sentinel_password_file", 22) == 0)
            rc = pct_decode(v, vlen, out->sentinel_password_file,
                            sizeof(out->sentinel_password_file), "sentinel_password_file", errstr,
                            errstr_size);
        else {
            snprintf(errstr, errstr_size, "unknown URL parameter '%.*s' (known: db, user, password%s)",
                     (int)klen, q, out->sentinel ? ", sentinel_user, sentinel_password_file" : "");
            return -1;
        }
        if (rc != 0)
            return -1;
        q += len;
        if (*q == '&')
            q++;
    }
    return 0;
}

/* host[:port] or [v6addr][:port]; empty host means 127.0.0.1. The host is
 * percent-decoded too, for IPv6 zones: [fe80::1%25eth0]. */
static int parse_hostport(const char *s, size_t len, ops_redis_url_t *out, char *errstr,
                          size_t errstr_size) {
    const char *host = s, *port = NULL;
    size_t hlen, plen = 0;
    if (len > 0 && s[0] == '[') {
        const char *rb = memchr(s, ']', len);
        if (!rb) {
            snprintf(errstr, errstr_size, "missing ']' after IPv6 address");
            return -1;
        }
        host = s + 1;
        hlen = (size_t)(rb - host);
        if (hlen == 0) {
            snprintf(errstr, errstr_size, "empty IPv6 address '[]'");
            return -1;
        }
        const char *rest = rb + 1;
        size_t rlen = len - (size_t)(rest - s);
        if (rlen > 0) {
            if (*rest != ':') {
                snprintf(errstr, errstr_size, "unexpected '%.*s' after IPv6 address", (int)rlen,
                         rest);
                return -1;
            }
            port = rest + 1;
            plen = rlen - 1;
        }
    } else {
        const char *colon = memchr(s, ':', len);
        hlen = colon ? (size_t)(colon - s) : len;
        if (colon) {
            if (memchr(colon + 1, ':', len - hlen - 1)) {
                snprintf(errstr, errstr_size, "IPv6 addresses go in brackets: redis://[::1]:6379");
                return -1;
            }
            port = colon + 1;
            plen = len - hlen - 1;
        }
    }
    if (hlen == 0)
        snprintf(out->host, sizeof(out->host), "%s", OPS_REDIS_DEFAULT_HOST);
    else if (pct_decode(host, hlen, out->host, sizeof(out->host), "host", errstr, errstr_size) != 0)
        return -1;
    if (port) {
        long p;
        if (parse_num(port, plen, 1, 65535, &p) != 0) {
            snprintf(errstr, errstr_size, "port '%.*s' is not a number in 1..65535", (int)plen,
                     port);
            return -1;
        }
        out->port = (int)p;
    }
    return 0;
}

/* unix:///path, unix://[user:pass@]/path, with an optional ?query. */
static int parse_unix(const char *rest, ops_redis_url_t *out, char *errstr, size_t errstr_size) {
    const char *path = rest;
    if (*rest != '/') {
        const char *at = strstr(rest, "@/");
        if (!at) {
            snprintf(errstr, errstr_size, "expected an absolute socket path: unix:///path/to.sock");
            return -1;
        }
        if (parse_userinfo(rest, (size_t)(at - rest), out, errstr, errstr_size) != 0)
            return -1;
        path = at + 1;
    }
    size_t plen = strcspn(path, "?");
    if (plen == 1) {
        snprintf(errstr, errstr_size, "empty socket path");
        return -1;
    }
    if (pct_decode(path, plen, out->unix_path, sizeof(out->unix_path), "socket path", errstr,
                   errstr_size) != 0)
        return -1;
    if (path[plen] == '?')
        return parse_query(path + plen + 1, out, errstr, errstr_size);
    return 0;
}

typedef int (*hosts_fn)(const char *s, size_t len, ops_redis_url_t *out, char *errstr,
                        size_t errstr_size);

/* [userinfo@]HOSTS[/db][?query] in rest[0..len), HOSTS parsed by `hosts`.
 * The userinfo ends at the last '@' of the authority (path and query hold
 * no '@'), so a password may even contain an unescaped '@' or '/'. */
static int parse_server(const char *rest, size_t len, hosts_fn hosts, ops_redis_url_t *out,
                        char *errstr, size_t errstr_size) {
    const char *end = rest + len;
    size_t before_q = strcspn(rest, "?");
    const char *at = NULL;
    if (before_q > len)
        before_q = len;
    for (size_t i = 0; i < before_q; i++)
        if (rest[i] == '@')
            at = rest + i;
    const char *hp = rest;
    if (at) {
        if (parse_userinfo(rest, (size_t)(at - rest), out, errstr, errstr_size) != 0)
            return -1;
        hp = at + 1;
    }
    size_t hplen = strcspn(hp, "/?");
    if (hplen > (size_t)(end - hp))
        hplen = (size_t)(end - hp);
    if (hosts(hp, hplen, out, errstr, errstr_size) != 0)
        return -1;
    const char *p = hp + hplen;
    if (p < end && *p == '/') {
        p++;
        size_t dlen = strcspn(p, "?");
        if (dlen > (size_t)(end - p))
            dlen = (size_t)(end - p);
        if (dlen > 0 && parse_db(p, dlen, out, errstr, errstr_size) != 0)
            return -1;
        p += dlen;
    }
    if (p < end && *p == '?') {
        char q[2048];
        size_t qlen = (size_t)(end - p - 1);
        if (qlen >= sizeof(q)) {
            snprintf(errstr, errstr_size, "URL parameters are too long");
            return -1;
        }
        memcpy(q, p + 1, qlen);
        q[qlen] = '\0';
        int rc = parse_query(q, out, errstr, errstr_size);
        memset(q, 0, sizeof(q)); /* may hold a password */
        return rc;
    }
    return 0;
}

/* redis://[userinfo@]host[:port][/db][?query]. */
static int parse_tcp(const char *rest, ops_redis_url_t *out, char *errstr, size_t errstr_size) {
    return parse_server(rest, strlen(rest), parse_hostport, out, errstr, errstr_size);
}

/* host[:port][,host[:port]...]: the sentinels, port 26379 by default. */
static int parse_sentinel_hosts(const char *s, size_t len, ops_redis_url_t *out, char *errstr,
                                size_t errstr_size) {
    const char *end = s + len;
    if (len == 0) {
        snprintf(errstr, errstr_size,
                 "no sentinel address: redis-sentinel://host[:port][,...]#MASTER");
        return -1;
    }
    for (const char *h = s;;) {
        const char *comma = memchr(h, ',', (size_t)(end - h));
        size_t elen = comma ? (size_t)(comma - h) : (size_t)(end - h);
        ops_redis_url_t one;
        if (elen == 0) {
            snprintf(errstr, errstr_size, "empty address in the sentinel list");
            return -1;
        }
        if (out->nsentinels == OPS_REDIS_MAX_SENTINELS) {
            snprintf(errstr, errstr_size, "more than %d sentinels", OPS_REDIS_MAX_SENTINELS);
            return -1;
        }
        memset(&one, 0, sizeof(one));
        one.port = OPS_REDIS_SENTINEL_PORT;
        if (parse_hostport(h, elen, &one, errstr, errstr_size) != 0)
            return -1;
        memcpy(out->sentinels[out->nsentinels].host, one.host, sizeof(one.host));
        out->sentinels[out->nsentinels].port = one.port;
        out->nsentinels++;
        if (!comma)
            return 0;
        h = comma + 1;
    }
}

/* redis-sentinel://[userinfo@]host[:port][,host[:port]...][/db][?query]#MASTER.
 * The master name follows the last '#'. */
static int parse_sentinel(const char *rest, ops_redis_url_t *out, char *errstr,
                          size_t errstr_size) {
    const char *hash = strrchr(rest, '#');
    if (!hash || hash[1] == '\0') {
        snprintf(errstr, errstr_size,
                 "no master name: end the URL with #MASTER, the name the sentinels monitor");
        return -1;
    }
    if (pct_decode(hash + 1, strlen(hash + 1), out->master, sizeof(out->master), "master name",
                   errstr, errstr_size) != 0)
        return -1;
    for (const char *m = out->master; *m; m++)
        if ((unsigned char)*m <= ' ' || *m == 0x7f || *m == '@') {
            /* not echoed: a stray '#' in an unescaped password lands here */
            snprintf(errstr, errstr_size,
                     "the master name after '#' holds a space, control character or '@' "
                     "(percent-escape '#' in a password as %%23)");
            return -1;
        }
    return parse_server(rest, (size_t)(hash - rest), parse_sentinel_hosts, out, errstr,
                        errstr_size);
}

/* Fills *out from url. Every error names the part that is wrong and, where
 * it helps, the form that is expected. The password never appears in an
 * error message. */
int ops_redis_url_parse(const char *url, ops_redis_url_t *out, char *errstr, size_t errstr_size) {
    char inner[256];
    int rc = -1;
    if (!out) {
        snprintf(errstr, errstr_size, "invalid argument");
        return -1;
    }
    memset(out, 0, sizeof(*out));
    out->port = OPS_REDIS_DEFAULT_PORT;
    if (!url || !*url) {
        snprintf(errstr, errstr_size, "empty Redis URL");
        return -1;
    }
    if (strncasecmp(url, "redis://", 8) == 0)
        rc = parse_tcp(url + 8, out, inner, sizeof(inner));
    else if (strncasecmp(url, "unix://", 7) == 0)
        rc = parse_unix(url + 7, out, inner, sizeof(inner));
    else if (strncasecmp(url, "redis+unix://", 13) == 0)
        rc = parse_unix(url + 13, out, inner, sizeof(inner));
    else if (strncasecmp(url, "redis-sentinel://", 17) == 0) {
        out->sentinel = true;
        out->host[0] = '\0';
        rc = parse_sentinel(url + 17, out, inner, sizeof(inner));
    } else if (strncasecmp(url, "rediss://", 9) == 0)
        snprintf(inner, sizeof(inner),
                 "TLS (rediss://) is not supported by hiredis 0.14: use a local socket or a "
                 "tunnel");
    else if (strncasecmp(url, "redis-cluster://", 16) == 0)
        snprintf(inner, sizeof(inner),
                 "a Redis Cluster is reached through the Redis link (redis_link.h), not one "
                 "connection");
    else
        snprintf(inner, sizeof(inner),
                 "expected redis://, unix://, redis+unix://, redis-sentinel:// or "
                 "redis-cluster://");
    if (rc != 0) {
        /* The URL may carry a password: show only the scheme. */
        size_t slen = strcspn(url, ":");
        snprintf(errstr, errstr_size, "Redis URL '%.*s:...': %s", slen < 16 ? (int)slen : 16, url,
                 inner);
        memset(out->password, 0, sizeof(out->password));
    }
    return rc;
}

/* Runs one setup command (AUTH, SELECT) and turns a NULL reply, a lost
 * link or an error reply into errstr ("WHERE: WHAT failed: ..."). `what`
 * names the command without its arguments, so that no password reaches a
 * log. */
static int setup_command(redisContext *c, const char *where, const char *what, char *errstr,
                         size_t errstr_size, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    int rc = -1;
    if (!r || c->err)
        snprintf(errstr, errstr_size, "%s: %s: %s", where, what, c->err ? c->errstr : "no reply");
    else if (r->type == REDIS_REPLY_ERROR)
        snprintf(errstr, errstr_size, "%s: %s failed: %s", where, what, r->str);
    else
        rc = 0;
    if (r)
        freeReplyObject(r);
    return rc;
}

static struct timeval ms_tv(int ms) {
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    return tv;
}

static void where_of(const char *host, int port, char *buf, size_t size) {
    snprintf(buf, size, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
}

void ops_redis_where(const redisContext *c, char *buf, size_t size) {
    if (size == 0)
        return;
    buf[0] = '\0';
    if (c == NULL)
        return;
    if (c->connection_type == REDIS_CONN_UNIX)
        snprintf(buf, size, "%s", c->unix_sock.path ? c->unix_sock.path : "");
    else if (c->tcp.host != NULL)
        where_of(c->tcp.host, c->tcp.port, buf, size);
}

/* Scripts quote the error of the command that failed inside them, so the
 * code is looked for anywhere in the text, not only at its start. */
bool ops_redis_error_wants_reconnect(const char *text) {
    return text != NULL && (strstr(text, "READONLY ") != NULL || strstr(text, "LOADING ") != NULL ||
                            strstr(text, "MASTERDOWN ") != NULL);
}

bool ops_redis_reply_wants_reconnect(const redisReply *r) {
    return r != NULL && r->type == REDIS_REPLY_ERROR && ops_redis_error_wants_reconnect(r->str);
}

int ops_redis_check_primary(redisContext *c, char *errstr, size_t errstr_size) {
    char where[300];
    int rc = -1;
    redisReply *r = redisCommand(c, "ROLE");

    ops_redis_where(c, where, sizeof(where));
    if (r == NULL || c->err)
        snprintf(errstr, errstr_size, "redis %s: ROLE: %s", where, c->err ? c->errstr : "no reply");
    else if (r->type == REDIS_REPLY_ERROR)
        snprintf(errstr, errstr_size, "redis %s: ROLE: %s", where, r->str);
    else if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
             r->element[0]->type != REDIS_REPLY_STRING)
        snprintf(errstr, errstr_size, "redis %s: ROLE: unexpected reply", where);
    else if (strcmp(r->element[0]->str, "master") != 0)
        snprintf(errstr, errstr_size, "redis %s is a %s now, not the primary", where,
                 r->element[0]->str);
    else
        rc = 0;
    if (r != NULL)
        freeReplyObject(r);
    return rc;
}

/* Opens one data node (host:port, or unix_path when set): connect within
 * connect_ms, commands bounded by cmd_ms, AUTH, SELECT (or PING, so that a
 * server wanting a password says so now). Errors "WHERE: why". */
static redisContext *connect_node(const ops_redis_url_t *u, const char *host, int port,
                                  int connect_ms, int cmd_ms, char *errstr, size_t errstr_size) {
    redisContext *c = NULL;
    char where[300];
    struct timeval tv = ms_tv(cmd_ms);

    if (u->unix_path[0]) {
        snprintf(where, sizeof(where), "%s", u->unix_path);
        c = redisConnectUnixWithTimeout(u->unix_path, ms_tv(connect_ms));
    } else {
        where_of(host, port, where, sizeof(where));
        c = redisConnectWithTimeout(host, port, ms_tv(connect_ms));
    }
    if (!c) {
        snprintf(errstr, errstr_size, "%s: cannot allocate a connection", where);
        return NULL;
    }
    if (c->err) {
        snprintf(errstr, errstr_size, "%s: %s", where, c->errstr);
        goto fail;
    }
    if (redisSetTimeout(c, tv) != REDIS_OK) {
        snprintf(errstr, errstr_size, "%s: cannot set timeout: %s", where,
                 c->err ? c->errstr : "unknown error");
        goto fail;
    }
    if (u->user[0]) {
        if (setup_command(c, where, "AUTH", errstr, errstr_size, "AUTH %s %s", u->user,
                          u->password) != 0)
            goto fail;
    } else if (u->password[0]) {
        if (setup_command(c, where, "AUTH", errstr, errstr_size, "AUTH %s", u->password) != 0)
            goto fail;
    }
    if (u->db != 0) {
        if (setup_command(c, where, "SELECT", errstr, errstr_size, "SELECT %d", u->db) != 0)
            goto fail;
    } else if (!u->user[0] && !u->password[0]) {
        /* Nothing was sent yet: a server that wants a password says so now
         * (NOAUTH), not at the first counter update. */
        if (setup_command(c, where, "PING", errstr, errstr_size, "PING") != 0)
            goto fail;
    }
    return c;
fail:
    redisFree(c);
    return NULL;
}

/* Asks sentinel i where the master is and connects there. NULL with `why`
 * on failure; *permanent when waiting cannot help (an unknown master name,
 * refused credentials). */
static redisContext *via_sentinel(const ops_redis_url_t *u, size_t i, const char *spw, int cmd_ms,
                                  char *why, size_t why_size, bool *permanent) {
    int each_ms = cmd_ms < OPS_REDIS_SENTINEL_CONNECT_MS ? cmd_ms : OPS_REDIS_SENTINEL_CONNECT_MS;
    redisContext *s = redisConnectWithTimeout(u->sentinels[i].host, u->sentinels[i].port,
                                              ms_tv(each_ms));
    redisContext *node = NULL;
    redisReply *r = NULL;
    char host[256], where[300];
    int port = 0;

    *permanent = false;
    if (s == NULL || s->err) {
        snprintf(why, why_size, "%s", s ? s->errstr : "cannot allocate a connection");
        goto done;
    }
    redisSetTimeout(s, ms_tv(each_ms));
    if (u->sentinel_user[0] || spw[0]) {
        r = u->sentinel_user[0] ? redisCommand(s, "AUTH %s %s", u->sentinel_user, spw)
                                : redisCommand(s, "AUTH %s", spw);
        if (r == NULL || r->type == REDIS_REPLY_ERROR) {
            snprintf(why, why_size, "AUTH failed: %s", r ? r->str : s->errstr);
            *permanent = r != NULL;
            goto done;
        }
        freeReplyObject(r);
    }
    r = redisCommand(s, "SENTINEL get-master-addr-by-name %s", u->master);
    if (r == NULL) {
        snprintf(why, why_size, "%s", s->errstr);
        goto done;
    }
    if (r->type == REDIS_REPLY_NIL) {
        snprintf(why, why_size, "does not monitor a master named '%s'", u->master);
        *permanent = true;
        goto done;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        snprintf(why, why_size, "%s", r->str);
        *permanent = strncmp(r->str, "NOAUTH", 6) == 0 || strncmp(r->str, "WRONGPASS", 9) == 0 ||
                     strncmp(r->str, "NOPERM", 6) == 0;
        goto done;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_STRING ||
        (port = atoi(r->element[1]->str)) <= 0 || port > 65535) {
        snprintf(why, why_size, "unexpected answer to SENTINEL get-master-addr-by-name");
        goto done;
    }
    snprintf(host, sizeof(host), "%s", r->element[0]->str);
    freeReplyObject(r);
    r = NULL;
    redisFree(s);
    s = NULL;

    where_of(host, port, where, sizeof(where));
    node = connect_node(u, host, port, each_ms, cmd_ms, why, why_size);
    if (node == NULL) {
        /* "names H:P: why" reads better than a bare "H:P: why" */
        char inner[512];
        snprintf(inner, sizeof(inner), "%s", why);
        snprintf(why, why_size, "names %.400s", inner);
        *permanent = strstr(inner, "AUTH failed") != NULL;
        goto done;
    }
    if (ops_redis_check_primary(node, why, why_size) != 0) {
        char inner[512];
        snprintf(inner, sizeof(inner), "%s", why);
        snprintf(why, why_size, "names %.400s%s", inner + (strncmp(inner, "redis ", 6) == 0 ? 6 : 0),
                 strstr(inner, "NOPERM") ? " (the ACL user needs +role: see config/redis-acl.conf)"
                                         : "");
        *permanent = strstr(inner, "NOPERM") != NULL;
        redisFree(node);
        node = NULL;
    }
done:
    if (r != NULL)
        freeReplyObject(r);
    if (s != NULL)
        redisFree(s);
    return node;
}

/* Finds the primary through the sentinels: rounds over every sentinel
 * until one leads to a node that says it is the master, or timeout_ms has
 * passed, or every sentinel failed in a way waiting cannot mend. */
static redisContext *connect_sentinel(const ops_redis_url_t *u, int timeout_ms, char *errstr,
                                      size_t errstr_size) {
    char spw[256] = "", tried[1536], why[512];
    int64_t deadline = ops_clock_mono_ms() + timeout_ms;
    redisContext *c = NULL;

    if (u->sentinel_password_file[0] &&
        ops_secret_read_file("redis sentinel password file", u->sentinel_password_file, spw,
                             sizeof(spw), errstr, errstr_size) != 0)
        return NULL;
    for (;;) {
        bool all_permanent = true;
        size_t off = 0;
        tried[0] = '\0';
        for (size_t i = 0; i < u->nsentinels && c == NULL; i++) {
            bool permanent;
            char addr[300];
            c = via_sentinel(u, i, spw, timeout_ms, why, sizeof(why), &permanent);
            if (c != NULL)
                break;
            all_permanent = all_permanent && permanent;
            where_of(u->sentinels[i].host, u->sentinels[i].port, addr, sizeof(addr));
            int n = snprintf(tried + off, sizeof(tried) - off, "%s%s (%s)", off ? "; " : "", addr,
                             why);
            if (n > 0 && off + (size_t)n < sizeof(tried))
                off += (size_t)n;
        }
        if (c != NULL || all_permanent)
            break;
        int64_t left = deadline - ops_clock_mono_ms();
        if (left <= 0)
            break;
        struct timespec ts = {0, (long)(left < 200 ? left : 200) * 1000000L};
        nanosleep(&ts, NULL);
    }
    memset(spw, 0, sizeof(spw));
    if (c == NULL)
        snprintf(errstr, errstr_size,
                 "redis-sentinel master '%s': no primary found through %zu sentinel%s: %s",
                 u->master, u->nsentinels, u->nsentinels == 1 ? "" : "s", tried);
    return c;
}

/* See redis.h. The context is freed on every failure path; on success the
 * caller owns it (redisFree). */
redisContext *ops_redis_connect(const char *url, const char *password_file, int timeout_ms,
                                char *errstr, size_t errstr_size) {
    ops_redis_url_t u;
    redisContext *c = NULL;
    char err[1024];

    if (ops_redis_url_parse(url, &u, errstr, errstr_size) != 0)
        goto cleanup;
    if (password_file && *password_file &&
        ops_secret_read_file("redis password file", password_file, u.password, sizeof(u.password),
                             errstr, errstr_size) != 0)
        goto cleanup;
    if (timeout_ms <= 0)
        timeout_ms = OPS_REDIS_DEFAULT_TIMEOUT_MS;
    if (u.sentinel) {
        c = connect_sentinel(&u, timeout_ms, errstr, errstr_size);
        goto cleanup;
    }
    c = connect_node(&u, u.host, u.port, timeout_ms, timeout_ms, err, sizeof(err));
    if (c == NULL)
        snprintf(errstr, errstr_size, "redis %s", err);
cleanup:
    memset(&u, 0, sizeof(u));
    return c;
}
