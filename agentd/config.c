/*
 * config.c -- agentd configuration: Promtail's keys for logs, a Grafana-Agent-style
 * `metrics:` section for scraping, both bound with obs_cf tables.
 *
 *   positions:      {filename, sync_period}
 *   clients:        [{url, tenant_id, batchwait, batchsize, timeout, backoff_config,
 *                     external_labels}]
 *   scrape_configs: [{job_name, static_configs: [{targets, labels: {__path__: glob, ...}}]}]
 *   metrics:        {global: {scrape_interval, scrape_timeout, external_labels},
 *                    scrape_configs: [{job_name, static_configs, metrics_path, scheme,
 *                                      scrape_interval, scrape_timeout, honor_labels}],
 *                    remote_write: [{url, name, remote_timeout, headers, queue_bytes}],
 *                    wal_directory}
 * Lists of maps are kept as OBS_CFT_NODE and bound item by item here, so an unknown key deep in
 * a list item still fails with its own file:line:col.
 */
#include <string.h>

#include "agd.h"
#include "core/obs_mem.h"

/* ---- tables ---------------------------------------------------------------------------- */

static const struct obs_cfmap positions_map[] = {
    {"filename", OBS_CFT_STR, "./data/agentd/positions.yaml",
     offsetof(struct agd_positions_cfg, filename), "Where to keep read offsets."},
    {"sync_period", OBS_CFT_DURATION, "10s", offsetof(struct agd_positions_cfg, sync_period_ms),
     "How often the positions file is written."},
    {"ignore_invalid_yaml", OBS_CFT_IGNORE, NULL, 0, "Accepted for Promtail compatibility."},
    {NULL},
};

static const struct obs_cfmap backoff_map[] = {
    {"min_period", OBS_CFT_DURATION, "500ms", offsetof(struct agd_backoff_cfg, min_period_ms),
     "First retry delay."},
    {"max_period", OBS_CFT_DURATION, "5m", offsetof(struct agd_backoff_cfg, max_period_ms),
     "Longest retry delay."},
    {"max_retries", OBS_CFT_INT, "0", offsetof(struct agd_backoff_cfg, max_retries),
     "Attempts before a batch is dropped; 0 = never drop (retry until shutdown)."},
    {NULL},
};

static const struct obs_cfmap client_map[] = {
    {"url", OBS_CFT_STR, NULL, offsetof(struct agd_client_cfg, url), "Loki push URL."},
    {"tenant_id", OBS_CFT_STR, NULL, offsetof(struct agd_client_cfg, tenant_id),
     "Sent as X-Scope-OrgID."},
    {"batchwait", OBS_CFT_DURATION, "1s", offsetof(struct agd_client_cfg, batchwait_ms),
     "Longest time a line waits in a batch."},
    {"batchsize", OBS_CFT_BYTES, "1048576", offsetof(struct agd_client_cfg, batchsize),
     "Batch size in bytes of log lines that triggers a push."},
    {"timeout", OBS_CFT_DURATION, "10s", offsetof(struct agd_client_cfg, timeout_ms),
     "Push request timeout."},
    {"backoff_config", OBS_CFT_SECTION, NULL, offsetof(struct agd_client_cfg, backoff),
     "Retry backoff.", backoff_map},
    {"external_labels", OBS_CFT_NODE, NULL, offsetof(struct agd_client_cfg, external_labels_node),
     "Labels added to every stream sent by this client."},
    {NULL},
};

static const struct obs_cfmap static_map[] = {
    {"targets", OBS_CFT_STRLIST, NULL, offsetof(struct agd_static_cfg, targets), "Targets."},
    {"labels", OBS_CFT_NODE, NULL, offsetof(struct agd_static_cfg, labels_node),
     "Labels for the group (logs: __path__ is the glob to tail)."},
    {NULL},
};

static const struct obs_cfmap logjob_map[] = {
    {"job_name", OBS_CFT_STR, NULL, offsetof(struct agd_logjob_cfg, job_name), "Job name."},
    {"static_configs", OBS_CFT_NODE, NULL, offsetof(struct agd_logjob_cfg, static_node),
     "Target groups."},
    {NULL},
};

static const struct obs_cfmap scrape_map[] = {
    {"job_name", OBS_CFT_STR, NULL, offsetof(struct agd_scrape_cfg, job_name), "Job name."},
    {"metrics_path", OBS_CFT_STR, "/metrics", offsetof(struct agd_scrape_cfg, metrics_path),
     "HTTP path scraped."},
    {"scheme", OBS_CFT_STR, "http", offsetof(struct agd_scrape_cfg, scheme), "http or https."},
    {"scrape_interval", OBS_CFT_DURATION, NULL, offsetof(struct agd_scrape_cfg,
                                                         scrape_interval_ms),
     "Defaults to global.scrape_interval."},
    {"scrape_timeout", OBS_CFT_DURATION, NULL, offsetof(struct agd_scrape_cfg, scrape_timeout_ms),
     "Defaults to global.scrape_timeout."},
    {"honor_labels", OBS_CFT_BOOL, "false", offsetof(struct agd_scrape_cfg, honor_labels),
     "Keep the target's labels on conflict instead of renaming them exported_<name>."},
    {"static_configs", OBS_CFT_NODE, NULL, offsetof(struct agd_scrape_cfg, static_node),
     "Target groups."},
    {NULL},
};

static const struct obs_cfmap rw_map[] = {
    {"url", OBS_CFT_STR, NULL, offsetof(struct agd_rw_cfg, url), "Remote write URL."},
    {"name", OBS_CFT_STR, NULL, offsetof(struct agd_rw_cfg, name), "Queue name."},
    {"remote_timeout", OBS_CFT_DURATION, "30s", offsetof(struct agd_rw_cfg, remote_timeout_ms),
     "Request timeout."},
    {"queue_bytes", OBS_CFT_BYTES, "64MiB", offsetof(struct agd_rw_cfg, queue_bytes),
     "Bound of the in-memory send queue; the oldest requests are dropped beyond it."},
    {"headers", OBS_CFT_NODE, NULL, offsetof(struct agd_rw_cfg, headers_node),
     "Extra HTTP headers."},
    {"queue_config", OBS_CFT_IGNORE, NULL, 0, "Accepted for Prometheus compatibility."},
    {NULL},
};

struct global_cfg {
    int64_t scrape_interval_ms;
    int64_t scrape_timeout_ms;
    const struct obs_cf_node *external_labels_node;
};

static const struct obs_cfmap global_map[] = {
    {"scrape_interval", OBS_CFT_DURATION, "15s", offsetof(struct global_cfg, scrape_interval_ms),
     "Default scrape interval."},
    {"scrape_timeout", OBS_CFT_DURATION, "10s", offsetof(struct global_cfg, scrape_timeout_ms),
     "Default scrape timeout."},
    {"external_labels", OBS_CFT_NODE, NULL, offsetof(struct global_cfg, external_labels_node),
     "Labels added to every remote-written series."},
    {"evaluation_interval", OBS_CFT_IGNORE, NULL, 0, "Accepted; agentd evaluates no rules."},
    {NULL},
};

struct metrics_raw {
    struct global_cfg global;
    const struct obs_cf_node *scrape_node;
    const struct obs_cf_node *rw_node;
    char *wal_directory;
};

static const struct obs_cfmap metrics_map[] = {
    {"global", OBS_CFT_SECTION, NULL, offsetof(struct metrics_raw, global), "Defaults.",
     global_map},
    {"scrape_configs", OBS_CFT_NODE, NULL, offsetof(struct metrics_raw, scrape_node),
     "Scrape jobs."},
    {"remote_write", OBS_CFT_NODE, NULL, offsetof(struct metrics_raw, rw_node),
     "Remote write endpoints."},
    {"wal_directory", OBS_CFT_STR, "./data/agentd/wal", offsetof(struct metrics_raw,
                                                                  wal_directory),
     "Directory for agent state."},
    {NULL},
};

/* ---- helpers --------------------------------------------------------------------------- */

static int bind_kv(const struct obs_cf_node *n, struct agd_kv *kv, struct obs_err *err)
{
    if (!n || n->type == OBS_CF_NULL)
        return 0;
    if (n->type != OBS_CF_MAP)
        return obs_cf_error(err, n, "expected a mapping of label names to values");
    kv->v = obs_calloc(n->n ? n->n : 1, sizeof(*kv->v));
    if (!kv->v)
        return obs_err_set(err, OBS_ENOMEM, "out of memory");
    for (size_t i = 0; i < n->n; i++) {
        const struct obs_cf_node *it = n->items[i];
        if (it->type != OBS_CF_SCALAR)
            return obs_cf_error(err, it, "label value must be a string");
        kv->v[kv->n].name = obs_strdup(it->key);
        kv->v[kv->n].value = obs_strdup(it->value);
        kv->n++;
        if (!kv->v[kv->n - 1].name || !kv->v[kv->n - 1].value)
            return obs_err_set(err, OBS_ENOMEM, "out of memory");
    }
    return 0;
}

static void free_kv(struct agd_kv *kv)
{
    for (size_t i = 0; i < kv->n; i++) {
        obs_free((char *)kv->v[i].name);
        obs_free((char *)kv->v[i].value);
    }
    obs_free(kv->v);
    kv->v = NULL;
    kv->n = 0;
}

/* Bind a YAML sequence of maps into a freshly allocated array of elem-size structs. */
static int bind_seq(const struct obs_cf_node *seq, const struct obs_cfmap *table, size_t elem,
                    void **out, size_t *nout, struct obs_err *err)
{
    *out = NULL;
    *nout = 0;
    if (!seq || seq->type == OBS_CF_NULL)
        return 0;
    if (seq->type != OBS_CF_SEQ)
        return obs_cf_error(err, seq, "expected a list");
    char *arr = obs_calloc(seq->n ? seq->n : 1, elem);
    if (!arr)
        return obs_err_set(err, OBS_ENOMEM, "out of memory");
    *out = arr;
    for (size_t i = 0; i < seq->n; i++) {
        int rc = obs_cf_bind(seq->items[i], table, arr + i * elem, err);
        *nout = i + 1;
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int bind_statics(const struct obs_cf_node *n, struct agd_static_cfg **out, size_t *nout,
                        struct obs_err *err)
{
    int rc = bind_seq(n, static_map, sizeof(**out), (void **)out, nout, err);
    for (size_t i = 0; rc == 0 && i < *nout; i++)
        rc = bind_kv((*out)[i].labels_node, &(*out)[i].labels, err);
    return rc;
}

static void free_statics(struct agd_static_cfg *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        obs_cf_unbind(static_map, &v[i]);
        free_kv(&v[i].labels);
    }
    obs_free(v);
}

/* ---- entry points ---------------------------------------------------------------------- */

int agd_cfg_load(const struct obs_cf_node *root, struct agd_cfg *cfg, struct obs_err *err)
{
    int rc;
    memset(cfg, 0, sizeof(*cfg));
    rc = obs_cf_bind(obs_cf_get(root, "positions"), positions_map, &cfg->positions, err);
    if (rc < 0)
        return rc;

    cfg->clients_node = obs_cf_get(root, "clients");
    const struct obs_cf_node *one = obs_cf_get(root, "client"); /* Promtail's single form */
    if (one && one->type == OBS_CF_MAP) {
        cfg->clients = obs_calloc(1, sizeof(*cfg->clients));
        if (!cfg->clients)
            return obs_err_set(err, OBS_ENOMEM, "out of memory");
        cfg->nclients = 1;
        rc = obs_cf_bind(one, client_map, cfg->clients, err);
    } else {
        rc = bind_seq(cfg->clients_node, client_map, sizeof(*cfg->clients),
                      (void **)&cfg->clients, &cfg->nclients, err);
    }
    for (size_t i = 0; rc == 0 && i < cfg->nclients; i++) {
        struct agd_client_cfg *c = &cfg->clients[i];
        const struct obs_cf_node *at = cfg->clients_node && cfg->clients_node->type == OBS_CF_SEQ
                                           ? cfg->clients_node->items[i]
                                           : one;
        if (!c->url || !*c->url)
            return obs_cf_error(err, at, "url: a client needs a url");
        rc = bind_kv(c->external_labels_node, &c->external_labels, err);
    }
    if (rc < 0)
        return rc;

    cfg->jobs_node = obs_cf_get(root, "scrape_configs");
    rc = bind_seq(cfg->jobs_node, logjob_map, sizeof(*cfg->jobs), (void **)&cfg->jobs,
                  &cfg->njobs, err);
    for (size_t i = 0; rc == 0 && i < cfg->njobs; i++)
        rc = bind_statics(cfg->jobs[i].static_node, &cfg->jobs[i].statics, &cfg->jobs[i].nstatics,
                          err);
    if (rc < 0)
        return rc;

    struct metrics_raw mr = {0};
    const struct obs_cf_node *mnode = obs_cf_get(root, "metrics");
    rc = obs_cf_bind(mnode, metrics_map, &mr, err);
    struct agd_metrics_cfg *m = &cfg->metrics;
    m->scrape_interval_ms = mr.global.scrape_interval_ms;
    m->scrape_timeout_ms = mr.global.scrape_timeout_ms;
    m->external_labels_node = mr.global.external_labels_node;
    m->scrape_node = mr.scrape_node;
    m->rw_node = mr.rw_node;
    m->wal_directory = mr.wal_directory;
    if (rc < 0)
        return rc;
    if (m->scrape_timeout_ms > m->scrape_interval_ms)
        m->scrape_timeout_ms = m->scrape_interval_ms;
    rc = bind_kv(m->external_labels_node, &m->external_labels, err);
    if (rc == 0)
        rc = bind_seq(m->scrape_node, scrape_map, sizeof(*m->scrapes), (void **)&m->scrapes,
                      &m->nscrapes, err);
    for (size_t i = 0; rc == 0 && i < m->nscrapes; i++) {
        struct agd_scrape_cfg *s = &m->scrapes[i];
        const struct obs_cf_node *at = m->scrape_node->items[i];
        if (!s->job_name || !*s->job_name)
            return obs_cf_error(err, at, "job_name: a scrape config needs a job_name");
        for (size_t j = 0; j < i; j++)
            if (!strcmp(m->scrapes[j].job_name, s->job_name))
                return obs_cf_error(err, at, "job_name: duplicate job name \"%s\"", s->job_name);
        if (strcmp(s->scheme, "http") && strcmp(s->scheme, "https"))
            return obs_cf_error(err, obs_cf_get(at, "scheme"), "scheme must be http or https");
        if (!s->scrape_interval_ms)
            s->scrape_interval_ms = m->scrape_interval_ms;
        if (!s->scrape_timeout_ms)
            s->scrape_timeout_ms = m->scrape_timeout_ms;
        if (s->scrape_timeout_ms > s->scrape_interval_ms)
            return obs_cf_error(err, at, "scrape_timeout greater than scrape_interval");
        rc = bind_statics(s->static_node, &s->statics, &s->nstatics, err);
    }
    if (rc == 0)
        rc = bind_seq(m->rw_node, rw_map, sizeof(*m->rws), (void **)&m->rws, &m->nrws, err);
    for (size_t i = 0; rc == 0 && i < m->nrws; i++) {
        if (!m->rws[i].url || !*m->rws[i].url)
            return obs_cf_error(err, m->rw_node->items[i], "url: remote_write needs a url");
        rc = bind_kv(m->rws[i].headers_node, &m->rws[i].headers, err);
    }
    return rc;
}

void agd_cfg_free(struct agd_cfg *cfg)
{
    obs_cf_unbind(positions_map, &cfg->positions);
    for (size_t i = 0; i < cfg->nclients; i++) {
        obs_cf_unbind(client_map, &cfg->clients[i]);
        free_kv(&cfg->clients[i].external_labels);
    }
    obs_free(cfg->clients);
    for (size_t i = 0; i < cfg->njobs; i++) {
        free_statics(cfg->jobs[i].statics, cfg->jobs[i].nstatics);
        obs_cf_unbind(logjob_map, &cfg->jobs[i]);
    }
    obs_free(cfg->jobs);
    struct agd_metrics_cfg *m = &cfg->metrics;
    for (size_t i = 0; i < m->nscrapes; i++) {
        free_statics(m->scrapes[i].statics, m->scrapes[i].nstatics);
        obs_cf_unbind(scrape_map, &m->scrapes[i]);
    }
    obs_free(m->scrapes);
    for (size_t i = 0; i < m->nrws; i++) {
        obs_cf_unbind(rw_map, &m->rws[i]);
        free_kv(&m->rws[i].headers);
    }
    obs_free(m->rws);
    free_kv(&m->external_labels);
    obs_free(m->wal_directory);
    memset(cfg, 0, sizeof(*cfg));
}
