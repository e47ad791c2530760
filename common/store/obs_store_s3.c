/*
 * obs_store_s3.c -- the "s3" object store backend: S3 REST API over libcurl, requests signed
 * with AWS Signature Version 4 computed here with OpenSSL (SHA-256, HMAC-SHA256).
 *
 * We sign ourselves rather than with CURLOPT_AWS_SIGV4 because libcurl 7.88 gets several
 * details wrong for S3 (no x-amz-content-sha256, unsorted query, "?uploads" without "=",
 * signs a suppressed "Expect:"); see DEPENDENCIES.md §3. The rules followed here are the
 * SigV4 ones for S3:
 *   - every request carries x-amz-date and x-amz-content-sha256 = hex SHA-256 of the body
 *     (the empty-string hash for GET/HEAD/DELETE), and x-amz-security-token with a session
 *     token; signed headers are host, content-type and range when sent, and those x-amz-*;
 *   - the canonical URI is the path exactly as sent: each key segment percent-encoded
 *     (everything but A-Z a-z 0-9 - . _ ~, uppercase hex), '/' kept, no double encoding;
 *   - the query string is built once, sorted by parameter name, names and values encoded the
 *     same way ('/' too), value-less parameters written as "name=" (e.g. "uploads="); the
 *     same string is sent and signed.
 *
 * Operations: PutObject (objects larger than part_size go through CreateMultipartUpload /
 * UploadPart x N, up to upload_concurrency parts in parallel / CompleteMultipartUpload,
 * AbortMultipartUpload on failure), GetObject with Range, HeadObject,
 * DeleteObject, ListObjectsV2 with prefix, delimiter and continuation-token paging. Response
 * XML (ListBucketResult, InitiateMultipartUploadResult, Error) is scanned for tags; entities
 * (&amp; &lt; &gt; &quot; &apos; &#N; &#xH;) are decoded. Errors become
 * "s3: <OP> <key>: <status> <Code>: <Message>" in obs_err.
 *
 * Retries: up to max_retries extra attempts with exponential backoff (100 ms doubling, capped
 * at 5 s, with jitter) on transport errors (connect, timeout, reset, empty reply), HTTP 5xx,
 * 429 and S3's SlowDown / RequestTimeout / InternalError codes. Each attempt is re-signed.
 *
 * Semantics match the filesystem backend: keys are validated the same way; get of a range
 * starting past the end is OBS_ERANGE, one starting exactly at the end is empty; delete of an
 * absent key is OK; list yields objects and common prefixes merged in key order.
 *
 * Thread-safe: configuration is immutable after open; easy handles come from a small pool
 * guarded by a mutex (a handle keeps its connections alive between calls).
 */
#include "store/obs_store_s3.h"
#include "store/obs_store.h"
#include "core/obs_log.h"
#include "core/obs_mem.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define S3_MIN_PART (5ull * 1024 * 1024)
#define S3_MAX_PART (5ull * 1024 * 1024 * 1024)
#define S3_DEF_PART (16ull * 1024 * 1024)
#define S3_MAX_PARTS 10000
#define S3_POOL_MAX 8
#define S3_ERRBODY_MAX (64 * 1024)
#define S3_MAX_QUERY 6
#define S3_MAX_CONCURRENCY 16
#define EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

struct s3_store {
    struct obs_store base;
    char *base_url;  /* "http://127.0.0.1:9000" or "https://bucket.s3.amazonaws.com" */
    char *host;      /* Host header: authority of base_url */
    char *path_base; /* "/bucket" (path style) or "" (virtual-hosted) */
    char *bucket;
    char *prefix; /* "" or "pfx/" */
    char *region, *akid, *secret, *token;
    uint64_t part_size;
    int max_retries;
    long timeout_ms;
    int list_max_keys;
    int upload_concurrency;
    pthread_mutex_t mu;
    CURL *pool[S3_POOL_MAX];
    int npool;
};

static struct s3_store *s3_of(struct obs_store *s) { return (struct s3_store *)s->impl; }

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

/* --- small helpers ---------------------------------------------------------------------- */

static void hex(const unsigned char *p, size_t n, char *out)
{
    static const char d[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = d[p[i] >> 4];
        out[2 * i + 1] = d[p[i] & 15];
    }
    out[2 * n] = '\0';
}

static int sha256_hex(const void *p, size_t n, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (EVP_Digest(p, n, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32)
        return OBS_EIO;
    hex(md, 32, out);
    return OBS_OK;
}

static int hmac256(const void *key, size_t klen, const void *msg, size_t mlen,
                   unsigned char out[32])
{
    unsigned int olen = 0;
    if (HMAC(EVP_sha256(), key, (int)klen, msg, mlen, out, &olen) == NULL || olen != 32)
        return OBS_EIO;
    return OBS_OK;
}

static int unreserved(unsigned char c)
{
    return isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

/* Append s percent-encoded as SigV4 wants (uppercase hex); keep '/' when keep_slash. */
static void uri_enc(struct obs_sbuf *b, const char *s, size_t n, int keep_slash)
{
    static const char d[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (unreserved(c) || (keep_slash && c == '/')) {
            obs_sbuf_putc(b, (char)c);
        } else {
            char e[3] = {'%', d[c >> 4], d[c & 15]};
            obs_sbuf_append(b, e, 3);
        }
    }
}

/* Key rules shared with the filesystem backend: non-empty, no leading/trailing '/', no empty,
 * "." or ".." segments, at most 1024 bytes (S3's limit) including the store prefix. */
static int key_ok(const struct s3_store *s3, const char *key)
{
    if (key == NULL || key[0] == '\0' || key[0] == '/')
        return 0;
    size_t n = strlen(key);
    if (key[n - 1] == '/' || n + strlen(s3->prefix) > 1024)
        return 0;
    const char *p = key;
    while (*p) {
        const char *e = strchr(p, '/');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l == 0 || (l == 1 && p[0] == '.') || (l == 2 && p[0] == '.' && p[1] == '.'))
            return 0;
        p += l;
        if (*p == '/')
            p++;
    }
    return 1;
}

/* --- XML scanning ----------------------------------------------------------------------- */

/* Find the next <tag>...</tag> in [p, end); sets the inner range and returns the position
 * after the closing tag, or NULL. <tag/> yields an empty inner range. */
static const char *xml_elem(const char *p, const char *end, const char *tag, const char **in,
                            const char **in_end)
{
    size_t tl = strlen(tag);
    while (p < end) {
        const char *lt = memchr(p, '<', (size_t)(end - p));
        if (lt == NULL || (size_t)(end - lt) < tl + 2)
            return NULL;
        p = lt + 1;
        if (memcmp(p, tag, tl) != 0)
            continue;
        const char *a = p + tl;
        if (*a == '/' && a + 1 < end && a[1] == '>') {
            *in = *in_end = a + 2;
            return a + 2;
        }
        if (*a != '>' && *a != ' ' && *a != '\t' && *a != '\r' && *a != '\n')
            continue;
        const char *gt = memchr(a, '>', (size_t)(end - a));
        if (gt == NULL)
            return NULL;
        if (gt[-1] == '/') {
            *in = *in_end = gt + 1;
            return gt + 1;
        }
        const char *q = gt + 1;
        while (q < end) {
            const char *c = memchr(q, '<', (size_t)(end - q));
            if (c == NULL || (size_t)(end - c) < tl + 3)
                return NULL;
            if (c[1] == '/' && memcmp(c + 2, tag, tl) == 0 && c[2 + tl] == '>') {
                *in = gt + 1;
                *in_end = c;
                return c + 3 + tl;
            }
            q = c + 1;
        }
        return NULL;
    }
    return NULL;
}

static void put_utf8(struct obs_sbuf *b, unsigned long cp)
{
    char u[4];
    if (cp < 0x80) {
        obs_sbuf_putc(b, (char)cp);
    } else if (cp < 0x800) {
        u[0] = (char)(0xc0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3f));
        obs_sbuf_append(b, u, 2);
    } else if (cp < 0x10000) {
        u[0] = (char)(0xe0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        u[2] = (char)(0x80 | (cp & 0x3f));
        obs_sbuf_append(b, u, 3);
    } else if (cp < 0x110000) {
        u[0] = (char)(0xf0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
        u[3] = (char)(0x80 | (cp & 0x3f));
        obs_sbuf_append(b, u, 4);
    }
}

/* Append the text [p, end) with XML entities decoded (unknown ones are kept verbatim). */
static void xml_text(struct obs_sbuf *b, const char *p, const char *end)
{
    static const struct {
        const char *n;
        char c;
    } ents[] = {{"amp;", '&'}, {"lt;", '<'}, {"gt;", '>'}, {"quot;", '"'}, {"apos;", '\''}};
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        if (amp == NULL) {
            obs_sbuf_append(b, p, (size_t)(end - p));
            break;
        }
        obs_sbuf_append(b, p, (size_t)(amp - p));
        p = amp + 1;
        int done = 0;
        for (size_t i = 0; i < sizeof(ents) / sizeof(ents[0]) && !done; i++) {
            size_t l = strlen(ents[i].n);
            if ((size_t)(end - p) >= l && memcmp(p, ents[i].n, l) == 0) {
                obs_sbuf_putc(b, ents[i].c);
                p += l;
                done = 1;
            }
        }
        if (!done && p < end && *p == '#') {
            const char *q = p + 1;
            int base = 10;
            if (q < end && (*q == 'x' || *q == 'X')) {
                base = 16;
                q++;
            }
            unsigned long cp = 0;
            const char *digits = q;
            while (q < end && q - digits < 8 && (base == 16 ? isxdigit((unsigned char)*q)
                                                            : isdigit((unsigned char)*q))) {
                int v = isdigit((unsigned char)*q) ? *q - '0' : (tolower(*q) - 'a' + 10);
                cp = cp * (unsigned long)base + (unsigned long)v;
                q++;
            }
            if (q > digits && q < end && *q == ';') {
                put_utf8(b, cp);
                p = q + 1;
                done = 1;
            }
        }
        if (!done)
            obs_sbuf_putc(b, '&');
    }
}

/* Decoded text of the first <tag> in [p, end) into a fresh obs_malloc'd string; NULL if
 * absent or out of memory. */
static char *xml_get(const char *p, const char *end, const char *tag)
{
    const char *a, *b;
    if (p == NULL || xml_elem(p, end, tag, &a, &b) == NULL)
        return NULL;
    struct obs_sbuf s;
    obs_sbuf_init(&s);
    xml_text(&s, a, b);
    obs_sbuf_putc(&s, '\0');
    if (s.oom) {
        obs_sbuf_deinit(&s);
        return NULL;
    }
    return obs_sbuf_take(&s, NULL);
}

static void xml_esc(struct obs_sbuf *b, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&': obs_sbuf_puts(b, "&amp;"); break;
        case '<': obs_sbuf_puts(b, "&lt;"); break;
        case '>': obs_sbuf_puts(b, "&gt;"); break;
        case '"': obs_sbuf_puts(b, "&quot;"); break;
        default: obs_sbuf_putc(b, *s);
        }
    }
}

/* --- one request ------------------------------------------------------------------------ */

struct qparam {
    const char *k, *v; /* v NULL or "" is written as "k=" */
};

struct s3_req {
    const char *op;     /* for messages: "PUT", "GET", "LIST", ... */
    const char *method; /* HTTP method */
    const char *key;    /* full key inside the bucket (store prefix included); NULL: bucket */
    struct qparam q[S3_MAX_QUERY];
    int nq;
    const void *body;
    size_t body_len;
    const char *content_type;
    char range[64]; /* "bytes=a-b" or "" */
    struct obs_sbuf *out; /* 2xx body appended here when set, else into resp.body */
};

struct s3_resp {
    long status;
    struct obs_sbuf body; /* error body, or the 2xx body when req.out is NULL */
    char etag[160];
    int64_t content_length;
    int64_t range_start; /* first byte of Content-Range, -1 when absent */
    int oom;
};

struct xfer {
    CURL *h;
    struct s3_req *rq;
    struct s3_resp *rs;
    int decided, to_out;
    size_t out_base;
};

static size_t on_body(char *p, size_t sz, size_t nm, void *ud)
{
    struct xfer *x = ud;
    size_t n = sz * nm;
    if (!x->decided) {
        long code = 0;
        curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &code);
        x->decided = 1;
        x->to_out = x->rq->out != NULL && code >= 200 && code < 300;
        curl_off_t cl = -1;
        curl_easy_getinfo(x->h, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
        if (x->to_out && cl > 0 && (uint64_t)cl < SIZE_MAX / 2 &&
            obs_sbuf_reserve(x->rq->out, (size_t)cl) != OBS_OK) {
            x->rs->oom = 1;
            return 0;
        }
    }
    struct obs_sbuf *b = x->to_out ? x->rq->out : &x->rs->body;
    if (!x->to_out && x->rq->out != NULL && b->len > S3_ERRBODY_MAX)
        return n; /* an error body this large is not worth keeping */
    if (obs_sbuf_append(b, p, n) != OBS_OK) {
        x->rs->oom = 1;
        return 0;
    }
    return n;
}

static size_t on_header(char *p, size_t sz, size_t nm, void *ud)
{
    struct xfer *x = ud;
    size_t n = sz * nm;
    if (n >= 5 && strncasecmp(p, "HTTP/", 5) == 0) {
        x->rs->etag[0] = '\0'; /* a new response (after 100 Continue) */
        x->rs->range_start = -1;
    } else if (n > 14 && strncasecmp(p, "content-range:", 14) == 0) {
        const char *v = p + 14, *e = p + n;
        while (v < e && (*v == ' ' || *v == '\t'))
            v++;
        if (e - v > 6 && strncasecmp(v, "bytes ", 6) == 0 && isdigit((unsigned char)v[6]))
            x->rs->range_start = strtoll(v + 6, NULL, 10);
    } else if (n > 5 && strncasecmp(p, "etag:", 5) == 0) {
        const char *v = p + 5, *e = p + n;
        while (v < e && (*v == ' ' || *v == '\t'))
            v++;
        while (e > v && (e[-1] == '\r' || e[-1] == '\n' || e[-1] == ' '))
            e--;
        size_t l = (size_t)(e - v);
        if (l < sizeof(x->rs->etag)) {
            memcpy(x->rs->etag, v, l);
            x->rs->etag[l] = '\0';
        }
    }
    return n;
}

static CURL *handle_get(struct s3_store *s3)
{
    CURL *h = NULL;
    pthread_mutex_lock(&s3->mu);
    if (s3->npool > 0)
        h = s3->pool[--s3->npool];
    pthread_mutex_unlock(&s3->mu);
    if (h != NULL)
        curl_easy_reset(h); /* keeps live connections */
    else
        h = curl_easy_init();
    return h;
}

static void handle_put(struct s3_store *s3, CURL *h)
{
    pthread_mutex_lock(&s3->mu);
    if (s3->npool < S3_POOL_MAX) {
        s3->pool[s3->npool++] = h;
        h = NULL;
    }
    pthread_mutex_unlock(&s3->mu);
    if (h != NULL)
        curl_easy_cleanup(h);
}

static int qcmp(const void *a, const void *b)
{
    return strcmp(((const struct qparam *)a)->k, ((const struct qparam *)b)->k);
}

/* Build the path ("/bucket/enc(key)") and the canonical query into path/query. */
static void build_target(const struct s3_store *s3, struct s3_req *rq, struct obs_sbuf *path,
                         struct obs_sbuf *query)
{
    obs_sbuf_puts(path, s3->path_base);
    if (rq->key != NULL) {
        obs_sbuf_putc(path, '/');
        uri_enc(path, rq->key, strlen(rq->key), 1);
    } else if (s3->path_base[0] == '\0') {
        obs_sbuf_putc(path, '/');
    }
    qsort(rq->q, (size_t)rq->nq, sizeof(rq->q[0]), qcmp);
    for (int i = 0; i < rq->nq; i++) {
        if (i > 0)
            obs_sbuf_putc(query, '&');
        uri_enc(query, rq->q[i].k, strlen(rq->q[i].k), 0);
        obs_sbuf_putc(query, '=');
        if (rq->q[i].v != NULL)
            uri_enc(query, rq->q[i].v, strlen(rq->q[i].v), 0);
    }
    obs_sbuf_putc(path, '\0');
    obs_sbuf_putc(query, '\0');
    path->len--;
    query->len--;
}

/* Compute the Authorization header value for one attempt. */
static int sign(const struct s3_store *s3, const struct s3_req *rq, const char *path,
                const char *query, const char *amzdate, const char *payload_hash,
                struct obs_sbuf *auth)
{
    struct obs_sbuf c, sh;
    obs_sbuf_init(&c);
    obs_sbuf_init(&sh);
    /* canonical request */
    obs_sbuf_printf(&c, "%s\n%s\n%s\n", rq->method, path, query);
    if (rq->content_type) {
        obs_sbuf_printf(&c, "content-type:%s\n", rq->content_type);
        obs_sbuf_puts(&sh, "content-type;");
    }
    obs_sbuf_printf(&c, "host:%s\n", s3->host);
    obs_sbuf_puts(&sh, "host;");
    if (rq->range[0]) {
        obs_sbuf_printf(&c, "range:%s\n", rq->range);
        obs_sbuf_puts(&sh, "range;");
    }
    obs_sbuf_printf(&c, "x-amz-content-sha256:%s\nx-amz-date:%s\n", payload_hash, amzdate);
    obs_sbuf_puts(&sh, "x-amz-content-sha256;x-amz-date;");
    if (s3->token[0]) {
        obs_sbuf_printf(&c, "x-amz-security-token:%s\n", s3->token);
        obs_sbuf_puts(&sh, "x-amz-security-token;");
    }
    sh.len--; /* trailing ';' */
    sh.p[sh.len] = '\0';
    obs_sbuf_printf(&c, "\n%s\n%s", sh.p, payload_hash);

    int rc = c.oom || sh.oom ? OBS_ENOMEM : OBS_OK;
    char chash[65] = "", date[9], sig[65];
    memcpy(date, amzdate, 8);
    date[8] = '\0';
    if (rc == OBS_OK)
        rc = sha256_hex(c.p, c.len, chash);
    /* string to sign, then the key chain */
    char sts[512], scope[160];
    snprintf(scope, sizeof(scope), "%s/%s/s3/aws4_request", date, s3->region);
    snprintf(sts, sizeof(sts), "AWS4-HMAC-SHA256\n%s\n%s\n%s", amzdate, scope, chash);
    unsigned char k[32];
    size_t sl = strlen(s3->secret);
    char *kk = obs_malloc(sl + 5);
    if (kk == NULL)
        rc = OBS_ENOMEM;
    if (rc == OBS_OK) {
        memcpy(kk, "AWS4", 4);
        memcpy(kk + 4, s3->secret, sl + 1);
        if (hmac256(kk, sl + 4, date, 8, k) != OBS_OK ||
            hmac256(k, 32, s3->region, strlen(s3->region), k) != OBS_OK ||
            hmac256(k, 32, "s3", 2, k) != OBS_OK ||
            hmac256(k, 32, "aws4_request", 12, k) != OBS_OK ||
            hmac256(k, 32, sts, strlen(sts), k) != OBS_OK)
            rc = OBS_EIO;
        OPENSSL_cleanse(kk, sl + 4);
    }
    obs_free(kk);
    if (rc == OBS_OK) {
        hex(k, 32, sig);
        obs_sbuf_printf(auth,
                        "Authorization: AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, "
                        "Signature=%s",
                        s3->akid, scope, sh.p, sig);
        if (auth->oom)
            rc = OBS_ENOMEM;
    }
    obs_sbuf_deinit(&c);
    obs_sbuf_deinit(&sh);
    return rc;
}

static int retryable_curl(CURLcode cc)
{
    switch (cc) {
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
    case CURLE_OUT_OF_MEMORY:
    case CURLE_BAD_FUNCTION_ARGUMENT:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_WRITE_ERROR:
        return 0;
    default:
        return 1;
    }
}

static int retryable_status(long st, const struct obs_sbuf *body)
{
    if (st >= 500 || st == 429)
        return 1;
    if (st == 400 && body->p != NULL &&
        (strstr(body->p, "<Code>RequestTimeout</Code>") != NULL ||
         strstr(body->p, "<Code>SlowDown</Code>") != NULL))
        return 1;
    return 0;
}

static void backoff_sleep(int attempt, unsigned *seed)
{
    long ms = 100L << (attempt < 6 ? attempt : 6);
    if (ms > 5000)
        ms = 5000;
    ms = ms / 2 + (long)(rand_r(seed) % (unsigned)(ms / 2 + 1)); /* jitter: [ms/2, ms] */
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/*
 * Perform rq with retries. Returns OBS_OK once a final HTTP response arrived (rs->status set,
 * any status: the caller interprets it), OBS_EIO after the last transport failure, OBS_ENOMEM.
 * rs must be initialised by the caller (s3_resp_init) and released (s3_resp_deinit).
 */
static int s3_do(struct s3_store *s3, struct s3_req *rq, struct s3_resp *rs, struct obs_err *err)
{
    char phash[65];
    if (rq->body_len == 0) {
        memcpy(phash, EMPTY_SHA256, 65);
    } else if (sha256_hex(rq->body, rq->body_len, phash) != OBS_OK) {
        return obs_err_set(err, OBS_EIO, "s3: sha256 failed");
    }
    struct obs_sbuf path, query, url, auth, hv;
    obs_sbuf_init(&path);
    obs_sbuf_init(&query);
    obs_sbuf_init(&url);
    obs_sbuf_init(&auth);
    obs_sbuf_init(&hv);
    build_target(s3, rq, &path, &query);
    obs_sbuf_printf(&url, "%s%s%s%s", s3->base_url, path.p, query.len ? "?" : "", query.p);
    if (path.oom || query.oom || url.oom) {
        obs_sbuf_deinit(&path);
        obs_sbuf_deinit(&query);
        obs_sbuf_deinit(&url);
        return obs_err_set(err, OBS_ENOMEM, "s3: out of memory");
    }
    size_t out_base = rq->out ? rq->out->len : 0;
    unsigned seed = (unsigned)time(NULL) ^ (unsigned)(uintptr_t)rq;
    int rc = OBS_EIO;
    char cerr[CURL_ERROR_SIZE];
    CURL *h = handle_get(s3);
    if (h == NULL) {
        rc = obs_err_set(err, OBS_ENOMEM, "s3: curl_easy_init failed");
        goto out;
    }
    for (int attempt = 0; attempt <= s3->max_retries; attempt++) {
        if (attempt > 0) {
            backoff_sleep(attempt - 1, &seed);
            curl_easy_reset(h);
        }
        if (rq->out) {
            rq->out->len = out_base;
            if (rq->out->p)
                rq->out->p[out_base] = '\0';
        }
        obs_sbuf_reset(&rs->body);
        rs->status = 0;
        rs->etag[0] = '\0';
        rs->content_length = -1;
        rs->range_start = -1;
        rs->oom = 0;

        char amzdate[20];
        time_t now = time(NULL);
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(amzdate, sizeof(amzdate), "%Y%m%dT%H%M%SZ", &tm);
        obs_sbuf_reset(&auth);
        int src = sign(s3, rq, path.p, query.p, amzdate, phash, &auth);
        if (src != OBS_OK) {
            rc = obs_err_set(err, src, "s3: signing failed");
            goto out;
        }
        struct curl_slist *hl = NULL, *t;
        int hok = 1;
#define ADDH(...)                                                                                  \
    do {                                                                                           \
        obs_sbuf_reset(&hv);                                                                       \
        obs_sbuf_printf(&hv, __VA_ARGS__);                                                         \
        t = hv.oom ? NULL : curl_slist_append(hl, hv.p);                                           \
        if (t == NULL)                                                                             \
            hok = 0;                                                                               \
        else                                                                                       \
            hl = t;                                                                                \
    } while (0)
        ADDH("Host: %s", s3->host);
        ADDH("x-amz-date: %s", amzdate);
        ADDH("x-amz-content-sha256: %s", phash);
        if (s3->token[0])
            ADDH("x-amz-security-token: %s", s3->token);
        if (rq->range[0])
            ADDH("Range: %s", rq->range);
        if (rq->content_type)
            ADDH("Content-Type: %s", rq->content_type);
        else
            ADDH("Content-Type:"); /* drop curl's form content type on POST */
        ADDH("Expect:");           /* removes curl's header: no 100-continue round trip */
        ADDH("%s", auth.p);
#undef ADDH
        if (!hok) {
            curl_slist_free_all(hl);
            rc = obs_err_set(err, OBS_ENOMEM, "s3: out of memory");
            goto out;
        }
        struct xfer x = {.h = h, .rq = rq, .rs = rs, .out_base = out_base};
        cerr[0] = '\0';
        curl_easy_setopt(h, CURLOPT_URL, url.p);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, s3->timeout_ms);
        curl_easy_setopt(h, CURLOPT_ERRORBUFFER, cerr);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &x);
        curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(h, CURLOPT_HEADERDATA, &x);
        curl_easy_setopt(h, CURLOPT_USERAGENT, "obs-store-s3/1");
        if (strcmp(rq->method, "HEAD") == 0) {
            curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
        } else if (strcmp(rq->method, "GET") != 0) {
            curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, rq->method);
            if (strcmp(rq->method, "PUT") == 0 || strcmp(rq->method, "POST") == 0) {
                curl_easy_setopt(h, CURLOPT_POSTFIELDS, rq->body_len ? rq->body : "");
                curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)rq->body_len);
            }
        }
        CURLcode cc = curl_easy_perform(h);
        curl_slist_free_all(hl);
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &rs->status);
        if (cc == CURLE_OK) {
            curl_off_t cl = -1;
            curl_easy_getinfo(h, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
            rs->content_length = cl;
            obs_sbuf_putc(&rs->body, '\0');
            rs->body.len--;
            if (rs->oom || rs->body.oom) {
                rc = obs_err_set(err, OBS_ENOMEM, "s3: %s %s: out of memory", rq->op,
                                 rq->key ? rq->key : "");
                goto out;
            }
            if (attempt < s3->max_retries && retryable_status(rs->status, &rs->body)) {
                obs_clog_warn("s3", "%s %s: HTTP %ld, retrying (attempt %d of %d)", rq->op,
                              rq->key ? rq->key : s3->bucket, rs->status, attempt + 1,
                              s3->max_retries + 1);
                continue;
            }
            rc = OBS_OK;
            goto out;
        }
        if (rs->oom) {
            rc = obs_err_set(err, OBS_ENOMEM, "s3: %s %s: out of memory", rq->op,
                             rq->key ? rq->key : "");
            goto out;
        }
        rs->status = 0;
        rc = obs_err_set(err, OBS_EIO, "s3: %s %s: %s (%s) after %d attempt(s)", rq->op,
                         rq->key ? rq->key : s3->bucket, curl_easy_strerror(cc),
                         cerr[0] ? cerr : "-", attempt + 1);
        if (!retryable_curl(cc))
            goto out;
        if (attempt < s3->max_retries)
            obs_clog_warn("s3", "%s %s: %s, retrying (attempt %d of %d)", rq->op,
                          rq->key ? rq->key : s3->bucket, curl_easy_strerror(cc), attempt + 1,
                          s3->max_retries + 1);
    }
out:
    if (h != NULL)
        handle_put(s3, h);
    if (rc != OBS_OK && rq->out) {
        rq->out->len = out_base;
        if (rq->out->p)
            rq->out->p[out_base] = '\0';
    }
    obs_sbuf_deinit(&path);
    obs_sbuf_deinit(&query);
    obs_sbuf_deinit(&url);
    obs_sbuf_deinit(&auth);
    obs_sbuf_deinit(&hv);
    return rc;
}

static void resp_init(struct s3_resp *rs)
{
    memset(rs, 0, sizeof(*rs));
    obs_sbuf_init(&rs->body);
}

/* Turn a non-success response into err: code from the status and S3's <Code>. */
static int status_err(const struct s3_store *s3, const struct s3_req *rq,
                      const struct s3_resp *rs, const char *shown_key, struct obs_err *err)
{
    const char *b = rs->body.p, *e = b ? b + rs->body.len : NULL;
    char *code = xml_get(b, e, "Code");
    char *msg = xml_get(b, e, "Message");
    int rc;
    if (code != NULL && strcmp(code, "NoSuchBucket") == 0)
        rc = OBS_EFATAL;
    else if (rs->status == 404)
        rc = OBS_ENOENT;
    else if (rs->status == 416)
        rc = OBS_ERANGE;
    else if (rs->status >= 500 || rs->status == 429)
        rc = OBS_EIO;
    else
        rc = OBS_EFATAL;
    obs_err_set(err, rc, "s3: %s %s: %ld %s%s%s", rq->op,
                shown_key ? shown_key : s3->bucket, rs->status,
                code ? code : (rs->status == 404 ? "NotFound" : "(no error body)"),
                msg ? ": " : "", msg ? msg : "");
    obs_free(code);
    obs_free(msg);
    return rc;
}

/* Full key (store prefix + key) in a fresh string. */
static char *full_key(const struct s3_store *s3, const char *key)
{
    size_t pl = strlen(s3->prefix), kl = strlen(key);
    char *f = obs_malloc(pl + kl + 1);
    if (f != NULL) {
        memcpy(f, s3->prefix, pl);
        memcpy(f + pl, key, kl + 1);
    }
    return f;
}

/* --- operations ------------------------------------------------------------------------- */

static int put_single(struct s3_store *s3, const char *fk, const char *key, const void *data,
                      size_t len, struct obs_err *err)
{
    struct s3_req rq = {.op = "PUT", .method = "PUT", .key = fk, .body = data,
                        .body_len = len, .content_type = "application/octet-stream"};
    struct s3_resp rs;
    resp_init(&rs);
    int rc = s3_do(s3, &rq, &rs, err);
    if (rc == OBS_OK && (rs.status < 200 || rs.status > 299))
        rc = status_err(s3, &rq, &rs, key, err);
    obs_sbuf_deinit(&rs.body);
    return rc;
}

static void abort_upload(struct s3_store *s3, const char *fk, const char *upload_id)
{
    struct s3_req rq = {.op = "ABORT-MULTIPART", .method = "DELETE", .key = fk,
                        .q = {{"uploadId", upload_id}}, .nq = 1};
    struct s3_resp rs;
    resp_init(&rs);
    struct obs_err e2 = {0};
    if (s3_do(s3, &rq, &rs, &e2) != OBS_OK || rs.status < 200 || rs.status > 299)
        obs_clog_warn("s3", "abort multipart upload of %s failed (status %ld): %s", fk,
                      rs.status, e2.msg);
    obs_sbuf_deinit(&rs.body);
}

/* UploadPart workers: parts are handed out in order; the first error stops the others. */
struct mp_job {
    struct s3_store *s3;
    const char *fk, *key, *upload_id, *data;
    size_t len;
    uint64_t nparts, next;
    char (*etags)[160];
    pthread_mutex_t mu;
    int rc;
    struct obs_err err;
};

static void *part_worker(void *arg)
{
    struct mp_job *j = arg;
    struct s3_resp rs;
    resp_init(&rs);
    for (;;) {
        pthread_mutex_lock(&j->mu);
        uint64_t i = j->next;
        int go = j->rc == OBS_OK && i < j->nparts;
        if (go)
            j->next++;
        pthread_mutex_unlock(&j->mu);
        if (!go)
            break;
        char pn[24];
        snprintf(pn, sizeof(pn), "%llu", (unsigned long long)(i + 1));
        uint64_t off = i * j->s3->part_size;
        size_t n = (size_t)(j->len - off < j->s3->part_size ? j->len - off : j->s3->part_size);
        struct s3_req pr = {.op = "UPLOAD-PART", .method = "PUT", .key = j->fk,
                            .q = {{"partNumber", pn}, {"uploadId", j->upload_id}}, .nq = 2,
                            .body = j->data + off, .body_len = n};
        struct obs_err e = {0};
        int rc = s3_do(j->s3, &pr, &rs, &e);
        if (rc == OBS_OK && (rs.status < 200 || rs.status > 299))
            rc = status_err(j->s3, &pr, &rs, j->key, &e);
        if (rc == OBS_OK && rs.etag[0] == '\0')
            rc = obs_err_set(&e, OBS_EIO, "s3: UPLOAD-PART %s part %s: no ETag in reply", j->key,
                             pn);
        if (rc == OBS_OK) {
            memcpy(j->etags[i], rs.etag, sizeof(rs.etag));
            continue;
        }
        pthread_mutex_lock(&j->mu);
        if (j->rc == OBS_OK) {
            j->rc = rc;
            j->err = e;
        }
        pthread_mutex_unlock(&j->mu);
        break;
    }
    obs_sbuf_deinit(&rs.body);
    return NULL;
}

/* Upload all parts with up to upload_concurrency threads (this one included) and append the
 * <Part> list of CompleteMultipartUpload to done. */
static int upload_parts(struct s3_store *s3, const char *fk, const char *key,
                        const char *upload_id, const char *data, size_t len, uint64_t nparts,
                        struct obs_sbuf *done, struct obs_err *err)
{
    struct mp_job j = {.s3 = s3, .fk = fk, .key = key, .upload_id = upload_id, .data = data,
                       .len = len, .nparts = nparts};
    j.etags = obs_calloc(nparts, sizeof(*j.etags));
    if (j.etags == NULL)
        return obs_err_set(err, OBS_ENOMEM, "s3: out of memory");
    pthread_mutex_init(&j.mu, NULL);
    pthread_t th[S3_MAX_CONCURRENCY];
    int nth = 0;
    for (int t = 1; t < s3->upload_concurrency && (uint64_t)t < nparts; t++) {
        if (pthread_create(&th[nth], NULL, part_worker, &j) != 0)
            break; /* fewer threads is fine */
        nth++;
    }
    part_worker(&j);
    for (int t = 0; t < nth; t++)
        pthread_join(th[t], NULL);
    pthread_mutex_destroy(&j.mu);
    int rc = j.rc;
    if (rc != OBS_OK) {
        if (err != NULL)
            *err = j.err;
    } else {
        for (uint64_t i = 0; i < nparts; i++) {
            obs_sbuf_printf(done, "<Part><PartNumber>%llu</PartNumber><ETag>",
                            (unsigned long long)(i + 1));
            xml_esc(done, j.etags[i]);
            obs_sbuf_puts(done, "</ETag></Part>");
        }
    }
    obs_free(j.etags);
    return rc;
}

static int put_multipart(struct s3_store *s3, const char *fk, const char *key, const char *data,
                         size_t len, struct obs_err *err)
{
    uint64_t psz = s3->part_size;
    uint64_t nparts = (len + psz - 1) / psz;
    if (nparts > S3_MAX_PARTS)
        return obs_err_set(err, OBS_ELIMIT, "s3: PUT %s: %zu bytes need %llu parts of %llu "
                           "(max %d); raise part_size", key, len,
                           (unsigned long long)nparts, (unsigned long long)psz, S3_MAX_PARTS);
    struct s3_req rq = {.op = "CREATE-MULTIPART", .method = "POST", .key = fk,
                        .q = {{"uploads", ""}}, .nq = 1,
                        .content_type = "application/octet-stream"};
    struct s3_resp rs;
    resp_init(&rs);
    int rc = s3_do(s3, &rq, &rs, err);
    if (rc == OBS_OK && (rs.status < 200 || rs.status > 299))
        rc = status_err(s3, &rq, &rs, key, err);
    char *upload_id = NULL;
    if (rc == OBS_OK) {
        upload_id = rs.body.p ? xml_get(rs.body.p, rs.body.p + rs.body.len, "UploadId") : NULL;
        if (upload_id == NULL || upload_id[0] == '\0')
            rc = obs_err_set(err, OBS_EIO, "s3: CREATE-MULTIPART %s: no UploadId in reply",
                             key);
    }
    struct obs_sbuf done;
    obs_sbuf_init(&done);
    obs_sbuf_puts(&done, "<CompleteMultipartUpload "
                         "xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">");
    if (rc == OBS_OK)
        rc = upload_parts(s3, fk, key, upload_id, data, len, nparts, &done, err);
    obs_sbuf_puts(&done, "</CompleteMultipartUpload>");
    if (rc == OBS_OK && done.oom)
        rc = obs_err_set(err, OBS_ENOMEM, "s3: out of memory");
    if (rc == OBS_OK) {
        struct s3_req cr = {.op = "COMPLETE-MULTIPART", .method = "POST", .key = fk,
                            .q = {{"uploadId", upload_id}}, .nq = 1, .body = done.p,
                            .body_len = done.len, .content_type = "application/xml"};
        rc = s3_do(s3, &cr, &rs, err);
        /* S3 may answer 200 and put an <Error> in the body. */
        if (rc == OBS_OK && (rs.status < 200 || rs.status > 299 ||
                             (rs.body.p && strstr(rs.body.p, "<Error>") != NULL))) {
            if (rs.status >= 200 && rs.status <= 299)
                rs.status = 500;
            rc = status_err(s3, &cr, &rs, key, err);
        }
    }
    if (rc != OBS_OK && upload_id != NULL && upload_id[0] != '\0')
        abort_upload(s3, fk, upload_id);
    obs_free(upload_id);
    obs_sbuf_deinit(&done);
    obs_sbuf_deinit(&rs.body);
    return rc;
}

static int s3_put(struct obs_store *s, const char *key, const void *data, size_t len,
                  struct obs_err *err)
{
    struct s3_store *s3 = s3_of(s);
    if (!key_ok(s3, key))
        return obs_err_set(err, OBS_EINVAL, "store: invalid key \"%s\"", key ? key : "");
    if (data == NULL && len > 0)
        return obs_err_set(err, OBS_EINVAL, "store: put %s: NULL data", key);
    char *fk = full_key(s3, key);
    if (fk == NULL)
        return obs_err_set(err, OBS_ENOMEM, "s3: out of memory");
    int rc = len > s3->part_size ? put_multipart(s3, fk, key, data, len, err)
                                 : put_single(s3, fk, key, data, len, err);
    obs_free(fk);
    return rc;
}

static int head_full(struct s3_store *s3, const char *fk, const char *key, uint64_t *size,
                     struct obs_err *err)
{
    struct s3_req rq = {.op = "HEAD", .method = "HEAD", .key = fk};
    struct s3_resp rs;
    resp_init(&rs);
    int rc = s3_do(s3, &rq, &rs, err);
    if (rc == OBS_OK) {
        if (rs.status < 200 || rs.status > 299)
            rc = status_err(s3, &rq, &rs, key, err);
        else if (rs.content_length < 0)
            rc = obs_err_set(err, OBS_EIO, "s3: HEAD %s: no Content-Length", key);
        else if (size)
            *size = (uint64_t)rs.content_length;
    }
    obs_sbuf_deinit(&rs.body);
    return rc;
}

static int s3_head(struct obs_store *s, const char *key, uint64_t *size, struct obs_err *err)
{
    struct s3_store *s3 = s3_of(s);
    if (!key_ok(s3, key))
        return obs_err_set(err, OBS_EINVAL, "store: invalid key \"%s\"", key ? key : "");
    char *fk = full_key(s3, key);
    if (fk == NULL)
        return obs_err_set(err, OBS_ENOMEM, "s3: out of memory");
    int rc = head_full(s3, fk, key, size, err);
    obs_free(fk);
    return rc;
}

static int s3_get(struct obs_store *s, const char *key, uint64_t off, uint64_t len,
                  struct obs_sbuf *out, struct obs_err *err)
{
    struct s3_store *s3 = s3_of(s);
    if (!key_ok(s3, key))
        return obs_err_set(err, OBS_EINVAL, "store: invalid key \"%s\"", key ? key : "");
    if (len != 0 && off + len < off)
        len = UINT64_MAX - off; /* "to the end" with an overflowing length */
    char *fk = full_key(s3, key);
    if (fk == NULL)
        return obs_err_set(err, OBS_ENOMEM, "s3: out of memory");
    struct s3_req rq = {.op = "GET", .method = "GET", .key = fk, .out = out};
    if (len != 0)
        snprintf(rq.range, sizeof(rq.range), "bytes=%llu-%llu", (unsigned long long)off,
                 (unsigned long long)(off + len - 1));
    else if (off != 0)
        snprintf(rq.range, sizeof(rq.range), "bytes=%llu-", (unsigned long long)off);
    struct s3_resp rs;
    resp_init(&rs);
    size_t base = out->len;
    int rc = s3_do(s3, &rq, &rs, err);
    if (rc == OBS_OK) {
        if (rs.status == 416) {
            /* Unsatisfiable: a range starting exactly at the end is an empty read. */
            uint64_t size = 0;
            rc = head_full(s3, fk, key, &size, err);
            if (rc == OBS_OK && off != size)
                rc = obs_err_set(err, OBS_ERANGE, "store: %s: offset %llu past size %llu", key,
                                 (unsigned long long)off, (unsigned long long)size);
        } else if (rs.status < 200 || rs.status > 299) {
            rc = status_err(s3, &rq, &rs, key, err);
        } else if (rs.status == 206 && rs.range_start >= 0 && (uint64_t)rs.range_start != off) {
            rc = obs_err_set(err, OBS_EIO, "s3: GET %s: asked for bytes from %llu, got a range "
                             "starting at %lld", key, (unsigned long long)off,
                             (long long)rs.range_start);
        } else if (rs.status == 206) {
            /* Some servers (s3rver) answer "bytes=0-0" with more than asked: trim. */
            if (len != 0 && out->len - base > len)
                out->len = base + (size_t)len;
        } else if (rs.status == 200 && rq.range[0]) {
            /* The server ignored Range and sent everything: cut the range out. */
            size_t total = out->len - base;
            if (off > total) {
                out->len = base;
                rc = obs_err_set(err, OBS_ERANGE, "store: %s: offset %llu past size %zu", key,
                                 (unsigned long long)off, total);
            } else {
                size_t n = total - (size_t)off;
                if (len != 0 && len < n)
                    n = (size_t)len;
                memmove(out->p + base, out->p + base + off, n);
                out->len = base + n;
            }
        }
        if (out->p != NULL)
            out->p[out->len] = '\0';
    }
    if (rc != OBS_OK) {
        out->len = base;
        if (out->p != NULL)
            out->p[base] = '\0';
    }
    obs_sbuf_deinit(&rs.body);
    obs_free(fk);
    return rc;
}

static int s3_del(struct obs_store *s, const char *key, struct obs_err *err)
{
    struct s3_store *s3 = s3_of(s);
    if (!key_ok(s3, key))
        return obs_err_set(err, OBS_EINVAL, "store: invalid key \"%s\"", key ? key : "");
    char *fk = full_key(s3, key);
    if (fk == NULL)
        return obs_err_set(err, OBS_ENOMEM, "s3: out of memory");
    struct s3_req rq = {.op = "DELETE", .method = "DELETE", .key = fk};
    struct s3_resp rs;
    resp_init(&rs);
    int rc = s3_do(s3, &rq, &rs, err);
    if (rc == OBS_OK && (rs.status < 200 || rs.status > 299) && rs.status != 404)
        rc = status_err(s3, &rq, &rs, key, err);
    obs_sbuf_deinit(&rs.body);
    obs_free(fk);
    return rc;
}

/* --- listing ---------------------------------------------------------------------------- */

struct strv {
    char **v;
    size_t n, cap;
};

static int strv_push(struct strv *sv, char *s)
{
    if (s == NULL)
        return OBS_ENOMEM;
    if (sv->n == sv->cap) {
        size_t nc = sv->cap ? sv->cap * 2 : 64;
        char **nv = obs_realloc(sv->v, nc * sizeof(*nv));
        if (nv == NULL) {
            obs_free(s);
            return OBS_ENOMEM;
        }
        sv->v = nv;
        sv->cap = nc;
    }
    sv->v[sv->n++] = s;
    return OBS_OK;
}

static void strv_clear(struct strv *sv)
{
    for (size_t i = 0; i < sv->n; i++)
        obs_free(sv->v[i]);
    sv->n = 0;
}

/* Collect the decoded <inner> of every <outer> element of the page. */
static int collect(const char *p, const char *end, const char *outer, const char *inner,
                   struct strv *sv)
{
    const char *a, *b;
    while ((p = xml_elem(p, end, outer, &a, &b)) != NULL) {
        char *s = xml_get(a, b, inner);
        if (s == NULL)
            continue; /* malformed entry (or OOM): skip */
        if (strv_push(sv, s) != OBS_OK)
            return OBS_ENOMEM;
    }
    return OBS_OK;
}

static int s3_list(struct obs_store *s, const char *prefix, const char *delim,
                   int (*fn)(const char *key, void *arg), void *arg, struct obs_err *err)
{
    struct s3_store *s3 = s3_of(s);
    if (prefix == NULL)
        prefix = "";
    if (delim != NULL && delim[0] != '\0' && strcmp(delim, "/") != 0)
        return obs_err_set(err, OBS_EINVAL, "store: list: only \"/\" is supported as delimiter");
    if (prefix[0] == '/' || strstr(prefix, "//") != NULL || strstr(prefix, "../") != NULL ||
        strcmp(prefix, "..") == 0 || strncmp(prefix, "./", 2) == 0 ||
        strstr(prefix, "/./") != NULL)
        return obs_err_set(err, OBS_EINVAL, "store: list: invalid prefix \"%s\"", prefix);
    int use_delim = delim != NULL && delim[0] != '\0';
    char *fp = full_key(s3, prefix);
    if (fp == NULL)
        return obs_err_set(err, OBS_ENOMEM, "s3: out of memory");
    size_t strip = strlen(s3->prefix);
    char maxkeys[16];
    snprintf(maxkeys, sizeof(maxkeys), "%d", s3->list_max_keys);
    struct strv keys = {0}, prefs = {0};
    char *token = NULL;
    struct s3_resp rs;
    resp_init(&rs);
    int rc = OBS_OK, stop = 0;
    /* Bounded: 10M pages of up to 1000 keys is far beyond any bucket we manage. */
    for (long page = 0; page < 10000000L && rc == OBS_OK && !stop; page++) {
        struct s3_req rq = {.op = "LIST", .method = "GET", .key = NULL};
        rq.q[rq.nq++] = (struct qparam){"list-type", "2"};
        rq.q[rq.nq++] = (struct qparam){"max-keys", maxkeys};
        if (fp[0])
            rq.q[rq.nq++] = (struct qparam){"prefix", fp};
        if (use_delim)
            rq.q[rq.nq++] = (struct qparam){"delimiter", "/"};
        if (token != NULL)
            rq.q[rq.nq++] = (struct qparam){"continuation-token", token};
        rc = s3_do(s3, &rq, &rs, err);
        if (rc != OBS_OK)
            break;
        if (rs.status < 200 || rs.status > 299) {
            rc = status_err(s3, &rq, &rs, prefix[0] ? prefix : NULL, err);
            break;
        }
        const char *b = rs.body.p;
        if (b == NULL || strstr(b, "<ListBucketResult") == NULL) {
            rc = obs_err_set(err, OBS_EIO, "s3: LIST %s: reply is not a ListBucketResult",
                             prefix);
            break;
        }
        const char *e = b + rs.body.len;
        strv_clear(&keys);
        strv_clear(&prefs);
        if (collect(b, e, "Contents", "Key", &keys) != OBS_OK ||
            collect(b, e, "CommonPrefixes", "Prefix", &prefs) != OBS_OK) {
            rc = obs_err_set(err, OBS_ENOMEM, "s3: list: out of memory");
            break;
        }
        /* Merge objects and common prefixes into one key-ordered stream. */
        size_t i = 0, j = 0;
        while (!stop && (i < keys.n || j < prefs.n)) {
            const char *k;
            if (j >= prefs.n || (i < keys.n && strcmp(keys.v[i], prefs.v[j]) < 0))
                k = keys.v[i++];
            else
                k = prefs.v[j++];
            if (strlen(k) < strip || memcmp(k, s3->prefix, strip) != 0)
                continue; /* not ours (cannot happen: the prefix is in the request) */
            stop = fn(k + strip, arg) != 0;
        }
        char *trunc = xml_get(b, e, "IsTruncated");
        int more = trunc != NULL && strcmp(trunc, "true") == 0;
        obs_free(trunc);
        obs_free(token);
        token = NULL;
        if (!more)
            break;
        token = xml_get(b, e, "NextContinuationToken");
        if (token == NULL || token[0] == '\0') {
            rc = obs_err_set(err, OBS_EIO, "s3: LIST %s: truncated reply without "
                             "NextContinuationToken", prefix);
            break;
        }
    }
    strv_clear(&keys);
    strv_clear(&prefs);
    obs_free(keys.v);
    obs_free(prefs.v);
    obs_free(token);
    obs_free(fp);
    obs_sbuf_deinit(&rs.body);
    return rc;
}

/* --- open / close ----------------------------------------------------------------------- */

static void s3_free(struct s3_store *s3)
{
    if (s3 == NULL)
        return;
    for (int i = 0; i < s3->npool; i++)
        curl_easy_cleanup(s3->pool[i]);
    pthread_mutex_destroy(&s3->mu);
    obs_free(s3->base_url);
    obs_free(s3->host);
    obs_free(s3->path_base);
    obs_free(s3->bucket);
    obs_free(s3->prefix);
    obs_free(s3->region);
    obs_free(s3->akid);
    if (s3->secret != NULL) {
        OPENSSL_cleanse(s3->secret, strlen(s3->secret));
        obs_free(s3->secret);
    }
    obs_free(s3->token);
    obs_free(s3);
}

static void s3_close(struct obs_store *s) { s3_free(s3_of(s)); }

static const struct obs_store_ops s3_ops = {
    .name = "s3",
    .put = s3_put,
    .get = s3_get,
    .head = s3_head,
    .list = s3_list,
    .del = s3_del,
    .close = s3_close,
};

static const char *nz(const char *s) { return s != NULL && s[0] != '\0' ? s : NULL; }

static char *dupfmt(const char *fmt, const char *a, const char *b)
{
    size_t n = strlen(fmt) + strlen(a) + strlen(b) + 1;
    char *p = obs_malloc(n);
    if (p != NULL)
        snprintf(p, n, fmt, a, b);
    return p;
}

/* S3 bucket names: 3-63 of [a-z0-9.-]; we also accept '_' and upper case for other servers,
 * but never characters that would break the URL. */
static int bucket_ok(const char *b)
{
    size_t n = strlen(b);
    if (n < 1 || n > 255)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)b[i]) && b[i] != '-' && b[i] != '.' && b[i] != '_')
            return 0;
    return 1;
}

/*
 * Open the s3 backend from explicit settings (see obs_store_s3.h). Credentials and region
 * fall back to the standard AWS_* environment variables. Returns the store or NULL with err
 * set; no network traffic happens here.
 */
struct obs_store *obs_store_s3_open(const struct obs_store_s3_cfg *cfg, struct obs_err *err)
{
    pthread_once(&curl_once, curl_init_once);
    if (cfg == NULL || nz(cfg->bucket) == NULL) {
        obs_err_set(err, OBS_EINVAL, "s3: bucket_name is required");
        return NULL;
    }
    if (!bucket_ok(cfg->bucket)) {
        obs_err_set(err, OBS_EINVAL, "s3: invalid bucket_name \"%s\"", cfg->bucket);
        return NULL;
    }
    const char *akid = nz(cfg->access_key_id), *secret = nz(cfg->secret_access_key);
    const char *token = nz(cfg->session_token);
    if (akid == NULL && secret == NULL) {
        akid = nz(getenv("AWS_ACCESS_KEY_ID"));
        secret = nz(getenv("AWS_SECRET_ACCESS_KEY"));
        if (token == NULL)
            token = nz(getenv("AWS_SESSION_TOKEN"));
    }
    if (akid == NULL || secret == NULL) {
        obs_err_set(err, OBS_EINVAL, "s3: no credentials: set access_key_id and "
                    "secret_access_key, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY");
        return NULL;
    }
    const char *region = nz(cfg->region);
    if (region == NULL)
        region = nz(getenv("AWS_REGION"));
    if (region == NULL)
        region = nz(getenv("AWS_DEFAULT_REGION"));
    if (region == NULL)
        region = "us-east-1";
    for (const char *r = region; *r; r++)
        if (!isalnum((unsigned char)*r) && *r != '-' && *r != '_') {
            obs_err_set(err, OBS_EINVAL, "s3: invalid region \"%s\"", region);
            return NULL;
        }
    int64_t part = cfg->part_size ? cfg->part_size : (int64_t)S3_DEF_PART;
    if (part < (int64_t)S3_MIN_PART || (uint64_t)part > S3_MAX_PART) {
        obs_err_set(err, OBS_EINVAL, "s3: part_size must be between 5MiB and 5GiB");
        return NULL;
    }
    int maxkeys = cfg->list_max_keys ? cfg->list_max_keys : 1000;
    if (maxkeys < 1 || maxkeys > 1000) {
        obs_err_set(err, OBS_EINVAL, "s3: list_max_keys must be between 1 and 1000");
        return NULL;
    }
    if (cfg->upload_concurrency < 0 || cfg->upload_concurrency > S3_MAX_CONCURRENCY) {
        obs_err_set(err, OBS_EINVAL, "s3: upload_concurrency must be between 1 and %d",
                    S3_MAX_CONCURRENCY);
        return NULL;
    }
    if (cfg->max_retries > 100) {
        obs_err_set(err, OBS_EINVAL, "s3: max_retries must be at most 100");
        return NULL;
    }
    if (cfg->request_timeout_ms < 0) {
        obs_err_set(err, OBS_EINVAL, "s3: request_timeout must not be negative");
        return NULL;
    }

    /* Endpoint: scheme and authority. */
    const char *ep = nz(cfg->endpoint);
    const char *scheme = cfg->insecure ? "http" : "https";
    char awshost[128];
    if (ep == NULL) {
        snprintf(awshost, sizeof(awshost), "s3.%s.amazonaws.com", region);
        ep = awshost;
    } else if (strncmp(ep, "http://", 7) == 0) {
        scheme = "http";
        ep += 7;
    } else if (strncmp(ep, "https://", 8) == 0) {
        scheme = "https";
        ep += 8;
    }
    size_t el = strlen(ep);
    while (el > 0 && ep[el - 1] == '/')
        el--;
    if (el == 0 || memchr(ep, '/', el) != NULL || memchr(ep, '@', el) != NULL ||
        memchr(ep, '?', el) != NULL) {
        obs_err_set(err, OBS_EINVAL, "s3: invalid endpoint \"%s\" (want host[:port])",
                    cfg->endpoint);
        return NULL;
    }
    const char *lookup = nz(cfg->lookup) ? cfg->lookup : "auto";
    int vhost;
    if (strcmp(lookup, "path") == 0) {
        vhost = 0;
    } else if (strcmp(lookup, "virtual-hosted") == 0) {
        vhost = 1;
    } else if (strcmp(lookup, "auto") == 0) {
        vhost = el >= 13 && memcmp(ep + el - 13, "amazonaws.com", 13) == 0 &&
                strchr(cfg->bucket, '.') == NULL;
    } else {
        obs_err_set(err, OBS_EINVAL,
                    "s3: bucket_lookup_type must be path, virtual-hosted or auto, not \"%s\"",
                    lookup);
        return NULL;
    }

    struct s3_store *s3 = obs_calloc(1, sizeof(*s3));
    if (s3 == NULL) {
        obs_err_set(err, OBS_ENOMEM, "s3: out of memory");
        return NULL;
    }
    pthread_mutex_init(&s3->mu, NULL);
    char *authority = obs_strndup(ep, el);
    if (authority != NULL) {
        s3->host = vhost ? dupfmt("%s.%s", cfg->bucket, authority) : obs_strdup(authority);
        if (s3->host != NULL)
            s3->base_url = dupfmt("%s://%s", scheme, s3->host);
    }
    obs_free(authority);
    s3->path_base = vhost ? obs_strdup("") : dupfmt("/%s%s", cfg->bucket, "");
    s3->bucket = obs_strdup(cfg->bucket);
    /* Prefix: trimmed of '/', then "pfx/". */
    const char *pf = cfg->prefix ? cfg->prefix : "";
    while (*pf == '/')
        pf++;
    size_t pl = strlen(pf);
    while (pl > 0 && pf[pl - 1] == '/')
        pl--;
    s3->prefix = obs_malloc(pl + 2);
    if (s3->prefix != NULL) {
        memcpy(s3->prefix, pf, pl);
        if (pl > 0)
            s3->prefix[pl++] = '/';
        s3->prefix[pl] = '\0';
    }
    s3->region = obs_strdup(region);
    s3->akid = obs_strdup(akid);
    s3->secret = obs_strdup(secret);
    s3->token = obs_strdup(token ? token : "");
    s3->part_size = (uint64_t)part;
    s3->max_retries = cfg->max_retries < 0 ? 5 : cfg->max_retries;
    s3->timeout_ms = cfg->request_timeout_ms ? (long)cfg->request_timeout_ms : 300000L;
    s3->list_max_keys = maxkeys;
    s3->upload_concurrency = cfg->upload_concurrency ? cfg->upload_concurrency : 4;
    if (s3->host == NULL || s3->base_url == NULL || s3->path_base == NULL ||
        s3->bucket == NULL || s3->prefix == NULL || s3->region == NULL || s3->akid == NULL ||
        s3->secret == NULL || s3->token == NULL) {
        s3_free(s3);
        obs_err_set(err, OBS_ENOMEM, "s3: out of memory");
        return NULL;
    }
    s3->base.ops = &s3_ops;
    s3->base.impl = s3;
    return &s3->base;
}

/* --- config binding --------------------------------------------------------------------- */

struct s3_raw {
    char *endpoint, *bucket, *region, *akid, *secret, *token, *prefix, *lookup;
    char *signature_version;
    int insecure;
    int64_t part_size, max_retries, timeout_ms, list_max_keys, upload_concurrency;
};

#define RAW(f) offsetof(struct s3_raw, f)
static const struct obs_cfmap s3_map[] = {
    {"endpoint", OBS_CFT_STR, NULL, RAW(endpoint), "S3 host[:port] or http(s):// URL", NULL,
     NULL},
    {"bucket_name", OBS_CFT_STR, NULL, RAW(bucket), "bucket name (required)", NULL, NULL},
    {"region", OBS_CFT_STR, NULL, RAW(region), "region (default $AWS_REGION or us-east-1)",
     NULL, NULL},
    {"access_key_id", OBS_CFT_STR, NULL, RAW(akid), "default $AWS_ACCESS_KEY_ID", NULL, NULL},
    {"secret_access_key", OBS_CFT_STR, NULL, RAW(secret), "default $AWS_SECRET_ACCESS_KEY",
     NULL, NULL},
    {"session_token", OBS_CFT_STR, NULL, RAW(token), "default $AWS_SESSION_TOKEN", NULL, NULL},
    {"insecure", OBS_CFT_BOOL, "false", RAW(insecure), "plain http to the endpoint", NULL,
     NULL},
    {"bucket_lookup_type", OBS_CFT_STR, "auto", RAW(lookup), "path | virtual-hosted | auto",
     NULL, NULL},
    {"prefix", OBS_CFT_STR, NULL, RAW(prefix), "key prefix inside the bucket", NULL, NULL},
    {"signature_version", OBS_CFT_STR, "v4", RAW(signature_version), "only v4", NULL, NULL},
    {"part_size", OBS_CFT_BYTES, "16MiB", RAW(part_size),
     "multipart part size; larger objects are uploaded in parts", NULL, NULL},
    {"upload_concurrency", OBS_CFT_INT, "4", RAW(upload_concurrency),
     "parts of one multipart upload sent in parallel", NULL, NULL},
    {"max_retries", OBS_CFT_INT, "5", RAW(max_retries), "extra attempts on retryable errors",
     NULL, NULL},
    {"request_timeout", OBS_CFT_DURATION, "5m", RAW(timeout_ms), "per attempt", NULL, NULL},
    {"list_max_keys", OBS_CFT_INT, "1000", RAW(list_max_keys), "ListObjectsV2 page size",
     NULL, NULL},
    {NULL, 0, NULL, 0, NULL, NULL, NULL},
};
#undef RAW

/*
 * Open the s3 backend from an `s3:` config map (see obs_store_s3.h). Unknown keys and bad
 * values fail with "file:line:col: key: reason" in err. Returns the store or NULL.
 */
struct obs_store *obs_store_s3_open_cf(const struct obs_cf_node *s3n, struct obs_err *err)
{
    struct s3_raw raw = {0};
    struct obs_store *st = NULL;
    if (obs_cf_bind(s3n, s3_map, &raw, err) != OBS_OK)
        goto out;
    if (raw.signature_version && strcmp(raw.signature_version, "v4") != 0) {
        obs_cf_error(err, obs_cf_get(s3n, "signature_version"), "only v4 is supported");
        goto out;
    }
    if (raw.max_retries < 0 || raw.max_retries > 100) {
        obs_cf_error(err, obs_cf_get(s3n, "max_retries"), "must be between 0 and 100");
        goto out;
    }
    if (raw.upload_concurrency < 1 || raw.upload_concurrency > S3_MAX_CONCURRENCY) {
        obs_cf_error(err, obs_cf_get(s3n, "upload_concurrency"), "must be between 1 and %d",
                     S3_MAX_CONCURRENCY);
        goto out;
    }
    if (raw.list_max_keys < 1 || raw.list_max_keys > 1000) {
        obs_cf_error(err, obs_cf_get(s3n, "list_max_keys"), "must be between 1 and 1000");
        goto out;
    }
    if (raw.part_size < (int64_t)S3_MIN_PART || (uint64_t)raw.part_size > S3_MAX_PART) {
        obs_cf_error(err, obs_cf_get(s3n, "part_size"), "must be between 5MiB and 5GiB");
        goto out;
    }
    struct obs_store_s3_cfg c = {
        .endpoint = raw.endpoint,
        .bucket = raw.bucket,
        .region = raw.region,
        .access_key_id = raw.akid,
        .secret_access_key = raw.secret,
        .session_token = raw.token,
        .prefix = raw.prefix,
        .lookup = raw.lookup,
        .insecure = raw.insecure,
        .part_size = raw.part_size,
        .max_retries = (int)raw.max_retries,
        .request_timeout_ms = raw.timeout_ms,
        .list_max_keys = (int)raw.list_max_keys,
        .upload_concurrency = (int)raw.upload_concurrency,
    };
    st = obs_store_s3_open(&c, err);
    if (st == NULL && s3n != NULL && err != NULL && err->line == 0) {
        /* Give the message the position of the s3: section. */
        char m[sizeof(err->msg)];
        int code = err->code;
        snprintf(m, sizeof(m), "%s", strncmp(err->msg, "s3: ", 4) == 0 ? err->msg + 4 : err->msg);
        obs_cf_error(err, s3n, "%s", m);
        err->code = code;
    }
out:
    if (raw.secret != NULL)
        OPENSSL_cleanse(raw.secret, strlen(raw.secret));
    obs_cf_unbind(s3_map, &raw);
    return st;
}
