/*
 * obs_http.c -- HTTP/1.1 server on evhttp with a router, and a libcurl client (see obs_http.h).
 *
 * Design: evhttp delivers every request to one generic callback. We pick the route (exact
 * match, else longest prefix route), enforce the route's body limit, decode Content-Encoding
 * into the request arena, parse query/form parameters ourselves (evhttp's parser does not
 * turn '+' into a space, which Go clients such as promtool rely on), and call the handler.
 * The obs_http_req and everything hung off it live in a per-request arena freed at reply.
 */
#include "http/obs_http.h"
#include "core/obs_arena.h"
#include "core/obs_log.h"
#include "core/obs_mem.h"

#include <curl/curl.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <arpa/inet.h>

#define DEFAULT_MAX_BODY (16u << 20)

struct route {
    char *methods; /* NULL = any */
    char *path;
    size_t plen;
    int prefix;
    size_t max_body; /* 0 = server default */
    unsigned flags;  /* OBS_HTTP_* */
    obs_http_handler fn;
    void *arg;
};

struct obs_http_server {
    struct evhttp *http;
    struct evhttp_bound_socket *sock;
    int port;
    size_t max_body;
    struct route *routes;
    size_t nroutes;
};

struct param {
    const char *name;
    const char *value;
};

struct obs_http_req {
    struct evhttp_request *ev;
    struct obs_http_server *srv;
    struct obs_arena *arena;
    const char *method;
    const char *path;
    const char *rest;
    const uint8_t *body;
    size_t body_len;
    const char *encoding;
    struct param *params;
    size_t nparams;
    size_t cparams; /* capacity of params (grown by doubling: linear in the query size) */
    const char *form_error; /* OBS_HTTP_GO_FORM: why the form body was not parsed */
    unsigned flags;         /* the route's OBS_HTTP_* flags */
    char peer[64];
    int replied;
};

#define GO_MAX_FORM_SIZE (10u << 20) /* net/http maxFormSize */

/* --- server ----------------------------------------------------------------------------- */

static void generic_cb(struct evhttp_request *ev, void *arg);

struct obs_http_server *obs_http_server_new(struct event_base *base, const char *addr, int port,
                                            struct obs_err *err)
{
    struct obs_http_server *s = obs_calloc(1, sizeof(*s));
    if (s == NULL) {
        obs_err_set(err, OBS_ENOMEM, "out of memory");
        return NULL;
    }
    s->max_body = DEFAULT_MAX_BODY;
    s->http = evhttp_new(base);
    if (s->http == NULL) {
        obs_free(s);
        obs_err_set(err, OBS_ENOMEM, "evhttp_new failed");
        return NULL;
    }
    const char *bind_addr = (addr && *addr) ? addr : "0.0.0.0";
    s->sock = evhttp_bind_socket_with_handle(s->http, bind_addr, (ev_uint16_t)port);
    if (s->sock == NULL) {
        evhttp_free(s->http);
        obs_free(s);
        obs_err_set(err, OBS_EIO, "cannot listen on %s:%d: address in use or not available",
                    bind_addr, port);
        return NULL;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    evutil_socket_t fd = evhttp_bound_socket_get_fd(s->sock);
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET)
            s->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        else if (ss.ss_family == AF_INET6)
            s->port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    }
    evhttp_set_allowed_methods(s->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
                                            EVHTTP_REQ_DELETE | EVHTTP_REQ_HEAD |
                                            EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
    evhttp_set_max_body_size(s->http, (ev_ssize_t)s->max_body);
    evhttp_set_timeout(s->http, 120);
    evhttp_set_gencb(s->http, generic_cb, s);
    return s;
}

int obs_http_server_port(const struct obs_http_server *s) { return s->port; }

static void update_evhttp_limit(struct obs_http_server *s)
{
    size_t m = s->max_body;
    for (size_t i = 0; i < s->nroutes; i++)
        if (s->routes[i].max_body > m)
            m = s->routes[i].max_body;
    evhttp_set_max_body_size(s->http, (ev_ssize_t)m);
}

void obs_http_server_set_max_body(struct obs_http_server *s, size_t bytes)
{
    s->max_body = bytes ? bytes : DEFAULT_MAX_BODY;
    update_evhttp_limit(s);
}

int obs_http_route_limit(struct obs_http_server *s, const char *methods, const char *path,
                         size_t max_body, obs_http_handler fn, void *arg)
{
    return obs_http_route_opts(s, methods, path, max_body, 0, fn, arg);
}

int obs_http_route_opts(struct obs_http_server *s, const char *methods, const char *path,
                        size_t max_body, unsigned flags, obs_http_handler fn, void *arg)
{
    size_t plen = strlen(path);
    int prefix = plen > 0 && path[plen - 1] == '*';
    if (prefix)
        plen--;
    for (size_t i = 0; i < s->nroutes; i++) {
        struct route *r = &s->routes[i];
        if (r->prefix == prefix && r->plen == plen && strncmp(r->path, path, plen) == 0 &&
            ((r->methods == NULL && methods == NULL) ||
             (r->methods && methods && strcmp(r->methods, methods) == 0))) {
            r->fn = fn;
            r->arg = arg;
            r->max_body = max_body;
            r->flags = flags;
            update_evhttp_limit(s);
            return OBS_OK;
        }
    }
    struct route *nr = obs_realloc(s->routes, (s->nroutes + 1) * sizeof(*nr));
    if (nr == NULL)
        return OBS_ENOMEM;
    s->routes = nr;
    struct route *r = &s->routes[s->nroutes];
    memset(r, 0, sizeof(*r));
    r->methods = methods ? obs_strdup(methods) : NULL;
    r->path = obs_strndup(path, plen);
    if (r->path == NULL || (methods && r->methods == NULL)) {
        obs_free(r->methods);
        obs_free(r->path);
        return OBS_ENOMEM;
    }
    r->plen = plen;
    r->prefix = prefix;
    r->max_body = max_body;
    r->flags = flags;
    r->fn = fn;
    r->arg = arg;
    s->nroutes++;
    update_evhttp_limit(s);
    return OBS_OK;
}

int obs_http_route(struct obs_http_server *s, const char *methods, const char *path,
                   obs_http_handler fn, void *arg)
{
    return obs_http_route_limit(s, methods, path, 0, fn, arg);
}

void obs_http_server_free(struct obs_http_server *s)
{
    if (s == NULL)
        return;
    evhttp_free(s->http);
    for (size_t i = 0; i < s->nroutes; i++) {
        obs_free(s->routes[i].methods);
        obs_free(s->routes[i].path);
    }
    obs_free(s->routes);
    obs_free(s);
}

static const char *method_name(enum evhttp_cmd_type t)
{
    switch (t) {
    case EVHTTP_REQ_GET: return "GET";
    case EVHTTP_REQ_POST: return "POST";
    case EVHTTP_REQ_PUT: return "PUT";
    case EVHTTP_REQ_DELETE: return "DELETE";
    case EVHTTP_REQ_HEAD: return "HEAD";
    case EVHTTP_REQ_OPTIONS: return "OPTIONS";
    case EVHTTP_REQ_PATCH: return "PATCH";
    default: return "OTHER";
    }
}

static int method_allowed(const struct route *rt, const char *m)
{
    const char *methods = rt->methods;
    int head_is_get = !(rt->flags & OBS_HTTP_STRICT_METHODS);
    if (methods == NULL)
        return 1;
    size_t ml = strlen(m);
    const char *p = methods;
    while (*p) {
        const char *c = strchr(p, ',');
        size_t l = c ? (size_t)(c - p) : strlen(p);
        if (l == ml && strncmp(p, m, l) == 0)
            return 1;
        if (head_is_get && strcmp(m, "HEAD") == 0 && l == 3 && strncmp(p, "GET", 3) == 0)
            return 1;
        if (!c)
            break;
        p = c + 1;
    }
    return 0;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* URL-decode s[0..n) into the arena; plus_is_space for query/form encoding. */
static char *url_decode(struct obs_arena *a, const char *s, size_t n, int plus_is_space)
{
    char *out = obs_arena_alloc(a, n + 1);
    if (out == NULL)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%' && i + 2 < n) {
            int hi = hexval((unsigned char)s[i + 1]), lo = hexval((unsigned char)s[i + 2]);
            if (hi >= 0 && lo >= 0) {
                out[o++] = (char)(hi * 16 + lo);
                i += 2;
                continue;
            }
        }
        out[o++] = (plus_is_space && s[i] == '+') ? ' ' : s[i];
    }
    out[o] = '\0';
    return out;
}

/*
 * Go's url.ParseQuery refuses a pair with a ';' or a bad %-escape (the pair is dropped, the
 * first error kept). Returns NULL when s[0..n) is fine, else the error text in the arena.
 */
static const char *go_pair_error(struct obs_arena *a, const char *s, size_t n)
{
    if (memchr(s, ';', n) != NULL)
        return "invalid semicolon separator in query";
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '%')
            continue;
        if (i + 2 >= n || hexval((unsigned char)s[i + 1]) < 0 ||
            hexval((unsigned char)s[i + 2]) < 0) {
            /* the escape as Go quotes it: at most 3 bytes from the '%' */
            size_t el = n - i < 3 ? n - i : 3;
            char *m = obs_arena_alloc(a, 32);
            if (m == NULL)
                return "invalid URL escape";
            snprintf(m, 32, "invalid URL escape \"%.*s\"", (int)el, s + i);
            return m;
        }
        i += 2;
    }
    return NULL;
}

static int parse_params(struct obs_http_req *r, const char *q, size_t len)
{
    const char *p = q, *end = q + len;
    int go = (r->flags & OBS_HTTP_GO_FORM) != 0;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *seg_end = amp ? amp : end;
        const char *gerr = go && seg_end > p ? go_pair_error(r->arena, p, (size_t)(seg_end - p))
                                             : NULL;
        if (gerr != NULL) {
            if (r->form_error == NULL)
                r->form_error = gerr;
        } else if (seg_end > p) {
            const char *eq = memchr(p, '=', (size_t)(seg_end - p));
            const char *kend = eq ? eq : seg_end;
            if (r->nparams == r->cparams) {
                size_t nc = r->cparams ? r->cparams * 2 : 16;
                struct param *grown = obs_arena_alloc(r->arena, nc * sizeof(*grown));
                if (grown == NULL)
                    return OBS_ENOMEM;
                if (r->nparams)
                    memcpy(grown, r->params, r->nparams * sizeof(*grown));
                r->params = grown;
                r->cparams = nc;
            }
            struct param *np = r->params;
            np[r->nparams].name = url_decode(r->arena, p, (size_t)(kend - p), 1);
            np[r->nparams].value =
                eq ? url_decode(r->arena, eq + 1, (size_t)(seg_end - eq - 1), 1) : "";
            if (np[r->nparams].name == NULL || np[r->nparams].value == NULL)
                return OBS_ENOMEM;
            r->nparams++;
        }
        p = seg_end + 1;
    }
    return OBS_OK;
}

/* A response to HEAD carries no body (RFC 9110 9.3.2); libevent 2.1 would send it anyway,
 * and a keep-alive client would then read it as the start of the next response. */
static int is_head(struct evhttp_request *ev)
{
    return evhttp_request_get_command(ev) == EVHTTP_REQ_HEAD;
}

static void send_plain(struct evhttp_request *ev, int status, const char *msg)
{
    struct evbuffer *b = is_head(ev) ? NULL : evbuffer_new();
    if (b)
        evbuffer_add_printf(b, "%s\n", msg);
    evhttp_add_header(evhttp_request_get_output_headers(ev), "Content-Type",
                      "text/plain; charset=utf-8");
    evhttp_send_reply(ev, status, NULL, b);
    if (b)
        evbuffer_free(b);
}

/* The methods routed for a path, sorted and ", "-joined as Go's router writes its 405
 * Allow header ("GET, OPTIONS, POST"); "" when a route takes any method. */
static void allowed_methods(const struct obs_http_server *s, const char *path, size_t plen,
                            char *out, size_t cap)
{
    static const char *const all[] = {"DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST",
                                      "PUT"};
    int have[sizeof all / sizeof all[0]] = {0};
    out[0] = '\0';
    for (size_t i = 0; i < s->nroutes; i++) {
        const struct route *rt = &s->routes[i];
        int match = rt->prefix ? plen >= rt->plen && memcmp(rt->path, path, rt->plen) == 0
                                : rt->plen == plen && memcmp(rt->path, path, plen) == 0;
        if (!match)
            continue;
        if (rt->methods == NULL)
            return;
        for (size_t k = 0; k < sizeof all / sizeof all[0]; k++)
            if (method_allowed(rt, all[k]))
                have[k] = 1;
    }
    size_t o = 0;
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++) {
        if (!have[k])
            continue;
        int n = snprintf(out + o, cap - o, "%s%s", o ? ", " : "", all[k]);
        if (n < 0 || (size_t)n >= cap - o)
            break;
        o += (size_t)n;
    }
}

static void generic_cb(struct evhttp_request *ev, void *arg)
{
    struct obs_http_server *s = arg;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(ev);
    const char *raw_path = uri ? evhttp_uri_get_path(uri) : NULL;
    if (raw_path == NULL || *raw_path == '\0')
        raw_path = "/";
    const char *method = method_name(evhttp_request_get_command(ev));

    struct obs_arena *arena = obs_arena_new(0);
    struct obs_http_req *r = arena ? obs_arena_calloc(arena, sizeof(*r)) : NULL;
    if (r == NULL) {
        obs_arena_free(arena);
        send_plain(ev, 503, "out of memory");
        return;
    }
    r->ev = ev;
    r->srv = s;
    r->arena = arena;
    r->method = method;
    r->path = url_decode(arena, raw_path, strlen(raw_path), 0);
    r->rest = "";
    r->encoding = "";
    if (r->path == NULL) {
        obs_arena_free(arena);
        send_plain(ev, 503, "out of memory");
        return;
    }
    {
        char *host = NULL;
        ev_uint16_t port = 0;
        struct evhttp_connection *conn = evhttp_request_get_connection(ev);
        if (conn) {
            evhttp_connection_get_peer(conn, &host, &port);
            snprintf(r->peer, sizeof(r->peer), "%s:%u", host ? host : "?", port);
        }
    }

    /* route: exact first, then the longest matching prefix */
    struct route *best = NULL;
    int path_matched = 0;
    size_t plen = strlen(r->path);
    for (size_t i = 0; i < s->nroutes; i++) {
        struct route *rt = &s->routes[i];
        if (!rt->prefix && rt->plen == plen && memcmp(rt->path, r->path, plen) == 0) {
            int ok = method_allowed(rt, method);
            path_matched |= ok || !(rt->flags & OBS_HTTP_METHODS_ONLY);
            if (ok) {
                best = rt;
                break;
            }
        }
    }
    if (best == NULL) {
        for (size_t i = 0; i < s->nroutes; i++) {
            struct route *rt = &s->routes[i];
            if (rt->prefix && plen >= rt->plen && memcmp(rt->path, r->path, rt->plen) == 0) {
                int ok = method_allowed(rt, method);
                path_matched |= ok || !(rt->flags & OBS_HTTP_METHODS_ONLY);
                if (ok && (best == NULL || rt->plen > best->plen))
                    best = rt;
            }
        }
    }
    if (best == NULL) {
        if (path_matched) {
            char allow[128];
            allowed_methods(s, r->path, plen, allow, sizeof allow);
            if (allow[0])
                evhttp_add_header(evhttp_request_get_output_headers(ev), "Allow", allow);
            send_plain(ev, 405, "Method Not Allowed");
        } else {
            send_plain(ev, 404, "404 page not found");
        }
        obs_arena_free(arena);
        return;
    }
    if (best->prefix)
        r->rest = r->path + best->plen;
    r->flags = best->flags;

    /* body: limit and Content-Encoding */
    struct evbuffer *in = evhttp_request_get_input_buffer(ev);
    size_t blen = evbuffer_get_length(in);
    size_t limit = best->max_body ? best->max_body : s->max_body;
    int go_form = (best->flags & OBS_HTTP_GO_FORM) != 0;
    if (!go_form && blen > limit) {
        obs_arena_free(arena);
        char msg[128];
        snprintf(msg, sizeof(msg), "request body too large: %zu bytes, limit %zu bytes", blen,
                 limit);
        send_plain(ev, 413, msg);
        return;
    }
    const uint8_t *body = blen ? evbuffer_pullup(in, -1) : (const uint8_t *)"";
    const char *ce = evhttp_find_header(evhttp_request_get_input_headers(ev), "Content-Encoding");
    r->body = body;
    r->body_len = blen;
    if (ce && *ce && strcasecmp(ce, "identity") != 0 && blen > 0 && !go_form) {
        struct obs_sbuf dec;
        obs_sbuf_init(&dec);
        int rc;
        size_t dmax = limit * 8;
        if (strcasecmp(ce, "gzip") == 0 || strcasecmp(ce, "x-gzip") == 0 ||
            strcasecmp(ce, "deflate") == 0)
            rc = obs_gzip_decode(body, blen, dmax, &dec);
        else if (strcasecmp(ce, "snappy") == 0)
            rc = obs_snappy_decode(body, blen, dmax, &dec);
        else
            rc = OBS_EFATAL;
        if (rc != OBS_OK) {
            obs_sbuf_deinit(&dec);
            obs_arena_free(arena);
            char msg[160];
            if (rc == OBS_EFATAL)
                snprintf(msg, sizeof(msg), "unsupported Content-Encoding: %s", ce);
            else if (rc == OBS_ELIMIT)
                snprintf(msg, sizeof(msg), "decompressed body too large (limit %zu bytes)", dmax);
            else
                snprintf(msg, sizeof(msg), "cannot decode %s body: corrupt input", ce);
            send_plain(ev, rc == OBS_ELIMIT ? 413 : rc == OBS_EFATAL ? 415 : 400, msg);
            return;
        }
        uint8_t *copy = obs_arena_alloc(arena, dec.len + 1);
        if (copy == NULL) {
            obs_sbuf_deinit(&dec);
            obs_arena_free(arena);
            send_plain(ev, 503, "out of memory");
            return;
        }
        if (dec.len)
            memcpy(copy, dec.p, dec.len);
        copy[dec.len] = 0;
        r->body = copy;
        r->body_len = dec.len;
        r->encoding = obs_arena_strdup(arena, ce);
        obs_sbuf_deinit(&dec);
    }

    /* parameters: query string, then form body */
    const char *q = uri ? evhttp_uri_get_query(uri) : NULL;
    int prc = OBS_OK;
    const char *ct = evhttp_find_header(evhttp_request_get_input_headers(ev), "Content-Type");
    int form = ct && strncasecmp(ct, "application/x-www-form-urlencoded", 33) == 0 &&
               r->body_len;
    if (go_form) {
        /* Only POST, PUT and PATCH bodies are forms. Go reads at most maxFormSize+1 bytes of
         * a form and then gives up on it; the handler still runs (query string only). */
        enum evhttp_cmd_type cmd = evhttp_request_get_command(ev);
        form = form && (cmd == EVHTTP_REQ_POST || cmd == EVHTTP_REQ_PUT ||
                        cmd == EVHTTP_REQ_PATCH);
        if (form && (blen > limit || blen > GO_MAX_FORM_SIZE))
            r->form_error = "http: POST too large";
        /* r.Form order: body values first, then the query string */
        if (form && r->form_error == NULL)
            prc = parse_params(r, (const char *)r->body, r->body_len);
        if (prc == OBS_OK && q)
            prc = parse_params(r, q, strlen(q));
    } else {
        if (q)
            prc = parse_params(r, q, strlen(q));
        if (prc == OBS_OK && form)
            prc = parse_params(r, (const char *)r->body, r->body_len);
    }
    if (prc != OBS_OK) {
        obs_arena_free(arena);
        send_plain(ev, 503, "out of memory");
        return;
    }
    best->fn(r, best->arg);
}

const char *obs_http_req_method(const struct obs_http_req *r) { return r->method; }
const char *obs_http_req_path(const struct obs_http_req *r) { return r->path; }
const char *obs_http_req_rest(const struct obs_http_req *r) { return r->rest; }
const char *obs_http_req_encoding(const struct obs_http_req *r) { return r->encoding; }
const char *obs_http_req_form_error(const struct obs_http_req *r) { return r->form_error; }
struct obs_arena *obs_http_req_arena(struct obs_http_req *r) { return r->arena; }
const char *obs_http_req_peer(const struct obs_http_req *r) { return r->peer; }
void *obs_http_req_evrequest(struct obs_http_req *r) { return r->ev; }

const char *obs_http_req_header(const struct obs_http_req *r, const char *name)
{
    return evhttp_find_header(evhttp_request_get_input_headers(r->ev), name);
}

const char *obs_http_req_param(const struct obs_http_req *r, const char *name)
{
    for (size_t i = 0; i < r->nparams; i++)
        if (strcmp(r->params[i].name, name) == 0)
            return r->params[i].value;
    return NULL;
}

size_t obs_http_req_params(const struct obs_http_req *r, const char *name, const char ***out)
{
    size_t cnt = 0;
    for (size_t i = 0; i < r->nparams; i++)
        if (strcmp(r->params[i].name, name) == 0)
            cnt++;
    const char **v = obs_arena_alloc(r->arena, (cnt + 1) * sizeof(char *));
    if (v == NULL) {
        *out = NULL;
        return 0;
    }
    size_t k = 0;
    for (size_t i = 0; i < r->nparams; i++)
        if (strcmp(r->params[i].name, name) == 0)
            v[k++] = r->params[i].value;
    v[k] = NULL;
    *out = v;
    return cnt;
}

const uint8_t *obs_http_req_body(const struct obs_http_req *r, size_t *len)
{
    *len = r->body_len;
    return r->body;
}

const char *obs_http_req_tenant(const struct obs_http_req *r, const char *def)
{
    const char *t = obs_http_req_header(r, "X-Scope-OrgID");
    return (t && *t) ? t : def;
}

void obs_http_add_header(struct obs_http_req *r, const char *name, const char *value)
{
    evhttp_add_header(evhttp_request_get_output_headers(r->ev), name, value);
}

void obs_http_req_defer(struct obs_http_req *r) { (void)r; }

/* OBS_HTTP_GO_JSON: does this reply need Go's extra escapes? */
static int go_json_reply(const struct obs_http_req *r, const char *content_type)
{
    return (r->flags & OBS_HTTP_GO_JSON) && content_type &&
           strncasecmp(content_type, "application/json", 16) == 0;
}

static size_t go_json_specials(const char *p, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '<' || c == '>' || c == '&')
            n++;
        else if (c == 0xe2 && i + 2 < len && (unsigned char)p[i + 1] == 0x80 &&
                 ((unsigned char)p[i + 2] & 0xfe) == 0xa8)
            n++;
    }
    return n;
}

/* Rewrite p[0..len) (valid JSON: the bytes can only occur inside strings) with Go's
 * escapes into a new obs_malloc'd buffer; NULL on allocation failure. */
static char *go_json_escape(const char *p, size_t len, size_t n, size_t *out_len)
{
    char *o = obs_malloc(len + n * 5 + 1);
    if (o == NULL)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '<' || c == '>' || c == '&') {
            k += (size_t)snprintf(o + k, 7, "\\u00%02x", c);
        } else if (c == 0xe2 && i + 2 < len && (unsigned char)p[i + 1] == 0x80 &&
                   ((unsigned char)p[i + 2] & 0xfe) == 0xa8) {
            k += (size_t)snprintf(o + k, 7, "\\u202%c", p[i + 2] == (char)0xa8 ? '8' : '9');
            i += 2;
        } else {
            o[k++] = (char)c;
        }
    }
    o[k] = '\0';
    *out_len = k;
    return o;
}

void obs_http_reply(struct obs_http_req *r, int status, const char *content_type,
                    const void *body, size_t len)
{
    size_t n;
    if (go_json_reply(r, content_type) && body && (n = go_json_specials(body, len)) > 0) {
        struct obs_sbuf tmp;
        obs_sbuf_init(&tmp);
        if (obs_sbuf_append(&tmp, body, len) == OBS_OK) {
            obs_http_reply_sbuf(r, status, content_type, &tmp);
            return;
        }
        obs_sbuf_deinit(&tmp); /* out of memory: send it unescaped */
    }
    if (r->replied) {
        obs_log_error("http: second reply to %s %s ignored", r->method, r->path);
        return;
    }
    r->replied = 1;
    struct evbuffer *b = is_head(r->ev) ? NULL : evbuffer_new();
    if (b && len)
        evbuffer_add(b, body, len);
    if (content_type)
        evhttp_add_header(evhttp_request_get_output_headers(r->ev), "Content-Type", content_type);
    evhttp_send_reply(r->ev, status, NULL, b);
    if (b)
        evbuffer_free(b);
    obs_arena_free(r->arena); /* r lives in the arena */
}

static void free_sbuf_mem(const void *data, size_t len, void *arg)
{
    (void)data;
    (void)len;
    obs_free(arg);
}

void obs_http_reply_sbuf(struct obs_http_req *r, int status, const char *content_type,
                         struct obs_sbuf *body)
{
    if (r->replied) {
        obs_sbuf_deinit(body);
        return;
    }
    r->replied = 1;
    size_t len, n;
    char *p = obs_sbuf_take(body, &len);
    if (p && go_json_reply(r, content_type) && (n = go_json_specials(p, len)) > 0) {
        size_t elen;
        char *e = go_json_escape(p, len, n, &elen);
        if (e) { /* else out of memory: send it unescaped */
            obs_free(p);
            p = e;
            len = elen;
        }
    }
    struct evbuffer *b = is_head(r->ev) ? NULL : evbuffer_new();
    if (b && p) {
        if (len == 0 || evbuffer_add_reference(b, p, len, free_sbuf_mem, p) != 0)
            obs_free(p);
    } else {
        obs_free(p);
    }
    if (content_type)
        evhttp_add_header(evhttp_request_get_output_headers(r->ev), "Content-Type", content_type);
    evhttp_send_reply(r->ev, status, NULL, b);
    if (b)
        evbuffer_free(b);
    obs_arena_free(r->arena);
}

void obs_http_reply_text(struct obs_http_req *r, int status, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof(msg) - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    if ((size_t)n > sizeof(msg) - 2)
        n = (int)sizeof(msg) - 2;
    msg[n++] = '\n';
    obs_http_reply(r, status, "text/plain; charset=utf-8", msg, (size_t)n);
}

void obs_http_reply_prom_error(struct obs_http_req *r, int status, const char *type,
                               const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    struct obs_sbuf b, m;
    obs_sbuf_init(&b);
    obs_sbuf_init(&m);
    obs_sbuf_puts(&b, "{\"status\":\"error\",\"errorType\":");
    obs_sbuf_json_str(&b, type, strlen(type));
    obs_sbuf_puts(&b, ",\"error\":");
    /* Go's encoder (Prometheus) also escapes <, >, & and U+2028/U+2029 inside strings */
    obs_sbuf_json_str(&m, msg, strlen(msg));
    for (size_t i = 0; i < m.len; i++) {
        unsigned char c = (unsigned char)m.p[i];
        if (c == '<' || c == '>' || c == '&') {
            obs_sbuf_printf(&b, "\\u00%02x", c);
        } else if (c == 0xe2 && i + 2 < m.len && (unsigned char)m.p[i + 1] == 0x80 &&
                   ((unsigned char)m.p[i + 2] == 0xa8 || (unsigned char)m.p[i + 2] == 0xa9)) {
            obs_sbuf_printf(&b, "\\u202%c", (unsigned char)m.p[i + 2] == 0xa8 ? '8' : '9');
            i += 2;
        } else {
            obs_sbuf_putc(&b, (char)c);
        }
    }
    obs_sbuf_deinit(&m);
    obs_sbuf_puts(&b, "}");
    obs_http_reply_sbuf(r, status, "application/json", &b);
}

/* --- client ----------------------------------------------------------------------------- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

static size_t write_cb(char *ptr, size_t size, size_t nmemb, void *arg)
{
    struct obs_sbuf *b = arg;
    if (obs_sbuf_append(b, ptr, size * nmemb) != OBS_OK)
        return 0;
    return size * nmemb;
}

int obs_httpc_do(const char *method, const char *url, const char *const *headers,
                 const void *body, size_t len, int timeout_ms, struct obs_httpc_resp *resp,
                 struct obs_err *err)
{
    pthread_once(&curl_once, curl_init_once);
    resp->status = 0;
    CURL *h = curl_easy_init();
    if (h == NULL)
        return obs_err_set(err, OBS_ENOMEM, "curl_easy_init failed");
    struct curl_slist *hl = NULL;
    for (size_t i = 0; headers && headers[i]; i++)
        hl = curl_slist_append(hl, headers[i]);
    hl = curl_slist_append(hl, "Expect:");
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)(timeout_ms > 0 ? timeout_ms : 10000));
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)(timeout_ms > 0 && timeout_ms < 5000
                                                              ? timeout_ms : 5000));
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &resp->body);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "obs-suite/0.1");
    if (strcmp(method, "GET") != 0) {
        if (strcmp(method, "POST") == 0 || body) {
            curl_easy_setopt(h, CURLOPT_POSTFIELDS, body ? body : "");
            curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
        }
        if (strcmp(method, "POST") != 0)
            curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
        if (strcmp(method, "HEAD") == 0)
            curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    }
    CURLcode rc = curl_easy_perform(h);
    int ret = OBS_OK;
    if (rc != CURLE_OK) {
        ret = obs_err_set(err, OBS_EIO, "%s %s: %s", method, url, curl_easy_strerror(rc));
    } else {
        long code = 0;
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
        resp->status = (int)code;
    }
    curl_slist_free_all(hl);
    curl_easy_cleanup(h);
    return ret;
}
