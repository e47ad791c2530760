/*
 * obs_grpc.c -- gRPC server and client on gRPC core 1.51 (the only file that includes grpc).
 *
 * Server design
 *   - One grpc_server, one completion queue (CQ) created "for next", served by a dedicated
 *     thread (cq_main). Each unary method is registered with
 *     GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, so a completed request already carries the
 *     request message: no RECV_MESSAGE batch is needed.
 *   - For every method REQS_PER_METHOD requests are kept outstanding; each completion re-posts
 *     one. A generic grpc_server_request_call is kept outstanding too: calls to methods nobody
 *     registered land there and are answered UNIMPLEMENTED from the CQ thread (without it core
 *     would park them forever).
 *   - A finished request becomes a struct obs_grpc_call (payload slice, metadata copied into
 *     C strings) and is handed to the owning libevent loop through an obs_chan. The handler
 *     runs on the loop; obs_grpc_reply() starts the final batch (initial metadata, message,
 *     status, close) from the loop thread (grpc_call_start_batch is thread-safe) and the CQ
 *     thread frees the call when that batch completes.
 *   - Calls owned by the loop (delivered, not yet answered) sit on a list touched only by the
 *     loop thread, so obs_grpc_server_free() can cancel them. A mutex + `closing` flag makes
 *     the CQ thread stop handing calls over once shutdown started; late calls are cancelled
 *     on the CQ thread instead.
 *
 * Every tag posted to the CQ points at a struct whose first member is an enum tag_kind, so the
 * CQ thread can dispatch on it.
 *
 * Client: grpc_channel_create with insecure credentials; each obs_grpc_unary() uses its own
 * pluck CQ, one batch with all six ops, and a deadline. Thread-safe (channels are).
 */
#include "grpc/obs_grpc.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <strings.h>
#include <string.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>

#include "core/obs_chan.h"
#include "core/obs_log.h"
#include "core/obs_mem.h"

#define REQS_PER_METHOD 8
#define DEFAULT_MAX_RECV (64u << 20)
#define LOG_COMP "grpc"

enum tag_kind {
    TAG_REQ_REGISTERED, /* struct reg_req: a registered-method call arrived */
    TAG_REQ_GENERIC,    /* struct gen_req: an unregistered-method call arrived */
    TAG_CALL_DONE,      /* struct obs_grpc_call: the reply batch finished */
    TAG_GEN_DONE,       /* struct gen_req: the UNIMPLEMENTED reply finished */
    TAG_SHUTDOWN,       /* struct obs_grpc_server: server shutdown finished */
};

struct method {
    char *path;
    void *handle; /* grpc_server_register_method() result */
    obs_grpc_unary_fn fn;
    void *arg;
};

struct obs_grpc_server {
    enum tag_kind kind; /* TAG_SHUTDOWN; first member (tag dispatch) */
    struct event_base *base;
    grpc_server *srv;
    grpc_completion_queue *cq;
    struct obs_chan *chan;
    pthread_t thread;
    int thread_started;
    int started;
    int port;
    struct method *methods;
    size_t nmethods;
    pthread_mutex_t mu; /* guards closing vs. obs_chan_send from the CQ thread */
    int closing;
    struct obs_grpc_call *live; /* delivered to the loop, not answered; loop thread only */
};

struct reg_req {
    enum tag_kind kind; /* TAG_REQ_REGISTERED */
    struct obs_grpc_server *s;
    size_t mi;
    grpc_call *call;
    gpr_timespec deadline;
    grpc_metadata_array md;
    grpc_byte_buffer *payload;
};

struct gen_req {
    enum tag_kind kind; /* TAG_REQ_GENERIC, then TAG_GEN_DONE */
    struct obs_grpc_server *s;
    grpc_call *call;
    grpc_call_details details;
    grpc_metadata_array md;
    grpc_slice status_msg;
    int cancelled;
};

struct obs_grpc_call {
    enum tag_kind kind; /* TAG_CALL_DONE */
    struct obs_grpc_server *s;
    size_t mi;
    grpc_call *call;
    grpc_slice payload; /* the whole request message, contiguous */
    char **md;          /* key, value, key, value ... (nmd pairs), lowercase keys */
    size_t nmd;
    grpc_slice status_msg;
    int has_status_msg;
    int cancelled;
    struct obs_grpc_call *prev, *next; /* server->live list */
};

/* ------------------------------------------------------------------------------------------ */
/* helpers                                                                                    */

/* Copy a grpc byte buffer into one contiguous slice (refcounted; caller unrefs). */
static int bb_to_slice(grpc_byte_buffer *bb, grpc_slice *out)
{
    grpc_byte_buffer_reader r;
    if (bb == NULL) {
        *out = grpc_empty_slice();
        return 0;
    }
    if (!grpc_byte_buffer_reader_init(&r, bb))
        return OBS_EINVAL;
    *out = grpc_byte_buffer_reader_readall(&r);
    grpc_byte_buffer_reader_destroy(&r);
    return 0;
}

static char *slice_strdup(grpc_slice s)
{
    return obs_strndup((const char *)GRPC_SLICE_START_PTR(s), GRPC_SLICE_LENGTH(s));
}

static void call_free(struct obs_grpc_call *c)
{
    if (c == NULL)
        return;
    if (c->call)
        grpc_call_unref(c->call);
    grpc_slice_unref(c->payload);
    if (c->has_status_msg)
        grpc_slice_unref(c->status_msg);
    for (size_t i = 0; i < 2 * c->nmd; i++)
        obs_free(c->md[i]);
    obs_free(c->md);
    obs_free(c);
}

/* Post one registered-method request (CQ thread or start). */
static int post_reg_req(struct obs_grpc_server *s, size_t mi)
{
    struct reg_req *r = obs_calloc(1, sizeof(*r));
    if (r == NULL)
        return OBS_ENOMEM;
    r->kind = TAG_REQ_REGISTERED;
    r->s = s;
    r->mi = mi;
    grpc_metadata_array_init(&r->md);
    grpc_call_error e = grpc_server_request_registered_call(
        s->srv, s->methods[mi].handle, &r->call, &r->deadline, &r->md, &r->payload, s->cq, s->cq,
        r);
    if (e != GRPC_CALL_OK) {
        grpc_metadata_array_destroy(&r->md);
        obs_free(r);
        return OBS_EIO;
    }
    return 0;
}

static int post_gen_req(struct obs_grpc_server *s)
{
    struct gen_req *g = obs_calloc(1, sizeof(*g));
    if (g == NULL)
        return OBS_ENOMEM;
    g->kind = TAG_REQ_GENERIC;
    g->s = s;
    grpc_call_details_init(&g->details);
    grpc_metadata_array_init(&g->md);
    if (grpc_server_request_call(s->srv, &g->call, &g->details, &g->md, s->cq, s->cq, g) !=
        GRPC_CALL_OK) {
        grpc_call_details_destroy(&g->details);
        grpc_metadata_array_destroy(&g->md);
        obs_free(g);
        return OBS_EIO;
    }
    return 0;
}

static void gen_req_free(struct gen_req *g)
{
    if (g->call)
        grpc_call_unref(g->call);
    grpc_call_details_destroy(&g->details);
    grpc_metadata_array_destroy(&g->md);
    if (g->kind == TAG_GEN_DONE)
        grpc_slice_unref(g->status_msg);
    obs_free(g);
}

/* Answer an unregistered method with UNIMPLEMENTED (CQ thread). */
static void gen_reply_unimplemented(struct gen_req *g)
{
    grpc_op ops[3];
    memset(ops, 0, sizeof(ops));
    char *m = slice_strdup(g->details.method);
    char msg[300];
    snprintf(msg, sizeof(msg), "unknown method %s", m ? m : "?");
    obs_clog_debug(LOG_COMP, "unimplemented method\tmethod=%s", m ? m : "?");
    obs_free(m);
    g->kind = TAG_GEN_DONE;
    g->status_msg = grpc_slice_from_copied_string(msg);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[1].data.send_status_from_server.status = GRPC_STATUS_UNIMPLEMENTED;
    ops[1].data.send_status_from_server.status_details = &g->status_msg;
    ops[2].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    ops[2].data.recv_close_on_server.cancelled = &g->cancelled;
    if (grpc_call_start_batch(g->call, ops, 3, g, NULL) != GRPC_CALL_OK)
        gen_req_free(g);
}

/* Build the obs_grpc_call of a completed registered request. NULL on OOM / bad payload. */
static struct obs_grpc_call *call_from_req(struct reg_req *r)
{
    struct obs_grpc_call *c = obs_calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->kind = TAG_CALL_DONE;
    c->s = r->s;
    c->mi = r->mi;
    c->call = r->call;
    c->payload = grpc_empty_slice();
    r->call = NULL;
    if (bb_to_slice(r->payload, &c->payload) != 0)
        goto fail;
    if (r->md.count > 0) {
        c->md = obs_calloc(2 * r->md.count, sizeof(char *));
        if (c->md == NULL)
            goto fail;
        for (size_t i = 0; i < r->md.count; i++) {
            c->md[2 * i] = slice_strdup(r->md.metadata[i].key);
            c->md[2 * i + 1] = slice_strdup(r->md.metadata[i].value);
            c->nmd = i + 1;
            if (c->md[2 * i] == NULL || c->md[2 * i + 1] == NULL)
                goto fail;
        }
    }
    return c;
fail:
    grpc_call_cancel_with_status(c->call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory",
                                 NULL);
    call_free(c);
    return NULL;
}

/* CQ thread: hand a call to the loop, or cancel it when the server is closing. */
static void deliver(struct obs_grpc_server *s, struct obs_grpc_call *c)
{
    int ok = 0;
    pthread_mutex_lock(&s->mu);
    if (!s->closing)
        ok = obs_chan_send(s->chan, c) == 0;
    pthread_mutex_unlock(&s->mu);
    if (!ok) {
        grpc_call_cancel_with_status(c->call, GRPC_STATUS_UNAVAILABLE, "server shutting down",
                                     NULL);
        call_free(c);
    }
}

static void *cq_main(void *arg)
{
    struct obs_grpc_server *s = arg;
    for (;;) {
        grpc_event ev = grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN)
            break;
        if (ev.type != GRPC_OP_COMPLETE)
            continue;
        enum tag_kind kind = *(enum tag_kind *)ev.tag;
        switch (kind) {
        case TAG_REQ_REGISTERED: {
            struct reg_req *r = ev.tag;
            if (ev.success) {
                /* Re-post first so the server keeps accepting while we copy. */
                int closing;
                pthread_mutex_lock(&s->mu);
                closing = s->closing;
                pthread_mutex_unlock(&s->mu);
                if (!closing)
                    post_reg_req(s, r->mi);
                struct obs_grpc_call *c = call_from_req(r);
                if (c != NULL)
                    deliver(s, c);
            }
            if (r->call)
                grpc_call_unref(r->call);
            if (r->payload)
                grpc_byte_buffer_destroy(r->payload);
            grpc_metadata_array_destroy(&r->md);
            obs_free(r);
            break;
        }
        case TAG_REQ_GENERIC: {
            struct gen_req *g = ev.tag;
            if (!ev.success) {
                gen_req_free(g);
                break;
            }
            int closing;
            pthread_mutex_lock(&s->mu);
            closing = s->closing;
            pthread_mutex_unlock(&s->mu);
            if (!closing)
                post_gen_req(s);
            gen_reply_unimplemented(g);
            break;
        }
        case TAG_GEN_DONE:
            gen_req_free(ev.tag);
            break;
        case TAG_CALL_DONE:
            call_free(ev.tag);
            break;
        case TAG_SHUTDOWN:
            grpc_completion_queue_shutdown(s->cq);
            break;
        }
    }
    return NULL;
}

/* Loop thread: a call arrived from the CQ thread. */
static void on_chan(void *msg, void *arg)
{
    struct obs_grpc_server *s = arg;
    struct obs_grpc_call *c = msg;
    if (s->closing) {
        grpc_call_cancel_with_status(c->call, GRPC_STATUS_UNAVAILABLE, "server shutting down",
                                     NULL);
        call_free(c);
        return;
    }
    c->next = s->live;
    if (s->live)
        s->live->prev = c;
    s->live = c;
    struct method *m = &s->methods[c->mi];
    m->fn(c, GRPC_SLICE_START_PTR(c->payload), GRPC_SLICE_LENGTH(c->payload), m->arg);
}

/* ------------------------------------------------------------------------------------------ */
/* server API                                                                                 */

/*
 * Create the server, bind addr ("host:port", port may be 0). max_recv_bytes 0 = 64 MiB.
 * Loop thread. Returns NULL with err set on failure (bad address, port in use, OOM).
 */
struct obs_grpc_server *obs_grpc_server_new(struct event_base *base, const char *addr,
                                            size_t max_recv_bytes, struct obs_err *err)
{
    struct obs_grpc_server *s = obs_calloc(1, sizeof(*s));
    if (s == NULL) {
        obs_err_set(err, OBS_ENOMEM, "grpc server: out of memory");
        return NULL;
    }
    grpc_init();
    s->kind = TAG_SHUTDOWN;
    s->base = base;
    pthread_mutex_init(&s->mu, NULL);
    if (max_recv_bytes == 0 || max_recv_bytes > INT32_MAX)
        max_recv_bytes = DEFAULT_MAX_RECV;
    grpc_arg args[2];
    memset(args, 0, sizeof(args));
    args[0].type = GRPC_ARG_INTEGER;
    args[0].key = (char *)GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
    args[0].value.integer = (int)max_recv_bytes;
    /* Without this two daemons could silently share a port via SO_REUSEPORT. */
    args[1].type = GRPC_ARG_INTEGER;
    args[1].key = (char *)GRPC_ARG_ALLOW_REUSEPORT;
    args[1].value.integer = 0;
    grpc_channel_args cargs = {.num_args = 2, .args = args};
    s->srv = grpc_server_create(&cargs, NULL);
    s->cq = grpc_completion_queue_create_for_next(NULL);
    s->chan = obs_chan_new(base, on_chan, s);
    if (s->srv == NULL || s->cq == NULL || s->chan == NULL) {
        obs_err_set(err, OBS_ENOMEM, "grpc server: create failed");
        goto fail;
    }
    grpc_server_register_completion_queue(s->srv, s->cq, NULL);
    grpc_server_credentials *creds = grpc_insecure_server_credentials_create();
    s->port = grpc_server_add_http2_port(s->srv, addr, creds);
    grpc_server_credentials_release(creds);
    if (s->port <= 0) {
        obs_err_set(err, OBS_EIO, "grpc server: cannot listen on %s (address in use or invalid)",
                    addr);
        goto fail;
    }
    return s;
fail:
    obs_grpc_server_free(s);
    return NULL;
}

/* Register a unary handler for "/pkg.Service/Method". Before start; loop thread. */
int obs_grpc_server_add_unary(struct obs_grpc_server *s, const char *method,
                              obs_grpc_unary_fn fn, void *arg)
{
    if (s == NULL || s->started || method == NULL || fn == NULL)
        return OBS_EINVAL;
    struct method *nm = obs_realloc(s->methods, (s->nmethods + 1) * sizeof(*nm));
    if (nm == NULL)
        return OBS_ENOMEM;
    s->methods = nm;
    struct method *m = &s->methods[s->nmethods];
    memset(m, 0, sizeof(*m));
    m->path = obs_strdup(method);
    if (m->path == NULL)
        return OBS_ENOMEM;
    m->handle = grpc_server_register_method(s->srv, m->path, NULL,
                                            GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0);
    if (m->handle == NULL) {
        obs_free(m->path);
        return OBS_EEXIST; /* duplicate registration */
    }
    m->fn = fn;
    m->arg = arg;
    s->nmethods++;
    return 0;
}

/* Start serving: start the grpc server, post requests, start the CQ thread. */
int obs_grpc_server_start(struct obs_grpc_server *s, struct obs_err *err)
{
    if (s == NULL || s->started)
        return obs_err_set(err, OBS_EINVAL, "grpc server: already started");
    grpc_server_start(s->srv);
    s->started = 1;
    for (size_t mi = 0; mi < s->nmethods; mi++)
        for (int k = 0; k < REQS_PER_METHOD; k++)
            if (post_reg_req(s, mi) != 0)
                return obs_err_set(err, OBS_EIO, "grpc server: request_registered_call failed");
    for (int k = 0; k < 2; k++)
        if (post_gen_req(s) != 0)
            return obs_err_set(err, OBS_EIO, "grpc server: request_call failed");
    if (pthread_create(&s->thread, NULL, cq_main, s) != 0)
        return obs_err_set(err, OBS_EIO, "grpc server: cannot start CQ thread");
    s->thread_started = 1;
    return 0;
}

int obs_grpc_server_port(const struct obs_grpc_server *s)
{
    return s ? s->port : 0;
}

/*
 * Shut down: stop handing calls to the loop, cancel calls the loop still owns (their handlers
 * must not reply after this), shut the server down, join the CQ thread, free. Loop thread.
 */
void obs_grpc_server_free(struct obs_grpc_server *s)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&s->mu);
    s->closing = 1;
    pthread_mutex_unlock(&s->mu);
    /* Calls queued in the channel reach on_chan, which cancels them (closing is set). */
    if (s->chan)
        obs_chan_free(s->chan);
    s->chan = NULL;
    while (s->live) {
        struct obs_grpc_call *c = s->live;
        s->live = c->next;
        grpc_call_cancel_with_status(c->call, GRPC_STATUS_UNAVAILABLE, "server shutting down",
                                     NULL);
        call_free(c);
    }
    if (s->srv) {
        if (s->started) {
            grpc_server_shutdown_and_notify(s->srv, s->cq, s);
            grpc_server_cancel_all_calls(s->srv);
        }
        if (s->thread_started) {
            pthread_join(s->thread, NULL);
        } else if (s->cq) {
            /* Never started (or thread failed): drain here. */
            if (s->started) {
                for (;;) {
                    grpc_event ev = grpc_completion_queue_next(
                        s->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
                    if (ev.type == GRPC_OP_COMPLETE && ev.tag == s)
                        break;
                    if (ev.type == GRPC_OP_COMPLETE) {
                        enum tag_kind k = *(enum tag_kind *)ev.tag;
                        if (k == TAG_REQ_REGISTERED) {
                            struct reg_req *r = ev.tag;
                            if (r->call)
                                grpc_call_unref(r->call);
                            if (r->payload)
                                grpc_byte_buffer_destroy(r->payload);
                            grpc_metadata_array_destroy(&r->md);
                            obs_free(r);
                        } else if (k == TAG_REQ_GENERIC || k == TAG_GEN_DONE) {
                            gen_req_free(ev.tag);
                        }
                    }
                }
            }
            grpc_completion_queue_shutdown(s->cq);
            while (grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL)
                       .type != GRPC_QUEUE_SHUTDOWN)
                ;
        }
        grpc_server_destroy(s->srv);
    }
    if (s->cq)
        grpc_completion_queue_destroy(s->cq);
    for (size_t i = 0; i < s->nmethods; i++)
        obs_free(s->methods[i].path);
    obs_free(s->methods);
    pthread_mutex_destroy(&s->mu);
    obs_free(s);
    grpc_shutdown();
}

const char *obs_grpc_call_metadata(const struct obs_grpc_call *c, const char *key)
{
    if (c == NULL || key == NULL)
        return NULL;
    for (size_t i = 0; i < c->nmd; i++)
        if (strcasecmp(c->md[2 * i], key) == 0)
            return c->md[2 * i + 1];
    return NULL;
}

/*
 * Answer the call (loop thread, exactly once). The response message is sent only with status
 * OK. The call memory is released by the CQ thread once the batch completes.
 */
void obs_grpc_reply(struct obs_grpc_call *c, int status, const char *msg, const void *resp,
                    size_t len)
{
    if (c == NULL)
        return;
    struct obs_grpc_server *s = c->s;
    /* unlink from the live list */
    if (c->prev)
        c->prev->next = c->next;
    else if (s->live == c)
        s->live = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    /* The request bytes are no longer needed. */
    grpc_slice_unref(c->payload);
    c->payload = grpc_empty_slice();

    grpc_op ops[4];
    memset(ops, 0, sizeof(ops));
    size_t n = 0;
    grpc_byte_buffer *bb = NULL;
    ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
    if (status == OBS_GRPC_OK) {
        grpc_slice sl = grpc_slice_from_copied_buffer(resp ? (const char *)resp : "", len);
        bb = grpc_raw_byte_buffer_create(&sl, 1);
        grpc_slice_unref(sl);
        ops[n].op = GRPC_OP_SEND_MESSAGE;
        ops[n++].data.send_message.send_message = bb;
    }
    c->status_msg = grpc_slice_from_copied_string(msg ? msg : "");
    c->has_status_msg = 1;
    ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[n].data.send_status_from_server.status = (grpc_status_code)status;
    ops[n++].data.send_status_from_server.status_details = &c->status_msg;
    ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    ops[n++].data.recv_close_on_server.cancelled = &c->cancelled;
    grpc_call_error e = grpc_call_start_batch(c->call, ops, n, c, NULL);
    if (bb)
        grpc_byte_buffer_destroy(bb);
    if (e != GRPC_CALL_OK) {
        obs_clog_warn(LOG_COMP, "reply failed\terror=%d", (int)e);
        call_free(c);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* client                                                                                     */

struct obs_grpc_channel {
    grpc_channel *ch;
};

/* Insecure channel to target ("host:port"). Receive limit raised to 64 MiB. */
struct obs_grpc_channel *obs_grpc_channel_new(const char *target)
{
    if (target == NULL)
        return NULL;
    struct obs_grpc_channel *c = obs_calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    grpc_init();
    grpc_arg args[1];
    memset(args, 0, sizeof(args));
    args[0].type = GRPC_ARG_INTEGER;
    args[0].key = (char *)GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
    args[0].value.integer = (int)DEFAULT_MAX_RECV;
    grpc_channel_args cargs = {.num_args = 1, .args = args};
    grpc_channel_credentials *creds = grpc_insecure_credentials_create();
    c->ch = grpc_channel_create(target, creds, &cargs);
    grpc_channel_credentials_release(creds);
    if (c->ch == NULL) {
        obs_free(c);
        grpc_shutdown();
        return NULL;
    }
    return c;
}

void obs_grpc_channel_free(struct obs_grpc_channel *ch)
{
    if (ch == NULL)
        return;
    grpc_channel_destroy(ch->ch);
    obs_free(ch);
    grpc_shutdown();
}

/*
 * Blocking unary call; see obs_grpc.h. A server error or a connection failure is a status
 * (UNAVAILABLE, DEADLINE_EXCEEDED, ...) with return 0; OBS_EIO only when core refused the call.
 * The status message, if any, is copied into err->msg (err->code = OBS_OK) for OK returns.
 */
int obs_grpc_unary(struct obs_grpc_channel *ch, const char *method, const char *const *headers,
                   const void *req, size_t len, int timeout_ms, struct obs_sbuf *resp,
                   int *status, struct obs_err *err)
{
    if (ch == NULL || method == NULL)
        return obs_err_set(err, OBS_EINVAL, "grpc: no channel or method");
    int rc = 0;
    size_t nhdr = 0;
    while (headers && headers[2 * nhdr] && headers[2 * nhdr + 1])
        nhdr++;
    grpc_metadata *md = NULL;
    if (nhdr > 0) {
        md = obs_calloc(nhdr, sizeof(*md));
        if (md == NULL)
            return obs_err_set(err, OBS_ENOMEM, "grpc: out of memory");
        for (size_t i = 0; i < nhdr; i++) {
            md[i].key = grpc_slice_from_copied_string(headers[2 * i]);
            md[i].value = grpc_slice_from_copied_string(headers[2 * i + 1]);
        }
    }
    grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
    gpr_timespec deadline =
        timeout_ms > 0 ? gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                                      gpr_time_from_millis(timeout_ms, GPR_TIMESPAN))
                       : gpr_inf_future(GPR_CLOCK_MONOTONIC);
    grpc_slice mslice = grpc_slice_from_copied_string(method);
    grpc_call *call = grpc_channel_create_call(ch->ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq, mslice,
                                               NULL, deadline, NULL);
    grpc_slice_unref(mslice);
    grpc_metadata_array init_md, trail_md;
    grpc_metadata_array_init(&init_md);
    grpc_metadata_array_init(&trail_md);
    grpc_byte_buffer *resp_bb = NULL;
    grpc_status_code st = GRPC_STATUS_UNKNOWN;
    grpc_slice details = grpc_empty_slice();
    grpc_slice reqsl = grpc_slice_from_copied_buffer(req ? (const char *)req : "", len);
    grpc_byte_buffer *req_bb = grpc_raw_byte_buffer_create(&reqsl, 1);
    grpc_slice_unref(reqsl);
    if (call == NULL) {
        rc = obs_err_set(err, OBS_EIO, "grpc: cannot create call to %s", method);
        goto out;
    }
    grpc_op ops[6];
    memset(ops, 0, sizeof(ops));
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[0].data.send_initial_metadata.count = nhdr;
    ops[0].data.send_initial_metadata.metadata = md;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = req_bb;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &init_md;
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = &resp_bb;
    ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.trailing_metadata = &trail_md;
    ops[5].data.recv_status_on_client.status = &st;
    ops[5].data.recv_status_on_client.status_details = &details;
    int tag = 1;
    if (grpc_call_start_batch(call, ops, 6, &tag, NULL) != GRPC_CALL_OK) {
        rc = obs_err_set(err, OBS_EIO, "grpc: start_batch failed for %s", method);
        goto out;
    }
    grpc_event ev = grpc_completion_queue_pluck(cq, &tag, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    if (ev.type != GRPC_OP_COMPLETE) {
        rc = obs_err_set(err, OBS_EIO, "grpc: call to %s did not complete", method);
        goto out;
    }
    *status = (int)st;
    obs_err_clear(err);
    if (err && GRPC_SLICE_LENGTH(details) > 0) {
        size_t n = GRPC_SLICE_LENGTH(details);
        if (n >= sizeof(err->msg))
            n = sizeof(err->msg) - 1;
        memcpy(err->msg, GRPC_SLICE_START_PTR(details), n);
        err->msg[n] = '\0';
    }
    if (resp_bb && resp) {
        grpc_slice all;
        if (bb_to_slice(resp_bb, &all) == 0) {
            if (obs_sbuf_append(resp, GRPC_SLICE_START_PTR(all), GRPC_SLICE_LENGTH(all)) != 0)
                rc = obs_err_set(err, OBS_ENOMEM, "grpc: out of memory for response");
            grpc_slice_unref(all);
        }
    }
out:
    if (req_bb)
        grpc_byte_buffer_destroy(req_bb);
    if (resp_bb)
        grpc_byte_buffer_destroy(resp_bb);
    grpc_slice_unref(details);
    grpc_metadata_array_destroy(&init_md);
    grpc_metadata_array_destroy(&trail_md);
    if (call)
        grpc_call_unref(call);
    grpc_completion_queue_shutdown(cq);
    while (grpc_completion_queue_pluck(cq, NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
           GRPC_QUEUE_SHUTDOWN)
        ;
    grpc_completion_queue_destroy(cq);
    for (size_t i = 0; i < nhdr; i++) {
        grpc_slice_unref(md[i].key);
        grpc_slice_unref(md[i].value);
    }
    obs_free(md);
    return rc;
}
