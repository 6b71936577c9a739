/*
 * opstream simulator core: scenario presets modelled on published INTERPOL
 * operations and a seeded generator that turns (seed, event number) into a
 * realistic event, so tests and demos get the same traffic every time, plus
 * the totals a test compares against what reached the topics.
 */
#include "opstream/simulate.h"

#include <inttypes.h>
#include <stdarg.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "opstream/validate.h"

#define HOUR_MS 3600000LL
#define MINUTE_MS 60000LL
#define DAY_MS (24 * HOUR_MS)
#define MAX_COUNTRIES 64

/* ---- places ---- */

/* A city per country for event locations. */
static const struct {
    const char *cc, *city;
} cities[] = {
    {"AE", "Dubai"},        {"AL", "Tirana"},        {"AO", "Luanda"},
    {"AR", "Buenos Aires"}, {"BD", "Dhaka"},         {"BE", "Brussels"},
    {"BF", "Ouagadougou"},  {"BG", "Sofia"},         {"BI", "Bujumbura"},
    {"BJ", "Cotonou"},      {"BO", "La Paz"},        {"BR", "Sao Paulo"},
    {"BW", "Gaborone"},     {"CD", "Kinshasa"},      {"CF", "Bangui"},
    {"CG", "Brazzaville"},  {"CI", "Abidjan"},       {"CL", "Santiago"},
    {"CM", "Yaounde"},      {"CN", "Guangzhou"},     {"CO", "Bogota"},
    {"CR", "San Jose"},     {"CV", "Praia"},         {"DE", "Berlin"},
    {"DJ", "Djibouti"},     {"DO", "Santo Domingo"}, {"DZ", "Algiers"},
    {"EC", "Quito"},        {"EG", "Cairo"},         {"ER", "Asmara"},
    {"ES", "Madrid"},       {"ET", "Addis Ababa"},   {"FR", "Marseille"},
    {"GA", "Libreville"},   {"GH", "Accra"},         {"GM", "Banjul"},
    {"GN", "Conakry"},      {"GR", "Athens"},        {"GT", "Guatemala City"},
    {"GW", "Bissau"},       {"HN", "Tegucigalpa"},   {"ID", "Jakarta"},
    {"IN", "Mumbai"},       {"IQ", "Baghdad"},       {"IT", "Palermo"},
    {"JO", "Amman"},        {"KE", "Nairobi"},       {"KH", "Phnom Penh"},
    {"KM", "Moroni"},       {"LA", "Vientiane"},     {"LB", "Beirut"},
    {"LK", "Colombo"},      {"LR", "Monrovia"},      {"LS", "Maseru"},
    {"LY", "Tripoli"},      {"MA", "Tangier"},       {"MD", "Chisinau"},
    {"MG", "Antananarivo"}, {"MK", "Skopje"},        {"ML", "Bamako"},
    {"MM", "Yangon"},       {"MR", "Nouakchott"},    {"MU", "Port Louis"},
    {"MW", "Lilongwe"},     {"MX", "Tijuana"},       {"MY", "Kuala Lumpur"},
    {"MZ", "Maputo"},       {"NA", "Windhoek"},      {"NE", "Niamey"},
    {"NG", "Lagos"},        {"NL", "Rotterdam"},     {"NP", "Kathmandu"},
    {"PE", "Lima"},         {"PH", "Pasay City"},    {"PK", "Karachi"},
    {"PL", "Warsaw"},       {"PT", "Lisbon"},        {"PY", "Asuncion"},
    {"QA", "Doha"},         {"RO", "Bucharest"},     {"RS", "Belgrade"},
    {"RW", "Kigali"},       {"SA", "Riyadh"},        {"SC", "Victoria"},
    {"SD", "Khartoum"},     {"SL", "Freetown"},      {"SN", "Dakar"},
    {"SO", "Mogadishu"},    {"SS", "Juba"},          {"ST", "Sao Tome"},
    {"SV", "San Salvador"}, {"SY", "Damascus"},      {"SZ", "Mbabane"},
    {"TD", "N'Djamena"},    {"TG", "Lome"},          {"TH", "Bangkok"},
    {"TN", "Sfax"},         {"TR", "Istanbul"},      {"TZ", "Dar es Salaam"},
    {"UA", "Odesa"},        {"UG", "Kampala"},       {"US", "El Paso"},
    {"VN", "Hanoi"},        {"ZA", "Johannesburg"},  {"ZM", "Lusaka"},
    {"ZW", "Harare"},
};

static const char *city_of(const char *cc) {
    for (size_t i = 0; i < sizeof(cities) / sizeof(cities[0]); i++)
        if (strcmp(cities[i].cc, cc) == 0)
            return cities[i].city;
    return NULL;
}

/* ---- scenarios ---- */

typedef struct scenario {
    ops_sim_scenario_t info;
    const char *const *countries; /* most active first */
    const char *const *pool;      /* nationalities of victims and migrants */
    double kind_weight[OPS_KIND_COUNT];
} scenario_t;

/* Flash-Weka (INTERPOL and AFRIPOL, May-June 2023): 54 countries, mostly
 * African, with networks in Burkina Faso, Cameroon, Cote d'Ivoire, Ghana,
 * Guinea and Mali; 1,062 arrests, 2,731 migrants, 823 victims, 801 items. */
static const char *const flash_weka_countries[] = {
    "CM", "CI", "GH", "GN", "ML", "BF", "SL", "TG", "NG", "AO", "MA", "TN", "NE", "SN",
    "BJ", "CD", "KE", "ET", "SD", "LY", "EG", "DZ", "MR", "GA", "CG", "TD", "CF", "UG",
    "TZ", "RW", "BI", "ZA", "ZM", "ZW", "MZ", "MW", "NA", "BW", "MG", "GM", "GW", "LR",
    "CV", "DJ", "SO", "ER", "SS", "KM", "IQ", "SY", "JO", "LB", "QA", "AE", NULL};
static const char *const flash_weka_pool[] = {"NG", "BD", "IN", "PK", "LK", "VN", "GN", "ML",
                                              "CI", "SN", "MA", "ER", "SD", "ET", "BF", NULL};

/* Weka II (12-17 June): 44 countries across four continents, border
 * checks; about 300 arrests and nearly 700 victims rescued. */
static const char *const weka2_countries[] = {
    "MA", "CI", "BJ", "GA", "MR", "SN", "NG", "GH", "TG", "BF", "ML", "NE", "CM", "GN", "SL",
    "LR", "GM", "GW", "CV", "TD", "CF", "CG", "CD", "AO", "ZA", "KE", "UG", "TZ", "ET", "SD",
    "EG", "TN", "DZ", "LY", "ES", "FR", "IT", "PT", "BE", "DE", "IQ", "JO", "BR", "AR", NULL};
static const char *const weka2_pool[] = {"NG", "GN", "CI", "MA", "ML", "SN", "CM",
                                         "BF", "NE", "TG", "GH", "SL", NULL};

/* Liberterra II (29 September - 4 October 2024): worldwide, scam centres
 * in the Philippines, 2,517 arrests, 3,222 victims, 17,793 migrants (a
 * 60-country slice of the participants). */
static const char *const liberterra2_countries[] = {
    "PH", "ML", "AR", "MK", "IQ", "CR", "BR", "TH", "VN", "KH", "MM", "LA", "ID", "MY", "CN", "IN",
    "BD", "PK", "LK", "NP", "NG", "GH", "CI", "SN", "KE", "ET", "ZA", "EG", "MA", "TN", "TR", "GR",
    "IT", "ES", "FR", "DE", "NL", "BE", "PL", "RO", "BG", "RS", "AL", "UA", "MD", "US", "MX", "GT",
    "HN", "SV", "CO", "PE", "EC", "BO", "PY", "CL", "DO", "AE", "SA", "LB", NULL};
static const char *const liberterra2_pool[] = {"CN", "VN", "ID", "MY", "PH", "MM", "KH", "TH", "TG",
                                               "SY", "AF", "UA", "NG", "CO", "VE", "HT", NULL};

/* Victims freed in scam-centre raids. */
static const char *const scam_pool[] = {"CN", "VN", "ID", "MY", "TH", "MM", "PH", "KH", NULL};

/* Kind weights are chosen so that, with the sizes below (about 2 persons
 * per arrest, 4 victims per rescue, 9.5 migrants per migrant event, 6 items
 * per seizure), totals come out in the published proportions. */
static const scenario_t scenarios[] = {
    {{"flash-weka", "FLASH-WEKA", "Flash-Weka: 54 mostly African countries, May-June 2023", 54, 14},
     flash_weka_countries,
     flash_weka_pool,
     {0.46, 0.17, 0.25, 0.12}},
    {{"weka-ii", "WEKA-II", "Weka II: 44 countries on four continents, border checks", 44, 6},
     weka2_countries,
     weka2_pool,
     {0.32, 0.36, 0.21, 0.11}},
    {{"liberterra-ii", "LIBERTERRA-II",
      "Liberterra II: worldwide, scam centres, large migrant flows, 2024", 60, 6},
     liberterra2_countries,
     liberterra2_pool,
     {0.30, 0.18, 0.45, 0.07}},
};

#define N_SCENARIOS (sizeof(scenarios) / sizeof(scenarios[0]))

size_t ops_sim_scenario_count(void) {
    return N_SCENARIOS;
}

const ops_sim_scenario_t *ops_sim_scenario_at(size_t i) {
    return i < N_SCENARIOS ? &scenarios[i].info : NULL;
}

static const scenario_t *find(const char *name) {
    for (size_t i = 0; i < N_SCENARIOS; i++)
        if (strcmp(scenarios[i].info.name, name) == 0)
            return &scenarios[i];
    return NULL;
}

const ops_sim_scenario_t *ops_sim_scenario_find(const char *name) {
    const scenario_t *s = find(name);
    return s ? &s->info : NULL;
}

/* ---- random numbers ---- */

/* splitmix64 seeds one xoshiro256** stream per event from (seed, index),
 * so event i is the same however many events came before or how fast. */
typedef struct rng {
    uint64_t s[4];
} rng_t;

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) {
    return (x << k) | (x >> (64 - k));
}

static uint64_t next64(rng_t *r) {
    uint64_t result = rotl(r->s[1] * 5, 7) * 9;
    uint64_t t = r->s[1] << 17;
    r->s[2] ^= r->s[0];
    r->s[3] ^= r->s[1];
    r->s[1] ^= r->s[2];
    r->s[0] ^= r->s[3];
    r->s[2] ^= t;
    r->s[3] = rotl(r->s[3], 45);
    return result;
}

static void rng_seed(rng_t *r, uint64_t seed, uint64_t index) {
    uint64_t x = seed ^ (index * 0xD1B54A32D192ED03ULL);
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&x);
}

static double uniform(rng_t *r) {
    return (double)(next64(r) >> 11) * (1.0 / 9007199254740992.0);
}

static int32_t between(rng_t *r, int32_t lo, int32_t hi) {
    return lo + (int32_t)(next64(r) % (uint64_t)(hi - lo + 1));
}

static size_t pick_weighted(rng_t *r, const double *cum, size_t n) {
    double u = uniform(r) * cum[n - 1];
    for (size_t i = 0; i < n; i++)
        if (u < cum[i])
            return i;
    return n - 1;
}

static size_t pool_size(const char *const *pool) {
    size_t n = 0;
    while (pool[n] != NULL)
        n++;
    return n;
}

/* ---- the generator ---- */

struct ops_sim {
    const scenario_t *sc;
    char operation[OPS_OPERATION_MAX + 1];
    size_t n_countries;
    double country_cum[MAX_COUNTRIES]; /* Zipf-like cumulative weights */
    double kind_cum[OPS_KIND_COUNT];
    uint64_t seed;
    int span_days;
};

ops_sim_t *ops_sim_new(const ops_sim_options_t *opts, char *errstr, size_t errstr_size) {
    const char *name = opts->scenario ? opts->scenario : "flash-weka";
    const scenario_t *sc = find(name);
    ops_sim_t *sim = NULL;
    if (sc == NULL) {
        snprintf(errstr, errstr_size, "unknown scenario '%s' (flash-weka, weka-ii, liberterra-ii)",
                 name);
        return NULL;
    }
    const char *op = opts->operation ? opts->operation : sc->info.operation;
    if (!ops_valid_operation(op)) {
        snprintf(errstr, errstr_size, "'%s' is not an operation code", op);
        return NULL;
    }
    size_t n = opts->countries ? opts->countries : sc->info.n_countries;
    if (n < 1 || n > sc->info.n_countries) {
        snprintf(errstr, errstr_size, "scenario %s has 1 to %zu countries, not %zu", sc->info.name,
                 sc->info.n_countries, n);
        return NULL;
    }
    if (opts->span_days < 0 || opts->span_days > 366) {
        snprintf(errstr, errstr_size, "span of %d days is outside 0..366", opts->span_days);
        return NULL;
    }
    sim = calloc(1, sizeof(*sim));
    if (sim == NULL) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    sim->sc = sc;
    snprintf(sim->operation, sizeof(sim->operation), "%s", op);
    sim->n_countries = n;
    sim->seed = opts->seed;
    sim->span_days = opts->span_days;
    /* A few countries report most events: weight 1/(rank+1)^0.9. */
    double acc = 0;
    for (size_t i = 0; i < n; i++) {
        acc += 1.0 / pow((double)(i + 1), 0.9);
        sim->country_cum[i] = acc;
    }
    acc = 0;
    for (int k = 0; k < OPS_KIND_COUNT; k++) {
        acc += sc->kind_weight[k];
        sim->kind_cum[k] = acc;
    }
    return sim;
}

void ops_sim_destroy(ops_sim_t *sim) {
    free(sim);
}

size_t ops_sim_countries(const ops_sim_t *sim) {
    return sim->n_countries;
}

const char *ops_sim_country(const ops_sim_t *sim, size_t i) {
    return i < sim->n_countries ? sim->sc->countries[i] : NULL;
}

static void add_nat(ops_event_t *ev, const char *cc) {
    for (uint32_t i = 0; i < ev->n_nationalities; i++)
        if (strcmp(ev->nationalities[i], cc) == 0)
            return;
    if (ev->n_nationalities < OPS_NATIONALITIES_MAX)
        memcpy(ev->nationalities[ev->n_nationalities++], cc, 3);
}

static void add_from_pool(rng_t *r, ops_event_t *ev, const char *const *pool, int max) {
    int n = between(r, 1, max);
    size_t size = pool_size(pool);
    for (int i = 0; i < n; i++)
        add_nat(ev, pool[next64(r) % size]);
}

/* Most arrests are of one to three persons; now and then a network. */
static void gen_arrest(rng_t *r, const ops_sim_t *sim, ops_event_t *ev) {
    static const double offence_cum[] = {0.35, 0.65, 0.75, 0.85, 0.90, 0.95, 1.0};
    double u = uniform(r);
    ev->count = u < 0.55   ? 1
                : u < 0.80 ? 2
                : u < 0.92 ? 3
                : u < 0.99 ? between(r, 4, 8)
                           : between(r, 9, 25);
    ev->offence = (ops_offence_t)pick_weighted(r, offence_cum, OPS_OFFENCE_COUNT);
    add_nat(ev, ev->country);
    if (uniform(r) < 0.3)
        add_from_pool(r, ev, sim->sc->pool, 2);
}

/* Mostly small rescues; rarely a scam-centre raid (100-300 people) or a
 * hotel raid (about 30). */
static void gen_rescue(rng_t *r, const ops_sim_t *sim, ops_event_t *ev) {
    static const double expl_cum[] = {0.35, 0.65, 0.72, 0.78, 0.86, 0.87, 0.93, 1.0};
    static const double site_cum[] = {0.0, 0.0, 0.15, 0.30, 0.45, 0.65, 0.85, 0.92, 1.0};
    double u = uniform(r);
    if (u < 0.004) {
        ev->count = between(r, 100, 300);
        ev->site = OPS_SITE_SCAM_CENTRE;
        ev->exploitation = OPS_EXPLOITATION_FORCED_CRIMINALITY;
        add_from_pool(r, ev, scam_pool, 4);
    } else if (u < 0.02) {
        ev->count = between(r, 25, 35);
        ev->site = OPS_SITE_HOTEL;
        ev->exploitation = OPS_EXPLOITATION_SEXUAL;
        add_from_pool(r, ev, sim->sc->pool, 2);
    } else {
        double v = uniform(r);
        ev->count = v < 0.4    ? 1
                    : v < 0.7  ? between(r, 2, 3)
                    : v < 0.95 ? between(r, 4, 8)
                               : between(r, 9, 20);
        ev->site = (ops_site_t)pick_weighted(r, site_cum, OPS_SITE_COUNT);
        ev->exploitation = (ops_exploitation_t)pick_weighted(r, expl_cum, OPS_EXPLOITATION_COUNT);
        add_from_pool(r, ev, sim->sc->pool, 2);
    }
    if (uniform(r) < 0.25)
        ev->minors = between(r, 0, ev->count / 2 + (ev->count == 1));
    ev->referred = between(r, 0, ev->count);
}

/* Groups at border points; sometimes a boat with 50-100 people. */
static void gen_migrant(rng_t *r, const ops_sim_t *sim, ops_event_t *ev) {
    double u = uniform(r);
    if (u < 0.05)
        ev->count = between(r, 50, 100);
    else
        ev->count = uniform(r) < 0.6 ? between(r, 1, 5) : between(r, 6, 20);
    if (uniform(r) < 0.3)
        ev->minors = between(r, 0, ev->count / 4);
    add_from_pool(r, ev, sim->sc->pool, 3);
}

static void gen_seizure(rng_t *r, ops_event_t *ev) {
    static const double cat_cum[] = {0.15, 0.35, 0.65, 0.72, 0.80, 0.92, 1.0};
    ev->category = (ops_category_t)pick_weighted(r, cat_cum, OPS_CATEGORY_COUNT);
    ev->count = uniform(r) < 0.95 ? between(r, 1, 10) : between(r, 20, 60);
}

void ops_sim_event(const ops_sim_t *sim, uint64_t index, int64_t ref_ms, ops_event_t *ev) {
    rng_t r;
    rng_seed(&r, sim->seed, index);
    ops_event_init(ev);

    size_t c = pick_weighted(&r, sim->country_cum, sim->n_countries);
    ev->kind = (ops_kind_t)pick_weighted(&r, sim->kind_cum, OPS_KIND_COUNT);
    snprintf(ev->operation, sizeof(ev->operation), "%s", sim->operation);
    memcpy(ev->country, sim->sc->countries[c], 3);
    snprintf(ev->source_ref, sizeof(ev->source_ref), "%s-SIM-%016" PRIx64 "-%08" PRIu64,
             ev->country, sim->seed, index);
    const char *city = city_of(ev->country);
    if (city != NULL) {
        ev->has_location = true;
        snprintf(ev->location, sizeof(ev->location), "%s", city);
    }

    /* Event time: live traffic is minutes old, with about 3% late reports
     * from hours back; a span spreads events over the operation's days. */
    int64_t lag;
    if (sim->span_days > 0)
        lag = (int64_t)(uniform(&r) * (double)(sim->span_days * DAY_MS));
    else if (uniform(&r) < 0.03)
        lag = between(&r, 2 * 60, 36 * 60) * MINUTE_MS;
    else
        lag = (int64_t)(uniform(&r) * 10.0 * MINUTE_MS);
    ev->occurred_at = ref_ms - lag;
    ev->reported_at = ref_ms;

    switch (ev->kind) {
    case OPS_KIND_ARREST:
        gen_arrest(&r, sim, ev);
        break;
    case OPS_KIND_RESCUE:
        gen_rescue(&r, sim, ev);
        break;
    case OPS_KIND_MIGRANT:
        gen_migrant(&r, sim, ev);
        break;
    default:
        gen_seizure(&r, ev);
        break;
    }
    ops_event_id_derive(ev->operation, ev->country, ev->kind, ev->source_ref, ev->event_id);
}

/* ---- totals ---- */

void ops_sim_totals_init(ops_sim_totals_t *t, const char *operation) {
    memset(t, 0, sizeof(*t));
    snprintf(t->operation, sizeof(t->operation), "%s", operation ? operation : "");
}

static int country_index(const char *cc) {
    if (cc[0] < 'A' || cc[0] > 'Z' || cc[1] < 'A' || cc[1] > 'Z')
        return -1;
    return (cc[0] - 'A') * 26 + (cc[1] - 'A');
}

void ops_sim_totals_add(ops_sim_totals_t *t, const ops_event_t *ev) {
    int64_t m[OPS_METRIC_COUNT];
    int ci = country_index(ev->country);
    ops_event_metrics(ev, m);
    if (ev->kind < OPS_KIND_COUNT)
        t->by_kind[ev->kind]++;
    for (int i = 0; i < OPS_METRIC_COUNT; i++) {
        t->metric[i] += m[i];
        if (ci >= 0)
            t->country[ci][i] += m[i];
    }
}

typedef struct sbuf {
    char *p;
    size_t len, cap;
    int oom;
} sbuf_t;

static void sb_printf(sbuf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void sb_printf(sbuf_t *b, const char *fmt, ...) {
    va_list ap;
    for (;;) {
        if (b->oom)
            return;
        va_start(ap, fmt);
        int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = 1;
            return;
        }
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap * 2 + (size_t)n;
        char *np = realloc(b->p, cap);
        if (np == NULL) {
            b->oom = 1;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
}

static void sb_metrics(sbuf_t *b, const int64_t *m) {
    sb_printf(b, "{");
    for (int i = 0; i < OPS_METRIC_COUNT; i++)
        sb_printf(b, "%s\"%s\":%" PRId64, i ? "," : "", ops_metric_name((ops_metric_t)i), m[i]);
    sb_printf(b, "}");
}

/* Written by hand, not through jansson: the layout is part of the output
 * (the operation and its event count on the first line, one line a
 * country), and scripts such as mk/demo.sh read it line by line. What goes
 * in is numbers, names from the event model's tables and the operation code
 * (checked by the caller, e.g. opstream-simulate's --operation). */
char *ops_sim_totals_json(const ops_sim_totals_t *t) {
    sbuf_t b = {malloc(4096), 0, 4096, 0};
    if (b.p == NULL)
        return NULL;
    b.p[0] = '\0';
    sb_printf(&b, "{\"operation\":\"%s\",\"events\":%" PRId64 ",\n\"kinds\":{", t->operation,
              t->metric[OPS_METRIC_EVENTS]);
    for (int k = 0; k < OPS_KIND_COUNT; k++)
        sb_printf(&b, "%s\"%s\":%" PRId64, k ? "," : "", ops_kind_name((ops_kind_t)k),
                  t->by_kind[k]);
    sb_printf(&b, "},\n\"totals\":");
    sb_metrics(&b, t->metric);
    sb_printf(&b, ",\n\"countries\":{");
    int first = 1;
    for (int ci = 0; ci < 26 * 26; ci++) {
        if (t->country[ci][OPS_METRIC_EVENTS] == 0)
            continue;
        sb_printf(&b, "%s\n\"%c%c\":", first ? "" : ",", 'A' + ci / 26, 'A' + ci % 26);
        sb_metrics(&b, t->country[ci]);
        first = 0;
    }
    sb_printf(&b, "}}\n");
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    return b.p;
}
