/*
 * obs_sbuf.c -- growable buffer (see obs_sbuf.h).
 */
#include "core/obs_sbuf.h"
#include "core/obs_err.h"
#include "core/obs_mem.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void obs_sbuf_init(struct obs_sbuf *b) { memset(b, 0, sizeof(*b)); }

void obs_sbuf_deinit(struct obs_sbuf *b)
{
    obs_free(b->p);
    memset(b, 0, sizeof(*b));
}

void obs_sbuf_reset(struct obs_sbuf *b)
{
    b->len = 0;
    b->oom = 0;
    if (b->p)
        b->p[0] = '\0';
}

int obs_sbuf_reserve(struct obs_sbuf *b, size_t extra)
{
    if (b->len + extra + 1 <= b->cap)
        return OBS_OK;
    size_t ncap = b->cap ? b->cap : 64;
    while (ncap < b->len + extra + 1)
        ncap *= 2;
    char *np = obs_realloc(b->p, ncap);
    if (np == NULL) {
        b->oom = 1;
        return OBS_ENOMEM;
    }
    b->p = np;
    b->cap = ncap;
    return OBS_OK;
}

int obs_sbuf_append(struct obs_sbuf *b, const void *data, size_t n)
{
    if (obs_sbuf_reserve(b, n) != OBS_OK)
        return OBS_ENOMEM;
    if (n)
        memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = '\0';
    return OBS_OK;
}

int obs_sbuf_puts(struct obs_sbuf *b, const char *s) { return obs_sbuf_append(b, s, strlen(s)); }

int obs_sbuf_putc(struct obs_sbuf *b, char c) { return obs_sbuf_append(b, &c, 1); }

int obs_sbuf_printf(struct obs_sbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char tmp[256];
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0)
        return OBS_EINVAL;
    if ((size_t)n < sizeof(tmp))
        return obs_sbuf_append(b, tmp, (size_t)n);
    if (obs_sbuf_reserve(b, (size_t)n) != OBS_OK)
        return OBS_ENOMEM;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return OBS_OK;
}

/* Length of the well-formed UTF-8 sequence starting at s[0] (RFC 3629: no overlongs, no
 * surrogates, nothing above U+10FFFF), or 0 when the byte does not start one. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else
        return 0;
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t k = 2; k < len; k++)
        if (s[k] < 0x80 || s[k] > 0xBF)
            return 0;
    return len;
}

int obs_sbuf_json_str(struct obs_sbuf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    if (obs_sbuf_reserve(b, n + 2) != OBS_OK)
        return OBS_ENOMEM;
    obs_sbuf_putc(b, '"');
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x80) {
            /* JSON text must be UTF-8: like Go's encoding/json, each byte that does not
             * start a well-formed sequence becomes U+FFFD */
            size_t l = utf8_len((const unsigned char *)s + i, n - i);
            if (l) {
                i += l - 1;
                continue;
            }
            obs_sbuf_append(b, s + start, i - start);
            start = i + 1;
            obs_sbuf_append(b, "\\ufffd", 6);
            continue;
        }
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        obs_sbuf_append(b, s + start, i - start);
        start = i + 1;
        switch (c) {
        case '"': obs_sbuf_append(b, "\\\"", 2); break;
        case '\\': obs_sbuf_append(b, "\\\\", 2); break;
        case '\n': obs_sbuf_append(b, "\\n", 2); break;
        case '\r': obs_sbuf_append(b, "\\r", 2); break;
        case '\t': obs_sbuf_append(b, "\\t", 2); break;
        default: {
            char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            obs_sbuf_append(b, u, 6);
        }
        }
    }
    obs_sbuf_append(b, s + start, n - start);
    return obs_sbuf_putc(b, '"');
}

int obs_fmt_float(char *out, size_t cap, double v)
{
    if (isnan(v))
        return snprintf(out, cap, "NaN");
    if (isinf(v))
        return snprintf(out, cap, v > 0 ? "+Inf" : "-Inf");
    if (v == 0)
        return snprintf(out, cap, signbit(v) ? "-0" : "0");
    /* Shortest %.{p}g that round-trips, then rewrite exponent form the way Go's 'g'-less
     * FormatFloat(v,'f',-1) would not: Prometheus uses strconv 'f' -1 for JSON values, which
     * never uses exponents, but for very large/small values prints all digits. We follow
     * Go's 'e' switch-over used by Prometheus JSON (%g-like with -1 precision), which prints
     * exponents like 1e+06 for large numbers. */
    char tmp[64];
    int n = 0;
    for (int p = 1; p <= 17; p++) {
        n = snprintf(tmp, sizeof(tmp), "%.*g", p, v);
        if (strtod(tmp, NULL) == v)
            break;
    }
    /* Go's FormatFloat(v, 'g', -1) uses exponent when exp < -4 || exp >= eprec where eprec is
     * the digit count (but at least 21 for shortest formatting when 'f' is smaller). Prometheus
     * uses strconv.FormatFloat(v, 'f', -1, 64) for sample values, i.e. never an exponent. */
    char *e = strchr(tmp, 'e');
    if (e == NULL)
        return snprintf(out, cap, "%s", tmp);
    /* Expand to plain decimal with the same significant digits. */
    int exp10 = atoi(e + 1);
    char digits[32];
    int nd = 0, neg = tmp[0] == '-';
    for (char *q = tmp + neg; q < e; q++)
        if (*q >= '0' && *q <= '9')
            digits[nd++] = *q;
    /* digits d0.d1d2... x 10^exp10 */
    char res[400];
    int r = 0;
    if (neg)
        res[r++] = '-';
    if (exp10 >= 0) {
        for (int i = 0; i <= exp10 || i < nd; i++) {
            if (i == exp10 + 1)
                res[r++] = '.';
            res[r++] = i < nd ? digits[i] : '0';
            if (r > 390)
                break;
        }
    } else {
        res[r++] = '0';
        res[r++] = '.';
        for (int i = 0; i < -exp10 - 1 && r < 380; i++)
            res[r++] = '0';
        for (int i = 0; i < nd && r < 398; i++)
            res[r++] = digits[i];
    }
    res[r] = '\0';
    (void)n;
    return snprintf(out, cap, "%s", res);
}

int obs_sbuf_prom_float(struct obs_sbuf *b, double v)
{
    char tmp[420];
    int n = obs_fmt_float(tmp, sizeof(tmp), v);
    return obs_sbuf_append(b, tmp, (size_t)n);
}

int obs_sbuf_uvarint(struct obs_sbuf *b, uint64_t v)
{
    uint8_t tmp[10];
    size_t n = 0;
    while (v >= 0x80) {
        tmp[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    tmp[n++] = (uint8_t)v;
    return obs_sbuf_append(b, tmp, n);
}

int obs_sbuf_varint(struct obs_sbuf *b, int64_t v)
{
    return obs_sbuf_uvarint(b, ((uint64_t)v << 1) ^ (uint64_t)(v >> 63));
}

char *obs_sbuf_take(struct obs_sbuf *b, size_t *len)
{
    char *p = b->p;
    if (len)
        *len = b->len;
    if (p == NULL)
        p = obs_calloc(1, 1);
    memset(b, 0, sizeof(*b));
    return p;
}

size_t obs_uvarint_decode(const uint8_t *p, const uint8_t *end, uint64_t *out)
{
    uint64_t v = 0;
    unsigned shift = 0;
    for (size_t i = 0; p + i < end && i < 10; i++) {
        if (i == 9 && p[i] > 1)
            return 0; /* overflows 64 bits */
        v |= (uint64_t)(p[i] & 0x7f) << shift;
        if (!(p[i] & 0x80)) {
            *out = v;
            return i + 1;
        }
        shift += 7;
    }
    return 0;
}

size_t obs_varint_decode(const uint8_t *p, const uint8_t *end, int64_t *out)
{
    uint64_t u;
    size_t n = obs_uvarint_decode(p, end, &u);
    if (n)
        *out = (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
    return n;
}
