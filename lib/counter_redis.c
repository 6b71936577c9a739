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

#include "opstream/event.h"
#include "opstream/keys.h"
#include "opstream/validate.h"
#include "opstream/redis_cluster.h"
#include "opstream/redis_link.h"
#include "err_priv.h"

/* One operation's step (argument layout in counter.h). A Lua script that
 * fails half-way keeps the writes it made (Redis has no rollback), so
 * phase 1 only reads and checks everything a write of phase 2 could fail on:
 *   - the watermark of every partition the step covers (KEYS[1], field
 *     "topic:partition"): an integer at most the lowest offset of the
 *     operation's events from that partition; a higher one means an earlier
 *     step of this operation already covered some of them: APPLIED with the
 *     field and the watermark, nothing written (the client drops the events
 *     below it and retries);
 *   - the type of every key phase 2 writes (applied and seen hashes, counter
 *     hashes: hash; countries: set); another type is REFUSED naming the key.
 *     A key's type is learnt from the read phase 1 does anyway (HMGET of a
 *     hash, SMISMEMBER of the countries, which also says whether a SADD is
 *     needed at all; redis.pcall: a wrong type is an error reply, not a
 *     script error);
 *   - the current value of every counter field the step writes: an integer
 *     Redis can increment, and current + delta within int64 (a margin of
 *     2^12 below the limit, since Lua numbers are doubles), else REFUSED
 *     naming key and field. Values of up to 15 digits (with deltas of up to
 *     15) take a short path: one string.find for the form, the sum exact in
 *     a double and formatted with %d. A totals or per-country hash with a
 *     listed field missing (new) also has its unlisted metrics read, checked
 *     and created at 0 where missing, so it keeps all of them; on a hash
 *     holding every listed field the unlisted ones (delta 0) are not read;
 *   - every EXPIREAT time: a positive integer Redis accepts (< 10^15 s);
 *   - no event id counted within the window (the ids as 16 raw bytes): the
 *     current generation hash is looked up (one HMGET; any mark there is
 *     within the window), then, when the previous generation exists, for the
 *     ids the current one lacks (a mark there, seconds after that
 *     generation's start, is seen when it is after now - window); seen ids
 *     are returned with SEEN, nothing written. New marks hold the seconds
 *     since the current generation's start.
 * Redis runs a script without interleaving, so phase 2 sees what phase 1
 * checked, and it only issues commands that cannot fail on what was
 * checked (an out-of-memory refusal comes at the first write, before any
 * write). Phase 2 writes each counter hash with one HSET of the new values
 * computed from phase 1's read (HINCRBY only for a value beyond 2^53, which
 * a Lua number cannot hold exactly); a zero delta on an existing field is no
 * write at all. Long argument runs go through unpack() in chunks (Lua's C
 * stack limit). */
static const char op_script[] =
    "local A, K = ARGV, KEYS\n"
    "local now, win, nd, mexp = tonumber(A[1]), tonumber(A[2]), tonumber(A[3]), A[4]\n"
    "local function typeof(k) return redis.call('TYPE', k)['ok'] end\n"
    "local function wrong(k, t) return {'REFUSED', k, 'holds a ' .. typeof(k) .. ', not a ' .. t} "
    "end\n"
    "local function isint(v) return (v == '0' or string.match(v, '^%-?[1-9]%d*$')) and #v <= 20 "
    "end\n"
    "local function badexp(k, e)\n"
    "  if not string.match(e, '^[1-9]%d*$') or #e > 15 then\n"
    "    return {'REFUSED', k, 'expiry time ' .. e .. ' is not one Redis accepts'}\n"
    "  end\n"
    "end\n"
    "local function mget(k, t, from, to)\n"
    "  if to - from < 3000 then\n"
    "    local m = redis.pcall('HMGET', k, unpack(t, from, to))\n"
    "    if m.err then return nil end\n"
    "    return m\n"
    "  end\n"
    "  local out = {}\n"
    "  for c = from, to, 3000 do\n"
    "    local m = redis.pcall('HMGET', k, unpack(t, c, math.min(c + 2999, to)))\n"
    "    if m.err then return nil end\n"
    "    for j = 1, #m do out[c - from + j] = m[j] end\n"
    "  end\n"
    "  return out\n"
    "end\n"
    "local akey, ckey = K[1], K[2]\n"
    "local i = 5\n"
    "local np = tonumber(A[i]); i = i + 1\n"
    "local pf, pl, pn = {}, {}, {}\n"
    "for p = 1, np do pf[p] = A[i]; pl[p] = tonumber(A[i + 1]); pn[p] = A[i + 2]; i = i + 3 end\n"
    "local w = mget(akey, pf, 1, np)\n"
    "if not w then return wrong(akey, 'hash') end\n"
    "for p = 1, np do\n"
    "  local v = w[p]\n"
    "  if v then\n"
    "    if not isint(v) then\n"
    "      return {'REFUSED', akey, 'field ' .. pf[p] .. ' holds ' .. string.sub(v, 1, 40) .. ', "
    "not an offset'}\n"
    "    end\n"
    "    if tonumber(v) > pl[p] then return {'APPLIED', pf[p], v} end\n"
    "  end\n"
    "end\n"

    "local ni = tonumber(A[i]); i = i + 1\n"
    "local is, ie = i, i + ni - 1\n"
    "i = i + ni\n"
    "local nm = tonumber(A[i]); local ms = i + 1\n"
    "i = i + 1 + nm\n"
    "local seen, mv = {}, nil\n"
    "if nd > 0 and ni > 0 then\n"
    "  local r = badexp(K[3], mexp); if r then return r end\n"
    "  local age = now - (tonumber(mexp) - 2 * win)\n"
    "  mv = string.format('%d', age)\n"
    "  local prev = redis.call('EXISTS', K[4]) == 1\n"
    "  for c = is, ie, 3000 do\n"
    "    local e = math.min(c + 2999, ie)\n"
    "    local m = redis.pcall('HMGET', K[3], unpack(A, c, e))\n"
    "    if m.err then return wrong(K[3], 'hash') end\n"
    "    local ns = #seen\n"
    "    for j = 1, #m do if m[j] then seen[#seen + 1] = A[c + j - 1] end end\n"
    "    if prev then\n"
    "      local p, miss\n"
    "      if #seen == ns then\n"
    "        p = redis.pcall('HMGET', K[4], unpack(A, c, e)); miss = nil\n"
    "      else\n"
    "        miss = {}\n"
    "        for j = 1, #m do if not m[j] then miss[#miss + 1] = c + j - 1 end end\n"
    "        if #miss > 0 then\n"
    "          local ids = {}\n"
    "          for j = 1, #miss do ids[j] = A[miss[j]] end\n"
    "          p = redis.pcall('HMGET', K[4], unpack(ids))\n"
    "        end\n"
    "      end\n"
    "      if p then\n"
    "        if p.err then return wrong(K[4], 'hash') end\n"
    "        for j = 1, #p do\n"
    "          local v = p[j]\n"
    "          if v and not (tonumber(v) and tonumber(v) <= age) then\n"
    "            seen[#seen + 1] = A[miss and miss[j] or c + j - 1]\n"
    "          end\n"
    "        end\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "end\n"
    "local hb = 3 + nd\n"
    "local nh, hk, he, hset, hinc = 0, {}, {}, {}, {}\n"
    "local LIM, EXACT = 9223372036854771712, 9007199254740992\n"
    "local find, fmt = string.find, string.format\n"
    "for h = hb, #K do\n"
    "  local key, exp, nf = K[h], A[i], tonumber(A[i + 1]); i = i + 2\n"
    "  if exp ~= '0' then local r = badexp(key, exp); if r then return r end end\n"
    "  local cur = mget(key, A, i, i + nf - 1)\n"
    "  if not cur then return wrong(key, 'hash') end\n"
    "  local ds = i + nf - 1\n"
    "  local set, n, incr, miss = {}, 0, nil, false\n"
    "  for j = 1, nf do\n"
    "    local v, dl = cur[j], A[ds + j]\n"
    "    if not v then\n"
    "      n = n + 2; set[n - 1] = A[i + j - 1]; set[n] = dl; miss = true\n"
    "    elseif #v < 16 and #dl < 16 and (v == '0' or find(v, '^%-?[1-9]%d*$')) then\n"
    "      if dl ~= '0' then n = n + 2; set[n - 1] = A[i + j - 1]; set[n] = fmt('%d', v + dl) end\n"
    "    else\n"
    "      local f = A[i + j - 1]\n"
    "      if not isint(v) then\n"
    "        return {'REFUSED', key, 'field ' .. f .. ' holds ' .. string.sub(v, 1, 40) .. ', "
    "not an integer'}\n"
    "      end\n"
    "      local x, d = tonumber(v), tonumber(dl)\n"
    "      local sum = x + d\n"
    "      if sum > LIM or sum < -LIM then\n"
    "        return {'REFUSED', key, 'field ' .. f .. ' holds ' .. v .. ': adding ' .. dl .. "
    "' would leave the 64-bit range'}\n"
    "      end\n"
    "      if d ~= 0 then\n"
    "        if math.abs(x) < EXACT and math.abs(d) < EXACT and math.abs(sum) < EXACT then\n"
    "          n = n + 2; set[n - 1] = f; set[n] = fmt('%.0f', sum)\n"
    "        else\n"
    "          incr = incr or {}; incr[#incr + 1] = f; incr[#incr + 1] = dl\n"
    "        end\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "  if exp == '0' and miss then\n"
    "    local listed, extra = {}, {}\n"
    "    for j = 1, nf do listed[A[i + j - 1]] = true end\n"
    "    for m = ms, ms + nm - 1 do if not listed[A[m]] then extra[#extra + 1] = A[m] end end\n"
    "    if #extra > 0 then\n"
    "      local z = redis.pcall('HMGET', key, unpack(extra))\n"
    "      if z.err then return wrong(key, 'hash') end\n"
    "      for j = 1, #extra do\n"
    "        local v = z[j]\n"
    "        if not v then\n"
    "          n = n + 2; set[n - 1] = extra[j]; set[n] = '0'\n"
    "        elseif not isint(v) then\n"
    "          local f = 'field ' .. extra[j] .. ' holds ' .. string.sub(v, 1, 40)\n"
    "          return {'REFUSED', key, f .. ', not an integer'}\n"
    "        end\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "  nh = nh + 1; hk[nh] = key; he[nh] = exp; hset[nh] = set; hinc[nh] = incr or false\n"
    "  i = i + 2 * nf\n"
    "end\n"
    "local nc = tonumber(A[i]); local cs = i + 1\n"
    "local newc = {}\n"
    "if nc > 0 then\n"
    "  local mm = redis.pcall('SMISMEMBER', ckey, unpack(A, cs, cs + nc - 1))\n"
    "  if mm.err then return wrong(ckey, 'set') end\n"
    "  for j = 1, nc do if mm[j] == 0 then newc[#newc + 1] = A[cs + j - 1] end end\n"
    "end\n"
    "if #seen > 0 then return {'SEEN', seen} end\n"
    "if nd > 0 and ni > 0 then\n"
    "  local t = mv\n"
    "  for c = is, ie, 2000 do\n"
    "    local args, n = {}, 0\n"
    "    for j = c, math.min(c + 1999, ie) do args[n + 1] = A[j]; args[n + 2] = t; n = n + 2 end\n"
    "    redis.call('HSET', K[3], unpack(args, 1, n))\n"
    "  end\n"
    "  redis.call('EXPIREAT', K[3], mexp)\n"
    "end\n"
    "for h = 1, nh do\n"
    "  local key, set, inc = hk[h], hset[h], hinc[h]\n"
    "  for c = 1, #set, 4000 do\n"
    "    redis.call('HSET', key, unpack(set, c, math.min(c + 3999, #set)))\n"
    "  end\n"
    "  if inc then for c = 1, #inc, 2 do redis.call('HINCRBY', key, inc[c], inc[c + 1]) end end\n"
    "  if he[h] ~= '0' then redis.call('EXPIREAT', key, he[h]) end\n"
    "end\n"
    "if #newc > 0 then redis.call('SADD', ckey, unpack(newc)) end\n"
    "local ws = {}\n"
    "for p = 1, np do ws[#ws + 1] = pf[p]; ws[#ws + 1] = pn[p] end\n"
    "for c = 1, #ws, 4000 do redis.call('HSET', akey, unpack(ws, c, math.min(c + 3999, #ws))) end\n"
    "return {'OK'}\n";

/* The group's resume offsets, written once every operation's step of the
 * batch succeeded: KEYS[1] the offsets hash, ARGV {field expected next} x P.
 * Any field holding another value than expected: FENCED, nothing written. */
static const char offsets_script[] =
    "local k = KEYS[1]\n"
    "local n = #ARGV / 3\n"
    "local fl = {}\n"
    "for p = 1, n do fl[p] = ARGV[3 * p - 2] end\n"
    "for c = 1, n, 3000 do\n"
    "  local cur = redis.pcall('HMGET', k, unpack(fl, c, math.min(c + 2999, n)))\n"
    "  if cur.err then\n"
    "    return {'REFUSED', k, 'holds a ' .. redis.call('TYPE', k)['ok'] .. ', not a hash'}\n"
    "  end\n"
    "  for j = 1, #cur do\n"
    "    local p = c + j - 1\n"
    "    local v = cur[j] or ''\n"
    "    if v ~= ARGV[3 * p - 1] then return {'FENCED', fl[p], v, ARGV[3 * p - 1]} end\n"
    "  end\n"
    "end\n"
    "local ws = {}\n"
    "for p = 1, n do ws[#ws + 1] = fl[p]; ws[#ws + 1] = ARGV[3 * p] end\n"
    "for c = 1, #ws, 4000 do redis.call('HSET', k, unpack(ws, c, math.min(c + 3999, #ws))) end\n"
    "return {'OK'}\n";

/* An operation's watermark key to WAIT for (Redis Cluster). */
typedef struct wait_key {
    char key[OPS_KEY_MAX];
    char field[OPS_COUNTER_TOPIC_MAX + 16]; /* APPLIED: the watermark field it named */
} wait_key_t;

struct ops_counter_redis {
    ops_redis_link_t *link;
    char op_sha[41]; /* "" until learnt from SCRIPT LOAD (same on every node) */
    char cas_sha[41];
    int wait_replicas, wait_ms;
    long long wait_acked; /* replicas the last WAIT reported; -1: none */
    ops_counter_args_t args;
    const char **sadd; /* SADD opstream:operations OP... */
    size_t *sadd_len;
    size_t sadd_cap;
    unsigned char *state; /* per operation of the built step */
    size_t state_cap;
    /* Redis Cluster with WAIT: a key of each operation whose step this
     * apply ran or found applied (APPLIED): their nodes must have the step
     * on enough replicas before the offsets, on another node, pass it. */
    wait_key_t *wkeys;
    size_t nwkeys, wkeys_cap;
    /* A connection was lost with commands of this step sent on it (their
     * replies lost): the step is sent again at once, once (resends). */
    bool lost;
    unsigned long long resends;
    /* A gap whose HSET went out and whose reply was lost: the HSET may
     * have been applied, so its next "already there" is taken as new. */
    char gap_doubt[OPS_COUNTER_TOPIC_MAX + 64];
};

ops_counter_redis_t *ops_counter_redis_new(const char *url, const char *password_file,
                                           int timeout_ms, char *errstr, size_t errstr_size) {
    ops_counter_redis_t *cr = calloc(1, sizeof(*cr));

    if (cr == NULL) {
        ops_err_format(errstr, errstr_size, "redis: out of memory");
        return NULL;
    }
    cr->link = ops_redis_link_new(url, password_file, timeout_ms > 0 ? timeout_ms : 5000, errstr,
                                  errstr_size);
    if (cr->link == NULL) {
        free(cr);
        return NULL;
    }
    cr->wait_acked = -1;
    return cr;
}

void ops_counter_redis_destroy(ops_counter_redis_t *cr) {
    if (cr == NULL)
        return;
    ops_redis_link_destroy(cr->link);
    ops_counter_args_free(&cr->args);
    free(cr->sadd);
    free(cr->sadd_len);
    free(cr->state);
    free(cr->wkeys);
    free(cr);
}

void ops_counter_redis_set_wait(ops_counter_redis_t *cr, int replicas, int timeout_ms) {
    cr->wait_replicas = replicas > 0 ? replicas : 0;
    cr->wait_ms = timeout_ms > 0 ? timeout_ms : 0;
}

long long ops_counter_redis_wait_acked(const ops_counter_redis_t *cr) {
    return cr->wait_acked;
}

unsigned long long ops_counter_redis_resends(const ops_counter_redis_t *cr) {
    return cr->resends;
}

static void drain(ops_counter_redis_t *cr);

/* The next reply of the step's connection; NULL (with errstr) when the
 * connection was lost with it pending: the step is then tried once more at
 * once (lost). */
static redisReply *step_reply(ops_counter_redis_t *cr, char *errstr, size_t errstr_size) {
    redisReply *r = ops_redis_link_reply(cr->link, errstr, errstr_size);

    if (r == NULL)
        cr->lost = true;
    return r;
}

/* True when the offsets may pass a step only once its node's replicas have
 * it: a cluster, where the offsets key lives on another primary than the
 * operations' keys, with opstream.redis.wait.replicas set. */
static bool wait_per_node(const ops_counter_redis_t *cr) {
    return cr->wait_replicas > 0 && ops_redis_link_is_cluster(cr->link);
}

/* Remembers the watermark key of an operation whose step is applied, for
 * the WAIT before the offsets; field: the watermark field an APPLIED reply
 * named (NULL for a step applied now). 0, or -1 when out of memory. */
static int wait_key_add(ops_counter_redis_t *cr, const char *key, const char *field) {
    if (!wait_per_node(cr))
        return 0;
    for (size_t i = 0; i < cr->nwkeys; i++)
        if (strcmp(cr->wkeys[i].key, key) == 0 && (field == NULL || cr->wkeys[i].field[0]))
            return 0;
    if (cr->nwkeys == cr->wkeys_cap) {
        size_t cap = cr->wkeys_cap ? cr->wkeys_cap * 2 : 16;
        wait_key_t *v = realloc(cr->wkeys, cap * sizeof(*v));
        if (v == NULL)
            return -1;
        cr->wkeys = v;
        cr->wkeys_cap = cap;
    }
    wait_key_t *w = &cr->wkeys[cr->nwkeys++];
    snprintf(w->key, sizeof w->key, "%s", key);
    snprintf(w->field, sizeof w->field, "%s", field != NULL ? field : "");
    return 0;
}

/*
 * Redis Cluster with WAIT: before the offsets compare-and-set, WAIT on
 * every node that took (or already held) a step of the batch, one WAIT per
 * node (the link keeps one connection per primary, and WAIT covers every
 * write of that connection). The offsets, kept on another primary, may
 * pass the steps only when each node's replicas acknowledged them: a
 * failover of an operation's primary could otherwise lose a step whose
 * events the offsets no longer replay. 0 when every node answered at least
 * wait_replicas; else FAILED with errstr (the batch is retried: its applied
 * operations answer APPLIED from their watermarks and are waited for
 * again). An APPLIED step wrote nothing on the connection (which may even
 * be new since the step), so WAIT alone would not cover it: its node first
 * gets HINCRBY of the named watermark field by 0, a write that changes
 * nothing and reaches the replicas after the step.
 */
static int wait_steps(ops_counter_redis_t *cr, char *errstr, size_t errstr_size) {
    struct ops_redis_cluster *rc = ops_redis_link_cluster(cr->link);
    char nrep[24], nms[24], (*addr)[300] = NULL;
    size_t nsent = 0, ntouch = 0;
    long long least = -1;
    int rc_out = 0;

    if (cr->nwkeys == 0)
        return 0;
    addr = calloc(cr->nwkeys, sizeof(*addr));
    if (addr == NULL) {
        ops_err_format(errstr, errstr_size, "redis: out of memory");
        return OPS_COUNTER_STEP_FAILED;
    }
    snprintf(nrep, sizeof nrep, "%d", cr->wait_replicas);
    snprintf(nms, sizeof nms, "%d", cr->wait_ms);
    const char *wargv[3] = {"WAIT", nrep, nms};
    size_t wlens[3] = {4, strlen(nrep), strlen(nms)};
    for (size_t i = 0; i < cr->nwkeys; i++) {
        const wait_key_t *w = &cr->wkeys[i];
        const char *hargv[4] = {"HINCRBY", w->key, w->field, "0"};
        size_t hlens[4] = {7, strlen(w->key), strlen(w->field), 1};
        if (w->field[0] == '\0')
            continue;
        if (ops_redis_link_append(cr->link, w->key, 4, hargv, hlens, errstr, errstr_size) != 0) {
            drain(cr);
            free(addr);
            return OPS_COUNTER_STEP_FAILED;
        }
        ntouch++;
    }
    for (size_t i = 0; i < cr->nwkeys; i++) {
        const char *key = cr->wkeys[i].key;
        char a[300];
        bool dup = false;
        ops_redis_cluster_slot_addr(rc, ops_redis_cluster_key_slot(key, strlen(key)), a, sizeof a);
        for (size_t k = 0; k < nsent && a[0] != '\0' && !dup; k++)
            dup = strcmp(addr[k], a) == 0;
        if (dup)
            continue;
        if (ops_redis_link_append(cr->link, key, 3, wargv, wlens, errstr, errstr_size) != 0) {
            drain(cr);
            free(addr);
            return OPS_COUNTER_STEP_FAILED;
        }
        snprintf(addr[nsent++], sizeof addr[0], "%s", a);
    }
    for (size_t i = 0; i < ntouch + nsent; i++) {
        char e[256];
        bool is_wait = i >= ntouch;
        const char *where = is_wait && addr[i - ntouch][0] ? addr[i - ntouch] : "a node";
        redisReply *r = step_reply(cr, e, sizeof e);
        if (r == NULL) {
            ops_err_format(errstr, errstr_size, "%s", e);
            free(addr);
            return OPS_COUNTER_STEP_FAILED; /* the link dropped what was pending */
        }
        if (r->type != REDIS_REPLY_INTEGER) {
            if (rc_out == 0)
                ops_err_format(errstr, errstr_size, "redis: %s on %s: %s",
                               is_wait ? "WAIT" : "HINCRBY before WAIT", where,
                               r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
            rc_out = OPS_COUNTER_STEP_FAILED;
        } else if (is_wait) {
            if (least < 0 || r->integer < least)
                least = r->integer;
            if (r->integer < cr->wait_replicas && rc_out == 0) {
                ops_err_format(errstr, errstr_size,
                               "redis: the step on %s is not yet on %d replica%s (%lld "
                               "acknowledged within %d ms): the offsets wait for it",
                               where, cr->wait_replicas, cr->wait_replicas == 1 ? "" : "s",
                               r->integer, cr->wait_ms);
                rc_out = OPS_COUNTER_STEP_FAILED;
            }
        }
        freeReplyObject(r);
    }
    cr->wait_acked = least;
    free(addr);
    return rc_out;
}

/* SCRIPT LOAD routed by key (a cluster node or a promoted replica may lack
 * the script): learns its SHA1. Only when nothing is pending. */
static int load_script(ops_counter_redis_t *cr, const char *script, const char *key, char sha[41],
                       char *errstr, size_t errstr_size) {
    const char *argv[3] = {"SCRIPT", "LOAD", script};
    size_t lens[3] = {6, 4, strlen(script)};
    /* sent again once on a new connection when the last one was lost */
    redisReply *r =
        ops_redis_link_command_again(cr->link, key, 3, argv, lens, errstr, errstr_size);
    int rc = -1;

    if (r == NULL)
        return -1;
    if (r->type != REDIS_REPLY_STRING || r->len != 40) {
        ops_err_format(errstr, errstr_size, "redis: SCRIPT LOAD: %s",
                       r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
        goto cleanup;
    }
    memcpy(sha, r->str, 40);
    sha[40] = '\0';
    rc = 0;
cleanup:
    freeReplyObject(r);
    return rc;
}

static const char *elem_str(const redisReply *r, size_t i) {
    if (r->type != REDIS_REPLY_ARRAY || i >= r->elements)
        return NULL;
    const redisReply *e = r->element[i];
    return e->type == REDIS_REPLY_STRING || e->type == REDIS_REPLY_STATUS ? e->str : NULL;
}

/* A SEEN reply's id: the 16 bytes of the dedupe field back to the event
 * id's canonical text. */
static int seen_id(const redisReply *e, char id[OPS_EVENT_ID_LEN + 1]) {
    if (e->type != REDIS_REPLY_STRING || e->len != 16)
        return -1;
    ops_uuid_text((const uint8_t *)e->str, id);
    return 0;
}

static bool is_noscript(const redisReply *r) {
    return r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0;
}

/* Reads every pending reply and frees it (after a failure part-way, so the
 * link stays in step). */
static void drain(ops_counter_redis_t *cr) {
    char e[64];

    while (ops_redis_link_pending(cr->link) > 0) {
        redisReply *r = ops_redis_link_reply(cr->link, e, sizeof e);
        if (r == NULL)
            break;
        freeReplyObject(r);
    }
}

static ops_counter_step_t refused(const char *key, const char *why, char *errstr,
                                  size_t errstr_size) {
    ops_err_format(errstr, errstr_size,
                   "key %s %s: nothing of that step was written and the offsets did not move; "
                   "fix or delete the key, the batch is retried",
                   key ? key : "?", why ? why : "is refused");
    return OPS_COUNTER_STEP_REFUSED;
}

/* Redis holds cur, not exp, for the batch's partition f: another consumer
 * moved on (FENCED: the batch is dropped), or, when the reply to this
 * batch's own offsets write was lost, that write landed: cur is the batch's
 * next offset for f (the write sets every partition or none), and the batch
 * is APPLIED. */
static ops_counter_step_t fenced(ops_counter_redis_t *cr, ops_counter_t *c, const char *f,
                                 const char *cur, const char *exp, char *errstr,
                                 size_t errstr_size) {
    const ops_counter_args_t *a = &cr->args;

    /* the offsets call's arguments: per partition, field, expected, next */
    for (size_t i = a->cas_first + 4; i + 2 < a->cas_first + a->cas_argc; i += 3)
        if (ops_counter_offsets_doubted(c) && f != NULL && cur != NULL &&
            strcmp(a->argv[i], f) == 0 && strcmp(a->argv[i + 2], cur) == 0) {
            ops_counter_applied(c);
            return OPS_COUNTER_STEP_APPLIED;
        }
    ops_err_format(errstr, errstr_size,
                   "offsets moved on: %s holds %s in Redis, this consumer expected %s", f ? f : "?",
                   cur && *cur ? cur : "nothing", exp && *exp ? exp : "nothing");
    ops_counter_discard(c);
    return OPS_COUNTER_STEP_FENCED;
}

/* Round trip 1, before any write: opstream:operations is a set (or absent)
 * and the offsets hash holds what the batch expects (the compare-and-set
 * repeats that check; this one keeps a stale batch from even trying its
 * steps, and a key of another type from being found only after them).
 * Returns -1 (go on) or the step's outcome. */
static int precheck(ops_counter_redis_t *cr, ops_counter_t *c, char *errstr, size_t errstr_size) {
    const ops_counter_args_t *a = &cr->args;
    char opskey[OPS_KEY_MAX];
    const char *targv[2] = {"TYPE", opskey};
    size_t tlens[2] = {4, 0};
    size_t nf = (a->cas_argc - 4) / 3, n = nf + 2;
    const char **hargv = NULL;
    size_t *hlens = NULL;
    redisReply *t = NULL, *h = NULL;
    int rc = OPS_COUNTER_STEP_FAILED;

    ops_key_operations(opskey, sizeof opskey);
    tlens[1] = strlen(opskey);
    hargv = malloc(n * sizeof(*hargv));
    hlens = malloc(n * sizeof(*hlens));
    if (hargv == NULL || hlens == NULL) {
        ops_err_format(errstr, errstr_size, "redis: out of memory");
        goto cleanup;
    }
    hargv[0] = "HMGET";
    hlens[0] = 5;
    hargv[1] = a->argv[a->cas_first + 3];
    hlens[1] = a->argvlen[a->cas_first + 3];
    for (size_t i = 0; i < nf; i++) {
        hargv[2 + i] = a->argv[a->cas_first + 4 + 3 * i];
        hlens[2 + i] = a->argvlen[a->cas_first + 4 + 3 * i];
    }
    if (ops_redis_link_append(cr->link, opskey, 2, targv, tlens, errstr, errstr_size) != 0 ||
        ops_redis_link_append(cr->link, hargv[1], (int)n, hargv, hlens, errstr, errstr_size) != 0) {
        drain(cr);
        goto cleanup;
    }
    if ((t = step_reply(cr, errstr, errstr_size)) == NULL ||
        (h = step_reply(cr, errstr, errstr_size)) == NULL)
        goto cleanup;
    if (t->type != REDIS_REPLY_STATUS ||
        (strcmp(t->str, "none") != 0 && strcmp(t->str, "set") != 0)) {
        if (t->type == REDIS_REPLY_STATUS) {
            char why[64];
            snprintf(why, sizeof why, "holds a %s, not a set", t->str);
            rc = refused(opskey, why, errstr, errstr_size);
        } else
            ops_err_format(errstr, errstr_size, "redis: TYPE %s: %s", opskey,
                           t->type == REDIS_REPLY_ERROR ? t->str : "unexpected reply");
        goto cleanup;
    }
    if (h->type == REDIS_REPLY_ERROR && strncmp(h->str, "WRONGTYPE", 9) == 0) {
        const char *ta[2] = {"TYPE", hargv[1]};
        size_t tl[2] = {4, hlens[1]};
        redisReply *ty = ops_redis_link_command(cr->link, hargv[1], 2, ta, tl, errstr, errstr_size);
        char why[64];
        snprintf(why, sizeof why, "holds a %s, not a hash",
                 ty != NULL && ty->type == REDIS_REPLY_STATUS ? ty->str : "value of another type");
        if (ty != NULL)
            freeReplyObject(ty);
        rc = refused(hargv[1], why, errstr, errstr_size);
        goto cleanup;
    }
    if (h->type != REDIS_REPLY_ARRAY || h->elements != nf) {
        ops_err_format(errstr, errstr_size, "redis: HMGET %s: %s", hargv[1],
                       h->type == REDIS_REPLY_ERROR ? h->str : "unexpected reply");
        goto cleanup;
    }
    for (size_t i = 0; i < nf; i++) {
        const redisReply *e = h->element[i];
        const char *exp = a->argv[a->cas_first + 5 + 3 * i];
        const char *cur = e->type == REDIS_REPLY_STRING ? e->str : "";
        if (e->type != REDIS_REPLY_STRING && e->type != REDIS_REPLY_NIL) {
            ops_err_format(errstr, errstr_size, "redis: HMGET %s: unexpected reply", hargv[1]);
            goto cleanup;
        }
        if (strcmp(cur, exp) != 0) {
            rc = fenced(cr, c, hargv[2 + i], cur, exp, errstr, errstr_size);
            goto cleanup;
        }
    }
    rc = -1;
cleanup:
    if (t != NULL)
        freeReplyObject(t);
    if (h != NULL)
        freeReplyObject(h);
    free(hargv);
    free(hlens);
    return rc;
}

enum { OP_OK = 1, OP_RETRY, OP_NOSCRIPT };

/* Round trip 2, streamed: each operation's script is sent as soon as it is
 * built, so that Redis runs one while the next is built. The build's calls
 * come here: the offsets call first (the precheck, once per step), then
 * each operation's. */
typedef struct stream {
    ops_counter_redis_t *cr;
    ops_counter_t *c;
    bool *checked; /* the precheck passed in an earlier round of the step */
    int rc;        /* -1: go on; else the step's outcome when the build stopped */
    size_t sent;   /* operation calls queued in this round */
    char *errstr;
    size_t errstr_size;
} stream_t;

/* The operation calls [from, to) of this round were sent and their
 * replies will not come (the connection is gone): each may have been
 * applied. */
static void in_doubt(ops_counter_redis_t *cr, ops_counter_t *c, const ops_counter_args_t *a,
                     size_t from, size_t to) {
    for (size_t o = from; o < to; o++)
        ops_counter_op_in_doubt(c, a, o);
    if (to > from)
        cr->lost = true;
}

static int stream_call(void *opaque, ops_counter_args_t *a, size_t call) {
    stream_t *s = opaque;
    ops_counter_redis_t *cr = s->cr;

    if (call == OPS_COUNTER_CALL_OFFSETS) {
        if (!*s->checked) {
            if ((s->rc = precheck(cr, s->c, s->errstr, s->errstr_size)) != -1)
                return 1;
            *s->checked = true;
        }
        return 0;
    }
    const ops_counter_op_args_t *op = &a->ops[call];
    /* nothing is pending yet when the script is first loaded: the SHA is
     * set from the first operation on */
    if (cr->op_sha[0] == '\0' && load_script(cr, op_script, a->argv[op->first + 3], cr->op_sha,
                                             s->errstr, s->errstr_size) != 0) {
        s->rc = OPS_COUNTER_STEP_FAILED;
        return 1;
    }
    a->argv[op->first + 1] = cr->op_sha;
    a->argvlen[op->first + 1] = 40;
    if (ops_redis_link_append(cr->link, a->argv[op->first + 3], (int)op->argc, a->argv + op->first,
                              a->argvlen + op->first, s->errstr, s->errstr_size) != 0) {
        in_doubt(cr, s->c, a, 0, call); /* the calls before this one went out */
        s->rc = OPS_COUNTER_STEP_FAILED;
        return 1;
    }
    s->sent++;
    /* A single server's connection carries this round's scripts only: one
     * replaced under them (its replies lost) must not take the rest. */
    if (ops_redis_link_flush(cr->link, s->errstr, s->errstr_size) != 0 ||
        (!ops_redis_link_is_cluster(cr->link) && ops_redis_link_pending(cr->link) != s->sent)) {
        if (s->errstr_size > 0 && s->errstr[0] == '\0')
            ops_err_format(s->errstr, s->errstr_size, "redis: the connection was replaced");
        in_doubt(cr, s->c, a, 0, call + 1);
        s->rc = OPS_COUNTER_STEP_FAILED;
        return 1;
    }
    return 0;
}

/* The replies of the operations' scripts. Returns -1 when every step was
 * applied, 0 when some must be retried (the batch shrank, or a script must
 * be loaded first), or the step's outcome. */
static int read_ops(ops_counter_redis_t *cr, ops_counter_t *c, char *errstr, size_t errstr_size) {
    ops_counter_args_t *a = &cr->args;
    int rc = -1;
    bool failed = false, retry = false;
    char why[256] = "";

    if (a->nops > cr->state_cap) {
        unsigned char *st = realloc(cr->state, a->nops);
        if (st == NULL) {
            ops_err_format(errstr, errstr_size, "redis: out of memory");
            drain(cr);
            return OPS_COUNTER_STEP_FAILED;
        }
        cr->state = st;
        cr->state_cap = a->nops;
    }
    for (size_t o = 0; o < a->nops; o++) {
        const ops_counter_op_args_t *op = &a->ops[o];
        const char *opname = a->argv[op->name];
        redisReply *r = step_reply(cr, errstr, errstr_size);
        cr->state[o] = 0;
        if (r == NULL) {
            /* the link dropped what was pending: calls o and on were sent */
            in_doubt(cr, c, a, o, a->nops);
            return OPS_COUNTER_STEP_FAILED;
        }
        const char *status = elem_str(r, 0);
        if (is_noscript(r)) {
            cr->state[o] = OP_NOSCRIPT;
            retry = true;
        } else if (r->type == REDIS_REPLY_ERROR) {
            if (!failed)
                ops_err_format(why, sizeof why, "redis: step of operation %s: %s", opname, r->str);
            failed = true;
        } else if (status != NULL && strcmp(status, "OK") == 0) {
            ops_counter_op_applied(c, a, o);
            cr->state[o] = OP_OK;
            if (wait_key_add(cr, a->argv[op->first + 3], NULL) != 0 && !failed) {
                ops_err_format(why, sizeof why, "redis: out of memory");
                failed = true;
            }
        } else if (status != NULL && strcmp(status, "APPLIED") == 0 && r->elements == 3) {
            if (elem_str(r, 1) != NULL &&
                wait_key_add(cr, a->argv[op->first + 3], elem_str(r, 1)) != 0 && !failed) {
                ops_err_format(why, sizeof why, "redis: out of memory");
                failed = true;
            }
            const char *f = elem_str(r, 1), *wm = elem_str(r, 2);
            size_t n = f != NULL && wm != NULL
                           ? ops_counter_drop_applied(c, opname, f, strtoll(wm, NULL, 10))
                           : 0;
            if (n == 0 && !failed) {
                ops_err_format(why, sizeof why,
                               "redis: APPLIED reply of operation %s drops no event", opname);
                failed = true;
            }
            retry = true;
        } else if (status != NULL && strcmp(status, "SEEN") == 0 && r->elements == 2 &&
                   r->element[1]->type == REDIS_REPLY_ARRAY) {
            size_t n = 0;
            const redisReply *list = r->element[1];
            for (size_t i = 0; i < list->elements; i++) {
                char id[OPS_EVENT_ID_LEN + 1];
                if (seen_id(list->element[i], id) == 0)
                    n += (size_t)ops_counter_drop_seen(c, opname, id);
            }
            if (n == 0 && !failed) {
                ops_err_format(why, sizeof why, "redis: SEEN reply names no event of the batch");
                failed = true;
            }
            retry = true;
        } else if (status != NULL && strcmp(status, "REFUSED") == 0) {
            if (rc == -1)
                rc = refused(elem_str(r, 1), elem_str(r, 2), errstr, errstr_size);
        } else {
            if (!failed)
                ops_err_format(why, sizeof why,
                               "redis: unexpected reply from the step of operation %s", opname);
            failed = true;
        }
        freeReplyObject(r);
    }
    if (failed) {
        ops_err_format(errstr, errstr_size, "%s", why);
        return OPS_COUNTER_STEP_FAILED;
    }
    if (rc != -1)
        return rc;
    if (!retry)
        return -1;
    for (size_t o = 0; o < a->nops; o++)
        if (cr->state[o] == OP_NOSCRIPT && load_script(cr, op_script, a->argv[a->ops[o].first + 3],
                                                       cr->op_sha, errstr, errstr_size) != 0)
            return OPS_COUNTER_STEP_FAILED;
    return 0;
}

/* The offsets write went out and its reply was lost with the connection. */
static int offsets_lost(ops_counter_t *c) {
    ops_counter_offsets_in_doubt(c);
    return OPS_COUNTER_STEP_FAILED;
}

/* Round trip 3: the batch's operations listed (SADD, idempotent), the
 * offsets compare-and-set, and the optional WAIT. Returns -1 to go round
 * again (the script had to be loaded), or the step's outcome. */
static int write_offsets(ops_counter_redis_t *cr, ops_counter_t *c, char *errstr,
                         size_t errstr_size) {
    ops_counter_args_t *a = &cr->args;
    const char *okey = a->argv[a->cas_first + 3];
    char opskey[OPS_KEY_MAX], nrep[24], nms[24];
    size_t nops = ops_counter_operations(c), nsadd = 0;
    redisReply *r = NULL;
    int rc = OPS_COUNTER_STEP_FAILED;
    /* one server or Sentinel: the offsets share the steps' primary (a
     * failover loses them together), WAIT after them only shrinks replays */
    bool waiting = cr->wait_replicas > 0 && !wait_per_node(cr);

    if (wait_per_node(cr) && (rc = wait_steps(cr, errstr, errstr_size)) != 0)
        return rc;
    rc = OPS_COUNTER_STEP_FAILED;
    ops_key_operations(opskey, sizeof opskey);
    if (nops + 2 > cr->sadd_cap) {
        const char **v = realloc(cr->sadd, (nops + 2) * sizeof(*v));
        if (v != NULL)
            cr->sadd = v;
        size_t *l = realloc(cr->sadd_len, (nops + 2) * sizeof(*l));
        if (l != NULL)
            cr->sadd_len = l;
        if (v == NULL || l == NULL) {
            ops_err_format(errstr, errstr_size, "redis: out of memory");
            return OPS_COUNTER_STEP_FAILED;
        }
        cr->sadd_cap = nops + 2;
    }
    if (nops > 0) {
        cr->sadd[0] = "SADD";
        cr->sadd_len[0] = 4;
        cr->sadd[1] = opskey;
        cr->sadd_len[1] = strlen(opskey);
        for (size_t i = 0; i < nops; i++) {
            cr->sadd[2 + i] = ops_counter_operation(c, i);
            cr->sadd_len[2 + i] = strlen(cr->sadd[2 + i]);
        }
        nsadd = 1;
    }
    a->argv[a->cas_first + 1] = cr->cas_sha;
    a->argvlen[a->cas_first + 1] = 40;
    snprintf(nrep, sizeof nrep, "%d", cr->wait_replicas);
    snprintf(nms, sizeof nms, "%d", cr->wait_ms);
    const char *wargv[3] = {"WAIT", nrep, nms};
    size_t wlens[3] = {4, strlen(nrep), strlen(nms)};
    if ((nsadd > 0 && ops_redis_link_append(cr->link, opskey, (int)(nops + 2), cr->sadd,
                                            cr->sadd_len, errstr, errstr_size) != 0) ||
        ops_redis_link_append(cr->link, okey, (int)a->cas_argc, a->argv + a->cas_first,
                              a->argvlen + a->cas_first, errstr, errstr_size) != 0 ||
        (waiting &&
         ops_redis_link_append(cr->link, okey, 3, wargv, wlens, errstr, errstr_size) != 0)) {
        drain(cr);
        return OPS_COUNTER_STEP_FAILED;
    }
    if (nsadd > 0) {
        /* Checked a round trip ago (TYPE); a key changed since is caught by
         * the next batch's check. */
        if ((r = step_reply(cr, errstr, errstr_size)) == NULL)
            return offsets_lost(c);
        freeReplyObject(r);
    }
    if ((r = step_reply(cr, errstr, errstr_size)) == NULL)
        return offsets_lost(c);
    const char *status = elem_str(r, 0);
    if (is_noscript(r)) {
        rc = load_script(cr, offsets_script, okey, cr->cas_sha, errstr, errstr_size) == 0
                 ? -1
                 : OPS_COUNTER_STEP_FAILED;
    } else if (r->type == REDIS_REPLY_ERROR) {
        ops_err_format(errstr, errstr_size, "redis: offsets step: %s", r->str);
    } else if (status != NULL && strcmp(status, "OK") == 0) {
        ops_counter_applied(c);
        rc = OPS_COUNTER_STEP_APPLIED;
    } else if (status != NULL && strcmp(status, "FENCED") == 0) {
        rc = fenced(cr, c, elem_str(r, 1), elem_str(r, 2), elem_str(r, 3), errstr, errstr_size);
    } else if (status != NULL && strcmp(status, "REFUSED") == 0) {
        rc = refused(elem_str(r, 1), elem_str(r, 2), errstr, errstr_size);
    } else {
        ops_err_format(errstr, errstr_size, "redis: unexpected reply from the offsets step");
    }
    freeReplyObject(r);
    if (waiting) {
        char e[128];
        redisReply *wr = ops_redis_link_reply(cr->link, e, sizeof e);
        if (wr == NULL)
            return rc == OPS_COUNTER_STEP_APPLIED ? rc : OPS_COUNTER_STEP_FAILED;
        cr->wait_acked = wr->type == REDIS_REPLY_INTEGER ? wr->integer : -1;
        freeReplyObject(wr);
    }
    return rc;
}

/* One try of a batch's step: precheck, the operations' scripts (repeated
 * while APPLIED or SEEN replies shrink the batch or a script is reloaded),
 * then the offsets. Anything unexpected leaves the batch as it was
 * (FAILED). */
static int apply_once(ops_counter_redis_t *cr, ops_counter_t *c, int64_t now_ms, char *errstr,
                      size_t errstr_size) {
    size_t rounds = 0, max_rounds = ops_counter_pending(c) + 8; /* each round shrinks the
                                                                 * batch or loads a script */
    bool checked = false;
    int rc;

    for (;;) {
        stream_t s = {.cr = cr,
                      .c = c,
                      .checked = &checked,
                      .rc = -1,
                      .errstr = errstr,
                      .errstr_size = errstr_size};
        int b;

        if (errstr_size > 0)
            errstr[0] = '\0';
        if ((b = ops_counter_build_each(c, now_ms, &cr->args, stream_call, &s, errstr,
                                        errstr_size)) != 0) {
            /* Scripts already sent run; their replies are dropped, and a
             * retry finds their steps applied (APPLIED). */
            drain(cr);
            return b == 1 && s.rc != -1 ? s.rc : OPS_COUNTER_STEP_FAILED;
        }
        if (cr->args.nops > 0) {
            rc = read_ops(cr, c, errstr, errstr_size);
            if (rc == 0 && ++rounds < max_rounds)
                continue;
            if (rc == 0)
                ops_err_format(errstr, errstr_size, "redis: the step keeps being retried");
            if (rc != -1)
                return rc == 0 ? OPS_COUNTER_STEP_FAILED : rc;
        }
        if (cr->cas_sha[0] == '\0' &&
            load_script(cr, offsets_script, cr->args.argv[cr->args.cas_first + 3], cr->cas_sha,
                        errstr, errstr_size) != 0)
            return OPS_COUNTER_STEP_FAILED;
        rc = write_offsets(cr, c, errstr, errstr_size);
        if (rc == -1 && ++rounds < max_rounds)
            continue;
        return rc == -1 ? OPS_COUNTER_STEP_FAILED : rc;
    }
}

/* The step of a batch. A connection lost with commands of the step sent
 * on it (a server's idle timeout, a proxy, CLIENT KILL, a restart) costs
 * one more try at once on a new connection: what the lost replies would
 * have said is found in Redis (applied watermarks, the offsets), so a step
 * applied before the loss is not applied again nor its events taken for
 * duplicates. */
ops_counter_step_t ops_counter_redis_apply(ops_counter_redis_t *cr, ops_counter_t *c,
                                           int64_t now_ms, size_t *seenp, char *errstr,
                                           size_t errstr_size) {
    /* the events the replies name as counted before this batch: the
     * duplicates they add (events this batch applied and a retry sent again
     * are dropped without counting as duplicates) */
    size_t dupes0 = ops_counter_dupes(c);
    int rc = OPS_COUNTER_STEP_APPLIED;

    cr->wait_acked = -1;
    cr->nwkeys = 0;
    cr->lost = false;
    if (ops_counter_pending(c) > 0) {
        rc = apply_once(cr, c, now_ms, errstr, errstr_size);
        if (rc == OPS_COUNTER_STEP_FAILED && cr->lost) {
            cr->lost = false;
            cr->resends++;
            cr->nwkeys = 0;
            ops_counter_ops_retry(c);
            rc = apply_once(cr, c, now_ms, errstr, errstr_size);
        }
    }
    if (seenp != NULL)
        *seenp = ops_counter_dupes(c) - dupes0;
    /* the batch stays for a retry: every operation goes into it again, so
     * that the retry's steps (and WAITs) cover those applied this time */
    if (rc == OPS_COUNTER_STEP_FAILED || rc == OPS_COUNTER_STEP_REFUSED)
        ops_counter_ops_retry(c);
    return (ops_counter_step_t)rc;
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
    /* a read: sent again once on a new connection when the last one was lost */
    r = ops_redis_link_command_again(cr->link, key, (int)(n + 2), argv, lens, errstr, errstr_size);
    if (r == NULL)
        goto cleanup;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != n) {
        ops_err_format(errstr, errstr_size, "redis: HMGET %s: %s", key,
                       r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
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
 * each gap once however often the batch is retried. An HSET whose reply was
 * lost with its connection is sent again at once on a new one, and an
 * "already there" after such a loss is taken as new: a gap may be reported
 * twice then, never not at all. */
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
    {
        const char *argv[4] = {"HSET", key, field, when};
        size_t lens[4] = {4, strlen(key), strlen(field), strlen(when)};
        for (int t = 0; t < 2 && r == NULL; t++) {
            r = ops_redis_link_command(cr->link, key, 4, argv, lens, errstr, errstr_size);
            if (r == NULL && ops_redis_link_pending(cr->link) == 0)
                snprintf(cr->gap_doubt, sizeof cr->gap_doubt, "%s", field);
        }
    }
    if (r == NULL)
        goto cleanup;
    if (r->type != REDIS_REPLY_INTEGER) {
        ops_err_format(errstr, errstr_size, "redis: HSET %s: %s", key,
                       r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
        goto cleanup;
    }
    rc = r->integer > 0 || strcmp(cr->gap_doubt, field) == 0 ? 1 : 0;
    if (strcmp(cr->gap_doubt, field) == 0)
        cr->gap_doubt[0] = '\0';
cleanup:
    if (r != NULL)
        freeReplyObject(r);
    return rc;
}

void ops_counter_redis_where(const ops_counter_redis_t *cr, char *buf, size_t size) {
    ops_redis_link_where(cr != NULL ? cr->link : NULL, buf, size);
}
