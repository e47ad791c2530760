/*
 * obs_labels.c -- label sets and label matchers (Prometheus data model).
 *
 * Design:
 *   - Validation follows Prometheus: label names [a-zA-Z_][a-zA-Z0-9_]*, metric names
 *     [a-zA-Z_:][a-zA-Z0-9_:]*. obs_labels_check() applies what remote write requires of a
 *     series' label set and words its messages the way Mimir's distributor does, so clients
 *     see familiar errors.
 *   - Hashes are XXH3-64 over "name\xff value\xff ..." for a sorted set: 0xff never occurs in
 *     valid UTF-8, so distinct sets cannot produce the same byte stream.
 *   - Regex matchers compile with PCRE2 (UTF mode), fully anchored as Prometheus anchors Go
 *     regexps ("^(?:re)$"): PCRE2_ANCHORED | PCRE2_ENDANCHORED, under which "a|ab" still
 *     matches "ab" (PCRE2 backtracks into the second branch) and "a" does not match "ab";
 *     ENDANCHORED also means "a" does not match "a\n", as Go's $ (no multiline) behaves. JIT is used when available; matching falls back to the interpreter otherwise.
 *   - Quoted strings follow Go/PromQL rules: "..." and '...' with escapes, `...` raw.
 */
#include "labels/obs_labels.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include "core/obs_mem.h"
#include "core/obs_sbuf.h"

/* ---- names ------------------------------------------------------------------------------ */

static int is_alpha_(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

int obs_label_name_valid(const char *s, size_t n)
{
    if (s == NULL || n == 0 || !is_alpha_(s[0]))
        return 0;
    for (size_t i = 1; i < n; i++)
        if (!is_alpha_(s[i]) && !is_digit(s[i]))
            return 0;
    return 1;
}

int obs_metric_name_valid(const char *s, size_t n)
{
    if (s == NULL || n == 0 || !(is_alpha_(s[0]) || s[0] == ':'))
        return 0;
    for (size_t i = 1; i < n; i++)
        if (!is_alpha_(s[i]) && !is_digit(s[i]) && s[i] != ':')
            return 0;
    return 1;
}

/* Is s[0..n) valid UTF-8 (no overlongs, no surrogates, <= U+10FFFF)? */
static int utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t k;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            k = 1;
            cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            k = 2;
            cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            k = 3;
            cp = c & 0x07;
        } else {
            return 0;
        }
        if (i + k >= n)
            return 0;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xC0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + j] & 0x3F);
        }
        if ((k == 1 && cp < 0x80) || (k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000) ||
            cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += k + 1;
    }
    return 1;
}

/* Render {a="b", ...} into buf (truncated with "..." when long) for error messages. */
static void labels_str(const struct obs_label *v, size_t n, char *buf, size_t cap)
{
    size_t o = 0;
    int w;
    buf[0] = '\0';
    w = snprintf(buf, cap, "{");
    o = (size_t)w;
    for (size_t i = 0; i < n && o < cap; i++) {
        w = snprintf(buf + o, cap - o, "%s%s=\"%s\"", i ? ", " : "", v[i].name ? v[i].name : "",
                     v[i].value ? v[i].value : "");
        if (w < 0)
            break;
        o += (size_t)w;
    }
    if (o < cap)
        snprintf(buf + o, cap - o, "}");
    if (o >= cap - 1 && cap > 4)
        memcpy(buf + cap - 4, "...", 4);
}

int obs_labels_check(const struct obs_label *v, size_t n, struct obs_err *err)
{
    char ser[160];
    for (size_t i = 0; i < n; i++) {
        const char *name = v[i].name ? v[i].name : "";
        const char *value = v[i].value ? v[i].value : "";
        size_t nl = strlen(name);
        if (strcmp(name, "__name__") == 0) {
            if (!obs_metric_name_valid(value, strlen(value))) {
                labels_str(v, n, ser, sizeof ser);
                return obs_err_set(err, OBS_EINVAL,
                                   "received a series with invalid metric name: '%.60s' "
                                   "series: '%s'", value, ser);
            }
        } else if (!obs_label_name_valid(name, nl)) {
            labels_str(v, n, ser, sizeof ser);
            return obs_err_set(err, OBS_EINVAL,
                               "received a series with an invalid label: '%.60s' series: '%s'",
                               name, ser);
        }
        if (!utf8_valid((const unsigned char *)value, strlen(value))) {
            return obs_err_set(err, OBS_EINVAL,
                               "received a series with invalid label value (not valid UTF-8) "
                               "for label: '%.60s'", name);
        }
        if (value[0] == '\0') {
            labels_str(v, n, ser, sizeof ser);
            return obs_err_set(err, OBS_EINVAL,
                               "received a series with an empty value for label: '%.60s' "
                               "series: '%s'", name, ser);
        }
        if (i > 0) {
            int c = strcmp(v[i - 1].name ? v[i - 1].name : "", name);
            if (c == 0) {
                labels_str(v, n, ser, sizeof ser);
                return obs_err_set(err, OBS_EINVAL,
                                   "received a series with duplicate label name, label: '%.60s' "
                                   "series: '%s'", name, ser);
            }
            if (c > 0) {
                labels_str(v, n, ser, sizeof ser);
                return obs_err_set(err, OBS_EINVAL,
                                   "received a series with labels out of order: label '%.60s' "
                                   "after '%.60s' series: '%s'", name, v[i - 1].name, ser);
            }
        }
    }
    return 0;
}

static int label_cmp(const void *a, const void *b)
{
    const struct obs_label *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : strcmp(x->value, y->value);
}

void obs_labels_sort(struct obs_label *v, size_t n)
{
    if (n > 1)
        qsort(v, n, sizeof *v, label_cmp);
}

uint64_t obs_labels_hash(const struct obs_label *v, size_t n)
{
    static const unsigned char sep = 0xff;
    XXH3_state_t st;
    XXH3_64bits_reset(&st);
    for (size_t i = 0; i < n; i++) {
        const char *a = v[i].name ? v[i].name : "";
        const char *b = v[i].value ? v[i].value : "";
        XXH3_64bits_update(&st, a, strlen(a));
        XXH3_64bits_update(&st, &sep, 1);
        XXH3_64bits_update(&st, b, strlen(b));
        XXH3_64bits_update(&st, &sep, 1);
    }
    return XXH3_64bits_digest(&st);
}

const char *obs_labels_get(const struct obs_label *v, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (v[i].name && strcmp(v[i].name, name) == 0)
            return v[i].value;
    return NULL;
}

/* ---- matchers --------------------------------------------------------------------------- */

int obs_matcher_init(struct obs_matcher *m, enum obs_match_type type, const char *name,
                     const char *value, struct obs_err *err)
{
    memset(m, 0, sizeof *m);
    m->type = type;
    m->name = obs_strdup(name ? name : "");
    m->value = obs_strdup(value ? value : "");
    if (m->name == NULL || m->value == NULL) {
        obs_matcher_deinit(m);
        return obs_err_set(err, OBS_ENOMEM, "out of memory");
    }
    if (type != OBS_MATCH_RE && type != OBS_MATCH_NRE)
        return 0;

    /* Anchored at both ends by flags rather than by wrapping the text, so an unbalanced
     * ")" in the user's regex is a syntax error instead of an escape from the anchors. */
    int ecode = 0;
    PCRE2_SIZE eoff = 0;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)m->value, strlen(m->value),
                                   PCRE2_ANCHORED | PCRE2_ENDANCHORED | PCRE2_UTF, &ecode, &eoff,
                                   NULL);
    if (re == NULL) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(ecode, msg, sizeof msg);
        int rc = obs_err_set(err, OBS_EINVAL, "error parsing regexp: %s: `%.100s`",
                             (const char *)msg, value ? value : "");
        obs_matcher_deinit(m);
        return rc;
    }
    (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* best effort */
    m->re = re;
    m->md = pcre2_match_data_create_from_pattern(re, NULL);
    if (m->md == NULL) {
        obs_matcher_deinit(m);
        return obs_err_set(err, OBS_ENOMEM, "out of memory");
    }
    return 0;
}

void obs_matcher_deinit(struct obs_matcher *m)
{
    if (m == NULL)
        return;
    obs_free(m->name);
    obs_free(m->value);
    if (m->md)
        pcre2_match_data_free(m->md);
    if (m->re)
        pcre2_code_free(m->re);
    m->name = m->value = NULL;
    m->re = m->md = NULL;
}

static int re_match(const struct obs_matcher *m, const char *s)
{
    int rc = pcre2_match((const pcre2_code *)m->re, (PCRE2_SPTR)s, strlen(s), 0, 0,
                         (pcre2_match_data *)m->md, NULL);
    return rc >= 0; /* no match and UTF errors (invalid input) both count as no match */
}

int obs_matcher_matches(const struct obs_matcher *m, const char *value)
{
    const char *v = value ? value : "";
    switch (m->type) {
    case OBS_MATCH_EQ:
        return strcmp(m->value, v) == 0;
    case OBS_MATCH_NEQ:
        return strcmp(m->value, v) != 0;
    case OBS_MATCH_RE:
        return re_match(m, v);
    case OBS_MATCH_NRE:
        return !re_match(m, v);
    }
    return 0;
}

int obs_matcher_matches_empty(const struct obs_matcher *m)
{
    return obs_matcher_matches(m, "");
}

/* ---- parsing ---------------------------------------------------------------------------- */

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int put_utf8(struct obs_sbuf *b, uint32_t cp)
{
    char u[4];
    size_t n;
    if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return -1;
    if (cp < 0x80) {
        u[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xC0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        u[0] = (char)(0xF0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    return obs_sbuf_append(b, u, n);
}

int obs_go_unquote(const char *s, size_t len, char **out, size_t *consumed)
{
    if (len < 2)
        return OBS_EINVAL;
    char q = s[0];
    if (q != '"' && q != '\'' && q != '`')
        return OBS_EINVAL;
    struct obs_sbuf b;
    obs_sbuf_init(&b);
    obs_sbuf_reserve(&b, 16);
    size_t i = 1;
    for (;;) {
        if (i >= len)
            goto bad; /* unterminated */
        char c = s[i];
        if (c == q) {
            i++;
            break;
        }
        if (q != '`' && c == '\n')
            goto bad;
        if (q == '`' || c != '\\') {
            obs_sbuf_putc(&b, c);
            i++;
            continue;
        }
        if (++i >= len)
            goto bad;
        c = s[i++];
        switch (c) {
        case 'a': obs_sbuf_putc(&b, '\a'); break;
        case 'b': obs_sbuf_putc(&b, '\b'); break;
        case 'f': obs_sbuf_putc(&b, '\f'); break;
        case 'n': obs_sbuf_putc(&b, '\n'); break;
        case 'r': obs_sbuf_putc(&b, '\r'); break;
        case 't': obs_sbuf_putc(&b, '\t'); break;
        case 'v': obs_sbuf_putc(&b, '\v'); break;
        case '\\': obs_sbuf_putc(&b, '\\'); break;
        case '"': obs_sbuf_putc(&b, '"'); break;
        case '\'': obs_sbuf_putc(&b, '\''); break;
        case 'x': {
            if (i + 2 > len || hexval(s[i]) < 0 || hexval(s[i + 1]) < 0)
                goto bad;
            obs_sbuf_putc(&b, (char)(hexval(s[i]) * 16 + hexval(s[i + 1])));
            i += 2;
            break;
        }
        case 'u':
        case 'U': {
            size_t nd = c == 'u' ? 4 : 8;
            uint32_t cp = 0;
            if (i + nd > len)
                goto bad;
            for (size_t k = 0; k < nd; k++) {
                int h = hexval(s[i + k]);
                if (h < 0)
                    goto bad;
                cp = cp * 16 + (uint32_t)h;
            }
            i += nd;
            if (put_utf8(&b, cp) < 0)
                goto bad;
            break;
        }
        default:
            if (c >= '0' && c <= '7') { /* \ooo: exactly three octal digits */
                if (i + 2 > len || s[i] < '0' || s[i] > '7' || s[i + 1] < '0' || s[i + 1] > '7')
                    goto bad;
                int v = (c - '0') * 64 + (s[i] - '0') * 8 + (s[i + 1] - '0');
                if (v > 255)
                    goto bad;
                obs_sbuf_putc(&b, (char)v);
                i += 2;
                break;
            }
            goto bad;
        }
    }
    obs_sbuf_append(&b, "", 0); /* NUL-terminate even when empty */
    if (b.oom || b.p == NULL) {
        obs_sbuf_deinit(&b);
        return OBS_ENOMEM;
    }
    *out = obs_sbuf_take(&b, NULL);
    if (consumed)
        *consumed = i;
    return 0;
bad:
    obs_sbuf_deinit(&b);
    return OBS_EINVAL;
}

static size_t skip_ws(const char *s, size_t len, size_t i)
{
    while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
        i++;
    return i;
}

void obs_matchers_free(struct obs_matcher *v, size_t n)
{
    if (v == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        obs_matcher_deinit(&v[i]);
    obs_free(v);
}

int obs_matchers_parse(const char *s, size_t len, struct obs_matcher **out, size_t *n,
                       size_t *consumed, struct obs_err *err)
{
    struct obs_matcher *v = NULL;
    size_t nv = 0, cap = 0;
    size_t i = 0;
    int rc;
    if (len == 0 || s[0] != '{')
        return obs_err_set(err, OBS_EINVAL, "unexpected character: expected '{'");
    i = 1;
    for (;;) {
        i = skip_ws(s, len, i);
        if (i >= len) {
            rc = obs_err_set(err, OBS_EINVAL, "unexpected end of input inside braces");
            goto fail;
        }
        if (s[i] == '}') {
            i++;
            break;
        }
        /* label name */
        size_t ns = i;
        if (!is_alpha_(s[i])) {
            rc = obs_err_set(err, OBS_EINVAL, "unexpected character inside braces: '%c'", s[i]);
            goto fail;
        }
        while (i < len && (is_alpha_(s[i]) || is_digit(s[i])))
            i++;
        size_t ne = i;
        i = skip_ws(s, len, i);
        enum obs_match_type t;
        if (i + 1 < len && s[i] == '=' && s[i + 1] == '~') {
            t = OBS_MATCH_RE;
            i += 2;
        } else if (i + 1 < len && s[i] == '!' && s[i + 1] == '~') {
            t = OBS_MATCH_NRE;
            i += 2;
        } else if (i + 1 < len && s[i] == '!' && s[i + 1] == '=') {
            t = OBS_MATCH_NEQ;
            i += 2;
        } else if (i < len && s[i] == '=') {
            t = OBS_MATCH_EQ;
            i += 1;
        } else {
            rc = obs_err_set(err, OBS_EINVAL, "unexpected %s in label matching, expected "
                             "label matching operator", i < len ? "character" : "end of input");
            goto fail;
        }
        i = skip_ws(s, len, i);
        char *val = NULL;
        size_t used = 0;
        if (i >= len || obs_go_unquote(s + i, len - i, &val, &used) != 0) {
            rc = obs_err_set(err, OBS_EINVAL, "unexpected %s in label matching, expected string",
                             i < len ? "character" : "end of input");
            goto fail;
        }
        i += used;
        if (nv == cap) {
            size_t nc = cap ? cap * 2 : 4;
            struct obs_matcher *nvp = obs_realloc(v, nc * sizeof *v);
            if (nvp == NULL) {
                obs_free(val);
                rc = obs_err_set(err, OBS_ENOMEM, "out of memory");
                goto fail;
            }
            v = nvp;
            cap = nc;
        }
        char *name = obs_strndup(s + ns, ne - ns);
        if (name == NULL) {
            obs_free(val);
            rc = obs_err_set(err, OBS_ENOMEM, "out of memory");
            goto fail;
        }
        rc = obs_matcher_init(&v[nv], t, name, val, err);
        obs_free(name);
        obs_free(val);
        if (rc != 0)
            goto fail;
        nv++;
        i = skip_ws(s, len, i);
        if (i < len && s[i] == ',') {
            i++;
            continue;
        }
        if (i < len && s[i] == '}') {
            i++;
            break;
        }
        rc = obs_err_set(err, OBS_EINVAL, "unexpected %s inside braces, expected \",\" or \"}\"",
                         i < len ? "character" : "end of input");
        goto fail;
    }
    *out = v;
    *n = nv;
    if (consumed)
        *consumed = i;
    return 0;
fail:
    obs_matchers_free(v, nv);
    return rc;
}

int obs_selector_parse(const char *s, size_t len, struct obs_matcher **out, size_t *n,
                       struct obs_err *err)
{
    size_t i = skip_ws(s, len, 0);
    size_t ns = i;
    struct obs_matcher *v = NULL;
    size_t nv = 0, used = 0;
    int rc;
    while (i < len && (is_alpha_(s[i]) || is_digit(s[i]) || s[i] == ':'))
        i++;
    size_t ne = i;
    if (ne > ns && !obs_metric_name_valid(s + ns, ne - ns))
        return obs_err_set(err, OBS_EINVAL, "parse error: invalid metric name");
    i = skip_ws(s, len, i);
    if (i < len && s[i] == '{') {
        rc = obs_matchers_parse(s + i, len - i, &v, &nv, &used, err);
        if (rc != 0)
            return rc;
        i += used;
    }
    i = skip_ws(s, len, i);
    if (i != len) {
        obs_matchers_free(v, nv);
        return obs_err_set(err, OBS_EINVAL, "parse error: unexpected character after selector");
    }
    if (ne == ns && v == NULL)
        return obs_err_set(err, OBS_EINVAL, "parse error: unexpected end of input");
    if (ne > ns) {
        struct obs_matcher *nvp = obs_realloc(v, (nv + 1) * sizeof *v);
        char *name = obs_strndup(s + ns, ne - ns);
        if (nvp == NULL || name == NULL) {
            obs_free(name);
            obs_matchers_free(nvp ? nvp : v, nv);
            return obs_err_set(err, OBS_ENOMEM, "out of memory");
        }
        v = nvp;
        memmove(v + 1, v, nv * sizeof *v);
        rc = obs_matcher_init(&v[0], OBS_MATCH_EQ, "__name__", name, err);
        obs_free(name);
        if (rc != 0) {
            for (size_t k = 1; k <= nv; k++)
                obs_matcher_deinit(&v[k]);
            obs_free(v);
            return rc;
        }
        nv++;
    }
    /* Prometheus: a selector must contain at least one matcher that does not match "". */
    int ok = 0;
    for (size_t k = 0; k < nv; k++)
        if (!obs_matcher_matches_empty(&v[k]))
            ok = 1;
    if (!ok) {
        obs_matchers_free(v, nv);
        return obs_err_set(err, OBS_EINVAL, "vector selector must contain at least one "
                           "non-empty matcher");
    }
    *out = v;
    *n = nv;
    return 0;
}
