/*
 * opstream observability bundle: one call gives a program its registry,
 * health state and (when configured) HTTP endpoint, in the order that lets
 * the endpoint's thread find everything it reads already there.
 */
#include "opstream/observe.h"

#include <string.h>

#include "err_priv.h"

int ops_observe_start(const ops_config_t *cfg, const char *version, int stall_ms,
                      ops_observe_t *obs, char *errstr, size_t errstr_size) {
    const char *listen = ops_config_get(cfg, "opstream.metrics.listen");
    memset(obs, 0, sizeof(*obs));
    if (!(obs->metrics = ops_metrics_new()) || !(obs->health = ops_health_new(stall_ms))) {
        ops_err_format(errstr, errstr_size, "out of memory");
        goto fail;
    }
    if (ops_metrics_add_build_info(obs->metrics, version, errstr, errstr_size) != 0 ||
        ops_metrics_add_process(obs->metrics, errstr, errstr_size) != 0)
        goto fail;
    if (listen && *listen) {
        ops_endpoint_options_t eo = {
            .listen = listen, .metrics = obs->metrics, .health = obs->health};
        if (!(obs->endpoint = ops_endpoint_start(&eo, errstr, errstr_size)))
            goto fail;
    }
    return 0;
fail:
    ops_observe_stop(obs);
    return -1;
}

void ops_observe_stop(ops_observe_t *obs) {
    if (!obs)
        return;
    ops_endpoint_stop(obs->endpoint);
    ops_health_destroy(obs->health);
    ops_metrics_destroy(obs->metrics);
    memset(obs, 0, sizeof(*obs));
}
