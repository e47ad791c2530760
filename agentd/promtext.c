/*
 * promtext.c -- Prometheus text exposition format 0.0.4 parser (what a scrape returns).
 *
 * Grammar per line (after optional leading blanks):
 *   # HELP <name> <escaped text>         (\\ and \n escapes)
 *   # TYPE <name> counter|gauge|histogram|summary|untyped
 *   # anything else                      (comment, ignored)
 *   <name>[{<label>="<value>"[,<label>="<value>"]*[,]}] <value> [<timestamp ms>]
 * Label values escape \\, \" and \n. Values are Go-style floats including NaN, +Inf, -Inf.
 * Histogram and summary series are ordinary sample lines (_bucket{le=..}, _sum, _count,
 * {quantile=..}), so they need no special case here.
 *
 * The parser is a single pass over the buffer with one scratch buffer for unescaped label
 * values; labels handed to the callback point into it. Errors name the 1-based line, in the
 * same words Prometheus uses ("text format parsing error in line N: ...").
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "agd.h"
#include "core/obs_mem.h"

#define MAX_LABELS 128

struct parser {
    const char *p, *end;
    int line;
    struct obs_err *err;
    struct obs_sbuf scratch; /* NUL-separated names/values of the current line */
};

static int is_name_start(int c) { return isalpha(c) || c == '_' || c == ':'; }
static int is_name_char(int c) { return isalnum(c) || c == '_' || c == ':'; }
static int is_lname_start(int c) { return isalpha(c) || c == '_'; }
static int is_lname_char(int c) { return isalnum(c) || c == '_'; }

static void skip_blanks(struct parser *ps)
{
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t'))
        ps->p++;
}

static int fail(struct parser *ps, const char *fmt, const char *tok, size_t toklen)
{
    char buf[160];
    if (toklen > 64)
        toklen = 64;
    snprintf(buf, sizeof buf, fmt, (int)toklen, tok ? tok : "");
    return obs_err_set(ps->err, OBS_EINVAL, "text format parsing error in line %d: %s", ps->line,
                       buf);
}

/* End of the current line (pointer at '\n' or end). */
static const char *line_end(const struct parser *ps)
{
    const char *nl = memchr(ps->p, '\n', (size_t)(ps->end - ps->p));
    return nl ? nl : ps->end;
}

/* Parse a float token the way Go's strconv.ParseFloat does for the cases exporters emit. */
static int parse_float(const char *s, size_t n, double *out)
{
    char tmp[64];
    if (n == 0 || n >= sizeof tmp)
        return -1;
    memcpy(tmp, s, n);
    tmp[n] = 0;
    if (!strcasecmp(tmp, "nan")) {
        *out = NAN;
        return 0;
    }
    if (!strcasecmp(tmp, "+inf") || !strcasecmp(tmp, "inf")) {
        *out = INFINITY;
        return 0;
    }
    if (!strcasecmp(tmp, "-inf")) {
        *out = -INFINITY;
        return 0;
    }
    char *e;
    errno = 0;
    double v = strtod(tmp, &e);
    if (*e != 0)
        return -1;
    if (errno == ERANGE && v != 0 && !isinf(v))
        return -1;
    *out = v;
    return 0;
}

static int parse_int64(const char *s, size_t n, int64_t *out)
{
    char tmp[32];
    if (n == 0 || n >= sizeof tmp)
        return -1;
    memcpy(tmp, s, n);
    tmp[n] = 0;
    char *e;
    errno = 0;
    long long v = strtoll(tmp, &e, 10);
    if (*e != 0 || errno == ERANGE)
        return -1;
    *out = v;
    return 0;
}

/* # HELP / # TYPE / comment line; ps->p is just after '#'. */
static int parse_comment(struct parser *ps, agd_promtext_meta_fn meta_fn, void *arg)
{
    const char *le = line_end(ps);
    skip_blanks(ps);
    const char *kw = ps->p;
    while (ps->p < le && *ps->p != ' ' && *ps->p != '\t')
        ps->p++;
    size_t kwlen = (size_t)(ps->p - kw);
    int is_help = kwlen == 4 && !memcmp(kw, "HELP", 4);
    int is_type = kwlen == 4 && !memcmp(kw, "TYPE", 4);
    if (!is_help && !is_type) {
        ps->p = le;
        return 0; /* plain comment */
    }
    skip_blanks(ps);
    const char *name = ps->p;
    if (ps->p >= le || !is_name_start((unsigned char)*ps->p))
        return fail(ps, "invalid metric name in comment", NULL, 0);
    while (ps->p < le && is_name_char((unsigned char)*ps->p))
        ps->p++;
    size_t namelen = (size_t)(ps->p - name);
    if (ps->p < le && *ps->p != ' ' && *ps->p != '\t')
        return fail(ps, "invalid metric name in comment", NULL, 0);
    skip_blanks(ps);
    const char *text = ps->p;
    const char *tend = le;
    while (tend > text && (tend[-1] == ' ' || tend[-1] == '\t' || tend[-1] == '\r'))
        tend--;
    ps->p = le;
    if (is_type) {
        static const char *const types[] = {"counter", "gauge",   "histogram",
                                            "summary", "untyped", NULL};
        int ok = 0;
        for (int i = 0; types[i]; i++)
            if (strlen(types[i]) == (size_t)(tend - text) &&
                !memcmp(types[i], text, (size_t)(tend - text)))
                ok = 1;
        if (!ok)
            return fail(ps, "unknown metric type \"%.*s\"", text, (size_t)(tend - text));
    }
    if (!meta_fn)
        return 0;
    obs_sbuf_reset(&ps->scratch);
    obs_sbuf_append(&ps->scratch, name, namelen);
    obs_sbuf_putc(&ps->scratch, 0);
    size_t text_off = ps->scratch.len;
    for (const char *t = text; t < tend; t++) {
        if (is_help && *t == '\\' && t + 1 < tend && (t[1] == '\\' || t[1] == 'n')) {
            obs_sbuf_putc(&ps->scratch, t[1] == 'n' ? '\n' : '\\');
            t++;
        } else {
            obs_sbuf_putc(&ps->scratch, *t);
        }
    }
    obs_sbuf_putc(&ps->scratch, 0);
    if (ps->scratch.oom)
        return OBS_ENOMEM;
    return meta_fn(is_help ? "HELP" : "TYPE", ps->scratch.p, ps->scratch.p + text_off, arg);
}

/* Sample line starting at a metric name. */
static int parse_sample(struct parser *ps, agd_promtext_sample_fn fn, void *arg)
{
    const char *le = line_end(ps);
    size_t offs[2 * MAX_LABELS]; /* name/value offsets into scratch */
    size_t nl = 0;

    obs_sbuf_reset(&ps->scratch);
    const char *name = ps->p;
    while (ps->p < le && is_name_char((unsigned char)*ps->p))
        ps->p++;
    if (ps->p < le && *ps->p != '{' && *ps->p != ' ' && *ps->p != '\t')
        return fail(ps, "invalid metric name \"%.*s\"", name, (size_t)(le - name));
    obs_sbuf_append(&ps->scratch, name, (size_t)(ps->p - name));
    obs_sbuf_putc(&ps->scratch, 0);
    skip_blanks(ps);

    if (ps->p < le && *ps->p == '{') {
        ps->p++;
        for (;;) {
            skip_blanks(ps);
            if (ps->p >= le)
                return fail(ps, "unexpected end of label set", NULL, 0);
            if (*ps->p == '}') {
                ps->p++;
                break;
            }
            if (!is_lname_start((unsigned char)*ps->p))
                return fail(ps, "invalid label name \"%.*s\"", ps->p, 1);
            const char *ln = ps->p;
            while (ps->p < le && is_lname_char((unsigned char)*ps->p))
                ps->p++;
            size_t lnlen = (size_t)(ps->p - ln);
            if (nl == MAX_LABELS)
                return fail(ps, "too many labels", NULL, 0);
            for (size_t i = 0; i < nl; i++) {
                const char *prev = ps->scratch.p + offs[2 * i];
                if (strlen(prev) == lnlen && !memcmp(prev, ln, lnlen))
                    return fail(ps, "duplicate label name \"%.*s\"", ln, lnlen);
            }
            if (lnlen == 8 && !memcmp(ln, "__name__", 8))
                return fail(ps, "label name \"%.*s\" is reserved", ln, lnlen);
            offs[2 * nl] = ps->scratch.len;
            obs_sbuf_append(&ps->scratch, ln, lnlen);
            obs_sbuf_putc(&ps->scratch, 0);
            skip_blanks(ps);
            if (ps->p >= le || *ps->p != '=')
                return fail(ps, "expected '=' after label name \"%.*s\"", ln, lnlen);
            ps->p++;
            skip_blanks(ps);
            if (ps->p >= le || *ps->p != '"')
                return fail(ps, "expected '\"' to start label value of \"%.*s\"", ln, lnlen);
            ps->p++;
            offs[2 * nl + 1] = ps->scratch.len;
            for (;;) {
                if (ps->p >= le)
                    return fail(ps, "unterminated label value for \"%.*s\"", ln, lnlen);
                char c = *ps->p++;
                if (c == '"')
                    break;
                if (c == '\\') {
                    if (ps->p >= le)
                        return fail(ps, "unterminated label value for \"%.*s\"", ln, lnlen);
                    char e = *ps->p++;
                    if (e == 'n')
                        c = '\n';
                    else if (e == '\\' || e == '"')
                        c = e;
                    else
                        return fail(ps, "invalid escape sequence '\\%.*s'", ps->p - 1, 1);
                }
                obs_sbuf_putc(&ps->scratch, c);
            }
            obs_sbuf_putc(&ps->scratch, 0);
            nl++;
            skip_blanks(ps);
            if (ps->p < le && *ps->p == ',') {
                ps->p++;
                continue;
            }
            if (ps->p < le && *ps->p == '}') {
                ps->p++;
                break;
            }
            return fail(ps, "expected ',' or '}' after label value", NULL, 0);
        }
    }
    skip_blanks(ps);
    const char *v = ps->p;
    while (ps->p < le && *ps->p != ' ' && *ps->p != '\t' && *ps->p != '\r')
        ps->p++;
    double val;
    if (ps->p == v)
        return fail(ps, "expected value after metric", NULL, 0);
    if (parse_float(v, (size_t)(ps->p - v), &val) < 0)
        return fail(ps, "expected float as value, got \"%.*s\"", v, (size_t)(ps->p - v));
    skip_blanks(ps);
    int64_t ts = 0;
    int has_ts = 0;
    if (ps->p < le && *ps->p != '\r') {
        const char *t = ps->p;
        while (ps->p < le && *ps->p != ' ' && *ps->p != '\t' && *ps->p != '\r')
            ps->p++;
        if (parse_int64(t, (size_t)(ps->p - t), &ts) < 0)
            return fail(ps, "expected integer as timestamp, got \"%.*s\"", t,
                        (size_t)(ps->p - t));
        has_ts = 1;
        skip_blanks(ps);
    }
    if (ps->p < le && *ps->p == '\r')
        ps->p++;
    if (ps->p < le)
        return fail(ps, "unexpected text after sample: \"%.*s\"", ps->p, (size_t)(le - ps->p));
    if (ps->scratch.oom)
        return OBS_ENOMEM;

    struct obs_label labels[MAX_LABELS + 1];
    labels[0].name = "__name__";
    labels[0].value = ps->scratch.p;
    for (size_t i = 0; i < nl; i++) {
        labels[i + 1].name = ps->scratch.p + offs[2 * i];
        labels[i + 1].value = ps->scratch.p + offs[2 * i + 1];
    }
    return fn(labels, nl + 1, val, ts, has_ts, arg);
}

int agd_promtext_parse(const char *buf, size_t len, agd_promtext_sample_fn sample_fn,
                       agd_promtext_meta_fn meta_fn, void *arg, struct obs_err *err)
{
    struct parser ps = {.p = buf, .end = buf + len, .line = 0, .err = err};
    int rc = 0;
    obs_sbuf_init(&ps.scratch);
    while (ps.p < ps.end) {
        ps.line++;
        skip_blanks(&ps);
        if (ps.p < ps.end && *ps.p == '#') {
            ps.p++;
            rc = parse_comment(&ps, meta_fn, arg);
        } else if (ps.p < ps.end && (*ps.p == '\n' || *ps.p == '\r')) {
            while (ps.p < ps.end && *ps.p == '\r')
                ps.p++;
            if (ps.p < ps.end && *ps.p != '\n')
                rc = fail(&ps, "unexpected carriage return", NULL, 0);
        } else if (ps.p < ps.end) {
            if (!is_name_start((unsigned char)*ps.p)) {
                const char *le = line_end(&ps);
                rc = fail(&ps, "invalid metric name \"%.*s\"", ps.p, (size_t)(le - ps.p));
            } else {
                rc = parse_sample(&ps, sample_fn, arg);
            }
        }
        if (rc)
            break;
        if (ps.p < ps.end && *ps.p == '\n')
            ps.p++;
    }
    obs_sbuf_deinit(&ps.scratch);
    return rc;
}
