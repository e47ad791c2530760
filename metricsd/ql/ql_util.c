/*
 * ql_util.c -- the PromQL engine's arena, string map and label-set helpers.
 *
 * The arena unwinds (longjmp) instead of returning NULL, so the parser and the evaluator
 * never test allocations: the entry points set up the jump buffer and free everything.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/obs_mem.h"
#include "core/obs_sbuf.h"
#include "metricsd/ql/ql_int.h"

#include <xxhash.h>

#define CHUNK_MIN (64 * 1024)

struct ql_chunk {
    struct ql_chunk *next;
    size_t cap, used;
    _Alignas(16) unsigned char data[];
};

struct ql_cleanup {
    struct ql_cleanup *next;
    void (*fn)(void *);
    void *arg;
};

void ql_arena_init(struct ql_arena *a, jmp_buf *jb, struct obs_err *err)
{
    memset(a, 0, sizeof(*a));
    a->jb = jb;
    a->err = err;
}

void ql_arena_deinit(struct ql_arena *a)
{
    struct ql_cleanup *c = a->cleanups;
    while (c) {
        struct ql_cleanup *nx = c->next;
        c->fn(c->arg);
        obs_free(c);
        c = nx;
    }
    a->cleanups = NULL;
    struct ql_chunk *k = a->head;
    while (k) {
        struct ql_chunk *nx = k->next;
        if (a->acct)
            a->acct->cur -= k->cap;
        obs_free(k);
        k = nx;
    }
    a->head = NULL;
}

void ql_mem_account(struct ql_arena *a, long long n)
{
    struct ql_memacct *m = a->acct;
    if (!m)
        return;
    if (n < 0 && (size_t)(-n) > m->cur)
        m->cur = 0;
    else
        m->cur = (size_t)((long long)m->cur + n);
    if (m->cur > m->peak)
        m->peak = m->cur;
    if (n > 0 && m->limit && m->cur > m->limit) {
        size_t lim = m->limit;
        m->limit = 0; /* the unwinding path may allocate a little */
        ql_throw(a, OBS_ELIMIT, "the query exceeded the maximum allowed estimated amount of "
                                "memory consumed by a single query (limit: %zu bytes) "
                                "(err-mimir-max-estimated-memory-consumption-per-query)",
                 lim);
    }
}

void ql_throw(struct ql_arena *a, int code, const char *fmt, ...)
{
    if (a->err) {
        va_list ap;
        va_start(ap, fmt);
        a->err->code = code;
        vsnprintf(a->err->msg, sizeof(a->err->msg), fmt, ap);
        va_end(ap);
    }
    longjmp(*a->jb, 1);
}

void *ql_alloc(struct ql_arena *a, size_t n)
{
    void *p = ql_alloc_raw(a, n);
    memset(p, 0, n);
    return p;
}

void *ql_alloc_raw(struct ql_arena *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (n == 0)
        n = 16;
    struct ql_chunk *k = a->head;
    if (!k || k->cap - k->used < n) {
        size_t cap = n > CHUNK_MIN ? n : CHUNK_MIN;
        k = obs_malloc(sizeof(*k) + cap);
        if (!k)
            ql_throw(a, OBS_ENOMEM, "out of memory");
        k->cap = cap;
        k->used = 0;
        k->next = a->head;
        a->head = k;
        if (a->acct)
            ql_mem_account(a, (long long)cap);
    }
    void *p = k->data + k->used;
    k->used += n;
    return p;
}

void *ql_grow(struct ql_arena *a, void *p, size_t oldn, size_t newn)
{
    void *np = ql_alloc(a, newn);
    if (p && oldn)
        memcpy(np, p, oldn < newn ? oldn : newn);
    return np;
}

char *ql_strndup(struct ql_arena *a, const char *s, size_t n)
{
    char *p = ql_alloc(a, n + 1);
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

char *ql_strdup(struct ql_arena *a, const char *s)
{
    return ql_strndup(a, s, strlen(s));
}

char *ql_printf(struct ql_arena *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *p = ql_alloc(a, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

void ql_on_free(struct ql_arena *a, void (*fn)(void *), void *arg)
{
    struct ql_cleanup *c = obs_malloc(sizeof(*c));
    if (!c) {
        fn(arg);
        ql_throw(a, OBS_ENOMEM, "out of memory");
    }
    c->fn = fn;
    c->arg = arg;
    c->next = a->cleanups;
    a->cleanups = c;
}

struct ql_mark ql_arena_mark(struct ql_arena *a)
{
    struct ql_mark m = {a->head, a->head ? a->head->used : 0};
    return m;
}

void ql_arena_release(struct ql_arena *a, struct ql_mark m)
{
    while (a->head && a->head != m.chunk) {
        struct ql_chunk *nx = a->head->next;
        if (a->acct)
            a->acct->cur -= a->head->cap;
        obs_free(a->head);
        a->head = nx;
    }
    if (a->head)
        a->head->used = m.used;
}

/* ---------------------------------------------------------------- map */
static uint64_t hash_bytes(const char *s, size_t n)
{
    return XXH3_64bits(s, n);
}

void ql_map_init(struct ql_map *m, struct ql_arena *a, size_t hint)
{
    size_t cap = 16;
    while (cap < hint * 2)
        cap *= 2;
    m->a = a;
    m->cap = cap;
    m->n = 0;
    m->keys = ql_alloc(a, cap * sizeof(*m->keys));
    m->klens = ql_alloc(a, cap * sizeof(*m->klens));
    m->vals = ql_alloc(a, cap * sizeof(*m->vals));
}

static size_t map_slot(const struct ql_map *m, const char *k, size_t kn)
{
    size_t i = hash_bytes(k, kn) & (m->cap - 1);
    while (m->keys[i]) {
        if (m->klens[i] == kn && memcmp(m->keys[i], k, kn) == 0)
            return i;
        i = (i + 1) & (m->cap - 1);
    }
    return i;
}

int ql_map_get(const struct ql_map *m, const char *k, size_t kn)
{
    size_t i = map_slot(m, k, kn);
    return m->keys[i] ? m->vals[i] : -1;
}

int ql_map_put(struct ql_map *m, const char *k, size_t kn, int v)
{
    size_t i = map_slot(m, k, kn);
    if (m->keys[i])
        return m->vals[i];
    if ((m->n + 1) * 2 > m->cap) {
        struct ql_map nm;
        ql_map_init(&nm, m->a, m->cap);
        for (size_t j = 0; j < m->cap; j++)
            if (m->keys[j])
                ql_map_put(&nm, m->keys[j], m->klens[j], m->vals[j]);
        *m = nm;
        i = map_slot(m, k, kn);
    }
    m->keys[i] = k ? k : "";
    m->klens[i] = kn;
    m->vals[i] = v;
    m->n++;
    return -1;
}

/* ---------------------------------------------------------------- labels */
const char *ql_lget(struct ql_labels l, const char *name)
{
    for (uint32_t i = 0; i < l.n; i++)
        if (strcmp(l.v[i].name, name) == 0)
            return l.v[i].value;
    return NULL;
}

struct ql_labels ql_lset(struct ql_arena *a, struct ql_labels l, const char *name,
                         const char *value)
{
    if (!value || !*value)
        return ql_ldel(a, l, name);
    struct obs_label *v = ql_alloc(a, (l.n + 1) * sizeof(*v));
    uint32_t n = 0, i = 0;
    int done = 0;
    for (; i < l.n; i++) {
        int c = strcmp(l.v[i].name, name);
        if (!done && c >= 0) {
            v[n].name = name;
            v[n++].value = value;
            done = 1;
            if (c == 0)
                continue;
        }
        v[n++] = l.v[i];
    }
    if (!done) {
        v[n].name = name;
        v[n++].value = value;
    }
    struct ql_labels r = {v, n};
    return r;
}

/* __type__ and __unit__ (Prometheus 3's type-and-unit labels) describe the metric name and
 * go with it. */
static int name_meta(const char *n)
{
    return strcmp(n, "__name__") == 0 || strcmp(n, "__type__") == 0 ||
           strcmp(n, "__unit__") == 0;
}

struct ql_labels ql_ldel(struct ql_arena *a, struct ql_labels l, const char *name)
{
    int meta = strcmp(name, "__name__") == 0;
    if (!ql_lget(l, name) && !(meta && (ql_lget(l, "__type__") || ql_lget(l, "__unit__"))))
        return l;
    struct obs_label *v = ql_alloc(a, l.n * sizeof(*v));
    uint32_t n = 0;
    for (uint32_t i = 0; i < l.n; i++)
        if (meta ? !name_meta(l.v[i].name) : strcmp(l.v[i].name, name) != 0)
            v[n++] = l.v[i];
    struct ql_labels r = {v, n};
    return r;
}

static int in_list(const char *s, char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(names[i], s) == 0)
            return 1;
    return 0;
}

struct ql_labels ql_lfilter(struct ql_arena *a, struct ql_labels l, char **names, size_t n,
                            int keep, int drop_name)
{
    struct obs_label *v = ql_alloc(a, (l.n ? l.n : 1) * sizeof(*v));
    uint32_t k = 0;
    for (uint32_t i = 0; i < l.n; i++) {
        int listed = in_list(l.v[i].name, names, n);
        if (keep ? !listed : listed)
            continue;
        if (drop_name && name_meta(l.v[i].name))
            continue;
        v[k++] = l.v[i];
    }
    struct ql_labels r = {v, k};
    return r;
}

int ql_lequal(struct ql_labels x, struct ql_labels y)
{
    if (x.n != y.n)
        return 0;
    for (uint32_t i = 0; i < x.n; i++)
        if (strcmp(x.v[i].name, y.v[i].name) || strcmp(x.v[i].value, y.v[i].value))
            return 0;
    return 1;
}

int ql_lcmp(struct ql_labels x, struct ql_labels y)
{
    uint32_t n = x.n < y.n ? x.n : y.n;
    for (uint32_t i = 0; i < n; i++) {
        int c = strcmp(x.v[i].name, y.v[i].name);
        if (c)
            return c;
        c = strcmp(x.v[i].value, y.v[i].value);
        if (c)
            return c;
    }
    return (int)x.n - (int)y.n;
}

const char *ql_lsig(struct ql_arena *a, struct ql_labels l, char **names, size_t n, int on,
                    size_t *len)
{
    size_t total = 1;
    for (uint32_t i = 0; i < l.n; i++)
        total += strlen(l.v[i].name) + strlen(l.v[i].value) + 2;
    char *p = ql_alloc(a, total);
    size_t k = 0;
    for (uint32_t i = 0; i < l.n; i++) {
        const char *nm = l.v[i].name;
        if (on) {
            if (!in_list(nm, names, n))
                continue;
        } else {
            if (strcmp(nm, "__name__") == 0 || in_list(nm, names, n))
                continue;
        }
        size_t a1 = strlen(nm), a2 = strlen(l.v[i].value);
        memcpy(p + k, nm, a1);
        k += a1;
        p[k++] = '\xff';
        memcpy(p + k, l.v[i].value, a2);
        k += a2;
        p[k++] = '\xff';
    }
    *len = k;
    return p;
}

const char *ql_lstr(struct ql_arena *a, struct ql_labels l)
{
    struct obs_sbuf b;
    obs_sbuf_init(&b);
    const char *name = ql_lget(l, "__name__");
    if (name)
        obs_sbuf_puts(&b, name);
    obs_sbuf_putc(&b, '{');
    int first = 1;
    for (uint32_t i = 0; i < l.n; i++) {
        if (strcmp(l.v[i].name, "__name__") == 0)
            continue;
        if (!first)
            obs_sbuf_puts(&b, ", ");
        first = 0;
        obs_sbuf_printf(&b, "%s=", l.v[i].name);
        obs_sbuf_json_str(&b, l.v[i].value, strlen(l.v[i].value));
    }
    obs_sbuf_putc(&b, '}');
    const char *r = b.oom ? "{}" : ql_strndup(a, b.p, b.len);
    obs_sbuf_deinit(&b);
    return r;
}

/* Length of the valid UTF-8 sequence at s (n bytes left), 0 when invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    size_t k = s[0] >= 0xf0 && s[0] <= 0xf4 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc2 ? 2 : 0;
    if (s[0] >= 0xf8 || k == 0 || k > n)
        return 0;
    for (size_t i = 1; i < k; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    return k;
}

/* s quoted as Go's %q: printable text kept, \", \\, \n.. escaped, invalid bytes as \xNN. */
const char *ql_go_quote(struct ql_arena *a, const char *s)
{
    struct obs_sbuf b;
    obs_sbuf_init(&b);
    obs_sbuf_putc(&b, '"');
    size_t n = strlen(s);
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x80) {
            size_t k = utf8_len((const unsigned char *)s + i, n - i);
            if (k) {
                for (size_t j = 0; j < k; j++)
                    obs_sbuf_putc(&b, s[i + j]);
                i += k;
            } else {
                obs_sbuf_printf(&b, "\\x%02x", c);
                i++;
            }
            continue;
        }
        i++;
        switch (c) {
        case '"': obs_sbuf_puts(&b, "\\\""); break;
        case '\\': obs_sbuf_puts(&b, "\\\\"); break;
        case '\n': obs_sbuf_puts(&b, "\\n"); break;
        case '\t': obs_sbuf_puts(&b, "\\t"); break;
        case '\r': obs_sbuf_puts(&b, "\\r"); break;
        default:
            if (c < 0x20 || c == 0x7f)
                obs_sbuf_printf(&b, "\\x%02x", c);
            else
                obs_sbuf_putc(&b, (char)c);
        }
    }
    obs_sbuf_putc(&b, '"');
    const char *r = b.oom ? "\"\"" : ql_strndup(a, b.p, b.len);
    obs_sbuf_deinit(&b);
    return r;
}

/* Label set as Prometheus' labels.String(): {k="v", ...} with __name__ as a plain label. */
const char *ql_lstr_raw(struct ql_arena *a, struct ql_labels l)
{
    struct obs_sbuf b;
    obs_sbuf_init(&b);
    obs_sbuf_putc(&b, '{');
    for (uint32_t i = 0; i < l.n; i++) {
        if (i)
            obs_sbuf_puts(&b, ", ");
        obs_sbuf_printf(&b, "%s=", l.v[i].name);
        obs_sbuf_json_str(&b, l.v[i].value, strlen(l.v[i].value));
    }
    obs_sbuf_putc(&b, '}');
    const char *r = b.oom ? "{}" : ql_strndup(a, b.p, b.len);
    obs_sbuf_deinit(&b);
    return r;
}

int mtd_ql_labels_str(const struct obs_label *l, size_t n, char *buf, size_t cap)
{
    size_t k = 0;
    const char *name = NULL;
    for (size_t i = 0; i < n; i++)
        if (strcmp(l[i].name, "__name__") == 0)
            name = l[i].value;
    k += (size_t)snprintf(buf + k, k < cap ? cap - k : 0, "%s{", name ? name : "");
    int first = 1;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(l[i].name, "__name__") == 0)
            continue;
        k += (size_t)snprintf(buf + k, k < cap ? cap - k : 0, "%s%s=\"%s\"", first ? "" : ", ",
                              l[i].name, l[i].value);
        first = 0;
    }
    k += (size_t)snprintf(buf + k, k < cap ? cap - k : 0, "}");
    return (int)k;
}

double ql_kahan_inc(double inc, double sum, double *c)
{
    double t = sum + inc;
    if (__builtin_isinf(t))
        *c = 0;
    else if (__builtin_fabs(sum) >= __builtin_fabs(inc))
        *c += (sum - t) + inc;
    else
        *c += (inc - t) + sum;
    return t;
}

static int dbl_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    if (x != x || y != y) /* NaN sorts first, as Go's sort.Float64s */
        return (x != x) && (y != y) ? 0 : (x != x) ? -1 : 1;
    return x < y ? -1 : x > y ? 1 : 0;
}

/* Prometheus' quantile(): linear interpolation between closest ranks. */
double ql_quantile(double q, double *v, size_t n)
{
    if (n == 0 || q != q)
        return __builtin_nan("");
    if (q < 0)
        return -__builtin_inf();
    if (q > 1)
        return __builtin_inf();
    qsort(v, n, sizeof(double), dbl_cmp);
    double rank = q * (double)(n - 1);
    double lower = rank < 0 ? 0 : (double)(long long)rank;
    if (lower > rank)
        lower -= 1;
    size_t lo = (size_t)(lower < 0 ? 0 : lower);
    size_t hi = lo + 1 < n ? lo + 1 : n - 1;
    double weight = rank - (double)(long long)rank;
    return v[lo] * (1 - weight) + v[hi] * weight;
}

/* ---------------------------------------------------------------- number formatting */
/* Shortest round-trip decimal digits of |v| (finite, non-zero): digits into dig (no dot),
 * returns the digit count; *exp10 is the exponent of the first digit. */
static int shortest_digits(double v, char *dig, int *exp10)
{
    char tmp[40];
    for (int p = 0; p <= 16; p++) {
        snprintf(tmp, sizeof(tmp), "%.*e", p, v);
        if (strtod(tmp, NULL) == v)
            break;
    }
    int nd = 0;
    char *e = strchr(tmp, 'e');
    for (char *c = tmp; c < e; c++)
        if (*c >= '0' && *c <= '9')
            dig[nd++] = *c;
    while (nd > 1 && dig[nd - 1] == '0')
        nd--;
    *exp10 = atoi(e + 1);
    return nd;
}

int mtd_ql_fmt_f(char *out, size_t cap, double v)
{
    if (isnan(v))
        return snprintf(out, cap, "NaN");
    if (isinf(v))
        return snprintf(out, cap, v > 0 ? "+Inf" : "-Inf");
    if (v == 0)
        return snprintf(out, cap, signbit(v) ? "-0" : "0");
    char dig[24];
    int e10;
    int nd = shortest_digits(fabs(v), dig, &e10);
    char buf[MTD_QL_FMT_F_MAX];
    size_t k = 0;
    if (v < 0)
        buf[k++] = '-';
    if (e10 < 0) {
        buf[k++] = '0';
        buf[k++] = '.';
        for (int i = -1; i > e10; i--)
            buf[k++] = '0';
        for (int i = 0; i < nd; i++)
            buf[k++] = dig[i];
    } else {
        for (int i = 0; i <= e10; i++)
            buf[k++] = i < nd ? dig[i] : '0';
        if (nd > e10 + 1) {
            buf[k++] = '.';
            for (int i = e10 + 1; i < nd; i++)
                buf[k++] = dig[i];
        }
    }
    buf[k] = 0;
    return snprintf(out, cap, "%s", buf);
}

int mtd_ql_fmt_value(char *out, size_t cap, double v)
{
    double a = fabs(v);
    if (isfinite(v) && a != 0 && (a < 1e-6 || a >= 1e21)) {
        char dig[24];
        int e10;
        int nd = shortest_digits(a, dig, &e10);
        char m[32];
        size_t k = 0;
        if (v < 0)
            m[k++] = '-';
        m[k++] = dig[0];
        if (nd > 1) {
            m[k++] = '.';
            for (int i = 1; i < nd; i++)
                m[k++] = dig[i];
        }
        m[k] = 0;
        return snprintf(out, cap, "%se%c%02d", m, e10 < 0 ? '-' : '+', abs(e10));
    }
    return mtd_ql_fmt_f(out, cap, v);
}

/* ---------------------------------------------------------------- duration expressions */
int ql_dur_dynamic(const struct ql_dur *d)
{
    if (!d)
        return 0;
    if (d->op == QD_STEP || d->op == QD_RANGE)
        return 1;
    return ql_dur_dynamic(d->l) || ql_dur_dynamic(d->r);
}

int ql_dur_eval(const struct ql_dur *d, double step, double range, double *out,
                const char **why)
{
    double l = 0, r = 0;
    if (d->op == QD_NUM) {
        *out = d->num;
        return 0;
    }
    if (d->op == QD_STEP || d->op == QD_RANGE) {
        *out = d->op == QD_STEP ? step : range;
        return 0;
    }
    if (d->l && ql_dur_eval(d->l, step, range, &l, why) < 0)
        return -1;
    if (d->r && ql_dur_eval(d->r, step, range, &r, why) < 0)
        return -1;
    switch (d->op) {
    case QD_ADD: *out = l + r; return 0;
    case QD_SUB: *out = d->l ? l - r : -r; return 0;
    case QD_MUL: *out = l * r; return 0;
    case QD_DIV:
        if (r == 0) {
            *why = "division by zero";
            return -1;
        }
        *out = l / r;
        return 0;
    case QD_MOD:
        if (r == 0) {
            *why = "modulo by zero";
            return -1;
        }
        *out = fmod(l, r);
        return 0;
    case QD_POW: *out = pow(l, r); return 0;
    case QD_MIN: *out = fmin(l, r); return 0;
    case QD_MAX: *out = fmax(l, r); return 0;
    default: *out = 0; return 0;
    }
}

const struct mtd_ql_hist *ql_ext_hinterp(struct ql_arena *a, const struct mtd_ql_hist *h1,
                                         int64_t t1, const struct mtd_ql_hist *h2, int64_t t2,
                                         int64_t t, int counter)
{
    if (t == t1)
        return h1;
    if (t == t2)
        return h2;
    if ((h1->schema == MTD_QL_SCHEMA_CUSTOM) != (h2->schema == MTD_QL_SCHEMA_CUSTOM))
        return NULL;
    double frac = (double)(t - t1) / (double)(t2 - t1);
    struct mtd_ql_hist *r;
    if (counter && ql_hist_detect_reset(a, h2, h1)) {
        r = ql_hist_scale(a, h2, frac);
    } else {
        struct mtd_ql_hist *d = ql_hist_add(a, h2, h1, -1);
        if (!d)
            return NULL;
        r = ql_hist_add(a, h1, d, frac);
        if (!r)
            return NULL;
    }
    r->crh = h2->crh;
    return r;
}
