/*
 * opstream stats: reads an operation's counters back from Redis (totals, per
 * country, rolling windows from the minute and hour buckets, recent alerts)
 * with pipelined commands, for opstream-stats. Never prints.
 */
#include "opstream/stats.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "err_priv.h"
#include "opstream/redis_link.h"

static const struct {
    const char *name;
    size_t buckets;
    int64_t unit_ms;
} windows[OPS_STATS_WINDOW_COUNT] = {
    {"10m", 10, OPS_MINUTE_MS},
    {"1h", 60, OPS_MINUTE_MS},
    {"24h", 24, OPS_HOUR_MS},
};

const char *ops_stats_window_name(ops_stats_window_id_t w) {
    return (unsigned)w < OPS_STATS_WINDOW_COUNT ? windows[w].name : NULL;
}

int ops_stats_window_from_name(const char *name) {
    for (int w = 0; w < OPS_STATS_WINDOW_COUNT; w++)
        if (name != NULL && strcmp(name, windows[w].name) == 0)
            return w;
    return -1;
}

size_t ops_stats_window_buckets(ops_stats_window_id_t w) {
    return (unsigned)w < OPS_STATS_WINDOW_COUNT ? windows[w].buckets : 0;
}

int ops_stats_window_keys(ops_stats_window_id_t w, const char *op, int64_t now_ms,
                          char (*keys)[OPS_KEY_MAX]) {
    size_t n = ops_stats_window_buckets(w);

    for (size_t i = 0; i < n; i++) {
        int64_t t = now_ms - (int64_t)(n - 1 - i) * windows[w].unit_ms;
        int len = windows[w].unit_ms == OPS_HOUR_MS ? ops_key_hour(op, t, keys[i], OPS_KEY_MAX)
                                                    : ops_key_minute(op, t, keys[i], OPS_KEY_MAX);
        if (len < 0)
            return -1;
    }
    return (int)n;
}

static int parse_i64(const redisReply *r, int64_t *out) {
    char *end;

    if (r == NULL || r->type != REDIS_REPLY_STRING || r->len == 0)
        return -1;
    long long v = strtoll(r->str, &end, 10);
    if (*end != '\0')
        return -1;
    *out = v;
    return 0;
}

void ops_stats_add_fields(const redisReply *r, const char *cc, int64_t m[OPS_METRIC_COUNT]) {
    size_t cclen = cc != NULL ? strlen(cc) : 0;

    if (r == NULL || r->type != REDIS_REPLY_ARRAY)
        return;
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const redisReply *f = r->element[i];
        const char *name;
        int64_t v;
        int k;
        if (f->type != REDIS_REPLY_STRING)
            continue;
        name = f->str;
        if (cclen > 0) {
            if (strncmp(name, cc, cclen) != 0 || name[cclen] != ':')
                continue;
            name += cclen + 1;
        } else if (strchr(name, ':') != NULL) {
            continue;
        }
        k = ops_metric_from_name(name);
        if (k >= 0 && parse_i64(r->element[i + 1], &v) == 0)
            m[k] += v;
    }
}

void ops_stats_free(ops_stats_t *s) {
    if (s == NULL)
        return;
    free(s->countries);
    free(s->alerts);
    s->countries = NULL;
    s->alerts = NULL;
    s->n_countries = s->n_alerts = 0;
}

static int by_events_desc(const void *a, const void *b) {
    const ops_stats_country_t *x = a, *y = b;

    if (x->m[OPS_METRIC_EVENTS] != y->m[OPS_METRIC_EVENTS])
        return x->m[OPS_METRIC_EVENTS] < y->m[OPS_METRIC_EVENTS] ? 1 : -1;
    return strcmp(x->cc, y->cc);
}

/* Queues one command routed by key (its slot on a cluster). */
static int append(ops_redis_link_t *l, const char *key, int argc, const char **argv, char *errstr,
                  size_t errstr_size) {
    return ops_redis_link_append(l, key, argc, argv, NULL, errstr, errstr_size);
}

static int append_key(ops_redis_link_t *l, const char *cmd, const char *key, char *errstr,
                      size_t errstr_size) {
    const char *argv[] = {cmd, key};
    return append(l, key, 2, argv, errstr, errstr_size);
}

static void copy_field(char *dst, size_t size, const redisReply *v) {
    if (v != NULL && v->type == REDIS_REPLY_STRING)
        snprintf(dst, size, "%s", v->str);
}

static void parse_alert(const redisReply *entry, ops_stats_alert_t *a) {
    const redisReply *fields;

    memset(a, 0, sizeof(*a));
    if (entry->type != REDIS_REPLY_ARRAY || entry->elements != 2)
        return;
    fields = entry->element[1];
    if (fields->type != REDIS_REPLY_ARRAY)
        return;
    for (size_t i = 0; i + 1 < fields->elements; i += 2) {
        const redisReply *f = fields->element[i], *v = fields->element[i + 1];
        if (f->type != REDIS_REPLY_STRING)
            continue;
        if (strcmp(f->str, "alert_id") == 0)
            copy_field(a->id, sizeof a->id, v);
        else if (strcmp(f->str, "severity") == 0)
            copy_field(a->severity, sizeof a->severity, v);
        else if (strcmp(f->str, "country") == 0)
            copy_field(a->country, sizeof a->country, v);
        else if (strcmp(f->str, "rule") == 0)
            copy_field(a->rule, sizeof a->rule, v);
        else if (strcmp(f->str, "summary") == 0)
            copy_field(a->summary, sizeof a->summary, v);
        else if (strcmp(f->str, "raised_at") == 0)
            parse_i64(v, &a->raised_at);
    }
}

/* One pipeline: SISMEMBER, the total (or country) hash, the countries set,
 * every bucket of the three windows, the alerts; then the per-country
 * hashes in a second pipeline once the set is known. */
int ops_stats_read(ops_redis_link_t *rc, const char *op, const char *country, int64_t now_ms,
                   size_t max_alerts, ops_stats_t *out, char *errstr, size_t errstr_size) {
    char key[OPS_KEY_MAX], ops_key[OPS_KEY_MAX], count[24];
    char(*bk)[OPS_KEY_MAX] = NULL;
    redisReply *r = NULL, *set = NULL;
    size_t nb[OPS_STATS_WINDOW_COUNT], total_b = 0;
    const char *cc = country != NULL && country[0] != '\0' ? country : NULL;
    int rc_out = -1;

    memset(out, 0, sizeof(*out));
    snprintf(out->operation, sizeof out->operation, "%s", op);
    if (cc != NULL)
        snprintf(out->country, sizeof out->country, "%s", cc);
    out->now_ms = now_ms;
    for (int w = 0; w < OPS_STATS_WINDOW_COUNT; w++)
        total_b += nb[w] = ops_stats_window_buckets((ops_stats_window_id_t)w);
    bk = calloc(total_b, sizeof(*bk));
    if (bk == NULL) {
        ops_err_format(errstr, errstr_size, "out of memory");
        goto cleanup;
    }
    if (ops_key_operations(ops_key, sizeof ops_key) < 0 ||
        (cc ? ops_key_country(op, cc, key, sizeof key) : ops_key_total(op, key, sizeof key)) < 0) {
        ops_err_format(errstr, errstr_size, "operation name too long");
        goto cleanup;
    }
    const char *sismember[] = {"SISMEMBER", ops_key, op};
    if (append(rc, ops_key, 3, sismember, errstr, errstr_size) != 0 ||
        append_key(rc, "HGETALL", key, errstr, errstr_size) != 0)
        goto cleanup;
    for (int w = 0, at = 0; w < OPS_STATS_WINDOW_COUNT; at += (int)nb[w], w++) {
        if (ops_stats_window_keys((ops_stats_window_id_t)w, op, now_ms, bk + at) < 0) {
            ops_err_format(errstr, errstr_size, "operation name too long");
            goto cleanup;
        }
        for (size_t i = 0; i < nb[w]; i++)
            if (append_key(rc, "HGETALL", bk[at + i], errstr, errstr_size) != 0)
                goto cleanup;
    }
    ops_key_countries(op, key, sizeof key);
    if (append_key(rc, "SMEMBERS", key, errstr, errstr_size) != 0)
        goto cleanup;
    ops_key_alerts(op, key, sizeof key);
    snprintf(count, sizeof count, "%lu", (unsigned long)(max_alerts ? max_alerts : 1));
    const char *xrev[] = {"XREVRANGE", key, "+", "-", "COUNT", count};
    if (append(rc, key, 6, xrev, errstr, errstr_size) != 0)
        goto cleanup;

    /* SISMEMBER */
    if ((r = ops_redis_link_reply(rc, errstr, errstr_size)) == NULL)
        goto cleanup;
    int known = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
    freeReplyObject(r);
    /* total */
    if ((r = ops_redis_link_reply(rc, errstr, errstr_size)) == NULL)
        goto cleanup;
    ops_stats_add_fields(r, NULL, out->total);
    freeReplyObject(r);
    for (int w = 0; w < OPS_STATS_WINDOW_COUNT; w++) {
        for (size_t i = 0; i < nb[w]; i++) {
            if ((r = ops_redis_link_reply(rc, errstr, errstr_size)) == NULL)
                goto cleanup;
            ops_stats_add_fields(r, cc, out->window[w]);
            freeReplyObject(r);
        }
    }
    if ((set = ops_redis_link_reply(rc, errstr, errstr_size)) == NULL)
        goto cleanup;
    if ((r = ops_redis_link_reply(rc, errstr, errstr_size)) == NULL)
        goto cleanup;
    if (r->type == REDIS_REPLY_ARRAY && max_alerts > 0 && r->elements > 0) {
        out->alerts = calloc(r->elements, sizeof(*out->alerts));
        if (out->alerts == NULL) {
            ops_err_format(errstr, errstr_size, "out of memory");
            goto cleanup;
        }
        for (size_t i = 0; i < r->elements; i++)
            parse_alert(r->element[i], &out->alerts[out->n_alerts++]);
    }
    freeReplyObject(r);
    r = NULL;
    if (!known) {
        rc_out = 1;
        goto cleanup;
    }
    if (cc != NULL) {
        int reported = 0;
        for (size_t i = 0; set->type == REDIS_REPLY_ARRAY && i < set->elements; i++)
            reported |= set->element[i]->type == REDIS_REPLY_STRING &&
                        strcmp(set->element[i]->str, cc) == 0;
        if (!reported) {
            rc_out = 2;
            goto cleanup;
        }
    }

    /* Per-country hashes (only the one asked for with --country). */
    if (set->type == REDIS_REPLY_ARRAY && set->elements > 0) {
        out->countries = calloc(set->elements, sizeof(*out->countries));
        if (out->countries == NULL) {
            ops_err_format(errstr, errstr_size, "out of memory");
            goto cleanup;
        }
        for (size_t i = 0; i < set->elements; i++) {
            const redisReply *m = set->element[i];
            if (m->type != REDIS_REPLY_STRING || m->len != 2 || (cc && strcmp(m->str, cc) != 0))
                continue;
            ops_stats_country_t *c = &out->countries[out->n_countries++];
            snprintf(c->cc, sizeof c->cc, "%s", m->str);
            ops_key_country(op, c->cc, key, sizeof key);
            if (append_key(rc, "HGETALL", key, errstr, errstr_size) != 0)
                goto cleanup;
        }
        for (size_t i = 0; i < out->n_countries; i++) {
            if ((r = ops_redis_link_reply(rc, errstr, errstr_size)) == NULL)
                goto cleanup;
            ops_stats_add_fields(r, NULL, out->countries[i].m);
            freeReplyObject(r);
            r = NULL;
        }
        qsort(out->countries, out->n_countries, sizeof(*out->countries), by_events_desc);
    }
    rc_out = 0;
cleanup:
    /* Drain what is still pipelined so the link stays usable (after an
     * I/O error nothing is pending any more). */
    while (ops_redis_link_pending(rc) > 0) {
        char ignored[128];
        redisReply *x = ops_redis_link_reply(rc, ignored, sizeof ignored);
        if (x == NULL)
            break;
        freeReplyObject(x);
    }
    if (r != NULL)
        freeReplyObject(r);
    if (set != NULL)
        freeReplyObject(set);
    free(bk);
    return rc_out;
}

static int by_name(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int ops_stats_list(ops_redis_link_t *rc, char ***opsp, size_t *np, char *errstr,
                   size_t errstr_size) {
    char key[OPS_KEY_MAX];
    redisReply *r;
    char **ops = NULL;
    size_t n = 0;
    int rc_out = -1;

    *opsp = NULL;
    *np = 0;
    ops_key_operations(key, sizeof key);
    const char *argv[] = {"SMEMBERS", key};
    r = ops_redis_link_command(rc, key, 2, argv, NULL, errstr, errstr_size);
    if (r == NULL)
        return -1;
    if (r->type != REDIS_REPLY_ARRAY) {
        ops_err_format(errstr, errstr_size, "redis: SMEMBERS %s: %s", key,
                       r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
        goto cleanup;
    }
    ops = calloc(r->elements ? r->elements : 1, sizeof(*ops));
    if (ops == NULL)
        goto oom;
    for (size_t i = 0; i < r->elements; i++) {
        if (r->element[i]->type != REDIS_REPLY_STRING)
            continue;
        if ((ops[n] = strdup(r->element[i]->str)) == NULL)
            goto oom;
        n++;
    }
    qsort(ops, n, sizeof(*ops), by_name);
    *opsp = ops;
    *np = n;
    ops = NULL;
    rc_out = 0;
    goto cleanup;
oom:
    ops_err_format(errstr, errstr_size, "out of memory");
cleanup:
    ops_stats_list_free(ops, n);
    freeReplyObject(r);
    return rc_out;
}

void ops_stats_list_free(char **ops, size_t n) {
    if (ops == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        free(ops[i]);
    free(ops);
}
