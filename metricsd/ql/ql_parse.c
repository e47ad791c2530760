/*
 * ql_parse.c -- PromQL lexer and parser (Prometheus 3.x grammar) with type checking.
 *
 * A lexer that behaves like Prometheus' promql/parser/lex.go (3.x: the same states, token
 * boundaries, error texts and positions) feeds a precedence-climbing parser. Precedence,
 * lowest first:
 *   or  <  and unless  <  == != <= < >= >  <  + -  <  * / % atan2  <  ^ (right-assoc)
 * Unary minus/plus binds like * (so -2^2 == -4). Postfix [range], [range:step], offset and @
 * bind to the primary before any operator.
 *
 * Errors come out as Prometheus reports them ("<line>:<col>: parse error: <msg>", the first
 * one it collects): lexer and syntax errors stop the parse and use the wording of the
 * grammar's error productions ("unexpected <token> in <context>, expected <what>", tokens
 * named by Item.desc()); errors of grammar actions (bad number or duration, unknown
 * function, offset/@ misuse, bad regex with Go's regexp/syntax wording) are recorded and the
 * parse goes on, so an earlier one wins over a later syntax error; type-check errors
 * (checkAST) are reported only when the query parsed.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "core/obs_mem.h"
#include "core/obs_time.h"
#include "metricsd/ql/ql_int.h"

enum tok {
    T_EOF, T_IDENT, T_NUM, T_DUR, T_STR, T_LPAREN, T_RPAREN, T_LBRACE, T_RBRACE, T_LBRACK,
    T_RBRACK, T_COMMA, T_COLON, T_AT, T_ASSIGN, T_EQLC, T_NEQ, T_RE, T_NRE, T_LSS, T_GTR,
    T_LTE, T_GTE, T_ADD, T_SUB, T_MUL, T_DIV, T_MOD, T_POW, T_TRIM_UPPER, T_TRIM_LOWER, T_BAD,
    T_DCOLON
};

/* What Prometheus' lexer makes of a word (a T_IDENT token): the class decides how an
 * "unexpected ..." error names it and where the grammar accepts it. */
enum word { W_IDENT, W_METRIC, W_KEYWORD, W_AGGR, W_OPER, W_PREPROC };

enum lstate { LS_STMT, LS_DUR };

struct parser {
    struct ql_arena *a;
    const char *src;
    size_t len;
    size_t pos;          /* lexer cursor */
    /* current token */
    enum tok tk;
    size_t tpos, tlen;
    enum word tw;        /* class of a T_IDENT */
    double num;          /* T_NUM (value) / T_DUR (ms) */
    const char *nerr;    /* T_NUM / T_DUR that does not convert: the error, reported if used */
    char *str;           /* T_STR unquoted */
    int nsel;
    size_t max_re;       /* regex length limit (bytes) */
    int depth;           /* parse_expr recursion depth */
    int lax_sel;         /* next selector may match empty (info()'s label selector) */
    /* lexer state, as Prometheus' lexer keeps it (it alone decides how characters lex) */
    size_t lstart, lw;
    enum lstate ls;
    int paren_depth, brace_open, bracket_open, got_colon, got_duration;
    /* first error of a grammar action (wins over later syntax errors) and of the type check
     * (reported only when the query parsed) */
    char *aerr, *cerr;
    size_t aerr_at, cerr_at;
    int in_agg;          /* inside an aggregation's arguments: syntax errors say so */
};

#define RUNE_EOF (-1)
#define RUNE_ERR 0xFFFD

__attribute__((noreturn)) static void throw_at(struct parser *p, size_t at, const char *msg)
{
    int line = 1;
    size_t ls = 0;
    for (size_t i = 0; i < at && i < p->len; i++)
        if (p->src[i] == '\n') {
            line++;
            ls = i + 1;
        }
    ql_throw(p->a, OBS_EINVAL, "%d:%zu: parse error: %s", line, at - ls + 1, msg);
}

/* A syntax or lexer error: parsing stops. An earlier grammar-action error is reported instead
 * (Prometheus reports the first error it collected). */
__attribute__((format(printf, 3, 4), noreturn)) static void perr(struct parser *p, size_t at,
                                                                 const char *fmt, ...)
{
    if (p->aerr)
        throw_at(p, p->aerr_at, p->aerr);
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    throw_at(p, at, msg);
}

/* An error of a grammar action (bad number, unknown function, offset misuse ...): recorded,
 * parsing goes on; the first one is reported. */
__attribute__((format(printf, 3, 4))) static void aerr(struct parser *p, size_t at,
                                                       const char *fmt, ...)
{
    if (p->aerr)
        return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    p->aerr = ql_strdup(p->a, msg);
    p->aerr_at = at;
}

/* A type-check error (Prometheus' checkAST): reported only if the query parsed cleanly. */
__attribute__((format(printf, 3, 4))) static void cerr(struct parser *p, size_t at,
                                                       const char *fmt, ...)
{
    if (p->cerr)
        return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    p->cerr = ql_strdup(p->a, msg);
    p->cerr_at = at;
}

/* ---------------------------------------------------------------- Go text helpers */
/* One UTF-8 rune at s (n bytes left); invalid input decodes as RUNE_ERR of width 1. */
static size_t utf8_rune(const unsigned char *s, size_t n, int32_t *r)
{
    unsigned c = s[0];
    if (c < 0x80) {
        *r = (int32_t)c;
        return 1;
    }
    size_t w = c >= 0xF0 && c <= 0xF4 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 && c < 0xE0 ? 2 : 0;
    if (w == 0 || w > n || (c >= 0xF5)) {
        *r = RUNE_ERR;
        return 1;
    }
    int32_t v = (int32_t)(c & (w == 2 ? 0x1F : w == 3 ? 0x0F : 0x07));
    for (size_t i = 1; i < w; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            *r = RUNE_ERR;
            return 1;
        }
        v = (v << 6) | (s[i] & 0x3F);
    }
    if ((w == 3 && (v < 0x800 || (v >= 0xD800 && v < 0xE000))) || (w == 4 && (v < 0x10000 ||
                                                                             v > 0x10FFFF))) {
        *r = RUNE_ERR;
        return 1;
    }
    *r = v;
    return w;
}

static size_t utf8_put(char *o, int32_t r)
{
    if (r < 0x80) {
        o[0] = (char)r;
        return 1;
    }
    if (r < 0x800) {
        o[0] = (char)(0xC0 | (r >> 6));
        o[1] = (char)(0x80 | (r & 0x3F));
        return 2;
    }
    if (r < 0x10000) {
        o[0] = (char)(0xE0 | (r >> 12));
        o[1] = (char)(0x80 | ((r >> 6) & 0x3F));
        o[2] = (char)(0x80 | (r & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (r >> 18));
    o[1] = (char)(0x80 | ((r >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((r >> 6) & 0x3F));
    o[3] = (char)(0x80 | (r & 0x3F));
    return 4;
}

/* Roughly Go's unicode.IsPrint: controls, C1 controls and a few format characters are not. */
static int rune_printable(int32_t r)
{
    return r >= 0x20 && r != 0x7F && !(r >= 0x80 && r < 0xA0) && r != 0xAD &&
           !(r >= 0x2028 && r <= 0x202E) && !(r >= 0x200B && r <= 0x200F) &&
           !(r >= 0xD800 && r < 0xE000) && r <= 0x10FFFF && r != 0xFEFF;
}

/* Escape of one rune inside Go's %q (quote is the quote character in use). */
static size_t go_esc_rune(char *o, int32_t r, char quote)
{
    if (r == quote || r == '\\')
        return (size_t)sprintf(o, "\\%c", (char)r);
    if (rune_printable(r))
        return utf8_put(o, r);
    switch (r) {
    case '\a': return (size_t)sprintf(o, "\\a");
    case '\b': return (size_t)sprintf(o, "\\b");
    case '\f': return (size_t)sprintf(o, "\\f");
    case '\n': return (size_t)sprintf(o, "\\n");
    case '\r': return (size_t)sprintf(o, "\\r");
    case '\t': return (size_t)sprintf(o, "\\t");
    case '\v': return (size_t)sprintf(o, "\\v");
    default: break;
    }
    if (r < 0x20 || r == 0x7F)
        return (size_t)sprintf(o, "\\x%02x", (unsigned)r);
    if (r < 0x10000)
        return (size_t)sprintf(o, "\\u%04x", (unsigned)r);
    return (size_t)sprintf(o, "\\U%08x", (unsigned)r);
}

/* Go's %q of a rune: 'x'. EOF and invalid runes print as U+FFFD. */
static const char *go_qrune(struct parser *p, int32_t r)
{
    char b[32];
    size_t n = 0;
    if (r < 0 || r > 0x10FFFF || (r >= 0xD800 && r < 0xE000))
        r = RUNE_ERR;
    b[n++] = '\'';
    n += go_esc_rune(b + n, r, '\'');
    b[n++] = '\'';
    b[n] = 0;
    return ql_strdup(p->a, b);
}

/* Go's %#U: U+0078 'x' (the character only when printable). */
static const char *go_urune(struct parser *p, int32_t r)
{
    char b[32];
    if (r < 0)
        return ql_strdup(p->a, "U+FFFFFFFFFFFFFFFF");
    int n = snprintf(b, sizeof b, "U+%04X", (unsigned)r);
    if (rune_printable(r)) {
        b[n++] = ' ';
        b[n++] = '\'';
        n += (int)utf8_put(b + n, r);
        b[n++] = '\'';
        b[n] = 0;
    }
    return ql_strdup(p->a, b);
}

/* Go's %q of the first n bytes of s (strconv.Quote); maxr > 0 limits the runes quoted (%.Nq). */
static const char *go_quote(struct parser *p, const char *s, size_t n, size_t maxr)
{
    char *o = ql_alloc(p->a, n * 10 + 3);
    size_t k = 0, runes = 0;
    o[k++] = '"';
    for (size_t i = 0; i < n && (maxr == 0 || runes < maxr); runes++) {
        int32_t r;
        size_t w = utf8_rune((const unsigned char *)s + i, n - i, &r);
        if (r == RUNE_ERR && w == 1 && (unsigned char)s[i] >= 0x80)
            k += (size_t)sprintf(o + k, "\\x%02x", (unsigned char)s[i]);
        else
            k += go_esc_rune(o + k, r, '"');
        i += w;
    }
    o[k++] = '"';
    o[k] = 0;
    return o;
}

/* ---------------------------------------------------------------- Go number conversion */
static int go_underscore_ok(const char *s)
{
    char saw = '^';
    size_t i = 0;
    if (*s == '-' || *s == '+')
        s++;
    int hex = 0;
    size_t n = strlen(s);
    if (n >= 2 && s[0] == '0' && strchr("bBoOxX", s[1])) {
        i = 2;
        saw = '0';
        hex = s[1] == 'x' || s[1] == 'X';
    }
    for (; i < n; i++) {
        if (isdigit((unsigned char)s[i]) || (hex && isxdigit((unsigned char)s[i]))) {
            saw = '0';
            continue;
        }
        if (s[i] == '_') {
            if (saw != '0')
                return 0;
            saw = '_';
            continue;
        }
        if (saw == '_')
            return 0;
        saw = '!';
    }
    return saw != '_';
}

/* strconv.ParseInt(s, 0, 64): 1 and *v on success. */
static int go_parse_int0(const char *s0, double *v)
{
    const char *s = s0;
    int neg = 0;
    if (*s == '+' || *s == '-') {
        neg = *s == '-';
        s++;
    }
    if (!*s)
        return 0;
    unsigned base = 10;
    if (s[0] == '0') {
        size_t n = strlen(s);
        if (n >= 3 && (s[1] == 'b' || s[1] == 'B'))
            base = 2, s += 2;
        else if (n >= 3 && (s[1] == 'o' || s[1] == 'O'))
            base = 8, s += 2;
        else if (n >= 3 && (s[1] == 'x' || s[1] == 'X'))
            base = 16, s += 2;
        else
            base = 8, s += 1;
    }
    unsigned long long acc = 0;
    int us = 0;
    for (; *s; s++) {
        unsigned d;
        if (*s == '_') {
            us = 1;
            continue;
        }
        if (isdigit((unsigned char)*s))
            d = (unsigned)(*s - '0');
        else if (isalpha((unsigned char)*s))
            d = (unsigned)(tolower((unsigned char)*s) - 'a' + 10);
        else
            return 0;
        if (d >= base)
            return 0;
        if (acc > (ULLONG_MAX - d) / base)
            return 0;
        acc = acc * base + d;
    }
    if (us && !go_underscore_ok(s0))
        return 0;
    if ((!neg && acc > (unsigned long long)INT64_MAX) ||
        (neg && acc > (unsigned long long)INT64_MAX + 1))
        return 0;
    *v = neg ? -(double)acc : (double)acc;
    return 1;
}

/* strconv.ParseFloat(s, 64): 0 ok, 1 invalid syntax, 2 out of range. */
static int go_parse_float(const char *s0, double *v)
{
    const char *s = s0;
    int neg = 0;
    if (*s == '+' || *s == '-') {
        neg = *s == '-';
        s++;
    }
    if (strcasecmp(s, "inf") == 0 || strcasecmp(s, "infinity") == 0) {
        *v = neg ? -INFINITY : INFINITY;
        return 0;
    }
    if (strcasecmp(s, "nan") == 0) {
        *v = NAN;
        return 0;
    }
    size_t n = strlen(s);
    char *buf = malloc(n + 2);
    if (!buf)
        return 1;
    size_t k = 0;
    int hex = n >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X');
    size_t i = hex ? 2 : 0;
    int digits = 0, dot = 0, us = 0, ok = 1;
    if (hex) {
        buf[k++] = '0';
        buf[k++] = 'x';
    }
    for (; i < n; i++) {
        char c = s[i];
        if (c == '_') {
            us = 1;
            continue;
        }
        if (hex ? isxdigit((unsigned char)c) : isdigit((unsigned char)c)) {
            digits++;
            buf[k++] = c;
        } else if (c == '.' && !dot) {
            dot = 1;
            buf[k++] = c;
        } else {
            break;
        }
    }
    if (!digits)
        ok = 0;
    if (ok && i < n && (hex ? (s[i] == 'p' || s[i] == 'P') : (s[i] == 'e' || s[i] == 'E'))) {
        buf[k++] = s[i++];
        if (i < n && (s[i] == '+' || s[i] == '-'))
            buf[k++] = s[i++];
        int ed = 0;
        for (; i < n; i++) {
            if (s[i] == '_') {
                us = 1;
                continue;
            }
            if (!isdigit((unsigned char)s[i]))
                break;
            buf[k++] = s[i];
            ed++;
        }
        if (!ed)
            ok = 0;
    } else if (hex) {
        ok = 0; /* a hexadecimal float needs its p exponent */
    }
    if (i != n || (us && !go_underscore_ok(s0)))
        ok = 0;
    buf[k] = 0;
    if (!ok) {
        free(buf);
        return 1;
    }
    errno = 0;
    double d = strtod(buf, NULL);
    free(buf);
    if (isinf(d)) {
        *v = neg ? -d : d;
        return 2;
    }
    *v = neg ? -d : d;
    return 0;
}

/* prometheus/common model.ParseDuration into ms; NULL or the error text. */
static const char *go_model_duration(struct parser *p, const char *s0, size_t n, int64_t *ms)
{
    static const struct { const char *u; int pos; uint64_t mult; } units[] = {
        {"ms", 7, 1000000ULL}, {"s", 6, 1000000000ULL}, {"m", 5, 60000000000ULL},
        {"h", 4, 3600000000000ULL}, {"d", 3, 86400000000000ULL},
        {"w", 2, 604800000000000ULL}, {"y", 1, 31536000000000000ULL}};
    const char *orig = ql_strndup(p->a, s0, n);
    *ms = 0;
    if (strcmp(orig, "0") == 0)
        return NULL;
    if (n == 0)
        return "empty duration string";
    const char *s = orig;
    uint64_t dur = 0;
    int last = 0;
    while (*s) {
        if (!isdigit((unsigned char)*s))
            return ql_printf(p->a, "not a valid duration string: %s", go_quote(p, orig, n, 0));
        uint64_t v = 0;
        int big = 0;
        for (; isdigit((unsigned char)*s); s++) {
            if (v > (UINT64_MAX - 9) / 10)
                big = 1;
            v = v * 10 + (uint64_t)(*s - '0');
        }
        if (big)
            return ql_printf(p->a, "not a valid duration string: %s", go_quote(p, orig, n, 0));
        const char *u = s;
        while (*s && !isdigit((unsigned char)*s))
            s++;
        if (s == u)
            return ql_printf(p->a, "not a valid duration string: %s", go_quote(p, orig, n, 0));
        size_t ul = (size_t)(s - u);
        size_t k;
        for (k = 0; k < sizeof units / sizeof units[0]; k++)
            if (strlen(units[k].u) == ul && strncmp(units[k].u, u, ul) == 0)
                break;
        if (k == sizeof units / sizeof units[0])
            return ql_printf(p->a, "unknown unit %s in duration %s", go_quote(p, u, ul, 0),
                             go_quote(p, orig, n, 0));
        if (units[k].pos <= last)
            return ql_printf(p->a, "not a valid duration string: %s", go_quote(p, orig, n, 0));
        last = units[k].pos;
        if (v > (1ULL << 63) / units[k].mult)
            return "duration out of range";
        dur += v * units[k].mult;
        if (dur > (uint64_t)INT64_MAX)
            return "duration out of range";
    }
    *ms = (int64_t)(dur / 1000000ULL);
    return NULL;
}

/* ---------------------------------------------------------------- lexer */
/* A port of the behaviour of Prometheus' promql/parser/lex.go state machine (3.x): the same
 * token boundaries, the same states (statements, inside braces, duration expressions inside
 * brackets) and the same error texts and positions (the start of the item being lexed). */
static int32_t lx_next(struct parser *p)
{
    if (p->pos >= p->len) {
        p->lw = 0;
        return RUNE_EOF;
    }
    int32_t r;
    p->lw = utf8_rune((const unsigned char *)p->src + p->pos, p->len - p->pos, &r);
    p->pos += p->lw;
    return r;
}

static void lx_backup(struct parser *p)
{
    p->pos -= p->lw;
}

static int32_t lx_peek(struct parser *p)
{
    int32_t r = lx_next(p);
    lx_backup(p);
    return r;
}

static int in_set(int32_t r, const char *set)
{
    return r > 0 && r < 128 && strchr(set, (int)r) != NULL;
}

static int lx_accept(struct parser *p, const char *set)
{
    if (in_set(lx_next(p), set))
        return 1;
    lx_backup(p);
    return 0;
}

static int lx_is(struct parser *p, const char *set)
{
    return in_set(lx_peek(p), set);
}

static int is_alpha(int32_t r)
{
    return r == '_' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z');
}

static int is_digit(int32_t r)
{
    return r >= '0' && r <= '9';
}

static int is_alnum(int32_t r)
{
    return is_alpha(r) || is_digit(r);
}

static int is_ident_char(int c)
{
    return isalnum(c) || c == '_' || c == ':';
}

static int is_space(int32_t r)
{
    return r == ' ' || r == '\t' || r == '\n' || r == '\r';
}

static void lx_emit(struct parser *p, enum tok t)
{
    p->tk = t;
    p->tpos = p->lstart;
    p->tlen = p->pos - p->lstart;
    p->lstart = p->pos;
}

__attribute__((format(printf, 2, 3), noreturn)) static void lx_err(struct parser *p,
                                                                   const char *fmt, ...)
{
    if (p->aerr)
        throw_at(p, p->aerr_at, p->aerr);
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    throw_at(p, p->lstart, msg);
}

static void lx_skip_spaces(struct parser *p)
{
    while (is_space(lx_peek(p)))
        lx_next(p);
    p->lstart = p->pos;
}

static int scan_number(struct parser *p)
{
    size_t initial = p->pos;
    const char *digits = "0123456789";
    int hex = 0;
    if (lx_accept(p, "0") && lx_accept(p, "xX")) {
        lx_accept(p, "_");
        digits = "0123456789abcdefABCDEF";
        hex = 1;
    }
    char all[40];
    snprintf(all, sizeof all, "%s._eE", digits);
    lx_accept(p, ".");
    lx_accept(p, digits);
    int dot = 0, expo = 0;
    while (lx_is(p, all)) {
        if (lx_is(p, ".") && dot) {
            lx_accept(p, ".");
            return 0;
        }
        if (lx_is(p, "eE") && expo) {
            lx_accept(p, "eE");
            return 0;
        }
        if (lx_accept(p, ".")) {
            dot = 1;
            if (lx_accept(p, "_.") || hex)
                return 0;
            continue;
        }
        if (lx_accept(p, "eE")) {
            expo = 1;
            lx_accept(p, "+-");
            if (lx_accept(p, "._eE") || lx_peek(p) == RUNE_EOF)
                return 0;
            continue;
        }
        if (lx_accept(p, "_")) {
            if (lx_accept(p, "._eE") || lx_peek(p) == RUNE_EOF)
                return 0;
            continue;
        }
        while (lx_accept(p, digits))
            ;
    }
    if (p->pos == initial)
        return 0;
    return !is_alnum(lx_peek(p));
}

static int accept_remaining_duration(struct parser *p)
{
    if (!lx_accept(p, "smhdwy"))
        return 0;
    lx_accept(p, "s");
    while (lx_accept(p, "0123456789")) {
        while (lx_accept(p, "0123456789"))
            ;
        if (!lx_accept(p, "smhdw"))
            return 0;
        lx_accept(p, "s");
    }
    return !is_alnum(lx_next(p));
}

/* Value of the NUMBER / DURATION token just emitted (p->nerr when it does not convert). */
static void lx_number_value(struct parser *p)
{
    char *t = ql_strndup(p->a, p->src + p->tpos, p->tlen);
    p->nerr = NULL;
    p->num = 0;
    if (p->tk == T_DUR) {
        int64_t ms;
        p->nerr = go_model_duration(p, t, p->tlen, &ms);
        p->num = (double)ms;
        return;
    }
    double v;
    if (go_parse_int0(t, &v)) {
        p->num = v;
        return;
    }
    int rc = go_parse_float(t, &v);
    if (rc == 0) {
        p->num = v;
        return;
    }
    p->nerr = ql_printf(p->a, "error parsing number: strconv.ParseFloat: parsing %s: %s",
                        go_quote(p, t, p->tlen, 0),
                        rc == 2 ? "value out of range" : "invalid syntax");
}

static void lex_number_or_duration(struct parser *p)
{
    if (scan_number(p)) {
        lx_emit(p, T_NUM);
        lx_number_value(p);
        return;
    }
    if (accept_remaining_duration(p)) {
        lx_backup(p);
        lx_emit(p, T_DUR);
        lx_number_value(p);
        return;
    }
    lx_err(p, "bad number or duration syntax: %s",
           go_quote(p, p->src + p->lstart, p->pos - p->lstart, 0));
}

static void lex_escape(struct parser *p, int32_t quote)
{
    int32_t ch = lx_next(p);
    int n;
    uint32_t base, max;
    switch (ch) {
    case 'a': case 'b': case 'f': case 'n': case 'r': case 't': case 'v': case '\\':
        return;
    case '0': case '1': case '2': case '3': case '4': case '5': case '6': case '7':
        n = 3, base = 8, max = 255;
        break;
    case 'x':
        ch = lx_next(p);
        n = 2, base = 16, max = 255;
        break;
    case 'u':
        ch = lx_next(p);
        n = 4, base = 16, max = 0x10FFFF;
        break;
    case 'U':
        ch = lx_next(p);
        n = 8, base = 16, max = 0x10FFFF;
        break;
    case RUNE_EOF:
        lx_err(p, "escape sequence not terminated");
    default:
        if (ch == quote)
            return;
        lx_err(p, "unknown escape sequence %s", go_urune(p, ch));
    }
    uint32_t x = 0;
    while (n > 0) {
        uint32_t d = is_digit(ch) ? (uint32_t)(ch - '0') : (ch >= 'a' && ch <= 'f') ?
                     (uint32_t)(ch - 'a' + 10) : (ch >= 'A' && ch <= 'F') ?
                     (uint32_t)(ch - 'A' + 10) : 16;
        if (d >= base) {
            if (ch == RUNE_EOF)
                lx_err(p, "escape sequence not terminated");
            lx_err(p, "illegal character %s in escape sequence", go_urune(p, ch));
        }
        x = x * base + d;
        n--;
        if (n > 0)
            ch = lx_next(p);
    }
    if (x > max || (x >= 0xD800 && x < 0xE000))
        lx_err(p, "escape sequence is an invalid Unicode code point");
}

static void lex_string(struct parser *p, int32_t quote)
{
    for (;;) {
        int32_t r = lx_next(p);
        if (r == '\\')
            lex_escape(p, quote);
        else if (r == RUNE_ERR)
            lx_err(p, "invalid UTF-8 rune");
        else if (r == RUNE_EOF || r == '\n')
            lx_err(p, "unterminated quoted string");
        else if (r == quote)
            break;
    }
    lx_emit(p, T_STR);
    size_t used;
    char *out = NULL;
    int urc = obs_go_unquote(p->src + p->tpos, p->tlen, &out, &used);
    if (urc < 0 || used != p->tlen) {
        if (urc >= 0)
            obs_free(out);
        p->str = ql_strdup(p->a, "");
        aerr(p, p->tpos, "error unquoting string %s: invalid syntax",
             go_quote(p, p->src + p->tpos, p->tlen, 0));
        return;
    }
    p->str = ql_strdup(p->a, out);
    obs_free(out);
}

static void lex_raw_string(struct parser *p)
{
    for (;;) {
        int32_t r = lx_next(p);
        if (r == RUNE_ERR)
            lx_err(p, "invalid UTF-8 rune");
        if (r == RUNE_EOF)
            lx_err(p, "unterminated raw string");
        if (r == '`')
            break;
    }
    lx_emit(p, T_STR);
    p->str = ql_strndup(p->a, p->src + p->tpos + 1, p->tlen - 2);
}

static void word_token(struct parser *p, enum word w)
{
    lx_emit(p, T_IDENT);
    p->tw = w;
}

/* step / range / min / max inside brackets (min_of / max_of too: metricsd's spelling). */
static int scan_duration_keyword(struct parser *p)
{
    while (is_alpha(lx_next(p)))
        ;
    lx_backup(p);
    size_t n = p->pos - p->lstart;
    const char *w = p->src + p->lstart;
    static const struct { const char *k; enum word c; } kws[] = {
        {"step", W_PREPROC}, {"range", W_PREPROC}, {"min", W_AGGR}, {"max", W_AGGR},
        {"min_of", W_IDENT}, {"max_of", W_IDENT}};
    for (size_t i = 0; i < sizeof kws / sizeof kws[0]; i++)
        if (strlen(kws[i].k) == n && strncasecmp(kws[i].k, w, n) == 0) {
            word_token(p, kws[i].c);
            return 1;
        }
    return 0;
}

static int followed_by_lparen(struct parser *p)
{
    size_t i = p->pos;
    while (i < p->len && is_space((unsigned char)p->src[i]))
        i++;
    return i < p->len && p->src[i] == '(';
}

static void lex_keyword_or_identifier(struct parser *p)
{
    for (;;) {
        int32_t r = lx_next(p);
        if (!is_alnum(r) && r != ':') {
            lx_backup(p);
            break;
        }
    }
    size_t n = p->pos - p->lstart;
    const char *w = p->src + p->lstart;
    static const struct { const char *k; enum word c; } kws[] = {
        {"and", W_OPER}, {"or", W_OPER}, {"unless", W_OPER}, {"atan2", W_OPER},
        {"sum", W_AGGR}, {"avg", W_AGGR}, {"count", W_AGGR}, {"min", W_AGGR}, {"max", W_AGGR},
        {"group", W_AGGR}, {"stddev", W_AGGR}, {"stdvar", W_AGGR}, {"topk", W_AGGR},
        {"bottomk", W_AGGR}, {"count_values", W_AGGR}, {"quantile", W_AGGR},
        {"limitk", W_AGGR}, {"limit_ratio", W_AGGR},
        {"offset", W_KEYWORD}, {"smoothed", W_KEYWORD}, {"anchored", W_KEYWORD},
        {"by", W_KEYWORD}, {"without", W_KEYWORD}, {"on", W_KEYWORD}, {"ignoring", W_KEYWORD},
        {"group_left", W_KEYWORD}, {"group_right", W_KEYWORD}, {"fill", W_KEYWORD},
        {"fill_left", W_KEYWORD}, {"fill_right", W_KEYWORD}, {"bool", W_KEYWORD},
        {"start", W_PREPROC}, {"end", W_PREPROC}, {"step", W_PREPROC}, {"range", W_PREPROC}};
    if ((n == 3 && strncasecmp(w, "inf", 3) == 0) || (n == 3 && strncasecmp(w, "nan", 3) == 0)) {
        lx_emit(p, T_NUM);
        p->nerr = NULL;
        p->num = tolower((unsigned char)w[0]) == 'i' ? INFINITY : NAN;
        return;
    }
    for (size_t i = 0; i < sizeof kws / sizeof kws[0]; i++)
        if (strlen(kws[i].k) == n && strncasecmp(kws[i].k, w, n) == 0) {
            if (strncasecmp(w, "fill", 4) == 0 && !followed_by_lparen(p))
                break;
            word_token(p, kws[i].c);
            return;
        }
    word_token(p, memchr(w, ':', n) ? W_METRIC : W_IDENT);
}

/* lexStatements: 1 when a token was produced, 0 after skipping space or a comment. */
static int lex_statements(struct parser *p)
{
    if (p->pos < p->len && p->src[p->pos] == '#') {
        while (p->pos < p->len && p->src[p->pos] != '\n' && p->src[p->pos] != '\r')
            p->pos++;
        p->lstart = p->pos;
        return 0;
    }
    int32_t r = lx_next(p), t;
    switch (r) {
    case RUNE_EOF:
        if (p->paren_depth != 0)
            lx_err(p, "unclosed left parenthesis");
        if (p->bracket_open)
            lx_err(p, "unclosed left bracket");
        lx_emit(p, T_EOF);
        return 1;
    case ',': lx_emit(p, T_COMMA); return 1;
    case ' ': case '\t': case '\n': case '\r':
        lx_skip_spaces(p);
        return 0;
    case '*': lx_emit(p, T_MUL); return 1;
    case '/': lx_emit(p, T_DIV); return 1;
    case '%': lx_emit(p, T_MOD); return 1;
    case '+': lx_emit(p, T_ADD); return 1;
    case '-': lx_emit(p, T_SUB); return 1;
    case '^': lx_emit(p, T_POW); return 1;
    case '@': lx_emit(p, T_AT); return 1;
    case '=':
        t = lx_peek(p);
        if (t == '=') {
            lx_next(p);
            lx_emit(p, T_EQLC);
        } else if (t == '~') {
            lx_err(p, "unexpected character after '=': %s", go_qrune(p, t));
        } else {
            lx_emit(p, T_ASSIGN);
        }
        return 1;
    case '!':
        t = lx_next(p);
        if (t != '=')
            lx_err(p, "unexpected character after '!': %s", go_qrune(p, t));
        lx_emit(p, T_NEQ);
        return 1;
    case '<':
    case '>':
        t = lx_peek(p);
        if (t == '=' || t == '/') { /* "</" and ">/": metricsd's trim operators */
            lx_next(p);
            lx_emit(p, r == '<' ? (t == '=' ? T_LTE : T_TRIM_UPPER)
                                : (t == '=' ? T_GTE : T_TRIM_LOWER));
        } else {
            lx_emit(p, r == '<' ? T_LSS : T_GTR);
        }
        return 1;
    case '"':
    case '\'':
        lex_string(p, r);
        return 1;
    case '`':
        lex_raw_string(p);
        return 1;
    case '(':
        lx_emit(p, T_LPAREN);
        p->paren_depth++;
        return 1;
    case ')':
        lx_emit(p, T_RPAREN);
        if (--p->paren_depth < 0)
            lx_err(p, "unexpected right parenthesis %s", go_qrune(p, r));
        return 1;
    case '{':
        lx_emit(p, T_LBRACE);
        p->brace_open = 1;
        return 1;
    case '[':
        if (p->bracket_open)
            lx_err(p, "unexpected left bracket %s", go_qrune(p, r));
        p->got_colon = 0;
        lx_emit(p, T_LBRACK);
        lx_skip_spaces(p);
        p->bracket_open = 1;
        p->ls = LS_DUR;
        return 1;
    case ']':
        if (!p->bracket_open)
            lx_err(p, "unexpected right bracket %s", go_qrune(p, r));
        lx_emit(p, T_RBRACK);
        p->bracket_open = 0;
        return 1;
    default:
        break;
    }
    if (is_digit(r) || (r == '.' && is_digit(lx_peek(p)))) {
        lx_backup(p);
        lex_number_or_duration(p);
        return 1;
    }
    if (is_alpha(r) || r == ':') {
        if (!p->bracket_open) {
            lx_backup(p);
            lex_keyword_or_identifier(p);
            return 1;
        }
        if (r == ':') {
            if (p->got_colon)
                lx_err(p, "unexpected colon %s", go_qrune(p, r));
            if (lx_peek(p) == ':') {
                lx_next(p);
                lx_emit(p, T_DCOLON);
            } else {
                lx_emit(p, T_COLON);
            }
            p->got_colon = 1;
            return 1;
        }
        if (in_set(r, "sSmMrR") && scan_duration_keyword(p))
            return 1;
        lx_err(p, "unexpected character: %s, expected %s", go_qrune(p, r), go_qrune(p, ':'));
    }
    lx_err(p, "unexpected character: %s", go_qrune(p, r));
}

/* lexInsideBraces */
static int lex_inside_braces(struct parser *p)
{
    if (p->pos < p->len && p->src[p->pos] == '#') {
        while (p->pos < p->len && p->src[p->pos] != '\n' && p->src[p->pos] != '\r')
            p->pos++;
        p->lstart = p->pos;
        return 0;
    }
    int32_t r = lx_next(p), t;
    if (r == RUNE_EOF)
        lx_err(p, "unexpected end of input inside braces");
    if (is_space(r)) {
        lx_skip_spaces(p);
        return 0;
    }
    if (is_alpha(r)) {
        while (is_alnum(lx_next(p)))
            ;
        lx_backup(p);
        word_token(p, W_IDENT);
        return 1;
    }
    switch (r) {
    case ',': lx_emit(p, T_COMMA); return 1;
    case '"':
    case '\'':
        lex_string(p, r);
        return 1;
    case '`':
        lex_raw_string(p);
        return 1;
    case '=':
        if (lx_next(p) == '~') {
            lx_emit(p, T_RE);
            return 1;
        }
        lx_backup(p);
        lx_emit(p, T_ASSIGN);
        return 1;
    case '!':
        t = lx_next(p);
        if (t == '~')
            lx_emit(p, T_NRE);
        else if (t == '=')
            lx_emit(p, T_NEQ);
        else
            lx_err(p, "unexpected character after '!' inside braces: %s", go_qrune(p, t));
        return 1;
    case '{':
        lx_err(p, "unexpected left brace %s", go_qrune(p, r));
    case '}':
        lx_emit(p, T_RBRACE);
        p->brace_open = 0;
        return 1;
    default:
        lx_err(p, "unexpected character inside braces: %s", go_qrune(p, r));
    }
}

/* lexDurationExpr: right after "[" */
static int lex_duration_expr(struct parser *p)
{
    int32_t r = lx_next(p);
    switch (r) {
    case RUNE_EOF:
        lx_err(p, "unexpected end of input in duration expression");
    case ']':
        lx_emit(p, T_RBRACK);
        p->bracket_open = 0;
        p->got_colon = 0;
        p->ls = LS_STMT;
        return 1;
    case ':':
        lx_emit(p, T_COLON);
        if (!p->got_duration)
            lx_err(p, "unexpected colon before duration in duration expression");
        if (p->got_colon)
            lx_err(p, "unexpected repeated colon in duration expression");
        p->got_colon = 1;
        return 1;
    case '(':
        lx_emit(p, T_LPAREN);
        p->paren_depth++;
        return 1;
    case ')':
        lx_emit(p, T_RPAREN);
        if (--p->paren_depth < 0)
            lx_err(p, "unexpected right parenthesis %s", go_qrune(p, r));
        return 1;
    case ' ': case '\t': case '\n': case '\r':
        lx_skip_spaces(p);
        return 0;
    case '+': lx_emit(p, T_ADD); return 1;
    case '-': lx_emit(p, T_SUB); return 1;
    case '*': lx_emit(p, T_MUL); return 1;
    case '/': lx_emit(p, T_DIV); return 1;
    case '%': lx_emit(p, T_MOD); return 1;
    case '^': lx_emit(p, T_POW); return 1;
    case ',': lx_emit(p, T_COMMA); return 1;
    default:
        break;
    }
    if (in_set(r, "sSmMrR")) {
        if (scan_duration_keyword(p))
            return 1;
        lx_err(p, "unexpected character in duration expression: %s", go_qrune(p, r));
    }
    if (is_digit(r) || (r == '.' && is_digit(lx_peek(p)))) {
        lx_backup(p);
        p->got_duration = 1;
        p->ls = LS_STMT;
        lex_number_or_duration(p);
        return 1;
    }
    lx_err(p, "unexpected character in duration expression: %s", go_qrune(p, r));
}

static void next(struct parser *p)
{
    p->lstart = p->pos;
    for (;;) {
        int got;
        if (p->ls == LS_DUR)
            got = lex_duration_expr(p);
        else if (p->brace_open)
            got = lex_inside_braces(p);
        else
            got = lex_statements(p);
        if (got)
            return;
    }
}

static int tok_is(struct parser *p, const char *kw)
{
    return p->tk == T_IDENT && strlen(kw) == p->tlen &&
           strncasecmp(p->src + p->tpos, kw, p->tlen) == 0;
}

static char *tok_text(struct parser *p)
{
    return ql_strndup(p->a, p->src + p->tpos, p->tlen);
}

/* The value of the number or duration token (recording its conversion error). */
static double tok_num(struct parser *p)
{
    if (p->nerr)
        aerr(p, p->tpos, "%s", p->nerr);
    return p->num;
}

/* Prometheus' Item.desc(): how an "unexpected ..." error names the current token. */
static const char *tok_desc(struct parser *p)
{
    const char *v = p->src + p->tpos;
    int n = (int)p->tlen;
    switch (p->tk) {
    case T_EOF: return "end of input";
    case T_IDENT:
        switch (p->tw) {
        case W_IDENT: return ql_printf(p->a, "identifier %s", go_quote(p, v, p->tlen, 0));
        case W_METRIC:
            return ql_printf(p->a, "metric identifier %s", go_quote(p, v, p->tlen, 0));
        case W_KEYWORD: return ql_printf(p->a, "<%.*s>", n, v);
        case W_AGGR: return ql_printf(p->a, "<aggr:%.*s>", n, v);
        case W_OPER: return ql_printf(p->a, "<op:%.*s>", n, v);
        case W_PREPROC: return go_quote(p, v, p->tlen, 0);
        }
        break;
    case T_NUM:
    case T_DUR:
    case T_STR: {
        const char *kind = p->tk == T_NUM ? "number" : p->tk == T_DUR ? "duration" : "string";
        if (p->tlen > 10)
            return ql_printf(p->a, "%s %s...", kind, go_quote(p, v, p->tlen, 10));
        return ql_printf(p->a, "%s %s", kind, go_quote(p, v, p->tlen, 0));
    }
    case T_LPAREN: case T_RPAREN: case T_LBRACE: case T_RBRACE: case T_LBRACK: case T_RBRACK:
    case T_COMMA: case T_COLON: case T_ASSIGN: case T_DCOLON: case T_BAD:
        return go_quote(p, v, p->tlen, 0);
    default:
        break;
    }
    return ql_printf(p->a, "<op:%.*s>", n, v);
}

__attribute__((noreturn)) static void unexpected(struct parser *p, const char *ctx)
{
    if (!ctx && p->in_agg)
        ctx = "in aggregation"; /* the grammar's "aggregate_op error" catches it */
    perr(p, p->tpos, "unexpected %s%s%s", tok_desc(p), ctx ? " " : "", ctx ? ctx : "");
}

static void expect(struct parser *p, enum tok t, const char *ctx)
{
    if (p->tk != t)
        unexpected(p, ctx);
    next(p);
}

static struct ql_node *node(struct parser *p, enum ql_kind k, size_t pos)
{
    struct ql_node *n = ql_alloc(p->a, sizeof(*n));
    n->kind = k;
    n->pos = (int)pos;
    n->sel_id = -1;
    return n;
}

static const char *type_str(enum mtd_ql_vtype t)
{
    switch (t) {
    case MTD_QL_SCALAR: return "scalar";
    case MTD_QL_VECTOR: return "instant vector";
    case MTD_QL_MATRIX: return "range vector";
    case MTD_QL_STRING: return "string";
    default: return "none";
    }
}

/* ---------------------------------------------------------------- operators */
static enum ql_op binop_of(struct parser *p)
{
    switch (p->tk) {
    case T_ADD: return QOP_ADD;
    case T_SUB: return QOP_SUB;
    case T_MUL: return QOP_MUL;
    case T_DIV: return QOP_DIV;
    case T_MOD: return QOP_MOD;
    case T_POW: return QOP_POW;
    case T_EQLC: return QOP_EQL;
    case T_NEQ: return QOP_NEQ;
    case T_GTR: return QOP_GTR;
    case T_LSS: return QOP_LSS;
    case T_GTE: return QOP_GTE;
    case T_LTE: return QOP_LTE;
    case T_TRIM_UPPER: return QOP_TRIM_UPPER;
    case T_TRIM_LOWER: return QOP_TRIM_LOWER;
    case T_IDENT:
        if (tok_is(p, "and")) return QOP_AND;
        if (tok_is(p, "or")) return QOP_OR;
        if (tok_is(p, "unless")) return QOP_UNLESS;
        if (tok_is(p, "atan2")) return QOP_ATAN2;
        return QOP_NONE;
    default: return QOP_NONE;
    }
}

static int prec(enum ql_op op)
{
    switch (op) {
    case QOP_OR: return 1;
    case QOP_AND: case QOP_UNLESS: return 2;
    case QOP_EQL: case QOP_NEQ: case QOP_GTR: case QOP_LSS: case QOP_GTE: case QOP_LTE: return 3;
    case QOP_ADD: case QOP_SUB: return 4;
    case QOP_MUL: case QOP_DIV: case QOP_MOD: case QOP_ATAN2: return 5;
    case QOP_TRIM_UPPER: case QOP_TRIM_LOWER: return 5;
    case QOP_POW: return 6;
    default: return 0;
    }
}

static int is_cmp(enum ql_op op)
{
    return op >= QOP_EQL && op <= QOP_LTE;
}

static int is_set(enum ql_op op)
{
    return op == QOP_AND || op == QOP_OR || op == QOP_UNLESS;
}

static const char *op_str(enum ql_op op)
{
    static const char *s[] = {"", "+", "-", "*", "/", "%", "^", "atan2", "==", "!=", ">", "<",
                              ">=", "<=", "and", "or", "unless", "</", ">/"};
    return s[op];
}

/* ---------------------------------------------------------------- expressions */
static struct ql_node *parse_expr(struct parser *p, int minprec);

/* ( label, label, ... ) -- names may be identifiers (keywords allowed) or strings. */
static void parse_label_list(struct parser *p, char ***out, size_t *n)
{
    size_t cap = 0;
    *out = NULL;
    *n = 0;
    expect(p, T_LPAREN, "in grouping opts, expected \"(\"");
    while (p->tk != T_RPAREN) {
        char *name;
        /* maybe_label: identifiers and the keywords that may name a label */
        if (p->tk == T_IDENT && !tok_is(p, "without") && !tok_is(p, "fill") &&
            !tok_is(p, "fill_left") && !tok_is(p, "fill_right")) {
            name = tok_text(p); /* every word is a valid (UTF-8) label name */
        } else if (p->tk == T_STR) {
            name = p->str; /* 3.x: quoted (UTF-8) label names */
            if (!*name)
                aerr(p, p->tpos, "invalid label name for grouping: \"\"");
        } else {
            unexpected(p, "in grouping opts, expected label");
        }
        QL_PUSH(p->a, *out, *n, cap, name);
        next(p);
        if (p->tk == T_COMMA)
            next(p);
        else if (p->tk != T_RPAREN)
            unexpected(p, "in grouping opts, expected \",\" or \")\"");
    }
    next(p);
}

/* Prometheus' checkAST for a binary expression, in its order (the first error is reported). */
static void set_type_check_binary(struct parser *p, struct ql_node *n, size_t oppos)
{
    enum mtd_ql_vtype lt = n->lhs->type, rt = n->rhs->type;
    int filled = n->fill_l || n->fill_r;
    if (n->bool_mod && !is_cmp(n->op))
        cerr(p, oppos, "bool modifier can only be used on comparison operators");
    if (is_cmp(n->op) && lt == MTD_QL_SCALAR && rt == MTD_QL_SCALAR && !n->bool_mod)
        cerr(p, oppos, "comparisons between scalars must use BOOL modifier");
    for (size_t j = 0; n->on && j < n->nmlabels; j++)
        for (size_t i = 0; i < n->ninclude; i++)
            if (strcmp(n->include[i], n->mlabels[j]) == 0)
                cerr(p, oppos, "label %s must not occur in ON and GROUP clause at once",
                     go_quote(p, n->include[i], strlen(n->include[i]), 0));
    if (lt != MTD_QL_SCALAR && lt != MTD_QL_VECTOR)
        cerr(p, (size_t)n->lhs->pos, "binary expression must contain only scalar and instant "
                                     "vector types");
    if (rt != MTD_QL_SCALAR && rt != MTD_QL_VECTOR)
        cerr(p, (size_t)n->rhs->pos, "binary expression must contain only scalar and instant "
                                     "vector types");
    if (lt != MTD_QL_VECTOR || rt != MTD_QL_VECTOR) {
        if (n->nmlabels > 0)
            cerr(p, (size_t)n->pos, "vector matching only allowed between instant vectors");
        if (filled)
            cerr(p, (size_t)n->pos, "filling in missing series only allowed between instant "
                                    "vectors");
        n->has_matching = 0;
    } else if (is_set(n->op)) {
        if (n->card == QC_MANY_ONE || n->card == QC_ONE_MANY)
            cerr(p, (size_t)n->pos, "no grouping allowed for \"%s\" operation", op_str(n->op));
        if (filled)
            cerr(p, (size_t)n->pos, "filling in missing series not allowed for set operators");
    }
    if (is_set(n->op)) {
        if (lt == MTD_QL_SCALAR || rt == MTD_QL_SCALAR)
            cerr(p, (size_t)n->pos, "set operator \"%s\" not allowed in binary scalar "
                                    "expression", op_str(n->op));
        n->card = QC_MANY_MANY;
    }
    n->type = (lt == MTD_QL_SCALAR && rt == MTD_QL_SCALAR) ? MTD_QL_SCALAR : MTD_QL_VECTOR;
}

/* Go's regexp/syntax error text for a regex PCRE2 refuses, or Go refuses where PCRE2 does not
 * (repeat counts over 1000, look-arounds, back references, possessive repeats); NULL when the
 * pattern is fine. Prometheus compiles "^(?:" + v + ")$", which some messages quote. */
/* Length of a Go repeat "{n}", "{n,}" or "{n,m}" at s (0: not one, "{" is then a literal);
 * *min / *max (-1: open) set. */
static size_t go_repeat_len(const char *s, long *min, long *max)
{
    size_t i = 1;
    long a = 0, b;
    if (!isdigit((unsigned char)s[i]))
        return 0;
    while (isdigit((unsigned char)s[i])) {
        if (a < 100000000)
            a = a * 10 + (s[i] - '0');
        i++;
    }
    b = a;
    if (s[i] == ',') {
        i++;
        if (isdigit((unsigned char)s[i])) {
            b = 0;
            while (isdigit((unsigned char)s[i])) {
                if (b < 100000000)
                    b = b * 10 + (s[i] - '0');
                i++;
            }
        } else {
            b = -1;
        }
    }
    if (s[i] != '}')
        return 0;
    *min = a;
    *max = b;
    return i + 1;
}

/* Go's repetition errors, found left to right as Go's parser does: a repeat count over 1000
 * or out of order, a repeat with nothing before it, a repeat of a repeat. */
static const char *go_repeat_error(struct parser *p, const char *v)
{
    size_t n = strlen(v), prev = (size_t)-1;
    int at_start = 1;
    for (size_t i = 0; i < n; i++) {
        char c = v[i];
        if (c == '\\') {
            i++;
            prev = (size_t)-1;
            at_start = 0;
            continue;
        }
        if (c == '[') {
            size_t j = i + 1;
            if (j < n && v[j] == '^')
                j++;
            if (j < n && v[j] == ']')
                j++;
            for (; j < n && v[j] != ']'; j++) {
                if (v[j] == '\\')
                    j++;
                else if (v[j] == '[' && j + 1 < n && v[j + 1] == ':') {
                    const char *e = strstr(v + j + 2, ":]");
                    if (e)
                        j = (size_t)(e - v) + 1;
                }
            }
            i = j;
            prev = (size_t)-1;
            at_start = 0;
            continue;
        }
        if (c == '(' || c == '|') {
            if (c == '(' && i + 1 < n && v[i + 1] == '?') {
                size_t j = i + 2;
                while (j < n && v[j] != ':' && v[j] != ')' && v[j] != '>')
                    j++;
                i = j < n ? j : n;
            }
            at_start = 1;
            prev = (size_t)-1;
            continue;
        }
        size_t ql = 0;
        long mn = 0, mx = 0;
        if (c == '*' || c == '+' || c == '?')
            ql = 1;
        else if (c == '{' && (ql = go_repeat_len(v + i, &mn, &mx)) > 0) {
            if (mn > 1000 || mx > 1000 || (mx >= 0 && mn > mx))
                return ql_printf(p->a, "error parsing regexp: invalid repeat count: `%.*s`",
                                 (int)ql, v + i);
        }
        if (ql == 0) {
            prev = (size_t)-1;
            at_start = 0;
            continue;
        }
        size_t qe = i + ql;
        if (qe < n && v[qe] == '?')
            qe++;
        if (at_start)
            return ql_printf(p->a, "error parsing regexp: missing argument to repetition "
                                   "operator: `%.*s`", (int)(qe - i), v + i);
        if (prev != (size_t)-1)
            return ql_printf(p->a, "error parsing regexp: invalid nested repetition operator: "
                                   "`%.*s`", (int)(qe - prev), v + prev);
        prev = i;
        i = qe - 1;
    }
    return NULL;
}

static const char *go_regex_error(struct parser *p, const char *v)
{
    const char *full = ql_printf(p->a, "^(?:%s)$", v);
    size_t n = strlen(v);
    const char *rep_err = go_repeat_error(p, v);
    if (rep_err)
        return rep_err;
    int ecode = 0;
    PCRE2_SIZE eoff = 0;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)v, PCRE2_ZERO_TERMINATED, PCRE2_UTF, &ecode,
                                   &eoff, NULL);
    const char *code = NULL, *frag = NULL;
    if (re) {
        pcre2_code_free(re);
        /* what RE2 refuses though PCRE2 compiles it */
        int cls = 0;
        for (size_t i = 0; i < n; i++) {
            char c = v[i];
            if (c == '\\' && i + 1 < n) {
                if (!cls && v[i + 1] >= '1' && v[i + 1] <= '9')
                    return ql_printf(p->a, "error parsing regexp: invalid escape sequence: "
                                           "`\\%c`", v[i + 1]);
                i++;
                continue;
            }
            if (cls) {
                if (c == ']')
                    cls = 0;
                continue;
            }
            if (c == '[') {
                cls = 1;
                if (i + 1 < n && v[i + 1] == ']')
                    i++;
                continue;
            }
            if (c == '(' && i + 2 < n && v[i + 1] == '?' && (v[i + 2] == '=' || v[i + 2] == '!'))
                return ql_printf(p->a, "error parsing regexp: invalid or unsupported Perl "
                                       "syntax: `(?%c`", v[i + 2]);
            if ((c == '*' || c == '+' || c == '?' || c == '}') && i + 1 < n && v[i + 1] == '+')
                return ql_printf(p->a, "error parsing regexp: invalid nested repetition "
                                       "operator: `%c+`", c);
            if (c == '{' && i + 1 < n && isdigit((unsigned char)v[i + 1])) {
                size_t j = i + 1;
                long a = 0, b = -1;
                while (j < n && isdigit((unsigned char)v[j]) && a <= 100000)
                    a = a * 10 + (v[j++] - '0');
                if (j < n && v[j] == ',') {
                    j++;
                    if (j < n && isdigit((unsigned char)v[j])) {
                        b = 0;
                        while (j < n && isdigit((unsigned char)v[j]) && b <= 100000)
                            b = b * 10 + (v[j++] - '0');
                    }
                }
                if (j < n && v[j] == '}' && (a > 1000 || b > 1000))
                    return ql_printf(p->a, "error parsing regexp: invalid repeat count: `%.*s`",
                                     (int)(j + 1 - i), v + i);
            }
        }
        return NULL;
    }
    size_t off = eoff > n ? n : eoff;
    switch (ecode) {
    case PCRE2_ERROR_END_BACKSLASH:
    case PCRE2_ERROR_MISSING_CLOSING_PARENTHESIS:
        code = "missing closing )";
        frag = full;
        break;
    case PCRE2_ERROR_UNMATCHED_CLOSING_PARENTHESIS:
        code = "unexpected )";
        frag = full;
        break;
    case PCRE2_ERROR_MISSING_SQUARE_BRACKET: {
        /* from the class left open to the end of the anchored pattern */
        size_t open = 0;
        int cls = 0;
        for (size_t i = 0; i < n; i++) {
            if (v[i] == '\\') {
                i++;
                continue;
            }
            if (!cls && v[i] == '[') {
                cls = 1;
                open = i;
                if (i + 1 < n && v[i + 1] == '^')
                    i++;
                if (i + 1 < n && v[i + 1] == ']')
                    i++;
            } else if (cls && v[i] == '[' && i + 1 < n && v[i + 1] == ':') {
                const char *e = strstr(v + i + 2, ":]");
                if (e)
                    i = (size_t)(e - v) + 1;
            } else if (cls && v[i] == ']') {
                cls = 0;
            }
        }
        code = "missing closing ]";
        frag = full + 4 + open;
        break;
    }
    case PCRE2_ERROR_QUANTIFIER_OUT_OF_ORDER: {
        size_t s = off;
        while (s > 0 && v[s] != '{')
            s--;
        size_t e = s;
        while (e < n && v[e] != '}')
            e++;
        code = "invalid repeat count";
        frag = ql_strndup(p->a, v + s, e < n ? e + 1 - s : n - s);
        break;
    }
    case PCRE2_ERROR_QUANTIFIER_INVALID: {
        size_t q = off < n && strchr("*+?{", v[off]) ? off : off > 0 ? off - 1 : 0;
        if (q > 0 && strchr("*+?", v[q - 1]) && strchr("*+?", v[q])) {
            code = "invalid nested repetition operator";
            frag = ql_strndup(p->a, v + q - 1, 2);
        } else {
            code = "missing argument to repetition operator";
            frag = ql_strndup(p->a, v + q, 1);
        }
        break;
    }
    case PCRE2_ERROR_CLASS_RANGE_ORDER: {
        size_t s = off >= 2 ? off - 2 : 0;
        size_t e = off + 1 <= n ? off + 1 : n;
        code = "invalid character class range";
        frag = ql_strndup(p->a, v + s, e - s);
        break;
    }
    case PCRE2_ERROR_UNKNOWN_UNICODE_PROPERTY: {
        size_t s = off;
        while (s > 0 && !(v[s] == '\\' && (v[s + 1] == 'p' || v[s + 1] == 'P')))
            s--;
        size_t e = s + 2;
        if (e < n && v[e] == '{') {
            while (e < n && v[e] != '}')
                e++;
            if (e < n)
                e++;
        } else if (e < n) {
            e++;
        }
        code = "invalid character class range";
        frag = ql_strndup(p->a, v + s, e - s);
        break;
    }
    case PCRE2_ERROR_SUBPATTERN_NAME_EXPECTED:
    case PCRE2_ERROR_MISSING_NAME_TERMINATOR: {
        const char *s = strstr(full, "(?P<");
        if (!s)
            s = strstr(full, "(?<");
        code = "invalid named capture";
        frag = s ? s : full;
        break;
    }
    case PCRE2_ERROR_UNRECOGNIZED_AFTER_QUERY_P:
    case PCRE2_ERROR_INVALID_AFTER_PARENS_QUERY: {
        const char *s = strstr(v, "(?");
        code = "invalid or unsupported Perl syntax";
        frag = s ? ql_strndup(p->a, s, s[2] ? 3 : 2) : v;
        break;
    }
    default: {
        PCRE2_UCHAR buf[256];
        pcre2_get_error_message(ecode, buf, sizeof buf);
        return ql_printf(p->a, "error parsing regexp: %s: `%s`", (const char *)buf, v);
    }
    }
    return ql_printf(p->a, "error parsing regexp: %s: `%s`", code, frag);
}

/* Label matchers inside { }. Adds a __name__ matcher when name != NULL. */
/* Build a regex matcher whose pattern carries PCRE2 match/depth limits, so every later match
 * (storage's included) is bounded; the text in m->value stays the user's. */
static void init_re_matcher(struct parser *p, struct obs_matcher *m, enum obs_match_type mt,
                            const char *lname, const char *value, size_t pos)
{
    struct obs_err e = {0};
    if ((mt == OBS_MATCH_RE || mt == OBS_MATCH_NRE) && strlen(value) > p->max_re)
        perr(p, pos, "regular expression too long: %zu bytes (limit %zu)", strlen(value),
             p->max_re);
    const char *rerr = mt == OBS_MATCH_RE || mt == OBS_MATCH_NRE ? go_regex_error(p, value)
                                                                 : NULL;
    if (rerr) {
        /* a grammar-action error: recorded, the selector stays well-formed */
        aerr(p, pos, "%s", rerr);
        mt = OBS_MATCH_EQ;
    }
    if (obs_matcher_init(m, mt, lname, value, &e) < 0)
        perr(p, pos, "%s", e.msg);
    if (mt != OBS_MATCH_RE && mt != OBS_MATCH_NRE)
        return;
    char *pat = ql_printf(p->a, "(*LIMIT_MATCH=%d)(*LIMIT_DEPTH=%d)%s", MTD_QL_RE_MATCH_LIMIT,
                          MTD_QL_RE_DEPTH_LIMIT, value);
    int ecode = 0;
    PCRE2_SIZE eoff = 0;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED,
                                   PCRE2_ANCHORED | PCRE2_ENDANCHORED | PCRE2_UTF, &ecode, &eoff,
                                   NULL);
    if (!re)
        return; /* keep the matcher obs_matcher_init compiled */
    (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
    if (!md) {
        pcre2_code_free(re);
        return;
    }
    pcre2_match_data_free(m->md);
    pcre2_code_free(m->re);
    m->re = re;
    m->md = md;
}

static void parse_matchers(struct parser *p, struct ql_node *n, const char *name)
{
    size_t cap = 0;
    struct obs_err e = {0};
    if (name) {
        struct obs_matcher m;
        if (obs_matcher_init(&m, OBS_MATCH_EQ, "__name__", name, &e) < 0)
            perr(p, n->pos, "%s", e.msg);
        QL_PUSH(p->a, n->ms, n->nms, cap, m);
    }
    if (p->tk != T_LBRACE)
        return;
    next(p);
    while (p->tk != T_RBRACE) {
        size_t mpos = p->tpos;
        char *lname;
        if (p->tk == T_IDENT)
            lname = tok_text(p);
        else if (p->tk == T_STR)
            lname = p->str;
        else
            unexpected(p, "in label matching, expected identifier or \"}\"");
        int quoted = p->tk == T_STR;
        next(p);
        enum obs_match_type mt;
        if (quoted && (p->tk == T_COMMA || p->tk == T_RBRACE)) {
            /* {"metric.name"} */
            if (name || n->name)
                cerr(p, (size_t)n->pos, "metric name must not be set twice: %s or %s",
                     go_quote(p, name ? name : n->name, strlen(name ? name : n->name), 0),
                     go_quote(p, lname, strlen(lname), 0));
            n->name = lname;
            n->name_braced = 1;
            mt = OBS_MATCH_EQ;
            struct obs_matcher m;
            if (obs_matcher_init(&m, mt, "__name__", lname, &e) < 0)
                perr(p, mpos, "%s", e.msg);
            QL_PUSH(p->a, n->ms, n->nms, cap, m);
        } else {
            switch (p->tk) {
            case T_ASSIGN: mt = OBS_MATCH_EQ; break;
            case T_NEQ: mt = OBS_MATCH_NEQ; break;
            case T_RE: mt = OBS_MATCH_RE; break;
            case T_NRE: mt = OBS_MATCH_NRE; break;
            default: unexpected(p, "in label matching, expected label matching operator");
            }
            next(p);
            if (p->tk != T_STR)
                unexpected(p, "in label matching, expected string");
            if (name && strcmp(lname, "__name__") == 0)
                cerr(p, (size_t)n->pos, "metric name must not be set twice: %s or %s",
                     go_quote(p, name, strlen(name), 0), go_quote(p, p->str, strlen(p->str), 0));
            struct obs_matcher m;
            init_re_matcher(p, &m, mt, lname, p->str, mpos);
            QL_PUSH(p->a, n->ms, n->nms, cap, m);
            next(p);
        }
        if (p->tk == T_COMMA)
            next(p);
        else if (p->tk != T_RBRACE)
            unexpected(p, "in label matching, expected \",\" or \"}\"");
    }
    next(p);
}

static void register_matcher_cleanup(void *arg)
{
    struct ql_node *n = arg;
    for (size_t i = 0; i < n->nms; i++)
        obs_matcher_deinit(&n->ms[i]);
}

static struct ql_node *parse_vsel(struct parser *p, char *name, size_t pos)
{
    struct ql_node *n = node(p, QN_VSEL, pos);
    n->type = MTD_QL_VECTOR;
    n->name = name;
    ql_on_free(p->a, register_matcher_cleanup, n);
    parse_matchers(p, n, name);
    int nonempty = p->lax_sel;
    p->lax_sel = 0;
    for (size_t i = 0; i < n->nms; i++)
        if (!obs_matcher_matches_empty(&n->ms[i]))
            nonempty = 1;
    if (!nonempty && !name)
        cerr(p, pos, "vector selector must contain at least one non-empty matcher");
    n->sel_id = p->nsel++;
    n->endpos = (int)p->tpos;
    return n;
}

/* ---------------------------------------------------------------- duration expressions */
/* Prometheus 3's duration expressions: [5m+1m], [step()*2:1m], offset -(1h/2), min_of(a, b).
 * Numbers are seconds. Constant expressions fold at parse time; those using step() or
 * range() stay in the node and are resolved per query (ql_resolve_durations). */
static struct ql_dur *dur_new(struct parser *p, enum ql_dop op, size_t pos, struct ql_dur *l,
                              struct ql_dur *r)
{
    struct ql_dur *d = ql_alloc(p->a, sizeof(*d));
    d->op = op;
    d->pos = (int)pos;
    d->l = l;
    d->r = r;
    return d;
}

static struct ql_dur *parse_dur_expr(struct parser *p, int minprec, const char *ctx);

/* step() / range() / min_of(a, b) / max_of(a, b) at an identifier; NULL when it is not one. */
static struct ql_dur *parse_dur_func(struct parser *p, const char *ctx)
{
    size_t pos = p->tpos;
    enum ql_dop op;
    if (tok_is(p, "step"))
        op = QD_STEP;
    else if (tok_is(p, "range"))
        op = QD_RANGE;
    else if (tok_is(p, "min_of") || tok_is(p, "min"))
        op = QD_MIN;
    else if (tok_is(p, "max_of") || tok_is(p, "max"))
        op = QD_MAX;
    else
        return NULL;
    /* a syntax error anywhere in the duration expression is reported with the context of
     * the enclosing range, step or offset (the grammar's error productions) */
    next(p);
    expect(p, T_LPAREN, ctx);
    if (op == QD_STEP || op == QD_RANGE) {
        expect(p, T_RPAREN, ctx);
        return dur_new(p, op, pos, NULL, NULL);
    }
    struct ql_dur *a = parse_dur_expr(p, 0, ctx);
    expect(p, T_COMMA, ctx);
    struct ql_dur *b = parse_dur_expr(p, 0, ctx);
    expect(p, T_RPAREN, ctx);
    return dur_new(p, op, pos, a, b);
}

static struct ql_dur *parse_dur_primary(struct parser *p, const char *ctx)
{
    size_t pos = p->tpos;
    struct ql_dur *d;
    switch (p->tk) {
    case T_NUM:
    case T_DUR:
        d = dur_new(p, QD_NUM, pos, NULL, NULL);
        d->num = p->tk == T_DUR ? tok_num(p) / 1000.0 : tok_num(p);
        d->dur_lit = p->tk == T_DUR;
        if (fabs(d->num) > 9223372036.854775807) { /* time.Duration's range, in seconds */
            aerr(p, pos, "duration out of range");
            d->num = 0;
        }
        next(p);
        return d;
    case T_LPAREN:
        next(p);
        d = parse_dur_expr(p, 0, ctx);
        expect(p, T_RPAREN, ctx);
        d->wrapped = 1;
        return d;
    case T_IDENT:
        if ((d = parse_dur_func(p, ctx)) != NULL)
            return d;
        unexpected(p, ctx);
    default:
        unexpected(p, ctx);
    }
}

static struct ql_dur *dur_negate(struct parser *p, struct ql_dur *d, size_t pos)
{
    if (d->op == QD_NUM && !d->wrapped) { /* -(5) stays an expression, as upstream */
        d->num = -d->num;
        d->pos = (int)pos;
        return d;
    }
    return dur_new(p, QD_SUB, pos, NULL, d);
}

static int dur_prec(enum tok t)
{
    switch (t) {
    case T_ADD: case T_SUB: return 4;
    case T_MUL: case T_DIV: case T_MOD: return 5;
    case T_POW: return 6;
    default: return 0;
    }
}

static struct ql_dur *parse_dur_expr(struct parser *p, int minprec, const char *ctx)
{
    if (++p->depth > MTD_QL_MAX_DEPTH)
        perr(p, p->tpos, "expression nested too deeply (limit %d levels)", MTD_QL_MAX_DEPTH);
    struct ql_dur *l;
    if (p->tk == T_SUB || p->tk == T_ADD) { /* unary binds like "*" */
        size_t pos = p->tpos;
        int neg = p->tk == T_SUB;
        next(p);
        l = parse_dur_expr(p, 6, ctx);
        if (neg)
            l = dur_negate(p, l, pos);
    } else {
        l = parse_dur_primary(p, ctx);
    }
    for (;;) {
        int pr = dur_prec(p->tk);
        if (pr == 0 || pr < minprec)
            break;
        enum tok t = p->tk;
        size_t opos = p->tpos;
        next(p);
        struct ql_dur *r = parse_dur_expr(p, t == T_POW ? pr : pr + 1, ctx);
        enum ql_dop op = t == T_ADD ? QD_ADD : t == T_SUB ? QD_SUB : t == T_MUL ? QD_MUL :
                         t == T_DIV ? QD_DIV : t == T_MOD ? QD_MOD : QD_POW;
        if ((op == QD_DIV || op == QD_MOD) && r->op == QD_NUM && r->num == 0)
            perr(p, opos, op == QD_DIV ? "division by zero" : "modulo by zero");
        l = dur_new(p, op, l->pos, l, r);
    }
    p->depth--;
    return l;
}

/* Offset operand: a signed literal, step()/range()/min_of()/max_of() or a parenthesised
 * expression; operators after it belong to the enclosing expression (`x offset 1m + 1`
 * adds 1), except after a bare "(...)" where the duration expression continues. */
static struct ql_dur *parse_offset_dur(struct parser *p, const char *ctx)
{
    if (p->tk == T_LPAREN)
        return parse_dur_expr(p, 0, ctx);
    size_t pos = p->tpos;
    int neg = 0;
    if (p->tk == T_SUB || p->tk == T_ADD) {
        neg = p->tk == T_SUB;
        next(p);
    }
    struct ql_dur *d = parse_dur_primary(p, ctx);
    return neg ? dur_negate(p, d, pos) : d;
}

/* The expression to print for a duration: NULL for a plain literal (printed from the value). */
static struct ql_dur *dur_src(struct ql_dur *d)
{
    return d && (d->op != QD_NUM || d->wrapped) ? d : NULL;
}

/* Fold d into *ms when it is constant (returns 1), else leave it for the query (0). Plain
 * literals round to the millisecond, computed values truncate (as Prometheus). */
static int dur_fold(struct parser *p, const struct ql_dur *d, int64_t *ms)
{
    if (ql_dur_dynamic(d))
        return 0;
    double v;
    const char *why = NULL;
    if (ql_dur_eval(d, 0, 0, &v, &why) < 0)
        perr(p, (size_t)d->pos, "%s", why);
    if (!isfinite(v) || fabs(v) > 9e15)
        perr(p, (size_t)d->pos, "duration out of range");
    *ms = d->op == QD_NUM ? (int64_t)llround(v * 1000.0) : (int64_t)(v * 1000.0);
    return 1;
}

static int is_aggr(struct parser *p, enum ql_agg *out)
{
    static const struct { const char *n; enum ql_agg a; } aggs[] = {
        {"sum", QA_SUM}, {"avg", QA_AVG}, {"min", QA_MIN}, {"max", QA_MAX},
        {"count", QA_COUNT}, {"group", QA_GROUP}, {"stddev", QA_STDDEV}, {"stdvar", QA_STDVAR},
        {"topk", QA_TOPK}, {"bottomk", QA_BOTTOMK}, {"quantile", QA_QUANTILE},
        {"count_values", QA_COUNT_VALUES}, {"limitk", QA_LIMITK},
        {"limit_ratio", QA_LIMIT_RATIO}};
    for (size_t i = 0; i < sizeof(aggs) / sizeof(aggs[0]); i++)
        if (tok_is(p, aggs[i].n)) {
            *out = aggs[i].a;
            return 1;
        }
    return 0;
}

/* function_call_body: "(" [expr {"," expr}] ")" at the current "(" token. A comma not
 * followed by an expression is Prometheus' "trailing commas" grammar-action error. check is
 * called after each argument (type checks in Prometheus' order), or NULL. */
static void check_call_arg(struct parser *p, const struct ql_func *f, struct ql_node *a,
                           size_t i);

/* Type-check errors found inside the first arguments of an aggregation, kept apart so they can
 * be reported in Prometheus' order (the aggregated expression before the parameter). */
struct arg_errs {
    char *msg[2];
    size_t at[2];
};

static void parse_args(struct parser *p, struct ql_node ***args, size_t *nargs, size_t *cap,
                       int info, const struct ql_func *check, struct arg_errs *ae)
{
    expect(p, T_LPAREN, NULL);
    while (p->tk != T_RPAREN) {
        p->lax_sel = info && *nargs == 1;
        size_t k = *nargs;
        char *saved = p->cerr;
        size_t saved_at = p->cerr_at;
        if (ae && k < 2)
            p->cerr = NULL;
        struct ql_node *a = parse_expr(p, 0);
        if (ae && k < 2) {
            ae->msg[k] = p->cerr;
            ae->at[k] = p->cerr_at;
            p->cerr = saved;
            p->cerr_at = saved_at;
        }
        p->lax_sel = 0;
        QL_PUSH(p->a, *args, *nargs, *cap, a);
        if (check)
            check_call_arg(p, check, a, *nargs - 1);
        if (p->tk == T_RPAREN)
            break;
        if (p->tk != T_COMMA)
            unexpected(p, NULL);
        size_t cpos = p->tpos;
        next(p);
        while (p->tk == T_COMMA || p->tk == T_RPAREN) {
            aerr(p, cpos, "trailing commas not allowed in function call args");
            if (p->tk == T_RPAREN)
                break;
            cpos = p->tpos;
            next(p);
        }
    }
    next(p);
}

static struct ql_node *parse_aggr(struct parser *p, enum ql_agg agg, size_t pos)
{
    struct ql_node *n = node(p, QN_AGG, pos);
    n->agg = agg;
    next(p);
    if (tok_is(p, "by") || tok_is(p, "without")) {
        n->without = tok_is(p, "without");
        n->has_grouping = 1;
        next(p);
        parse_label_list(p, &n->grouping, &n->ngrouping);
    }
    if (p->tk != T_LPAREN)
        unexpected(p, "in aggregation");
    int needs_param = agg == QA_TOPK || agg == QA_BOTTOMK || agg == QA_QUANTILE ||
                      agg == QA_COUNT_VALUES || agg == QA_LIMITK || agg == QA_LIMIT_RATIO;
    struct ql_node **args = NULL;
    size_t nargs = 0, cap = 0;
    struct arg_errs ae = {{NULL, NULL}, {0, 0}};
    p->in_agg++;
    parse_args(p, &args, &nargs, &cap, 0, NULL, &ae);
    p->in_agg--;
    if (tok_is(p, "by") || tok_is(p, "without")) {
        if (n->has_grouping)
            unexpected(p, NULL);
        n->without = tok_is(p, "without");
        n->has_grouping = 1;
        next(p);
        parse_label_list(p, &n->grouping, &n->ngrouping);
    }
    n->type = MTD_QL_VECTOR;
    size_t want = needs_param ? 2 : 1;
    if (nargs == 0 || nargs != want) {
        if (nargs == 0)
            aerr(p, pos, "no arguments for aggregate expression provided");
        else
            aerr(p, pos, "wrong number of arguments for aggregate expression provided, "
                         "expected %zu, got %zu", want, nargs);
        n->lhs = node(p, QN_NUM, pos); /* never evaluated: the error is reported */
        n->lhs->type = MTD_QL_VECTOR;
        return n;
    }
    n->param = needs_param ? args[0] : NULL;
    n->lhs = args[want - 1];
    /* checkAST: the expression (its own errors, then its type), then the parameter */
    if (ae.msg[want - 1])
        cerr(p, ae.at[want - 1], "%s", ae.msg[want - 1]);
    if (n->lhs->type != MTD_QL_VECTOR)
        cerr(p, (size_t)n->lhs->pos, "expected type instant vector in aggregation expression, "
                                     "got %s", type_str(n->lhs->type));
    if (n->param) {
        enum mtd_ql_vtype wt = agg == QA_COUNT_VALUES ? MTD_QL_STRING : MTD_QL_SCALAR;
        if (ae.msg[0])
            cerr(p, ae.at[0], "%s", ae.msg[0]);
        if (n->param->type != wt)
            cerr(p, (size_t)n->param->pos, "expected type %s in aggregation parameter, got %s",
                 type_str(wt), type_str(n->param->type));
    }
    /* count_values' label name is checked at evaluation, as Prometheus does */
    return n;
}

/* info(v, {selector}): the label selector picks the info series. Without __name__ matchers
 * it means target_info; with only negative ones, any *_info metric they allow. The added
 * matchers follow the user's (nms_user) so evaluation can tell data-label matchers apart.
 * info(v) gets the selector {__name__="target_info"}. */
static void info_selector(struct parser *p, struct ql_node *n, size_t cap)
{
    struct ql_node *s;
    if (n->nargs == 1) {
        s = node(p, QN_VSEL, (size_t)n->pos);
        s->type = MTD_QL_VECTOR;
        ql_on_free(p->a, register_matcher_cleanup, s);
        s->sel_id = p->nsel++;
        s->info_sel = 2; /* synthesized: not in the query text */
        QL_PUSH(p->a, n->args, n->nargs, cap, s);
        struct obs_matcher m;
        size_t mc = 0;
        init_re_matcher(p, &m, OBS_MATCH_EQ, "__name__", "target_info", (size_t)s->pos);
        QL_PUSH(p->a, s->ms, s->nms, mc, m);
    } else {
        s = n->args[1];
        if (s->kind != QN_VSEL)
            perr(p, s->pos, "expected label selector as the second argument of info()");
        if (s->offset || s->offset_expr || s->at_kind)
            perr(p, s->pos, "no offset or @ modifiers allowed in the label selector of info()");
    }
    if (!s->info_sel)
        s->info_sel = 1;
    s->nms_user = s->nms;
    int names = 0, positive = 0;
    for (size_t i = 0; i < s->nms; i++)
        if (strcmp(s->ms[i].name, "__name__") == 0) {
            names++;
            positive |= s->ms[i].type == OBS_MATCH_EQ || s->ms[i].type == OBS_MATCH_RE;
        }
    if (positive)
        return;
    struct obs_matcher m;
    size_t mcap = s->nms;
    if (names == 0)
        init_re_matcher(p, &m, OBS_MATCH_EQ, "__name__", "target_info", (size_t)s->pos);
    else
        init_re_matcher(p, &m, OBS_MATCH_RE, "__name__", ".+_info", (size_t)s->pos);
    QL_PUSH(p->a, s->ms, s->nms, mcap, m);
}

/* Type check of argument i of a call as it is parsed (checkAST's order: each argument's own
 * errors, then its type). */
static void check_call_arg(struct parser *p, const struct ql_func *f, struct ql_node *a,
                           size_t i)
{
    int ntypes = 0;
    while (ntypes < 4 && f->argt[ntypes] != MTD_QL_NONE)
        ntypes++;
    if ((int)i >= ntypes) {
        if (f->variadic == 0 || ntypes == 0)
            return;
        i = (size_t)ntypes - 1;
    }
    if (a->type != f->argt[i])
        cerr(p, (size_t)a->pos, "expected type %s in call to function %s, got %s",
             type_str(f->argt[i]), go_quote(p, f->name, strlen(f->name), 0),
             type_str(a->type));
}

static struct ql_node *parse_call(struct parser *p, const struct ql_func *f, size_t pos)
{
    struct ql_node *n = node(p, QN_CALL, pos);
    n->fn = f;
    next(p); /* name */
    size_t cap = 0;
    int is_info = strcmp(f->name, "info") == 0;
    char *before = p->cerr;
    parse_args(p, &n->args, &n->nargs, &cap, is_info, f, NULL);
    const char *qn = go_quote(p, f->name, strlen(f->name), 0);
    char *count = NULL;
    int na = f->nargs;
    if (f->variadic == 0) {
        if ((int)n->nargs != f->nargs)
            count = ql_printf(p->a, "expected %d argument(s) in call to %s, got %zu", f->nargs,
                              qn, n->nargs);
    } else if (na > (int)n->nargs) {
        count = ql_printf(p->a, "expected at least %d argument(s) in call to %s, got %zu", na,
                          qn, n->nargs);
    } else if (f->variadic > 0 && na + f->variadic < (int)n->nargs) {
        count = ql_printf(p->a, "expected at most %d argument(s) in call to %s, got %zu",
                          na + f->variadic, qn, n->nargs);
    }
    if (count && before == NULL) {
        p->cerr = NULL; /* the count is checked before the arguments' own errors */
        cerr(p, pos, "%s", count);
    }
    if (is_info && n->nargs > 1) {
        struct ql_node *s = n->args[1];
        if (s->type != MTD_QL_VECTOR)
            cerr(p, pos, "expected type instant vector in call to function \"info\", got %s",
                 type_str(s->type));
        if (s->kind == QN_VSEL && s->name)
            cerr(p, (size_t)s->pos, "expected label selectors only, got vector selector "
                                    "instead");
        else if (s->kind != QN_VSEL)
            cerr(p, (size_t)s->pos, "expected label selectors only");
    }
    if (is_info && n->nargs > 1 && (n->args[1]->kind != QN_VSEL || n->args[1]->name)) {
        n->type = f->ret;
        return n; /* reported; info_selector needs a label selector */
    }
    n->type = f->ret;
    if (is_info && (n->nargs == 1 || n->nargs == 2)) /* other counts are reported */
        info_selector(p, n, cap);
    /* rate/increase/delta read an anchored or smoothed range raw (bit 2; ql_funcs.c) */
    if (n->nargs > 0 && n->args[0]->kind == QN_MSEL &&
        (strcmp(f->name, "rate") == 0 || strcmp(f->name, "increase") == 0 ||
         strcmp(f->name, "delta") == 0)) {
        struct ql_node *v = n->args[0]->lhs;
        if (v->anchored)
            v->anchored |= 2;
        if (v->smoothed)
            v->smoothed |= 2;
    }
    return n;
}

/* offset / @ / [range] / [range:step] after a primary. */
/* Go's %f of a float64 (fmt): +Inf / -Inf / NaN spelled Go's way. */
static const char *go_fmt_f(struct parser *p, double v)
{
    if (isnan(v))
        return "NaN";
    if (isinf(v))
        return v > 0 ? "+Inf" : "-Inf";
    return ql_printf(p->a, "%f", v);
}

static struct ql_node *parse_postfix(struct parser *p, struct ql_node *e)
{
    for (;;) {
        if (p->tk == T_LBRACK) {
            size_t bpos = p->tpos;
            next(p);
            size_t rpos = p->tpos;
            if (p->tk == T_RBRACK || p->tk == T_COLON || p->tk == T_COMMA)
                unexpected(p, "in subquery or range selector, expected number, duration, step(), "
                              "or range()");
            struct ql_dur *rd = parse_dur_expr(p, 0, "in subquery or range selector, expected "
                                                     "number, duration, step(), or range()");
            struct ql_dur *rsrc = dur_src(rd);
            int64_t range = 0;
            int rconst = dur_fold(p, rd, &range);
            /* only a literal must be positive here; a computed range is checked when the
             * query runs (as Prometheus' positive_duration_expr) */
            if (rconst && range <= 0 && (rd->op != QD_NUM || rd->wrapped))
                rconst = 0;
            if (rconst)
                rd = NULL;
            else
                range = 1; /* resolved per query */
            if (rconst && range <= 0)
                aerr(p, rpos, "duration must be greater than 0");
            if (p->tk == T_COLON) {
                next(p);
                int64_t step = 0;
                struct ql_dur *sd = NULL, *ssrc = NULL;
                if (p->tk != T_RBRACK) {
                    size_t spos = p->tpos;
                    if (p->tk != T_NUM && p->tk != T_DUR && p->tk != T_LPAREN &&
                        p->tk != T_IDENT && p->tk != T_ADD && p->tk != T_SUB)
                        unexpected(p, "in subquery selector, expected number, duration, step(), "
                                      "range(), or \"]\"");
                    sd = parse_dur_expr(p, 0, "in subquery selector, expected number, duration, "
                                              "step(), range(), or \"]\"");
                    ssrc = dur_src(sd);
                    if (dur_fold(p, sd, &step) &&
                        (step > 0 || (sd->op == QD_NUM && !sd->wrapped))) {
                        if (step <= 0)
                            aerr(p, spos, "duration must be greater than 0");
                        sd = NULL;
                    } else {
                        step = 0; /* resolved per query */
                    }
                }
                expect(p, T_RBRACK, "in subquery selector, expected \"]\"");
                if (e->type != MTD_QL_VECTOR)
                    cerr(p, (size_t)e->pos, "subquery is only allowed on instant vector, got %s "
                                            "instead", e->type == MTD_QL_MATRIX ? "matrix" :
                                                       type_str(e->type));
                struct ql_node *s = node(p, QN_SUBQ, (size_t)e->pos);
                s->lhs = e;
                s->range = range > 0 ? range : 1;
                s->step = step;
                s->range_expr = rd;
                s->step_expr = sd;
                s->range_src = rsrc;
                s->step_src = ssrc;
                s->type = MTD_QL_MATRIX;
                e = s;
            } else {
                expect(p, T_RBRACK, "in subquery or range, expected \":\" or \"]\"");
                if (e->kind != QN_VSEL)
                    aerr(p, bpos, "ranges only allowed for vector selectors");
                else if (e->offset != 0 || e->offset_expr)
                    aerr(p, bpos, "no offset modifiers allowed before range");
                else if (e->at_kind != QAT_NONE)
                    aerr(p, bpos, "no @ modifiers allowed before range");
                if (e->kind != QN_VSEL) {
                    e->type = MTD_QL_MATRIX; /* reported; keeps the tree well-formed */
                    continue;
                }
                struct ql_node *m = node(p, QN_MSEL, (size_t)e->pos);
                m->lhs = e;
                m->range = range > 0 ? range : 1;
                m->range_expr = rd;
                m->range_src = rsrc;
                m->type = MTD_QL_MATRIX;
                e = m;
            }
        } else if (tok_is(p, "anchored") || tok_is(p, "smoothed")) {
            /* extended range selector modifiers (Prometheus 3, experimental) */
            struct ql_node *t = e->kind == QN_MSEL ? e->lhs : e;
            int anch = tok_is(p, "anchored");
            if (e->kind == QN_SUBQ)
                aerr(p, (size_t)e->pos, "%s modifier is not supported for subqueries",
                     anch ? "anchored" : "smoothed");
            else if (t->kind != QN_VSEL || (anch && e->kind != QN_MSEL))
                perr(p, p->tpos, "%s modifier must be preceded by a %s", anch ? "anchored" :
                     "smoothed", anch ? "range vector selector" :
                     "vector selector or range vector selector");
            else if (t->anchored || t->smoothed)
                aerr(p, (size_t)e->pos, "anchored and smoothed modifiers cannot be used "
                                        "together");
            if (t->kind == QN_VSEL) {
                t->anchored = anch;
                t->smoothed = !anch;
            }
            next(p);
        } else if (tok_is(p, "offset")) {
            next(p);
            struct ql_dur *od = parse_offset_dur(p, "in offset, expected number, duration, "
                                                    "step(), or range()");
            struct ql_dur *osrc = dur_src(od);
            int64_t off = 0;
            if (dur_fold(p, od, &off))
                od = NULL;
            struct ql_node *t = e->kind == QN_MSEL ? e->lhs : e;
            if (t->kind != QN_VSEL && t->kind != QN_SUBQ)
                aerr(p, (size_t)e->pos, "offset modifier must be preceded by an instant vector "
                                        "selector or range vector selector or a subquery");
            else if (t->offset != 0 || t->offset_expr)
                aerr(p, (size_t)e->pos, "offset may not be set multiple times");
            else {
                t->offset = off;
                t->offset_expr = od;
                t->offset_src = osrc;
            }
        } else if (p->tk == T_AT) {
            next(p);
            struct ql_node *t = e->kind == QN_MSEL ? e->lhs : e;
            int ok = 1;
            if (t->kind != QN_VSEL && t->kind != QN_SUBQ) {
                ok = 0;
            } else if (t->at_kind != QAT_NONE) {
                ok = 0;
            }
            const char *why = t->kind != QN_VSEL && t->kind != QN_SUBQ ?
                              "@ modifier must be preceded by an instant vector selector or "
                              "range vector selector or a subquery" :
                              "@ <timestamp> may not be set multiple times";
            if (tok_is(p, "start") || tok_is(p, "end")) {
                enum ql_at k = tok_is(p, "start") ? QAT_START : QAT_END;
                next(p);
                expect(p, T_LPAREN, "in @, expected timestamp");
                expect(p, T_RPAREN, "in @, expected timestamp");
                if (!ok)
                    aerr(p, (size_t)e->pos, "%s", why);
                else
                    t->at_kind = k;
            } else {
                int neg = 0;
                if (p->tk == T_SUB || p->tk == T_ADD) {
                    neg = p->tk == T_SUB;
                    next(p);
                }
                if (p->tk != T_NUM && p->tk != T_DUR)
                    unexpected(p, "in @, expected timestamp");
                double v = p->tk == T_DUR ? tok_num(p) / 1000.0 : tok_num(p);
                if (neg)
                    v = -v;
                next(p);
                if (!isfinite(v) || v >= 9.223372036854775807e18 || v <= -9.223372036854775807e18)
                    aerr(p, (size_t)e->pos, "timestamp out of bounds for @ modifier: %s",
                         go_fmt_f(p, v));
                if (!ok) {
                    aerr(p, (size_t)e->pos, "%s", why);
                } else {
                    t->at_kind = QAT_TS;
                    double ms = isfinite(v) ? v * 1000.0 : 0;
                    t->at = ms >= 9.2e18 ? INT64_MAX : ms <= -9.2e18 ? INT64_MIN :
                            (int64_t)llround(ms);
                }
            }
        } else {
            return e;
        }
    }
}

static struct ql_node *parse_primary(struct parser *p)
{
    size_t pos = p->tpos;
    struct ql_node *n;
    switch (p->tk) {
    case T_NUM:
        n = node(p, QN_NUM, pos);
        n->num = tok_num(p);
        n->type = MTD_QL_SCALAR;
        next(p);
        return n;
    case T_DUR:
        n = node(p, QN_NUM, pos);
        n->num = tok_num(p) / 1000.0;
        n->type = MTD_QL_SCALAR;
        next(p);
        return n;
    case T_STR:
        n = node(p, QN_STR, pos);
        n->str = p->str;
        n->type = MTD_QL_STRING;
        next(p);
        return n;
    case T_LPAREN:
        next(p);
        n = node(p, QN_PAREN, pos);
        n->lhs = parse_expr(p, 0);
        n->type = n->lhs->type;
        expect(p, T_RPAREN, NULL);
        return n;
    case T_LBRACE:
        return parse_vsel(p, NULL, pos);
    case T_IDENT: {
        enum ql_agg agg;
        /* Look ahead: '(' after an identifier makes a call or aggregation. */
        size_t save = p->pos;
        while (save < p->len && is_space((unsigned char)p->src[save]))
            save++;
        int paren = save < p->len && p->src[save] == '(';
        if (p->tw == W_AGGR && is_aggr(p, &agg)) {
            size_t q = save;
            int grouping = 0;
            if (!paren) {
                /* sum by (x) (...) / sum without (x) (...) */
                if ((p->len - q >= 2 && strncasecmp(p->src + q, "by", 2) == 0 &&
                     (q + 2 >= p->len || !is_ident_char((unsigned char)p->src[q + 2]))) ||
                    (p->len - q >= 7 && strncasecmp(p->src + q, "without", 7) == 0 &&
                     (q + 7 >= p->len || !is_ident_char((unsigned char)p->src[q + 7]))))
                    grouping = 1;
            }
            if (paren || grouping)
                return parse_aggr(p, agg, pos);
        }
        const struct ql_func *pf = NULL;
        if (paren && p->tw == W_PREPROC) /* 3.x's step() / range() / start() / end() */
            pf = ql_func_lookup(p->src + p->tpos, p->tlen);
        if (pf && strlen(pf->name) == p->tlen && strncmp(pf->name, p->src + p->tpos, p->tlen) == 0)
            return parse_call(p, pf, pos);
        if (paren && p->tw == W_IDENT) {
            const struct ql_func *f = ql_func_lookup(p->src + p->tpos, p->tlen);
            if (f && (strlen(f->name) != p->tlen || strncmp(f->name, p->src + p->tpos, p->tlen)))
                f = NULL; /* function names are case-sensitive */
            if (!f) {
                /* reported when the call is complete (errors inside come first) */
                const char *fname = go_quote(p, p->src + p->tpos, p->tlen, 0);
                next(p);
                struct ql_node **args = NULL;
                size_t nargs = 0, cap = 0;
                parse_args(p, &args, &nargs, &cap, 0, NULL, NULL);
                aerr(p, pos, "unknown function with name %s", fname);
                n = node(p, QN_NUM, pos); /* never evaluated: the error is reported */
                n->type = MTD_QL_VECTOR;
                return n;
            }
            return parse_call(p, f, pos);
        }
        /* metric_identifier: identifiers and the keywords the grammar lets name a metric */
        if (p->tw == W_KEYWORD && !tok_is(p, "by") && !tok_is(p, "without") &&
            !tok_is(p, "offset") && !tok_is(p, "anchored") && !tok_is(p, "smoothed"))
            unexpected(p, NULL);
        if (p->tw == W_OPER && tok_is(p, "atan2"))
            unexpected(p, NULL);
        char *name = tok_text(p);
        next(p);
        return parse_vsel(p, name, pos);
    }
    default:
        unexpected(p, NULL);
    }
}

static struct ql_node *parse_unary(struct parser *p)
{
    if (p->tk == T_SUB || p->tk == T_ADD) {
        size_t pos = p->tpos;
        int neg = p->tk == T_SUB;
        next(p);
        struct ql_node *e = parse_expr(p, 6);
        if (e->kind == QN_NUM) {
            if (neg)
                e->num = -e->num;
            e->pos = (int)pos;
            return e;
        }
        if (e->type != MTD_QL_SCALAR && e->type != MTD_QL_VECTOR)
            cerr(p, pos, "unary expression only allowed on expressions of type scalar or "
                         "instant vector, got \"%s\"", e->type == MTD_QL_MATRIX ? "range vector"
                                                                               : "string");
        /* "+x" evaluates as x (name kept, as Prometheus' engine): a QN_PAREN marked with
         * op QOP_ADD, which the evaluator treats as parentheses and the printer as "+" */
        struct ql_node *n = node(p, neg ? QN_UNARY : QN_PAREN, pos);
        n->op = neg ? QOP_SUB : QOP_ADD;
        n->lhs = e;
        n->type = e->type;
        return n;
    }
    return parse_postfix(p, parse_primary(p));
}

/* Binary operator fill modifiers (Prometheus 3, experimental): fill(v), fill_left(v),
 * fill_right(v) after bool/on/ignoring/group_*: a series missing on one side is matched by a
 * sample of value v. An identifier fill* not followed by "(" is a metric name. */
static void parse_fill(struct parser *p, struct ql_node *n)
{
    for (;;) {
        int which;
        if (tok_is(p, "fill"))
            which = 3;
        else if (tok_is(p, "fill_left"))
            which = 1;
        else if (tok_is(p, "fill_right"))
            which = 2;
        else
            return;
        size_t la = p->pos;
        while (la < p->len && isspace((unsigned char)p->src[la]))
            la++;
        if (la >= p->len || p->src[la] != '(')
            return;
        size_t fpos = p->tpos;
        if (((which & 1) && n->fill_l) || ((which & 2) && n->fill_r))
            perr(p, fpos, "fill modifier may not be set multiple times");
        next(p);
        expect(p, T_LPAREN, "in fill modifier, expected \"(\"");
        int neg = 0;
        if (p->tk == T_SUB || p->tk == T_ADD) {
            neg = p->tk == T_SUB;
            next(p);
        }
        double v;
        if (p->tk == T_NUM)
            v = p->num;
        else if (tok_is(p, "inf"))
            v = INFINITY;
        else if (tok_is(p, "nan"))
            v = NAN;
        else
            unexpected(p, "in fill modifier, expected number");
        next(p);
        expect(p, T_RPAREN, "in fill modifier, expected \")\"");
        if (neg)
            v = -v;
        if (which & 1) {
            n->fill_l = 1;
            n->fill_lv = v;
        }
        if (which & 2) {
            n->fill_r = 1;
            n->fill_rv = v;
        }
    }
}

static struct ql_node *parse_expr_at(struct parser *p, int minprec)
{
    struct ql_node *lhs = parse_unary(p);
    for (;;) {
        enum ql_op op = binop_of(p);
        if (op == QOP_NONE || prec(op) < minprec)
            return lhs;
        size_t oppos = p->tpos;
        next(p);
        struct ql_node *n = node(p, QN_BINARY, lhs->pos);
        n->op = op;
        n->lhs = lhs;
        if (tok_is(p, "bool")) {
            n->bool_mod = 1;
            next(p);
        }
        if (tok_is(p, "on") || tok_is(p, "ignoring")) {
            n->on = tok_is(p, "on");
            n->has_matching = 1;
            next(p);
            parse_label_list(p, &n->mlabels, &n->nmlabels);
            if (tok_is(p, "group_left") || tok_is(p, "group_right")) {
                n->card = tok_is(p, "group_left") ? QC_MANY_ONE : QC_ONE_MANY;
                next(p);
                if (p->tk == T_LPAREN)
                    parse_label_list(p, &n->include, &n->ninclude);
                else if (!(p->tk == T_IDENT && (p->tw != W_KEYWORD || tok_is(p, "fill") ||
                                                tok_is(p, "fill_left") ||
                                                tok_is(p, "fill_right"))) && p->tk != T_NUM &&
                         p->tk != T_DUR && p->tk != T_STR && p->tk != T_LBRACE &&
                         p->tk != T_ADD && p->tk != T_SUB)
                    unexpected(p, "in grouping opts, expected \"(\"");
            }
        } else if (tok_is(p, "group_left") || tok_is(p, "group_right")) {
            unexpected(p, NULL);
        }
        parse_fill(p, n);
        n->rhs = parse_expr(p, op == QOP_POW ? prec(op) : prec(op) + 1);
        set_type_check_binary(p, n, oppos);
        lhs = n;
    }
}

static struct ql_node *parse_expr(struct parser *p, int minprec)
{
    if (++p->depth > MTD_QL_MAX_DEPTH)
        perr(p, p->tpos, "expression nested too deeply (limit %d levels)", MTD_QL_MAX_DEPTH);
    struct ql_node *n = parse_expr_at(p, minprec);
    p->depth--;
    return n;
}

/* Height of the tree under n, counting at most up to limit + 1 (so the walk itself is bounded
 * by the limit). Chained binary operators nest on the left without parser recursion. */
static int tree_height(const struct ql_node *n, int limit)
{
    if (n == NULL || limit < 0)
        return 0;
    int h = tree_height(n->lhs, limit - 1);
    int r = tree_height(n->rhs, limit - 1);
    if (r > h)
        h = r;
    r = tree_height(n->param, limit - 1);
    if (r > h)
        h = r;
    for (size_t i = 0; i < n->nargs && h <= limit; i++) {
        r = tree_height(n->args[i], limit - 1);
        if (r > h)
            h = r;
    }
    return h + 1;
}

static int do_parse(const char *query, size_t max_re, struct mtd_ql_expr **out,
                    struct obs_err *err)
{
    struct mtd_ql_expr *e = obs_calloc(1, sizeof(*e));
    if (!e)
        return obs_err_set(err, OBS_ENOMEM, "out of memory");
    jmp_buf jb;
    ql_arena_init(&e->arena, &jb, err);
    struct parser p;
    memset(&p, 0, sizeof(p));
    p.a = &e->arena;
    p.max_re = max_re ? max_re : MTD_QL_MAX_REGEX_LEN;
    if (setjmp(jb)) {
        int code = err->code ? err->code : OBS_EINVAL;
        ql_arena_deinit(&e->arena);
        obs_free(e);
        return code;
    }
    p.src = ql_strdup(p.a, query);
    p.len = strlen(query);
    e->text = (char *)p.src;
    next(&p);
    if (p.tk == T_EOF)
        perr(&p, 0, "no expression found in input");
    e->root = parse_expr(&p, 0);
    if (p.tk != T_EOF)
        unexpected(&p, NULL);
    if (p.aerr)
        throw_at(&p, p.aerr_at, p.aerr);
    if (p.cerr)
        throw_at(&p, p.cerr_at, p.cerr);
    if (tree_height(e->root, MTD_QL_MAX_DEPTH) > MTD_QL_MAX_DEPTH)
        perr(&p, 0, "expression nested too deeply (limit %d levels)", MTD_QL_MAX_DEPTH);
    e->nsel = p.nsel;
    e->arena.jb = NULL;
    *out = e;
    return 0;
}

int mtd_ql_parse(const char *query, struct mtd_ql_expr **out, struct obs_err *err)
{
    struct obs_err local;
    if (!err)
        err = &local;
    obs_err_clear(err);
    return do_parse(query, 0, out, err);
}

int mtd_ql_parse_ex(const char *query, size_t max_regex_len, struct mtd_ql_expr **out,
                    struct obs_err *err)
{
    struct obs_err local;
    if (!err)
        err = &local;
    obs_err_clear(err);
    return do_parse(query, max_regex_len, out, err);
}

void mtd_ql_expr_free(struct mtd_ql_expr *e)
{
    if (!e)
        return;
    ql_arena_deinit(&e->arena);
    obs_free(e);
}

enum mtd_ql_vtype mtd_ql_expr_type(const struct mtd_ql_expr *e)
{
    return e->root->type;
}

const char *mtd_ql_type_name(enum mtd_ql_vtype t)
{
    switch (t) {
    case MTD_QL_SCALAR: return "scalar";
    case MTD_QL_VECTOR: return "vector";
    case MTD_QL_MATRIX: return "matrix";
    case MTD_QL_STRING: return "string";
    default: return "none";
    }
}
