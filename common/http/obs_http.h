/*
 * obs_http.h -- HTTP/1.1 server on libevent evhttp with a router, body limits and
 * Content-Encoding decoding; and a small blocking HTTP client on libcurl.
 *
 * Server: handlers run on the loop thread that owns the server. Before a handler runs, the
 * body is checked against the route's size limit (413 otherwise) and decoded according to
 * Content-Encoding (gzip, deflate, snappy block format); a bad encoding gets 400 without
 * calling the handler (routes flagged OBS_HTTP_GO_FORM behave as Go's net/http instead: see
 * the flags below). A 405 carries an Allow header listing the path's methods. Each request
 * carries an obs_arena freed when the reply is sent.
 * Every handler must reply exactly once (synchronously, or later via the loop).
 */
#ifndef OBS_HTTP_H
#define OBS_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "core/obs_err.h"
#include "core/obs_sbuf.h"

struct event_base;
struct obs_http_server;
struct obs_http_req;
struct obs_arena;

typedef void (*obs_http_handler)(struct obs_http_req *req, void *arg);

/* Listen on addr:port ("" or NULL = all interfaces; port 0 = pick one, see _port()).
 * Returns NULL with err set when binding fails. */
struct obs_http_server *obs_http_server_new(struct event_base *base, const char *addr, int port,
                                            struct obs_err *err);
/* Port actually bound (useful with port 0). */
int obs_http_server_port(const struct obs_http_server *s);
/* Default body limit in bytes for all routes (default 16 MiB); decoded size is also capped at
 * this value x 8 so a compression bomb gets 413. */
void obs_http_server_set_max_body(struct obs_http_server *s, size_t bytes);
/* Route: methods is "GET", "POST", "GET,POST", or NULL for any. path is matched exactly, or
 * as a prefix when it ends with '*' ("/api/v1/label/" + "*"). Later routes with the same path
 * replace earlier ones. Unmatched paths get 404 "404 page not found". */
int obs_http_route(struct obs_http_server *s, const char *methods, const char *path,
                   obs_http_handler fn, void *arg);
/* Same with a per-route body limit in bytes. */
int obs_http_route_limit(struct obs_http_server *s, const char *methods, const char *path,
                         size_t max_body, obs_http_handler fn, void *arg);
/* Route flags (obs_http_route_opts). */
/* Go net/http form semantics, for APIs that mirror a Go server (Prometheus' /api/v1):
 * Content-Encoding is NOT decoded (Go's server does not decode request bodies; the handler
 * sees the raw bytes), form values from a POST/PUT/PATCH body come BEFORE the query-string
 * values (r.Form order, so obs_http_req_param returns the body's value first), and a form
 * body larger than 10 MiB (Go's maxFormSize) or larger than the route's limit is not parsed
 * at all: the handler runs with the query-string parameters only and
 * obs_http_req_form_error() returns "http: POST too large". As url.ParseQuery, a pair with a
 * ';' or a bad %-escape is dropped and the first such error is the form error ("invalid
 * semicolon separator in query", "invalid URL escape \"%zz\""). */
#define OBS_HTTP_GO_FORM 0x1u
/* HEAD is not implied by GET (Go's router answers HEAD on a GET route with 405). */
#define OBS_HTTP_STRICT_METHODS 0x2u
/* The route only serves its own methods: for any other method the path counts as unrouted
 * (404, or another route), never as 405 -- for catch-all routes such as OPTIONS /api/v1/. */
#define OBS_HTTP_METHODS_ONLY 0x4u
/* JSON replies (Content-Type application/json) escape <, >, & and U+2028/U+2029 inside
 * strings as \u003c, \u003e, \u0026, \u2028, \u2029, byte for byte as Go's encoding/json. */
#define OBS_HTTP_GO_JSON 0x8u
/* Route with a body limit (0 = server default) and OBS_HTTP_* flags. */
int obs_http_route_opts(struct obs_http_server *s, const char *methods, const char *path,
                        size_t max_body, unsigned flags, obs_http_handler fn, void *arg);
void obs_http_server_free(struct obs_http_server *s);

/* --- request accessors (borrowed pointers valid until the reply) --- */
const char *obs_http_req_method(const struct obs_http_req *r); /* "GET", "POST", ... */
const char *obs_http_req_path(const struct obs_http_req *r);   /* decoded path, no query */
/* Path remainder after a prefix route's '*' (e.g. "job/values"), "" otherwise. */
const char *obs_http_req_rest(const struct obs_http_req *r);
/* Request header (case-insensitive), or NULL. */
const char *obs_http_req_header(const struct obs_http_req *r, const char *name);
/* First value of a parameter from the query string, or from an
 * application/x-www-form-urlencoded body (POST). NULL when absent. */
const char *obs_http_req_param(const struct obs_http_req *r, const char *name);
/* All values of a repeated parameter (match[]=...). Returns count; *out borrowed. */
size_t obs_http_req_params(const struct obs_http_req *r, const char *name, const char ***out);
/* Why the form body was not parsed (OBS_HTTP_GO_FORM routes), Go's wording; NULL when it
 * was parsed or there was none. */
const char *obs_http_req_form_error(const struct obs_http_req *r);
/* The decoded body. */
const uint8_t *obs_http_req_body(const struct obs_http_req *r, size_t *len);
/* Content-Encoding the body arrived with ("", "gzip", "snappy", ...). */
const char *obs_http_req_encoding(const struct obs_http_req *r);
/* Tenant from X-Scope-OrgID, or def when absent. */
const char *obs_http_req_tenant(const struct obs_http_req *r, const char *def);
/* Per-request arena, freed after the reply. */
struct obs_arena *obs_http_req_arena(struct obs_http_req *r);
/* Peer address "ip:port". */
const char *obs_http_req_peer(const struct obs_http_req *r);
/* The underlying libevent request (struct evhttp_request *), for callers that must watch the
 * connection (e.g. cancel a query when the client goes away). Borrowed until the reply. */
void *obs_http_req_evrequest(struct obs_http_req *r);

/* --- replies (each request gets exactly one) --- */
void obs_http_add_header(struct obs_http_req *r, const char *name, const char *value);
/* Send status with body (copied). content_type may be NULL (none). */
void obs_http_reply(struct obs_http_req *r, int status, const char *content_type,
                    const void *body, size_t len);
/* Send status with body taken from sbuf (the sbuf is emptied). */
void obs_http_reply_sbuf(struct obs_http_req *r, int status, const char *content_type,
                         struct obs_sbuf *body);
/* Plain-text reply: fmt + "\n" with text/plain; charset=utf-8 (Loki/Tempo error shape). */
void obs_http_reply_text(struct obs_http_req *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Prometheus API error: {"status":"error","errorType":type,"error":msg}. */
void obs_http_reply_prom_error(struct obs_http_req *r, int status, const char *type,
                               const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Delay the reply: the handler returns, and obs_http_reply* is called later on the loop.
 * If the client disconnects meanwhile, the request is still valid until the reply. */
void obs_http_req_defer(struct obs_http_req *r);

/* --- decoding helpers shared by ingest paths --- */
/* Decode snappy block format into out (appended). Errors: OBS_EINVAL (bad data),
 * OBS_ELIMIT (decoded size over max). */
int obs_snappy_decode(const uint8_t *in, size_t len, size_t max, struct obs_sbuf *out);
/* Encode snappy block format (appended to out). */
int obs_snappy_encode(const uint8_t *in, size_t len, struct obs_sbuf *out);
/* gzip (window 16+MAX_WBITS) or zlib-deflate decode, appended; max caps the output. */
int obs_gzip_decode(const uint8_t *in, size_t len, size_t max, struct obs_sbuf *out);
int obs_gzip_encode(const uint8_t *in, size_t len, struct obs_sbuf *out);

/* --- client: blocking, on libcurl; safe to call from any thread (one easy handle per call) --- */
struct obs_httpc_resp {
    int status;              /* HTTP status, 0 when no response */
    struct obs_sbuf body;    /* response body (caller deinit) */
};
/* method "GET"/"POST"/...; headers NULL-terminated "Name: value" strings or NULL; body may be
 * NULL. timeout in ms. Returns 0 when a response arrived (any status) or OBS_EIO with err set.
 * resp->body must be initialised by the caller (obs_sbuf_init) and deinit'd after. */
int obs_httpc_do(const char *method, const char *url, const char *const *headers,
                 const void *body, size_t len, int timeout_ms, struct obs_httpc_resp *resp,
                 struct obs_err *err);

#endif
