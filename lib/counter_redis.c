/*
 * opstream counter, Redis half: the Lua script that checks and applies one
 * counter batch atomically (offsets compare-and-set, dedupe, increments,
 * bucket TTLs, sets, next offsets), its loading and NOSCRIPT reload, and the
 * read-back of stored offsets. The argument layout is built by counter.c.
 */
#include "opstream/counter_redis.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "opstream/keys.h"
#include "opstream/redis.h"
#include "err_priv.h"

/* The atomic step. A Lua script that fails half-way keeps the writes it
 * made (Redis has no rollback), so phase 1 only reads and checks everything
 * a write of phase 2 could fail on:
 *   - the type of every key phase 2 writes (offsets, the dedupe slots read,
 *     the newest of which takes the marks, counter hashes: hash; the sets:
 *     set); another type is REFUSED naming the key, nothing written. A
 *     counter hash's type is learnt from the HMGET of its current values
 *     (redis.pcall: a wrong type is an error reply, not a script error), so
 *     it costs no extra call;
 *   - every counter field's current value: an integer Redis can increment,
 *     and current + delta within int64 (a margin of 2^12 below the limit,
 *     since Lua numbers are doubles), else REFUSED naming key and field;
 *   - every EXPIREAT time: a positive integer Redis accepts (< 10^15 s);
 *   - every partition's stored offset equals what the consumer believes
 *     (else FENCED, nothing written);
 *   - no event id is marked in a dedupe slot of the window (else SEEN with
 *     the (operation, id) pairs, nothing written).
 * Redis runs a script without interleaving, so phase 2 sees what phase 1
 * checked, and it only issues commands that cannot fail on what was
 * checked (an out-of-memory refusal comes at the first write, before any
 * write). Long argument runs go through unpack() in chunks (Lua's C stack
 * limit). */
static const char counter_script[] =
    "local a = ARGV\n"
    "local okey, now = a[1], a[2]\n"
    "local function typeof(k) return redis.call('TYPE', k)['ok'] end\n"
    "local function want(k, t)\n"
    "  local ty = typeof(k)\n"
    "  if ty ~= 'none' and ty ~= t then return {'REFUSED', k, 'holds a ' .. ty .. ', not a ' .. t} "
    "end\n"
    "end\n"
    "local function badexp(k, e)\n"
    "  if not string.match(e, '^[1-9]%d*$') or #e > 15 then\n"
    "    return {'REFUSED', k, 'expiry time ' .. e .. ' is not one Redis accepts'}\n"
    "  end\n"
    "end\n"
    "local r = want(okey, 'hash'); if r then return r end\n"
    "local i = 3\n"
    "local np = tonumber(a[i]); i = i + 1\n"
    "local offs = {}\n"
    "for p = 1, np do\n"
    "  local f, exp, nxt = a[i], a[i + 1], a[i + 2]; i = i + 3\n"
    "  local cur = redis.call('HGET', okey, f)\n"
    "  if not cur then cur = '' end\n"
    "  if cur ~= exp then return {'FENCED', f, cur, exp} end\n"
    "  offs[#offs + 1] = f; offs[#offs + 1] = nxt\n"
    "end\n"
    "local nd = tonumber(a[i]); i = i + 1\n"
    "local groups = {}\n"
    "local seen = {}\n"
    "for d = 1, nd do\n"
    "  local g = {op = a[i], mk = a[i + 1], mexp = a[i + 2]}\n"
    "  local nk = tonumber(a[i + 3]); i = i + 4\n"
    "  g.ks = i; g.ke = i + nk - 1; i = i + nk\n"
    "  local ni = tonumber(a[i]); i = i + 1\n"
    "  g.is = i; g.ie = i + ni - 1; i = i + ni\n"
    "  groups[d] = g\n"
    "  r = badexp(g.mk, g.mexp); if r then return r end\n"
    "  for k = g.ks, g.ke do\n"
    "    local ty = typeof(a[k])\n"
    "    if ty == 'hash' then\n"
    "      for c = g.is, g.ie, 1000 do\n"
    "        local m = redis.call('HMGET', a[k], unpack(a, c, math.min(c + 999, g.ie)))\n"
    "        for j = 1, #m do\n"
    "          if m[j] then seen[#seen + 1] = g.op; seen[#seen + 1] = a[c + j - 1] end\n"
    "        end\n"
    "      end\n"
    "    elseif ty ~= 'none' then\n"
    "      return {'REFUSED', a[k], 'holds a ' .. ty .. ', not a hash'}\n"
    "    end\n"
    "  end\n"
    "end\n"
    "local nh = tonumber(a[i]); i = i + 1\n"
    "local hs = {}\n"
    "local LIM = 9223372036854771712\n"
    "for h = 1, nh do\n"
    "  local key, exp, nf = a[i], a[i + 1], tonumber(a[i + 2]); i = i + 3\n"
    "  hs[h] = {key = key, exp = exp, fs = i, nf = nf}\n"
    "  if exp ~= '0' then r = badexp(key, exp); if r then return r end end\n"
    "  for c = 0, nf - 1, 500 do\n"
    "    local fl = {}\n"
    "    for f = c, math.min(c + 499, nf - 1) do fl[#fl + 1] = a[i + 2 * f] end\n"
    "    local cur = redis.pcall('HMGET', key, unpack(fl))\n"
    "    if cur.err then return {'REFUSED', key, 'holds a ' .. typeof(key) .. ', not a hash'} end\n"
    "    for j = 1, #fl do\n"
    "      local v, dl = cur[j], a[i + 2 * (c + j - 1) + 1]\n"
    "      if v then\n"
    "        if not (v == '0' or string.match(v, '^%-?[1-9]%d*$')) or #v > 20 then\n"
    "          return {'REFUSED', key, 'field ' .. fl[j] .. ' holds ' .. string.sub(v, 1, 40) .. "
    "', not an integer'}\n"
    "        end\n"
    "        local sum = tonumber(v) + tonumber(dl)\n"
    "        if sum > LIM or sum < -LIM then\n"
    "          return {'REFUSED', key, 'field ' .. fl[j] .. ' holds ' .. v .. ': adding ' .. dl .. "
    "' would leave the 64-bit range'}\n"
    "        end\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "  i = i + 2 * nf\n"
    "end\n"
    "local ns = tonumber(a[i]); i = i + 1\n"
    "local ss = i\n"
    "for s = 1, ns do\n"
    "  r = want(a[i], 'set'); if r then return r end\n"
    "  i = i + 2\n"
    "end\n"
    "if #seen > 0 then return {'SEEN', seen} end\n"
    "for d = 1, nd do\n"
    "  local g = groups[d]\n"
    "  for c = g.is, g.ie, 500 do\n"
    "    local args = {}\n"
    "    for j = c, math.min(c + 499, g.ie) do args[#args + 1] = a[j]; args[#args + 1] = now end\n"
    "    redis.call('HSET', g.mk, unpack(args))\n"
    "  end\n"
    "  if g.ie >= g.is then redis.call('EXPIREAT', g.mk, g.mexp) end\n"
    "end\n"
    "for h = 1, nh do\n"
    "  local hh = hs[h]\n"
    "  for f = 0, hh.nf - 1 do\n"
    "    redis.call('HINCRBY', hh.key, a[hh.fs + 2 * f], a[hh.fs + 2 * f + 1])\n"
    "  end\n"
    "  if hh.exp ~= '0' then redis.call('EXPIREAT', hh.key, hh.exp) end\n"
    "end\n"
    "for s = 0, ns - 1 do redis.call('SADD', a[ss + 2 * s], a[ss + 2 * s + 1]) end\n"
    "for c = 1, #offs, 1000 do\n"
    "  redis.call('HSET', okey, unpack(offs, c, math.min(c + 999, #offs)))\n"
    "end\n"
    "return {'OK'}\n";

struct ops_counter_redis {
    char *url;
    char *password_file;
    int timeout_ms;
    redisContext *ctx;
    char sha[41]; /* "" until loaded on this connection */
    ops_counter_args_t args;
    const char **argv; /* EVALSHA sha 0 + args */
    size_t *argvlen;
    size_t argv_cap;
};

ops_counter_redis_t *ops_counter_redis_new(const char *url, const char *password_file,
                                           int timeout_ms, char *errstr, size_t errstr_size) {
    ops_counter_redis_t *cr = NULL;
    ops_redis_url_t parsed;

    if (url == NULL || ops_redis_url_parse(url, &parsed, errstr, errstr_size) != 0)
        goto fail;
    memset(&parsed, 0, sizeof(parsed)); /* may hold a password */
    cr = calloc(1, sizeof(*cr));
    if (cr == NULL || (cr->url = strdup(url)) == NULL ||
        (cr->password_file = strdup(password_file ? password_file : "")) == NULL) {
        ops_err_format(errstr, errstr_size, "redis: out of memory");
        goto fail;
    }
    cr->timeout_ms = timeout_ms > 0 ? timeout_ms : 5000;
    return cr;

fail:
    ops_counter_redis_destroy(cr);
    return NULL;
}

void ops_counter_redis_destroy(ops_counter_redis_t *cr) {
    if (cr == NULL)
        return;
    if (cr->ctx != NULL)
        redisFree(cr->ctx);
    ops_counter_args_free(&cr->args);
    free(cr->argv);
    free(cr->argvlen);
    free(cr->url);
    free(cr->password_file);
    free(cr);
}

/* Drops the connection after an I/O error; the next call reconnects. */
static void disconnect(ops_counter_redis_t *cr) {
    if (cr->ctx != NULL)
        redisFree(cr->ctx);
    cr->ctx = NULL;
    cr->sha[0] = '\0';
}

static int load_script(ops_counter_redis_t *cr, char *errstr, size_t errstr_size) {
    redisReply *r = redisCommand(cr->ctx, "SCRIPT LOAD %s", counter_script);
    int rc = -1;

    if (r == NULL) {
        ops_err_format(errstr, errstr_size, "redis: %s", cr->ctx->errstr);
        disconnect(cr);
        goto cleanup;
    }
    if (r->type != REDIS_REPLY_STRING || r->len != 40) {
        ops_err_format(errstr, errstr_size, "redis: SCRIPT LOAD: %s",
                       r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
        if (ops_redis_reply_wants_reconnect(r))
            disconnect(cr);
        goto cleanup;
    }
    memcpy(cr->sha, r->str, 40);
    cr->sha[40] = '\0';
    rc = 0;
cleanup:
    if (r != NULL)
        freeReplyObject(r);
    return rc;
}

static int ensure_connected(ops_counter_redis_t *cr, char *errstr, size_t errstr_size) {
    if (cr->ctx != NULL && cr->ctx->err == 0)
        return 0;
    disconnect(cr);
    cr->ctx = ops_redis_connect(cr->url, cr->password_file, cr->timeout_ms, errstr, errstr_size);
    return cr->ctx != NULL ? 0 : -1;
}

/* EVALSHA sha 0 ARGV..., reloading the script once when the server lost
 * it (a restart, SCRIPT FLUSH). Returns the reply or NULL with errstr. */
static redisReply *run_script(ops_counter_redis_t *cr, char *errstr, size_t errstr_size) {
    const ops_counter_args_t *a = &cr->args;
    size_t n = a->argc + 3;

    if (n > cr->argv_cap) {
        const char **argv = realloc(cr->argv, n * sizeof(*argv));
        if (argv == NULL)
            goto oom;
        cr->argv = argv;
        size_t *lens = realloc(cr->argvlen, n * sizeof(*lens));
        if (lens == NULL)
            goto oom;
        cr->argvlen = lens;
        cr->argv_cap = n;
    }
    for (int attempt = 0; attempt < 2; attempt++) {
        if (cr->sha[0] == '\0' && load_script(cr, errstr, errstr_size) != 0)
            return NULL;
        cr->argv[0] = "EVALSHA";
        cr->argvlen[0] = 7;
        cr->argv[1] = cr->sha;
        cr->argvlen[1] = 40;
        cr->argv[2] = "0";
        cr->argvlen[2] = 1;
        memcpy(cr->argv + 3, a->argv, a->argc * sizeof(*a->argv));
        memcpy(cr->argvlen + 3, a->argvlen, a->argc * sizeof(*a->argvlen));
        redisReply *r = redisCommandArgv(cr->ctx, (int)n, cr->argv, cr->argvlen);
        if (r == NULL) {
            ops_err_format(errstr, errstr_size, "redis: %s", cr->ctx->errstr);
            disconnect(cr);
            return NULL;
        }
        if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0) {
            freeReplyObject(r);
            cr->sha[0] = '\0';
            continue;
        }
        return r;
    }
    ops_err_format(errstr, errstr_size, "redis: the script keeps disappearing (NOSCRIPT)");
    return NULL;
oom:
    ops_err_format(errstr, errstr_size, "redis: out of memory");
    return NULL;
}

static const char *elem_str(const redisReply *r, size_t i) {
    if (r->type != REDIS_REPLY_ARRAY || i >= r->elements)
        return NULL;
    const redisReply *e = r->element[i];
    return e->type == REDIS_REPLY_STRING || e->type == REDIS_REPLY_STATUS ? e->str : NULL;
}

/* Drops the (operation, id) pairs of a SEEN reply from the batch. Returns
 * how many were dropped. */
static size_t drop_seen(ops_counter_t *c, const redisReply *list) {
    size_t n = 0;

    if (list->type != REDIS_REPLY_ARRAY)
        return 0;
    for (size_t i = 0; i + 1 < list->elements; i += 2) {
        const char *op = elem_str(list, i), *id = elem_str(list, i + 1);
        if (op != NULL && id != NULL)
            n += (size_t)ops_counter_drop_seen(c, op, id);
    }
    return n;
}

/* The retry loop around the script: SEEN replies shrink the batch, so it
 * ends; anything unexpected leaves the batch as it was (FAILED). */
ops_counter_step_t ops_counter_redis_apply(ops_counter_redis_t *cr, ops_counter_t *c,
                                           int64_t now_ms, size_t *seenp, char *errstr,
                                           size_t errstr_size) {
    ops_counter_step_t step = OPS_COUNTER_STEP_FAILED;
    redisReply *r = NULL;
    size_t seen = 0;

    if (ops_counter_pending(c) == 0) {
        step = OPS_COUNTER_STEP_APPLIED;
        goto cleanup;
    }
    for (;;) {
        if (ensure_connected(cr, errstr, errstr_size) != 0)
            goto cleanup;
        if (ops_counter_build(c, now_ms, &cr->args, errstr, errstr_size) != 0)
            goto cleanup;
        r = run_script(cr, errstr, errstr_size);
        if (r == NULL)
            goto cleanup;
        const char *status = elem_str(r, 0);
        if (r->type == REDIS_REPLY_ERROR) {
            ops_err_format(errstr, errstr_size, "redis: counter script: %s", r->str);
            if (ops_redis_reply_wants_reconnect(r))
                disconnect(cr); /* a replica now: find the primary again */
            goto cleanup;
        }
        if (status != NULL && strcmp(status, "OK") == 0) {
            ops_counter_applied(c);
            step = OPS_COUNTER_STEP_APPLIED;
            goto cleanup;
        }
        if (status != NULL && strcmp(status, "FENCED") == 0) {
            const char *f = elem_str(r, 1), *cur = elem_str(r, 2), *exp = elem_str(r, 3);
            ops_err_format(errstr, errstr_size,
                           "offsets moved on: %s holds %s in Redis, this consumer expected %s",
                           f ? f : "?", cur && *cur ? cur : "nothing",
                           exp && *exp ? exp : "nothing");
            ops_counter_discard(c);
            step = OPS_COUNTER_STEP_FENCED;
            goto cleanup;
        }
        if (status != NULL && strcmp(status, "REFUSED") == 0) {
            const char *key = elem_str(r, 1), *why = elem_str(r, 2);
            ops_err_format(errstr, errstr_size,
                           "key %s %s: nothing of the batch was written and its offsets did not "
                           "move; fix or delete the key, the batch is retried",
                           key ? key : "?", why ? why : "is refused");
            step = OPS_COUNTER_STEP_REFUSED;
            goto cleanup;
        }
        if (status != NULL && strcmp(status, "SEEN") == 0 && r->elements == 2) {
            size_t n = drop_seen(c, r->element[1]);
            if (n == 0) {
                ops_err_format(errstr, errstr_size,
                               "redis: SEEN reply names no event of the batch");
                goto cleanup;
            }
            seen += n;
            freeReplyObject(r);
            r = NULL;
            continue;
        }
        ops_err_format(errstr, errstr_size, "redis: unexpected reply from the counter script");
        goto cleanup;
    }
cleanup:
    if (r != NULL)
        freeReplyObject(r);
    if (seenp != NULL)
        *seenp = seen;
    return step;
}

/* One HMGET for all assigned partitions; a missing field means "start at
 * the beginning". A value that is not a number is refused rather than
 * guessed at. */
int ops_counter_redis_load_offsets(ops_counter_redis_t *cr, ops_counter_t *c, const char *group,
                                   char *errstr, size_t errstr_size) {
    size_t n = ops_counter_partitions(c);
    const char **argv = NULL;
    size_t *lens = NULL;
    char(*fields)[OPS_COUNTER_TOPIC_MAX + 16] = NULL;
    int64_t *vals = NULL;
    char key[OPS_KEY_MAX];
    redisReply *r = NULL;
    int rc = -1;

    if (n == 0)
        return 0;
    if (ops_key_offsets(group, key, sizeof key) < 0) {
        ops_err_format(errstr, errstr_size, "group name too long for a key");
        goto cleanup;
    }
    argv = calloc(n + 2, sizeof(*argv));
    lens = calloc(n + 2, sizeof(*lens));
    fields = calloc(n, sizeof(*fields));
    vals = calloc(n, sizeof(*vals));
    if (argv == NULL || lens == NULL || fields == NULL || vals == NULL) {
        ops_err_format(errstr, errstr_size, "out of memory");
        goto cleanup;
    }
    argv[0] = "HMGET";
    argv[1] = key;
    for (size_t i = 0; i < n; i++) {
        const char *topic;
        int32_t part;
        ops_counter_partition(c, i, &topic, &part, NULL);
        snprintf(fields[i], sizeof(fields[i]), "%s:%d", topic, (int)part);
        argv[i + 2] = fields[i];
    }
    for (size_t i = 0; i < n + 2; i++)
        lens[i] = strlen(argv[i]);
    if (ensure_connected(cr, errstr, errstr_size) != 0)
        goto cleanup;
    r = redisCommandArgv(cr->ctx, (int)(n + 2), argv, lens);
    if (r == NULL) {
        ops_err_format(errstr, errstr_size, "redis: %s", cr->ctx->errstr);
        disconnect(cr);
        goto cleanup;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements != n) {
        ops_err_format(errstr, errstr_size, "redis: HMGET %s: %s", key,
                       r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
        if (ops_redis_reply_wants_reconnect(r))
            disconnect(cr);
        goto cleanup;
    }
    for (size_t i = 0; i < n; i++) {
        const redisReply *e = r->element[i];
        char *end;
        vals[i] = -1;
        if (e->type == REDIS_REPLY_NIL)
            continue;
        if (e->type != REDIS_REPLY_STRING ||
            (vals[i] = strtoll(e->str, &end, 10), end == e->str || *end != '\0' || vals[i] < 0)) {
            ops_err_format(errstr, errstr_size, "redis: %s field %s is not an offset", key,
                           fields[i]);
            goto cleanup;
        }
    }
    for (size_t i = 0; i < n; i++) {
        const char *topic;
        int32_t part;
        ops_counter_partition(c, i, &topic, &part, NULL);
        if (ops_counter_assign(c, topic, part, vals[i], errstr, errstr_size) != 0)
            goto cleanup;
    }
    rc = 0;
cleanup:
    if (r != NULL)
        freeReplyObject(r);
    free(argv);
    free(lens);
    free(fields);
    free(vals);
    return rc;
}

/* One HSET per gap: gaps are rare (a consumer that fell behind retention),
 * and HSET's reply says whether the field is new, so the caller reports
 * each gap once however often the batch is retried. */
int ops_counter_redis_record_gap(ops_counter_redis_t *cr, const char *group,
                                 const ops_counter_gap_t *gap, int64_t now_ms, char *errstr,
                                 size_t errstr_size) {
    char key[OPS_KEY_MAX], field[OPS_COUNTER_TOPIC_MAX + 64], when[32];
    redisReply *r = NULL;
    int rc = -1;

    if ((size_t)snprintf(key, sizeof key, "opstream:gaps:%s", group) >= sizeof key) {
        ops_err_format(errstr, errstr_size, "group name too long for a key");
        goto cleanup;
    }
    snprintf(field, sizeof field, "%s:%d:%lld-%lld", gap->topic, (int)gap->partition,
             (long long)gap->from, (long long)gap->to);
    snprintf(when, sizeof when, "%lld", (long long)now_ms);
    if (ensure_connected(cr, errstr, errstr_size) != 0)
        goto cleanup;
    r = redisCommand(cr->ctx, "HSET %s %s %s", key, field, when);
    if (r == NULL) {
        ops_err_format(errstr, errstr_size, "redis: %s", cr->ctx->errstr);
        disconnect(cr);
        goto cleanup;
    }
    if (r->type != REDIS_REPLY_INTEGER) {
        ops_err_format(errstr, errstr_size, "redis: HSET %s: %s", key,
                       r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
        if (ops_redis_reply_wants_reconnect(r))
            disconnect(cr);
        goto cleanup;
    }
    rc = r->integer > 0 ? 1 : 0;
cleanup:
    if (r != NULL)
        freeReplyObject(r);
    return rc;
}

void ops_counter_redis_where(const ops_counter_redis_t *cr, char *buf, size_t size) {
    ops_redis_where(cr != NULL && cr->ctx != NULL && cr->ctx->err == 0 ? cr->ctx : NULL, buf, size);
}
