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

#include "secret_priv.h"

#define OPS_REDIS_DEFAULT_HOST "127.0.0.1"
#define OPS_REDIS_DEFAULT_PORT 6379
#define OPS_REDIS_DEFAULT_TIMEOUT_MS 5000

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
        else {
            snprintf(errstr, errstr_size,
                     "unknown URL parameter '%.*s' (known: db, user, password)", (int)klen, q);
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

/* redis://[userinfo@]host[:port][/db][?query]. The userinfo ends at the
 * last '@' of the authority (path and query hold no '@'), so a password may
 * even contain an unescaped '@' or '/'. */
static int parse_tcp(const char *rest, ops_redis_url_t *out, char *errstr, size_t errstr_size) {
    const char *q = strchr(rest, '?');
    size_t before_q = q ? (size_t)(q - rest) : strlen(rest);
    const char *at = NULL;
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
    if (parse_hostport(hp, hplen, out, errstr, errstr_size) != 0)
        return -1;
    const char *p = hp + hplen;
    if (*p == '/') {
        p++;
        size_t dlen = strcspn(p, "?");
        if (dlen > 0 && parse_db(p, dlen, out, errstr, errstr_size) != 0)
            return -1;
        p += dlen;
    }
    if (*p == '?')
        return parse_query(p + 1, out, errstr, errstr_size);
    return 0;
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
    else if (strncasecmp(url, "rediss://", 9) == 0)
        snprintf(inner, sizeof(inner),
                 "TLS (rediss://) is not supported by hiredis 0.14: use a local socket or a "
                 "tunnel");
    else
        snprintf(inner, sizeof(inner), "expected redis://, unix:// or redis+unix://");
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
 * link or an error reply into errstr. `what` names the command without its
 * arguments, so that no password reaches a log. */
static int setup_command(redisContext *c, const char *where, const char *what, char *errstr,
                         size_t errstr_size, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    int rc = -1;
    if (!r || c->err)
        snprintf(errstr, errstr_size, "redis %s: %s: %s", where, what,
                 c->err ? c->errstr : "no reply");
    else if (r->type == REDIS_REPLY_ERROR)
        snprintf(errstr, errstr_size, "redis %s: %s failed: %s", where, what, r->str);
    else
        rc = 0;
    if (r)
        freeReplyObject(r);
    return rc;
}

/* See redis.h. The context is freed on every failure path; on success the
 * caller owns it (redisFree). */
redisContext *ops_redis_connect(const char *url, const char *password_file, int timeout_ms,
                                char *errstr, size_t errstr_size) {
    ops_redis_url_t u;
    redisContext *c = NULL;
    char where[300];
    int ok = 0;

    if (ops_redis_url_parse(url, &u, errstr, errstr_size) != 0)
        goto cleanup;
    if (password_file && *password_file &&
        ops_secret_read_file("redis password file", password_file, u.password, sizeof(u.password),
                             errstr, errstr_size) != 0)
        goto cleanup;
    if (timeout_ms <= 0)
        timeout_ms = OPS_REDIS_DEFAULT_TIMEOUT_MS;
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};

    if (u.unix_path[0]) {
        snprintf(where, sizeof(where), "%s", u.unix_path);
        c = redisConnectUnixWithTimeout(u.unix_path, tv);
    } else {
        snprintf(where, sizeof(where), strchr(u.host, ':') ? "[%s]:%d" : "%s:%d", u.host, u.port);
        c = redisConnectWithTimeout(u.host, u.port, tv);
    }
    if (!c) {
        snprintf(errstr, errstr_size, "redis %s: cannot allocate a connection", where);
        goto cleanup;
    }
    if (c->err) {
        snprintf(errstr, errstr_size, "redis %s: %s", where, c->errstr);
        goto cleanup;
    }
    if (redisSetTimeout(c, tv) != REDIS_OK) {
        snprintf(errstr, errstr_size, "redis %s: cannot set timeout: %s", where,
                 c->err ? c->errstr : "unknown error");
        goto cleanup;
    }
    if (u.user[0]) {
        if (setup_command(c, where, "AUTH", errstr, errstr_size, "AUTH %s %s", u.user,
                          u.password) != 0)
            goto cleanup;
    } else if (u.password[0]) {
        if (setup_command(c, where, "AUTH", errstr, errstr_size, "AUTH %s", u.password) != 0)
            goto cleanup;
    }
    if (u.db != 0) {
        if (setup_command(c, where, "SELECT", errstr, errstr_size, "SELECT %d", u.db) != 0)
            goto cleanup;
    } else if (!u.user[0] && !u.password[0]) {
        /* Nothing was sent yet: a server that wants a password says so now
         * (NOAUTH), not at the first counter update. */
        if (setup_command(c, where, "PING", errstr, errstr_size, "PING") != 0)
            goto cleanup;
    }
    ok = 1;
cleanup:
    memset(&u, 0, sizeof(u));
    if (!ok && c) {
        redisFree(c);
        c = NULL;
    }
    return c;
}
