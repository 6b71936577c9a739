/*
 * opstream metrics registry: families of counters, gauges and histograms,
 * each with a fixed bound on its series, and their rendering as Prometheus
 * text exposition format 0.0.4. Series values are C11 atomics, so an update
 * from the consume loop never waits for a scrape; the registry's mutex
 * guards only series creation and rendering.
 */
#include "opstream/metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err_priv.h"

struct ops_metrics_series {
    ops_metrics_family_t *family;
    char **values;              /* family->nlabels label values */
    _Atomic uint64_t value;     /* counter: the count; gauge: the double's bits */
    _Atomic uint64_t sum_bits;  /* histogram: the double sum's bits; counter: the set part */
    _Atomic uint64_t buckets[]; /* histogram: nbuckets + 1 (+Inf), not cumulative */
};

struct ops_metrics_family {
    ops_metrics_t *reg;
    ops_metrics_type_t type;
    char *name;
    char *help;
    char *labels[OPS_METRICS_MAX_LABELS];
    size_t nlabels;
    double bounds[OPS_METRICS_MAX_BUCKETS];
    size_t nbuckets;
    ops_metrics_series_t **series; /* max_series slots, n used */
    size_t n, max;
};

typedef struct collector {
    ops_metrics_collect_fn fn;
    void *opaque;
    void (*release)(void *opaque);
} collector_t;

struct ops_metrics {
    pthread_mutex_t lock;
    ops_metrics_family_t **families;
    size_t n, cap;
    collector_t *collectors;
    size_t ncollectors;
};

static uint64_t double_bits(double v) {
    uint64_t u;
    memcpy(&u, &v, sizeof u);
    return u;
}

static double bits_double(uint64_t u) {
    double v;
    memcpy(&v, &u, sizeof v);
    return v;
}

ops_metrics_t *ops_metrics_new(void) {
    ops_metrics_t *reg = calloc(1, sizeof(*reg));
    if (reg && pthread_mutex_init(&reg->lock, NULL) != 0) {
        free(reg);
        return NULL;
    }
    return reg;
}

static void series_free(ops_metrics_series_t *m) {
    if (!m)
        return;
    if (m->values)
        for (size_t i = 0; i < m->family->nlabels; i++)
            free(m->values[i]);
    free(m->values);
    free(m);
}

static void family_free(ops_metrics_family_t *f) {
    if (!f)
        return;
    for (size_t i = 0; i < f->n; i++)
        series_free(f->series[i]);
    free(f->series);
    for (size_t i = 0; i < f->nlabels; i++)
        free(f->labels[i]);
    free(f->name);
    free(f->help);
    free(f);
}

void ops_metrics_destroy(ops_metrics_t *reg) {
    if (!reg)
        return;
    for (size_t i = 0; i < reg->n; i++)
        family_free(reg->families[i]);
    free(reg->families);
    for (size_t i = 0; i < reg->ncollectors; i++)
        if (reg->collectors[i].release)
            reg->collectors[i].release(reg->collectors[i].opaque);
    free(reg->collectors);
    pthread_mutex_destroy(&reg->lock);
    free(reg);
}

/* ---- names ----------------------------------------------------------------- */

static bool valid_name(const char *s, bool colon) {
    if (!s || !*s)
        return false;
    for (const char *p = s; *p; p++) {
        char c = *p;
        bool alpha =
            (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon && c == ':');
        if (!alpha && !(p > s && c >= '0' && c <= '9'))
            return false;
    }
    return true;
}

/* A label value is bounded, printable text: the exposition format could
 * escape anything, but a value that is not a short name is free text, and
 * free text in a label is a series per message. */
static int check_value(const char *v, char *errstr, size_t errstr_size) {
    if (!v) {
        ops_err_format(errstr, errstr_size, "a label value is missing");
        return -1;
    }
    size_t len = strlen(v);
    if (len > OPS_METRICS_MAX_VALUE) {
        ops_err_format(errstr, errstr_size, "label value of %zu bytes (at most %d)", len,
                       OPS_METRICS_MAX_VALUE);
        return -1;
    }
    for (const unsigned char *p = (const unsigned char *)v; *p; p++)
        if (*p < 0x20 || *p == 0x7f) {
            ops_err_format(errstr, errstr_size, "label value holds control byte 0x%02x", *p);
            return -1;
        }
    return 0;
}

static bool same_family(const ops_metrics_family_t *f, ops_metrics_type_t type,
                        const char *const *labels, size_t nlabels, size_t max_series,
                        const double *buckets, size_t nbuckets) {
    if (f->type != type || f->nlabels != nlabels || f->max != max_series || f->nbuckets != nbuckets)
        return false;
    for (size_t i = 0; i < nlabels; i++)
        if (strcmp(f->labels[i], labels[i]) != 0)
            return false;
    for (size_t i = 0; i < nbuckets; i++)
        if (f->bounds[i] != buckets[i])
            return false;
    return true;
}

static int check_family(ops_metrics_type_t type, const char *name, const char *const *labels,
                        size_t *nlabelsp, size_t max_series, const double *buckets, size_t nbuckets,
                        char *errstr, size_t errstr_size) {
    size_t nlabels = 0;
    if (!valid_name(name, true)) {
        ops_err_format(errstr, errstr_size, "'%s' is not a metric name", name ? name : "");
        return -1;
    }
    if (type != OPS_METRICS_COUNTER && type != OPS_METRICS_GAUGE && type != OPS_METRICS_HISTOGRAM) {
        ops_err_format(errstr, errstr_size, "%s: unknown metric type", name);
        return -1;
    }
    for (; labels && labels[nlabels]; nlabels++) {
        const char *l = labels[nlabels];
        if (nlabels == OPS_METRICS_MAX_LABELS) {
            ops_err_format(errstr, errstr_size, "%s: more than %d labels", name,
                           OPS_METRICS_MAX_LABELS);
            return -1;
        }
        if (!valid_name(l, false) || strncmp(l, "__", 2) == 0 || strcmp(l, "le") == 0) {
            ops_err_format(errstr, errstr_size, "%s: '%s' is not a label name", name, l);
            return -1;
        }
        for (size_t j = 0; j < nlabels; j++)
            if (strcmp(labels[j], l) == 0) {
                ops_err_format(errstr, errstr_size, "%s: label '%s' twice", name, l);
                return -1;
            }
    }
    if (max_series < 1 || (nlabels == 0 && max_series != 1)) {
        ops_err_format(errstr, errstr_size, "%s: series bound %zu (a family without labels has 1)",
                       name, max_series);
        return -1;
    }
    if (type == OPS_METRICS_HISTOGRAM) {
        if (nbuckets < 1 || nbuckets > OPS_METRICS_MAX_BUCKETS || !buckets) {
            ops_err_format(errstr, errstr_size, "%s: %zu buckets (1..%d)", name, nbuckets,
                           OPS_METRICS_MAX_BUCKETS);
            return -1;
        }
        for (size_t i = 0; i < nbuckets; i++)
            if (!isfinite(buckets[i]) || (i > 0 && !(buckets[i] > buckets[i - 1]))) {
                ops_err_format(errstr, errstr_size,
                               "%s: bucket bounds must be finite and strictly ascending", name);
                return -1;
            }
    } else if (nbuckets != 0) {
        ops_err_format(errstr, errstr_size, "%s: only a histogram has buckets", name);
        return -1;
    }
    *nlabelsp = nlabels;
    return 0;
}

ops_metrics_family_t *ops_metrics_family(ops_metrics_t *reg, ops_metrics_type_t type,
                                         const char *name, const char *help,
                                         const char *const *labels, size_t max_series,
                                         const double *buckets, size_t nbuckets, char *errstr,
                                         size_t errstr_size) {
    ops_metrics_family_t *f = NULL, *found = NULL;
    size_t nlabels = 0;

    if (!reg) {
        ops_err_format(errstr, errstr_size, "no registry");
        return NULL;
    }
    if (check_family(type, name, labels, &nlabels, max_series, buckets, nbuckets, errstr,
                     errstr_size) != 0)
        return NULL;
    pthread_mutex_lock(&reg->lock);
    for (size_t i = 0; i < reg->n; i++) {
        if (strcmp(reg->families[i]->name, name) != 0)
            continue;
        if (same_family(reg->families[i], type, labels, nlabels, max_series, buckets, nbuckets))
            found = reg->families[i];
        else
            ops_err_format(errstr, errstr_size, "%s: declared twice, differently", name);
        goto unlock;
    }
    if (reg->n == reg->cap) {
        size_t ncap = reg->cap ? reg->cap * 2 : 16;
        ops_metrics_family_t **nf = realloc(reg->families, ncap * sizeof(*nf));
        if (!nf)
            goto oom;
        reg->families = nf;
        reg->cap = ncap;
    }
    if (!(f = calloc(1, sizeof(*f))))
        goto oom;
    f->reg = reg;
    f->type = type;
    f->max = max_series;
    f->nbuckets = nbuckets;
    if (nbuckets)
        memcpy(f->bounds, buckets, nbuckets * sizeof(double));
    if (!(f->name = strdup(name)) || !(f->help = strdup(help ? help : "")) ||
        !(f->series = calloc(max_series, sizeof(*f->series))))
        goto oom;
    for (; f->nlabels < nlabels; f->nlabels++)
        if (!(f->labels[f->nlabels] = strdup(labels[f->nlabels])))
            goto oom;
    reg->families[reg->n++] = f;
    found = f;
    f = NULL; /* now owned by reg */
    goto unlock;
oom:
    ops_err_format(errstr, errstr_size, "%s: out of memory", name);
unlock:
    pthread_mutex_unlock(&reg->lock);
    family_free(f);
    return found;
}

static bool series_matches(const ops_metrics_series_t *m, const char *const *values) {
    for (size_t i = 0; i < m->family->nlabels; i++)
        if (strcmp(m->values[i], values[i]) != 0)
            return false;
    return true;
}

ops_metrics_series_t *ops_metrics_series(ops_metrics_family_t *f, const char *const *values,
                                         char *errstr, size_t errstr_size) {
    ops_metrics_series_t *m = NULL, *found = NULL;
    size_t nb;

    if (!f) {
        ops_err_format(errstr, errstr_size, "no metric family");
        return NULL;
    }
    for (size_t i = 0; i < f->nlabels; i++) {
        char inner[128];
        if (!values || check_value(values[i], inner, sizeof inner) != 0) {
            ops_err_format(errstr, errstr_size, "%s{%s}: %s", f->name, f->labels[i],
                           values ? inner : "a label value is missing");
            return NULL;
        }
    }
    pthread_mutex_lock(&f->reg->lock);
    for (size_t i = 0; i < f->n; i++)
        if (series_matches(f->series[i], values)) {
            found = f->series[i];
            goto unlock;
        }
    if (f->n == f->max) {
        ops_err_format(errstr, errstr_size, "%s: already %zu series, its bound", f->name, f->max);
        goto unlock;
    }
    nb = f->type == OPS_METRICS_HISTOGRAM ? f->nbuckets + 1 : 0;
    if (!(m = calloc(1, sizeof(*m) + nb * sizeof(m->buckets[0]))))
        goto oom;
    m->family = f;
    atomic_init(&m->value, 0);
    atomic_init(&m->sum_bits, double_bits(0.0));
    for (size_t i = 0; i < nb; i++)
        atomic_init(&m->buckets[i], 0);
    if (f->nlabels) {
        if (!(m->values = calloc(f->nlabels, sizeof(char *))))
            goto oom;
        for (size_t i = 0; i < f->nlabels; i++)
            if (!(m->values[i] = strdup(values[i])))
                goto oom;
    }
    if (f->type == OPS_METRICS_GAUGE)
        atomic_store(&m->value, double_bits(0.0));
    f->series[f->n++] = m;
    found = m;
    m = NULL; /* now owned by f */
    goto unlock;
oom:
    ops_err_format(errstr, errstr_size, "%s: out of memory", f->name);
unlock:
    pthread_mutex_unlock(&f->reg->lock);
    series_free(m);
    return found;
}

static ops_metrics_series_t *single(ops_metrics_t *reg, ops_metrics_type_t type, const char *name,
                                    const char *help, char *errstr, size_t errstr_size) {
    ops_metrics_family_t *f =
        ops_metrics_family(reg, type, name, help, NULL, 1, NULL, 0, errstr, errstr_size);
    return f ? ops_metrics_series(f, NULL, errstr, errstr_size) : NULL;
}

ops_metrics_series_t *ops_metrics_counter(ops_metrics_t *reg, const char *name, const char *help,
                                          char *errstr, size_t errstr_size) {
    return single(reg, OPS_METRICS_COUNTER, name, help, errstr, errstr_size);
}

ops_metrics_series_t *ops_metrics_gauge(ops_metrics_t *reg, const char *name, const char *help,
                                        char *errstr, size_t errstr_size) {
    return single(reg, OPS_METRICS_GAUGE, name, help, errstr, errstr_size);
}

/* ---- updates ---------------------------------------------------------------- */

void ops_metrics_add(ops_metrics_series_t *m, uint64_t n) {
    if (m && m->family->type == OPS_METRICS_COUNTER)
        atomic_fetch_add_explicit(&m->value, n, memory_order_relaxed);
}

void ops_metrics_set(ops_metrics_series_t *m, double v) {
    if (m && m->family->type == OPS_METRICS_GAUGE)
        atomic_store_explicit(&m->value, double_bits(v), memory_order_relaxed);
    else if (m && m->family->type == OPS_METRICS_COUNTER)
        atomic_store_explicit(&m->sum_bits, double_bits(v), memory_order_relaxed);
}

static double counter_value(ops_metrics_series_t *m) {
    return (double)atomic_load(&m->value) + bits_double(atomic_load(&m->sum_bits));
}

/* The bucket is one atomic add; the sum is a compare-and-swap on the
 * double's bits, which only repeats when two threads observe at once. */
void ops_metrics_observe(ops_metrics_series_t *m, double v) {
    if (!m || m->family->type != OPS_METRICS_HISTOGRAM)
        return;
    const ops_metrics_family_t *f = m->family;
    size_t b = 0;
    while (b < f->nbuckets && !(v <= f->bounds[b]))
        b++;
    atomic_fetch_add_explicit(&m->buckets[b], 1, memory_order_relaxed);
    uint64_t old = atomic_load_explicit(&m->sum_bits, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(&m->sum_bits, &old,
                                                  double_bits(bits_double(old) + v),
                                                  memory_order_relaxed, memory_order_relaxed))
        ;
}

double ops_metrics_value(const ops_metrics_series_t *m) {
    if (!m)
        return 0.0;
    ops_metrics_series_t *mm = (ops_metrics_series_t *)m; /* atomic loads take non-const pointers */
    switch (m->family->type) {
    case OPS_METRICS_COUNTER:
        return counter_value(mm);
    case OPS_METRICS_GAUGE:
        return bits_double(atomic_load(&mm->value));
    case OPS_METRICS_HISTOGRAM:
    default: {
        uint64_t n = 0;
        for (size_t i = 0; i <= m->family->nbuckets; i++)
            n += atomic_load(&mm->buckets[i]);
        return (double)n;
    }
    }
}

int ops_metrics_add_collector(ops_metrics_t *reg, ops_metrics_collect_fn fn, void *opaque,
                              void (*release)(void *opaque), char *errstr, size_t errstr_size) {
    int rc = -1;
    if (!reg || !fn) {
        ops_err_format(errstr, errstr_size, "invalid argument");
        if (release)
            release(opaque);
        return -1;
    }
    pthread_mutex_lock(&reg->lock);
    collector_t *nc = realloc(reg->collectors, (reg->ncollectors + 1) * sizeof(*nc));
    if (nc) {
        reg->collectors = nc;
        nc[reg->ncollectors].fn = fn;
        nc[reg->ncollectors].opaque = opaque;
        nc[reg->ncollectors].release = release;
        reg->ncollectors++;
        rc = 0;
    } else {
        ops_err_format(errstr, errstr_size, "out of memory");
    }
    pthread_mutex_unlock(&reg->lock);
    if (rc != 0 && release)
        release(opaque);
    return rc;
}

/* ---- rendering ---------------------------------------------------------------- */

const char *ops_metrics_format_value(double v, char *buf, size_t size) {
    if (isnan(v))
        snprintf(buf, size, "NaN");
    else if (isinf(v))
        snprintf(buf, size, v > 0 ? "+Inf" : "-Inf");
    else if (v == floor(v) && fabs(v) < 9007199254740992.0) /* 2^53: exact integers */
        snprintf(buf, size, "%.0f", v == 0 ? 0.0 : v);      /* no "-0" */
    else
        for (int prec = 1; prec <= 17; prec++) {
            snprintf(buf, size, "%.*g", prec, v);
            if (strtod(buf, NULL) == v)
                break;
        }
    return buf;
}

typedef struct outbuf {
    char *p;
    size_t len, cap;
    bool oom;
} outbuf_t;

static void out_mem(outbuf_t *o, const char *s, size_t n) {
    if (o->oom)
        return;
    if (o->len + n + 1 > o->cap) {
        size_t ncap = o->cap ? o->cap : 4096;
        while (o->len + n + 1 > ncap)
            ncap *= 2;
        char *np = realloc(o->p, ncap);
        if (!np) {
            o->oom = true;
            return;
        }
        o->p = np;
        o->cap = ncap;
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
    o->p[o->len] = '\0';
}

static void out_str(outbuf_t *o, const char *s) {
    out_mem(o, s, strlen(s));
}

/* Escapes backslash and newline (HELP text), and the double quote too
 * (label values), as the exposition format asks. */
static void out_escaped(outbuf_t *o, const char *s, bool quote) {
    for (; *s; s++) {
        if (*s == '\\')
            out_str(o, "\\\\");
        else if (*s == '\n')
            out_str(o, "\\n");
        else if (quote && *s == '"')
            out_str(o, "\\\"");
        else
            out_mem(o, s, 1);
    }
}

/* name{l1="v1",l2="v2"[,le="x"]} value\n */
static void out_sample(outbuf_t *o, const ops_metrics_series_t *m, const char *suffix,
                       const char *le, const char *value) {
    const ops_metrics_family_t *f = m->family;
    out_str(o, f->name);
    out_str(o, suffix);
    if (f->nlabels || le) {
        out_str(o, "{");
        for (size_t i = 0; i < f->nlabels; i++) {
            if (i)
                out_str(o, ",");
            out_str(o, f->labels[i]);
            out_str(o, "=\"");
            out_escaped(o, m->values[i], true);
            out_str(o, "\"");
        }
        if (le) {
            out_str(o, f->nlabels ? ",le=\"" : "le=\"");
            out_str(o, le);
            out_str(o, "\"");
        }
        out_str(o, "}");
    }
    out_str(o, " ");
    out_str(o, value);
    out_str(o, "\n");
}

static void render_series(outbuf_t *o, ops_metrics_series_t *m) {
    const ops_metrics_family_t *f = m->family;
    char v[64], le[64];
    switch (f->type) {
    case OPS_METRICS_COUNTER:
        out_sample(o, m, "", NULL, ops_metrics_format_value(counter_value(m), v, sizeof v));
        break;
    case OPS_METRICS_GAUGE:
        out_sample(o, m, "", NULL,
                   ops_metrics_format_value(bits_double(atomic_load(&m->value)), v, sizeof v));
        break;
    case OPS_METRICS_HISTOGRAM:
    default: {
        /* _count is the sum of the buckets read, so that it always equals
         * the +Inf bucket even while observations arrive. */
        uint64_t cum = 0;
        for (size_t b = 0; b <= f->nbuckets; b++) {
            cum += atomic_load(&m->buckets[b]);
            snprintf(v, sizeof v, "%llu", (unsigned long long)cum);
            if (b < f->nbuckets)
                ops_metrics_format_value(f->bounds[b], le, sizeof le);
            else
                snprintf(le, sizeof le, "+Inf");
            out_sample(o, m, "_bucket", le, v);
        }
        out_sample(o, m, "_sum", NULL,
                   ops_metrics_format_value(bits_double(atomic_load(&m->sum_bits)), v, sizeof v));
        snprintf(v, sizeof v, "%llu", (unsigned long long)cum);
        out_sample(o, m, "_count", NULL, v);
        break;
    }
    }
}

static const char *type_name(ops_metrics_type_t t) {
    return t == OPS_METRICS_COUNTER ? "counter" : t == OPS_METRICS_GAUGE ? "gauge" : "histogram";
}

int ops_metrics_render(ops_metrics_t *reg, char **out, size_t *outlen, char *errstr,
                       size_t errstr_size) {
    outbuf_t o = {0};
    if (!reg || !out) {
        ops_err_format(errstr, errstr_size, "invalid argument");
        return -1;
    }
    *out = NULL;
    pthread_mutex_lock(&reg->lock);
    /* Collectors only set gauges (lock-free), so they may run under the
     * lock; holding it keeps two renders from running them at once. */
    for (size_t i = 0; i < reg->ncollectors; i++)
        reg->collectors[i].fn(reg->collectors[i].opaque);
    out_str(&o, ""); /* an empty registry renders as "" */
    for (size_t i = 0; i < reg->n; i++) {
        ops_metrics_family_t *f = reg->families[i];
        if (f->n == 0)
            continue;
        out_str(&o, "# HELP ");
        out_str(&o, f->name);
        out_str(&o, " ");
        out_escaped(&o, f->help, false);
        out_str(&o, "\n# TYPE ");
        out_str(&o, f->name);
        out_str(&o, " ");
        out_str(&o, type_name(f->type));
        out_str(&o, "\n");
        for (size_t s = 0; s < f->n; s++)
            render_series(&o, f->series[s]);
    }
    pthread_mutex_unlock(&reg->lock);
    if (o.oom) {
        free(o.p);
        ops_err_format(errstr, errstr_size, "out of memory rendering metrics");
        return -1;
    }
    *out = o.p;
    if (outlen)
        *outlen = o.len;
    return 0;
}
