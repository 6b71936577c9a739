/*
 * opstream alert rules: the rules-file parser and the rule engine of
 * opstream-alert. Single-event rules fire on one event; spike rules compare a
 * metric over a sliding event-time window with a baseline of earlier windows.
 * Pure: no I/O besides reading the rules file, no clock (callers pass "now").
 */
#ifndef OPSTREAM_RULES_H
#define OPSTREAM_RULES_H

#include <stddef.h>
#include <stdint.h>

#include "opstream/event.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Rules file format (INI-like, one setting per line, '#' or ';' starts a
 * comment line, blank lines ignored):
 *
 *   [rule mass-rescue]              # name: [a-z0-9][a-z0-9_-]{0,63}, unique
 *   kind      = rescue              # arrest | rescue | migrant | seizure
 *   when      = victims >= 50       # conditions, joined with "and"; several
 *                                   # "when" lines are joined with "and" too
 *   severity  = CRITICAL            # INFO | WARNING | CRITICAL (default WARNING)
 *   cooldown  = 0                   # per operation and country (default 0)
 *   summary   = {country}: {victims} victims rescued in one {site} raid, {operation}
 *
 *   [rule country-victims-spike]
 *   type      = spike               # event (default) | spike
 *   metric    = victims             # arrests victims minor_victims migrants minor_migrants
 *                                   # seized_items events
 *   scope     = country             # country | operation
 *   window    = 10m                 # whole minutes; durations: 30s 10m 2h 1d
 *   baseline  = 6                   # earlier windows averaged (default 6)
 *   factor    = 3                   # fire at >= max(min, factor x baseline)
 *   min       = 40                  # (defaults: factor 3, min 1)
 *   min_events = 3                 # events in the window (default 1), so one
 *                                   # large event alone is not a spike
 *   severity  = WARNING
 *   cooldown  = 30m                 # default: the window
 *   kind      = rescue              # optional for spikes: only this kind
 *
 * Condition fields: count (the kind's headline number) and its names persons
 * (arrest), victims (rescue), migrants (migrant), items (seizure); minors
 * (rescue, migrant); referred (rescue) - numbers with >= > <= < == !=;
 * site, exploitation (rescue), offence (arrest), category (seizure) - schema
 * symbols with == !=; country (== !=, ISO code); nationality == CC (any of
 * the event's nationalities); location ~ text (contains, case-insensitive,
 * "quoted" for several words).
 *
 * Summary placeholders, event rules: {operation} {country} {kind} {count}
 * {persons} {victims} {migrants} {items} {minors} {site} {exploitation}
 * {offence} {category} {location} {at_location} (" at <location>" or "")
 * {event_id} {rule} {severity}. Spike rules: {operation} {country} {scope}
 * ("PH" or "all countries") {metric} {metric_text} ("victims rescued")
 * {observed} {baseline} {threshold} {factor} {window} ("10 min") {rule}
 * {severity}. Without a summary each kind and scope has a default sentence.
 *
 * Errors name the file, the line and the reason: "alerts.conf:12: unknown
 * key 'windw'"; a rule missing a setting is reported at its [rule] line.
 */

typedef struct ops_rules ops_rules_t;

/* Parses rules from text (len bytes, need not be NUL-terminated); filename
 * is used in error messages only. On success *out is a new rule set the
 * caller frees with ops_rules_destroy(). Returns 0, or -1 with errstr as
 * "FILE:LINE: reason" (a file with no rule is an error too). */
int ops_rules_parse(const char *text, size_t len, const char *filename, ops_rules_t **out,
                    char *errstr, size_t errstr_size);

/* Reads and parses a rules file (at most 1 MiB). */
int ops_rules_load_file(const char *path, ops_rules_t **out, char *errstr, size_t errstr_size);

void ops_rules_destroy(ops_rules_t *rules); /* accepts NULL */

size_t ops_rules_count(const ops_rules_t *rules);
/* Name of rule i (file order), NULL when out of range. */
const char *ops_rules_name(const ops_rules_t *rules, size_t i);
/* 1 when rule i is a spike rule, 0 when it is a single-event rule. */
int ops_rules_is_spike(const ops_rules_t *rules, size_t i);
/* The event-time span the spike rules look back over: the largest
 * (baseline + 1) x window, plus that rule's cooldown. 0 without spike rules.
 * opstream-alert re-reads at least this much on start. */
int64_t ops_rules_span_ms(const ops_rules_t *rules);

/* The deterministic alert id: a name-based (version 5, SHA-1) UUID in the
 * opstream alert namespace over "rule\x1foperation\x1fscope\x1finstance".
 * Spike rules pass scope = country or "" (operation-wide) and instance = the
 * window start in ms as decimal; single-event rules pass scope = country and
 * instance = the event_id. out receives 37 bytes. */
void ops_alert_id_derive(const char *rule, const char *operation, const char *scope,
                         const char *instance, char out[OPS_EVENT_ID_LEN + 1]);

/*
 * The rule engine: per (rule, operation, scope) it keeps event-time minute
 * sums over the rule's span and the last alert, for cooldowns. Memory grows
 * with the number of (operation, country) pairs seen, not with events.
 *
 * Evaluation of one event:
 *   - single-event rules: of the rules whose kind and conditions match, the
 *     most severe fires (the first in the file on a tie), so one event gives
 *     at most one such alert; window_start = window_end = occurred_at,
 *     observed = the count, threshold = the count bound of a >= or >
 *     condition (else 0). A cooldown suppresses the same rule for the same
 *     operation and country while occurred_at < last + cooldown.
 *   - spike rules, when the event adds to the metric: the window is the W
 *     minutes ending with the event's minute; the baseline the average of
 *     the `baseline` windows before it. The rule fires when observed >=
 *     max(min, factor x baseline) unless the scope is cooling down: after an
 *     alert for window [s, e), a window ending in (s, e + cooldown] is the
 *     same spike; while it stays over its threshold the quiet period is
 *     extended, so a continuing spike stays one alert.
 * Events older than the rule's span behind the newest event of the scope no
 * longer change spike state.
 */
typedef struct ops_rule_engine ops_rule_engine_t;

/* A new engine over rules, which the engine borrows: they must outlive it.
 * NULL with errstr when out of memory. */
ops_rule_engine_t *ops_rule_engine_new(const ops_rules_t *rules, char *errstr, size_t errstr_size);
void ops_rule_engine_destroy(ops_rule_engine_t *eng); /* accepts NULL */

/* Adds ev to the engine and evaluates every rule. Alerts that fire are
 * written to out (up to max; at most ops_rules_count() per event), with
 * raised_at = now_ms. out may be NULL with max 0: the engine then only
 * updates its state as if the alerts had been published, which is how
 * opstream-alert replays events it had already handled. Returns the number
 * of alerts (those past max are counted but not written), or -1 with errstr
 * when out of memory (the engine stays usable). */
int ops_rule_engine_process(ops_rule_engine_t *eng, const ops_event_t *ev, int64_t now_ms,
                            ops_alert_t *out, size_t max, char *errstr, size_t errstr_size);

/* Restores cooldown state from an alert published earlier (read back from
 * the alert topic on start), so a replay does not raise a second alert for
 * the same spike. Alerts of rules not in the set are ignored. Returns 0, or
 * -1 when out of memory. */
int ops_rule_engine_restore(ops_rule_engine_t *eng, const ops_alert_t *alert);

/* Number of (rule, operation, scope) states held (for tests and -v). */
size_t ops_rule_engine_states(const ops_rule_engine_t *eng);

#ifdef __cplusplus
}
#endif
#endif
