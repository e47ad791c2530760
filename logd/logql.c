/*
 * logql.c -- LogQL lexer and recursive-descent parser (see logql.h for the grammar).
 *
 * The lexer produces one token at a time with its 1-based line/col, so syntax errors read
 * like Loki's goyacc ones: "parse error at line 1, col 5: syntax error: unexpected }".
 * Binary operators use precedence climbing with Prometheus' precedence:
 *   or < and,unless < comparisons < + - < * / % < ^ (right-assoc).
 * Regexes are PCRE2: label matchers fully anchored ^(?:re)$, line filters unanchored.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "logd/logql.h"

#include <ctype.h>
#include <math.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/obs_mem.h"
#include "core/obs_time.h"

enum tok_type {
    T_EOF, T_LBRACE, T_RBRACE, T_LPAREN, T_RPAREN, T_LBRACK, T_RBRACK, T_COMMA,
    T_EQ, T_NEQ, T_RE, T_NRE, T_PIPE_EXACT, T_PIPE_MATCH, T_PIPE,
    T_GT, T_GTE, T_LT, T_LTE, T_CMP_EQ, T_ADD, T_SUB, T_MUL, T_DIV, T_MOD, T_POW,
    T_STRING, T_IDENT, T_NUMBER, T_DURATION, T_BAD,
};

struct tok {
    enum tok_type type;
    const char *p;  /* start in the query */
    size_t len;
    int line, col;
    char *s;        /* T_STRING: unquoted value (owned by the parser until taken) */
    size_t slen;
    double num;     /* T_NUMBER */
    int64_t dur_ns; /* T_DURATION */
};

struct parser {
    const char *q;
    size_t qlen;
    size_t pos;
    int line, col;     /* position of pos */
    struct tok t;      /* current token */
    struct obs_err *err;
    int failed;
};

/* --- errors ------------------------------------------------------------------------------ */

static const char *tok_name(const struct tok *t, char *buf, size_t cap)
{
    switch (t->type) {
    case T_EOF: return "$end";
    case T_STRING: return "STRING";
    case T_IDENT: return "IDENTIFIER";
    case T_NUMBER: return "NUMBER";
    case T_DURATION: return "RANGE";
    default:
        snprintf(buf, cap, "%.*s", (int)(t->len > 20 ? 20 : t->len), t->p);
        return buf;
    }
}

static int syntax_err(struct parser *ps, const char *expecting)
{
    if (ps->failed)
        return OBS_EINVAL;
    char b[32];
    ps->failed = 1;
    if (ps->t.type == T_BAD)
        return obs_err_set(ps->err, OBS_EINVAL, "parse error at line %d, col %d: %s",
                           ps->t.line, ps->t.col, ps->t.s ? ps->t.s : "invalid token");
    if (expecting)
        return obs_err_set(ps->err, OBS_EINVAL,
                           "parse error at line %d, col %d: syntax error: unexpected %s, "
                           "expecting %s", ps->t.line, ps->t.col, tok_name(&ps->t, b, sizeof(b)),
                           expecting);
    return obs_err_set(ps->err, OBS_EINVAL,
                       "parse error at line %d, col %d: syntax error: unexpected %s", ps->t.line,
                       ps->t.col, tok_name(&ps->t, b, sizeof(b)));
}

static int sem_err(struct parser *ps, const char *msg)
{
    if (ps->failed)
        return OBS_EINVAL;
    ps->failed = 1;
    return obs_err_set(ps->err, OBS_EINVAL, "parse error : %s", msg);
}

/* --- strings ----------------------------------------------------------------------------- */

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

static void put_utf8(struct obs_sbuf *b, uint32_t cp)
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
    } else {
        u[0] = (char)(0xf0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
        u[3] = (char)(0x80 | (cp & 0x3f));
        obs_sbuf_append(b, u, 4);
    }
}

int lgd_go_unquote(const char *s, size_t len, char **out, size_t *outlen, size_t *consumed)
{
    if (len < 2 || (s[0] != '"' && s[0] != '`'))
        return OBS_EINVAL;
    struct obs_sbuf b;
    obs_sbuf_init(&b);
    char q = s[0];
    size_t i = 1;
    for (;;) {
        if (i >= len) {
            obs_sbuf_deinit(&b);
            return OBS_EINVAL;
        }
        char c = s[i];
        if (c == q) {
            i++;
            break;
        }
        if (q == '`') {
            obs_sbuf_putc(&b, c);
            i++;
            continue;
        }
        if (c == '\n') {
            obs_sbuf_deinit(&b);
            return OBS_EINVAL;
        }
        if (c != '\\') {
            obs_sbuf_putc(&b, c);
            i++;
            continue;
        }
        if (i + 1 >= len) {
            obs_sbuf_deinit(&b);
            return OBS_EINVAL;
        }
        char e = s[i + 1];
        i += 2;
        switch (e) {
        case 'n': obs_sbuf_putc(&b, '\n'); break;
        case 't': obs_sbuf_putc(&b, '\t'); break;
        case 'r': obs_sbuf_putc(&b, '\r'); break;
        case 'a': obs_sbuf_putc(&b, '\a'); break;
        case 'b': obs_sbuf_putc(&b, '\b'); break;
        case 'f': obs_sbuf_putc(&b, '\f'); break;
        case 'v': obs_sbuf_putc(&b, '\v'); break;
        case '\\': obs_sbuf_putc(&b, '\\'); break;
        case '"': obs_sbuf_putc(&b, '"'); break;
        case '\'': obs_sbuf_putc(&b, '\''); break;
        case 'x':
        case 'u':
        case 'U': {
            int nd = e == 'x' ? 2 : e == 'u' ? 4 : 8;
            uint32_t v = 0;
            for (int k = 0; k < nd; k++) {
                int h = i + k < len ? hexval((unsigned char)s[i + k]) : -1;
                if (h < 0) {
                    obs_sbuf_deinit(&b);
                    return OBS_EINVAL;
                }
                v = v * 16 + (uint32_t)h;
            }
            i += (size_t)nd;
            if (e == 'x')
                obs_sbuf_putc(&b, (char)v);
            else if (v > 0x10ffff) {
                obs_sbuf_deinit(&b);
                return OBS_EINVAL;
            } else
                put_utf8(&b, v);
            break;
        }
        default:
            if (e >= '0' && e <= '7' && i + 1 < len) {
                int v = (e - '0') * 64 + (s[i] - '0') * 8 + (s[i + 1] - '0');
                if (s[i] < '0' || s[i] > '7' || s[i + 1] < '0' || s[i + 1] > '7' || v > 255) {
                    obs_sbuf_deinit(&b);
                    return OBS_EINVAL;
                }
                obs_sbuf_putc(&b, (char)v);
                i += 2;
                break;
            }
            obs_sbuf_deinit(&b);
            return OBS_EINVAL;
        }
    }
    obs_sbuf_putc(&b, '\0'); /* make p non-NULL even for "" */
    if (b.oom) {
        obs_sbuf_deinit(&b);
        return OBS_ENOMEM;
    }
    size_t n;
    char *p = obs_sbuf_take(&b, &n);
    *out = p;
    *outlen = n - 1;
    *consumed = i;
    return 0;
}

/* --- lexer ------------------------------------------------------------------------------- */

static void advance(struct parser *ps, size_t n)
{
    for (size_t i = 0; i < n && ps->pos < ps->qlen; i++, ps->pos++) {
        if (ps->q[ps->pos] == '\n') {
            ps->line++;
            ps->col = 1;
        } else {
            ps->col++;
        }
    }
}

static int is_ident_start(int c) { return isalpha(c) || c == '_'; }
static int is_ident(int c) { return isalnum(c) || c == '_'; }

/* Duration like 5m, 1h30m, 250ms, 1.5s -> ns; returns bytes used or 0. */
size_t lgd_duration_lex(const char *s, size_t len, int64_t *ns)
{
    size_t i = 0;
    double total = 0;
    int parts = 0;
    while (i < len && (isdigit((unsigned char)s[i]) || s[i] == '.')) {
        size_t st = i;
        while (i < len && (isdigit((unsigned char)s[i]) || s[i] == '.'))
            i++;
        double v = strtod(s + st, NULL);
        size_t us = i;
        while (i < len && isalpha((unsigned char)s[i]))
            i++;
        size_t ul = i - us;
        const char *u = s + us;
        double mul;
        if (ul == 2 && !memcmp(u, "ns", 2))
            mul = 1;
        else if (ul == 2 && (!memcmp(u, "us", 2)))
            mul = 1e3;
        else if (ul == 2 && !memcmp(u, "ms", 2))
            mul = 1e6;
        else if (ul == 1 && *u == 's')
            mul = 1e9;
        else if (ul == 1 && *u == 'm')
            mul = 60e9;
        else if (ul == 1 && *u == 'h')
            mul = 3600e9;
        else if (ul == 1 && *u == 'd')
            mul = 86400e9;
        else if (ul == 1 && *u == 'w')
            mul = 7 * 86400e9;
        else if (ul == 1 && *u == 'y')
            mul = 365 * 86400e9;
        else
            return 0;
        total += v * mul;
        parts++;
    }
    if (!parts || !(total >= -9.2e18 && total <= 9.2e18))
        return 0;
    *ns = (int64_t)total;
    return i;
}

static void tok_clear(struct tok *t)
{
    obs_free(t->s);
    memset(t, 0, sizeof(*t));
}

static void next(struct parser *ps)
{
    tok_clear(&ps->t);
    while (ps->pos < ps->qlen && isspace((unsigned char)ps->q[ps->pos]))
        advance(ps, 1);
    /* Comments: # to end of line. */
    while (ps->pos < ps->qlen && ps->q[ps->pos] == '#') {
        while (ps->pos < ps->qlen && ps->q[ps->pos] != '\n')
            advance(ps, 1);
        while (ps->pos < ps->qlen && isspace((unsigned char)ps->q[ps->pos]))
            advance(ps, 1);
    }
    struct tok *t = &ps->t;
    t->line = ps->line;
    t->col = ps->col;
    t->p = ps->q + ps->pos;
    if (ps->pos >= ps->qlen) {
        t->type = T_EOF;
        return;
    }
    const char *s = ps->q + ps->pos;
    size_t rem = ps->qlen - ps->pos;
    char c = s[0], c1 = rem > 1 ? s[1] : 0;
    size_t n = 1;
    switch (c) {
    case '{': t->type = T_LBRACE; break;
    case '}': t->type = T_RBRACE; break;
    case '(': t->type = T_LPAREN; break;
    case ')': t->type = T_RPAREN; break;
    case '[': t->type = T_LBRACK; break;
    case ']': t->type = T_RBRACK; break;
    case ',': t->type = T_COMMA; break;
    case '+': t->type = T_ADD; break;
    case '*': t->type = T_MUL; break;
    case '/': t->type = T_DIV; break;
    case '%': t->type = T_MOD; break;
    case '^': t->type = T_POW; break;
    case '=':
        if (c1 == '~') { t->type = T_RE; n = 2; }
        else if (c1 == '=') { t->type = T_CMP_EQ; n = 2; }
        else t->type = T_EQ;
        break;
    case '!':
        if (c1 == '=') { t->type = T_NEQ; n = 2; }
        else if (c1 == '~') { t->type = T_NRE; n = 2; }
        else t->type = T_BAD;
        break;
    case '|':
        if (c1 == '=') { t->type = T_PIPE_EXACT; n = 2; }
        else if (c1 == '~') { t->type = T_PIPE_MATCH; n = 2; }
        else t->type = T_PIPE;
        break;
    case '>':
        if (c1 == '=') { t->type = T_GTE; n = 2; } else t->type = T_GT;
        break;
    case '<':
        if (c1 == '=') { t->type = T_LTE; n = 2; } else t->type = T_LT;
        break;
    case '-':
        t->type = T_SUB;
        break;
    case '"':
    case '`': {
        size_t used, sl;
        char *v;
        int rc = lgd_go_unquote(s, rem, &v, &sl, &used);
        if (rc != 0) {
            t->type = T_BAD;
            t->s = obs_strdup(rc == OBS_ENOMEM ? "out of memory" : "invalid quoted string");
            n = 1;
            break;
        }
        t->type = T_STRING;
        t->s = v;
        t->slen = sl;
        n = used;
        break;
    }
    default:
        if (isdigit((unsigned char)c) || (c == '.' && isdigit((unsigned char)c1))) {
            int64_t ns;
            size_t dl = lgd_duration_lex(s, rem, &ns);
            size_t j = 0;
            while (j < rem && (isalnum((unsigned char)s[j]) || s[j] == '.'))
                j++;
            if (dl && dl == j) {
                t->type = T_DURATION;
                t->dur_ns = ns;
                n = dl;
                break;
            }
            char *end;
            char tmp[64];
            size_t k = 0;
            while (k < rem && k < sizeof(tmp) - 1 &&
                   (isalnum((unsigned char)s[k]) || s[k] == '.' ||
                    ((s[k] == '+' || s[k] == '-') && k > 0 && (s[k - 1] == 'e' || s[k - 1] == 'E'))))
                k++;
            memcpy(tmp, s, k);
            tmp[k] = '\0';
            t->num = strtod(tmp, &end);
            if (end == tmp || *end) {
                t->type = T_BAD;
                t->s = obs_strdup("syntax error: invalid number");
                n = k ? k : 1;
                break;
            }
            t->type = T_NUMBER;
            n = k;
            break;
        }
        if (is_ident_start((unsigned char)c)) {
            while (n < rem && is_ident((unsigned char)s[n]))
                n++;
            t->type = T_IDENT;
            break;
        }
        t->type = T_BAD;
        t->s = obs_strdup("syntax error: unexpected character");
    }
    t->len = n;
    advance(ps, n);
}

static int tok_is(const struct parser *ps, const char *ident)
{
    return ps->t.type == T_IDENT && ps->t.len == strlen(ident) &&
           memcmp(ps->t.p, ident, ps->t.len) == 0;
}

static char *tok_ident(const struct parser *ps)
{
    return obs_strndup(ps->t.p, ps->t.len);
}

/* --- AST lifecycle ----------------------------------------------------------------------- */

static void stage_deinit(struct lgd_stage *s)
{
    obs_free(s->str);
    obs_free(s->label);
    if (s->md)
        pcre2_match_data_free(s->md);
    if (s->re)
        pcre2_code_free(s->re);
    if (s->m.name)
        lgd_matcher_deinit(&s->m);
}

static void logsel_deinit(struct lgd_logsel *l)
{
    for (size_t i = 0; i < l->nm; i++)
        lgd_matcher_deinit(&l->m[i]);
    obs_free(l->m);
    for (size_t i = 0; i < l->nst; i++)
        stage_deinit(&l->st[i]);
    obs_free(l->st);
    obs_free(l->unwrap);
    memset(l, 0, sizeof(*l));
}

void lgd_expr_free(struct lgd_expr *e)
{
    if (!e)
        return;
    logsel_deinit(&e->log);
    for (size_t i = 0; i < e->ngrp; i++)
        obs_free(e->grp[i]);
    obs_free(e->grp);
    lgd_expr_free(e->a);
    lgd_expr_free(e->b);
    obs_free(e);
}

int lgd_expr_is_log(const struct lgd_expr *e) { return e && e->kind == LGD_E_LOG; }

static struct lgd_expr *expr_new(struct parser *ps, enum lgd_expr_kind k)
{
    struct lgd_expr *e = obs_calloc(1, sizeof(*e));
    if (!e && !ps->failed) {
        ps->failed = 1;
        obs_err_set(ps->err, OBS_ENOMEM, "out of memory");
    }
    if (e)
        e->kind = k;
    return e;
}

static int oom(struct parser *ps)
{
    if (!ps->failed) {
        ps->failed = 1;
        obs_err_set(ps->err, OBS_ENOMEM, "out of memory");
    }
    return OBS_ENOMEM;
}

/* --- selector and pipeline --------------------------------------------------------------- */

/* Parse `{ name op "value", ... }` into matchers. Current token is '{'. */
static int parse_selector(struct parser *ps, struct lgd_matcher **out, size_t *nout)
{
    struct lgd_matcher *m = NULL;
    size_t n = 0, cap = 0;
    next(ps);
    while (ps->t.type != T_RBRACE) {
        if (ps->t.type != T_IDENT)
            goto syn_ident;
        char *name = tok_ident(ps);
        if (!name)
            goto nomem;
        next(ps);
        enum lgd_mtype type;
        switch (ps->t.type) {
        case T_EQ: type = LGD_M_EQ; break;
        case T_NEQ: type = LGD_M_NEQ; break;
        case T_RE: type = LGD_M_RE; break;
        case T_NRE: type = LGD_M_NRE; break;
        default:
            obs_free(name);
            syntax_err(ps, "= or =~ or !~ or !=");
            goto fail;
        }
        next(ps);
        if (ps->t.type != T_STRING) {
            obs_free(name);
            syntax_err(ps, "STRING");
            goto fail;
        }
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 4;
            struct lgd_matcher *nm = obs_realloc(m, nc * sizeof(*nm));
            if (!nm) {
                obs_free(name);
                goto nomem;
            }
            m = nm;
            cap = nc;
        }
        struct obs_err e2;
        obs_err_clear(&e2);
        int rc = lgd_matcher_init(&m[n], type, name, ps->t.s, &e2);
        obs_free(name);
        if (rc != 0) {
            ps->failed = 1;
            obs_err_set(ps->err, rc, "parse error : %s", e2.msg);
            goto fail;
        }
        n++;
        next(ps);
        if (ps->t.type == T_COMMA) {
            next(ps);
            continue;
        }
        if (ps->t.type != T_RBRACE) {
            syntax_err(ps, ", or }");
            goto fail;
        }
    }
    next(ps);
    *out = m;
    *nout = n;
    return 0;
syn_ident:
    syntax_err(ps, "IDENTIFIER");
    goto fail;
nomem:
    oom(ps);
fail:
    for (size_t i = 0; i < n; i++)
        lgd_matcher_deinit(&m[i]);
    obs_free(m);
    return OBS_EINVAL;
}

static struct lgd_stage *stage_add(struct parser *ps, struct lgd_logsel *l,
                                   enum lgd_stage_kind kind)
{
    struct lgd_stage *ns = obs_realloc(l->st, (l->nst + 1) * sizeof(*ns));
    if (!ns) {
        oom(ps);
        return NULL;
    }
    l->st = ns;
    struct lgd_stage *s = &ns[l->nst++];
    memset(s, 0, sizeof(*s));
    s->kind = kind;
    return s;
}

static int compile_line_re(struct parser *ps, struct lgd_stage *s)
{
    int ec;
    PCRE2_SIZE off;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)s->str, s->len,
                                   PCRE2_UTF | PCRE2_MATCH_INVALID_UTF, &ec, &off, NULL);
    if (!re) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(ec, msg, sizeof(msg));
        ps->failed = 1;
        return obs_err_set(ps->err, OBS_EINVAL, "parse error : error parsing regexp: %s: `%s`",
                           (char *)msg, s->str);
    }
    s->re = re;
    s->md = pcre2_match_data_create_from_pattern(re, NULL);
    return s->md ? 0 : oom(ps);
}

/* One label filter `name op value` (current token: IDENT). */
static int parse_label_filter(struct parser *ps, struct lgd_logsel *l)
{
    char *name = tok_ident(ps);
    if (!name)
        return oom(ps);
    next(ps);
    int op = ps->t.type;
    if (op != T_EQ && op != T_NEQ && op != T_RE && op != T_NRE && op != T_GT && op != T_GTE &&
        op != T_LT && op != T_LTE && op != T_CMP_EQ) {
        obs_free(name);
        return syntax_err(ps, "= or =~ or !~ or != or > or >= or < or <= or ==");
    }
    next(ps);
    struct lgd_stage *s = stage_add(ps, l, LGD_ST_LABEL);
    if (!s) {
        obs_free(name);
        return OBS_ENOMEM;
    }
    if (ps->t.type == T_STRING && (op == T_EQ || op == T_NEQ || op == T_RE || op == T_NRE)) {
        enum lgd_mtype mt = op == T_EQ ? LGD_M_EQ : op == T_NEQ ? LGD_M_NEQ
                          : op == T_RE ? LGD_M_RE : LGD_M_NRE;
        struct obs_err e2;
        obs_err_clear(&e2);
        int rc = lgd_matcher_init(&s->m, mt, name, ps->t.s, &e2);
        obs_free(name);
        if (rc != 0) {
            ps->failed = 1;
            return obs_err_set(ps->err, rc, "parse error : %s", e2.msg);
        }
        next(ps);
        return 0;
    }
    if ((ps->t.type == T_NUMBER || ps->t.type == T_DURATION) && op != T_RE && op != T_NRE) {
        s->numeric = 1;
        s->label = name;
        s->duration = ps->t.type == T_DURATION;
        s->num = s->duration ? (double)ps->t.dur_ns / 1e9 : ps->t.num;
        s->op = op == T_EQ || op == T_CMP_EQ ? LGD_CMP_EQ : op == T_NEQ ? LGD_CMP_NE
              : op == T_GT ? LGD_CMP_GT : op == T_GTE ? LGD_CMP_GE
              : op == T_LT ? LGD_CMP_LT : LGD_CMP_LE;
        next(ps);
        return 0;
    }
    obs_free(name);
    return syntax_err(ps, op == T_RE || op == T_NRE ? "STRING" : "STRING or NUMBER or DURATION");
}

/* Pipeline stages after a selector, until a token that cannot continue it. */
static int parse_pipeline(struct parser *ps, struct lgd_logsel *l)
{
    for (;;) {
        int tt = ps->t.type;
        if (tt == T_PIPE_EXACT || tt == T_NEQ || tt == T_PIPE_MATCH || tt == T_NRE) {
            if (l->unwrap)
                return syntax_err(ps, "]");
            next(ps);
            if (ps->t.type != T_STRING)
                return syntax_err(ps, "STRING");
            struct lgd_stage *s = stage_add(ps, l, LGD_ST_LINE);
            if (!s)
                return OBS_ENOMEM;
            s->op = tt == T_PIPE_EXACT ? LGD_LF_CONTAINS : tt == T_NEQ ? LGD_LF_NCONTAINS
                  : tt == T_PIPE_MATCH ? LGD_LF_RE : LGD_LF_NRE;
            s->str = ps->t.s;
            s->len = ps->t.slen;
            ps->t.s = NULL;
            if ((s->op == LGD_LF_RE || s->op == LGD_LF_NRE) && compile_line_re(ps, s) != 0)
                return OBS_EINVAL;
            next(ps);
            continue;
        }
        if (tt != T_PIPE)
            return 0;
        if (l->unwrap)
            return syntax_err(ps, "]");
        next(ps);
        if (ps->t.type != T_IDENT)
            return syntax_err(ps, "IDENTIFIER");
        if (tok_is(ps, "json") || tok_is(ps, "logfmt")) {
            int json = tok_is(ps, "json");
            if (!stage_add(ps, l, json ? LGD_ST_JSON : LGD_ST_LOGFMT))
                return OBS_ENOMEM;
            l->has_parser = 1;
            next(ps);
            continue;
        }
        if (tok_is(ps, "unwrap")) {
            next(ps);
            if (ps->t.type != T_IDENT)
                return syntax_err(ps, "IDENTIFIER");
            l->unwrap = tok_ident(ps);
            if (!l->unwrap)
                return oom(ps);
            next(ps);
            continue;
        }
        if (tok_is(ps, "line_format")) {
            next(ps);
            if (ps->t.type != T_STRING)
                return syntax_err(ps, "STRING");
            struct lgd_stage *s = stage_add(ps, l, LGD_ST_LINEFMT);
            if (!s)
                return OBS_ENOMEM;
            s->str = ps->t.s;
            s->len = ps->t.slen;
            ps->t.s = NULL;
            next(ps);
            continue;
        }
        /* Label filters, joined by `,` or `and`. */
        for (;;) {
            if (parse_label_filter(ps, l) != 0)
                return OBS_EINVAL;
            if (ps->t.type == T_COMMA || tok_is(ps, "and")) {
                next(ps);
                if (ps->t.type != T_IDENT)
                    return syntax_err(ps, "IDENTIFIER");
                continue;
            }
            if (tok_is(ps, "or"))
                return sem_err(ps, "`or` between label filters is not supported");
            break;
        }
    }
}

static int check_selector(struct parser *ps, const struct lgd_logsel *l)
{
    for (size_t i = 0; i < l->nm; i++)
        if (!lgd_matcher_matches(&l->m[i], ""))
            return 0;
    return sem_err(ps, "queries require at least one regexp or equality matcher that does not "
                       "have an empty-compatible value. For instance, app=~\".*\" does not meet "
                       "this requirement, but app=~\".+\" will");
}

static int parse_logsel(struct parser *ps, struct lgd_logsel *l)
{
    if (ps->t.type != T_LBRACE)
        return syntax_err(ps, "{");
    if (parse_selector(ps, &l->m, &l->nm) != 0)
        return OBS_EINVAL;
    if (check_selector(ps, l) != 0)
        return OBS_EINVAL;
    return parse_pipeline(ps, l);
}

/* --- metric expressions ------------------------------------------------------------------ */

static const struct {
    const char *name;
    int fn;
    int needs_unwrap; /* 1 = requires | unwrap, 0 = forbids it, 2 = either */
} range_fns[] = {
    {"count_over_time", LGD_R_COUNT, 0},   {"rate", LGD_R_RATE, 2},
    {"bytes_over_time", LGD_R_BYTES, 0},   {"bytes_rate", LGD_R_BYTES_RATE, 0},
    {"absent_over_time", LGD_R_ABSENT, 0}, {"sum_over_time", LGD_R_SUM, 1},
    {"avg_over_time", LGD_R_AVG, 1},       {"min_over_time", LGD_R_MIN, 1},
    {"max_over_time", LGD_R_MAX, 1},       {"first_over_time", LGD_R_FIRST, 1},
    {"last_over_time", LGD_R_LAST, 1},     {"stddev_over_time", LGD_R_STDDEV, 1},
    {"stdvar_over_time", LGD_R_STDVAR, 1}, {"rate_counter", LGD_R_RATE_COUNTER, 1},
};

static const struct {
    const char *name;
    int op;
} vagg_ops[] = {
    {"sum", LGD_A_SUM},       {"avg", LGD_A_AVG},       {"min", LGD_A_MIN},
    {"max", LGD_A_MAX},       {"count", LGD_A_COUNT},   {"stddev", LGD_A_STDDEV},
    {"stdvar", LGD_A_STDVAR}, {"topk", LGD_A_TOPK},     {"bottomk", LGD_A_BOTTOMK},
};

static struct lgd_expr *parse_expr(struct parser *ps, int minprec);

static struct lgd_expr *parse_range(struct parser *ps, int fn, int needs_unwrap)
{
    struct lgd_expr *e = expr_new(ps, LGD_E_RANGE);
    if (!e)
        return NULL;
    e->fn = fn;
    next(ps);
    if (ps->t.type != T_LPAREN) {
        syntax_err(ps, "(");
        goto fail;
    }
    next(ps);
    int paren = 0;
    if (ps->t.type == T_LPAREN) { /* rate(({a="b"} |= "x")[1m]) */
        paren = 1;
        next(ps);
    }
    if (parse_logsel(ps, &e->log) != 0)
        goto fail;
    if (paren) {
        if (ps->t.type != T_RPAREN) {
            syntax_err(ps, ")");
            goto fail;
        }
        next(ps);
    }
    if (ps->t.type != T_LBRACK) {
        syntax_err(ps, "[");
        goto fail;
    }
    next(ps);
    if (ps->t.type != T_DURATION) {
        syntax_err(ps, "RANGE");
        goto fail;
    }
    e->range_ns = ps->t.dur_ns;
    next(ps);
    if (ps->t.type != T_RBRACK) {
        syntax_err(ps, "]");
        goto fail;
    }
    next(ps);
    /* Old form: selector [range] then pipeline. */
    if (!e->log.nst && !e->log.unwrap && parse_pipeline(ps, &e->log) != 0)
        goto fail;
    if (tok_is(ps, "offset")) {
        next(ps);
        if (ps->t.type != T_DURATION) {
            syntax_err(ps, "RANGE");
            goto fail;
        }
        e->offset_ns = ps->t.dur_ns;
        next(ps);
    }
    if (ps->t.type != T_RPAREN) {
        syntax_err(ps, ")");
        goto fail;
    }
    next(ps);
    if (e->range_ns <= 0) {
        sem_err(ps, "invalid range: must be greater than zero");
        goto fail;
    }
    if (needs_unwrap == 1 && !e->log.unwrap) {
        sem_err(ps, "invalid aggregation without unwrap");
        goto fail;
    }
    if (needs_unwrap == 0 && e->log.unwrap) {
        sem_err(ps, "invalid aggregation with unwrap");
        goto fail;
    }
    if (fn == LGD_R_RATE && e->log.unwrap)
        e->fn = LGD_R_RATE; /* rate over unwrapped values: sum / range */
    return e;
fail:
    lgd_expr_free(e);
    return NULL;
}

static int parse_grouping(struct parser *ps, struct lgd_expr *e)
{
    e->without = tok_is(ps, "without");
    e->has_grp = 1;
    next(ps);
    if (ps->t.type != T_LPAREN)
        return syntax_err(ps, "(");
    next(ps);
    while (ps->t.type != T_RPAREN) {
        if (ps->t.type != T_IDENT)
            return syntax_err(ps, "IDENTIFIER");
        char **ng = obs_realloc(e->grp, (e->ngrp + 1) * sizeof(*ng));
        if (!ng)
            return oom(ps);
        e->grp = ng;
        e->grp[e->ngrp] = tok_ident(ps);
        if (!e->grp[e->ngrp])
            return oom(ps);
        e->ngrp++;
        next(ps);
        if (ps->t.type == T_COMMA)
            next(ps);
        else if (ps->t.type != T_RPAREN)
            return syntax_err(ps, ", or )");
    }
    next(ps);
    return 0;
}

static struct lgd_expr *parse_vagg(struct parser *ps, int op)
{
    struct lgd_expr *e = expr_new(ps, LGD_E_VAGG);
    if (!e)
        return NULL;
    e->op = op;
    next(ps);
    if ((tok_is(ps, "by") || tok_is(ps, "without")) && parse_grouping(ps, e) != 0)
        goto fail;
    if (ps->t.type != T_LPAREN) {
        syntax_err(ps, "(");
        goto fail;
    }
    next(ps);
    if (op == LGD_A_TOPK || op == LGD_A_BOTTOMK) {
        if (ps->t.type != T_NUMBER) {
            syntax_err(ps, "NUMBER");
            goto fail;
        }
        e->param = ps->t.num;
        next(ps);
        if (ps->t.type != T_COMMA) {
            syntax_err(ps, ",");
            goto fail;
        }
        next(ps);
        if (!(e->param >= 1 && e->param <= 1e18) || e->param != floor(e->param)) {
            sem_err(ps, "invalid parameter for topk/bottomk: must be a positive integer");
            goto fail;
        }
    }
    e->a = parse_expr(ps, 0);
    if (!e->a)
        goto fail;
    if (ps->t.type != T_RPAREN) {
        syntax_err(ps, ")");
        goto fail;
    }
    next(ps);
    if (!e->has_grp && (tok_is(ps, "by") || tok_is(ps, "without")) &&
        parse_grouping(ps, e) != 0)
        goto fail;
    if (e->a->kind == LGD_E_LOG) {
        sem_err(ps, "invalid aggregation sum without unwrap");
        goto fail;
    }
    return e;
fail:
    lgd_expr_free(e);
    return NULL;
}

static struct lgd_expr *parse_primary(struct parser *ps)
{
    if (ps->failed)
        return NULL;
    switch (ps->t.type) {
    case T_LPAREN: {
        next(ps);
        struct lgd_expr *e = parse_expr(ps, 0);
        if (!e)
            return NULL;
        if (ps->t.type != T_RPAREN) {
            syntax_err(ps, ")");
            lgd_expr_free(e);
            return NULL;
        }
        next(ps);
        return e;
    }
    case T_NUMBER: {
        struct lgd_expr *e = expr_new(ps, LGD_E_NUM);
        if (e)
            e->num = ps->t.num;
        next(ps);
        return e;
    }
    case T_SUB:
    case T_ADD: {
        int neg = ps->t.type == T_SUB;
        next(ps);
        if (ps->t.type != T_NUMBER) {
            syntax_err(ps, "NUMBER");
            return NULL;
        }
        struct lgd_expr *e = expr_new(ps, LGD_E_NUM);
        if (e)
            e->num = neg ? -ps->t.num : ps->t.num;
        next(ps);
        return e;
    }
    case T_LBRACE: {
        struct lgd_expr *e = expr_new(ps, LGD_E_LOG);
        if (!e)
            return NULL;
        if (parse_logsel(ps, &e->log) != 0) {
            lgd_expr_free(e);
            return NULL;
        }
        if (e->log.unwrap) {
            sem_err(ps, "unwrap is only valid inside a range aggregation");
            lgd_expr_free(e);
            return NULL;
        }
        return e;
    }
    case T_IDENT:
        for (size_t i = 0; i < sizeof(range_fns) / sizeof(range_fns[0]); i++)
            if (tok_is(ps, range_fns[i].name))
                return parse_range(ps, range_fns[i].fn, range_fns[i].needs_unwrap);
        for (size_t i = 0; i < sizeof(vagg_ops) / sizeof(vagg_ops[0]); i++)
            if (tok_is(ps, vagg_ops[i].name))
                return parse_vagg(ps, vagg_ops[i].op);
        if (tok_is(ps, "vector")) {
            next(ps);
            if (ps->t.type != T_LPAREN) {
                syntax_err(ps, "(");
                return NULL;
            }
            next(ps);
            double sign = 1;
            if (ps->t.type == T_SUB) {
                sign = -1;
                next(ps);
            }
            if (ps->t.type != T_NUMBER) {
                syntax_err(ps, "NUMBER");
                return NULL;
            }
            double v = sign * ps->t.num;
            next(ps);
            if (ps->t.type != T_RPAREN) {
                syntax_err(ps, ")");
                return NULL;
            }
            next(ps);
            struct lgd_expr *e = expr_new(ps, LGD_E_VECTOR);
            if (e)
                e->num = v;
            return e;
        }
        syntax_err(ps, NULL);
        return NULL;
    default:
        syntax_err(ps, NULL);
        return NULL;
    }
}

/* Binary operator at the current token: its op, precedence (1..6) and right-assoc flag. */
static int binop_at(const struct parser *ps, int *op, int *right)
{
    *right = 0;
    switch (ps->t.type) {
    case T_ADD: *op = LGD_B_ADD; return 4;
    case T_SUB: *op = LGD_B_SUB; return 4;
    case T_MUL: *op = LGD_B_MUL; return 5;
    case T_DIV: *op = LGD_B_DIV; return 5;
    case T_MOD: *op = LGD_B_MOD; return 5;
    case T_POW: *op = LGD_B_POW; *right = 1; return 6;
    case T_CMP_EQ: *op = LGD_B_EQ; return 3;
    case T_NEQ: *op = LGD_B_NE; return 3;
    case T_GT: *op = LGD_B_GT; return 3;
    case T_GTE: *op = LGD_B_GE; return 3;
    case T_LT: *op = LGD_B_LT; return 3;
    case T_LTE: *op = LGD_B_LE; return 3;
    case T_IDENT:
        if (tok_is(ps, "or")) { *op = LGD_B_OR; return 1; }
        if (tok_is(ps, "and")) { *op = LGD_B_AND; return 2; }
        if (tok_is(ps, "unless")) { *op = LGD_B_UNLESS; return 2; }
        return 0;
    default: return 0;
    }
}

static struct lgd_expr *parse_expr(struct parser *ps, int minprec)
{
    struct lgd_expr *lhs = parse_primary(ps);
    if (!lhs)
        return NULL;
    for (;;) {
        int op, right;
        int prec = binop_at(ps, &op, &right);
        if (prec == 0 || prec < minprec)
            return lhs;
        next(ps);
        int boolm = 0;
        if (tok_is(ps, "bool")) {
            if (op < LGD_B_EQ || op > LGD_B_LE) {
                syntax_err(ps, NULL);
                lgd_expr_free(lhs);
                return NULL;
            }
            boolm = 1;
            next(ps);
        }
        struct lgd_expr *rhs = parse_expr(ps, right ? prec : prec + 1);
        if (!rhs) {
            lgd_expr_free(lhs);
            return NULL;
        }
        struct lgd_expr *e = expr_new(ps, LGD_E_BIN);
        if (!e) {
            lgd_expr_free(lhs);
            lgd_expr_free(rhs);
            return NULL;
        }
        e->op = op;
        e->bool_mod = boolm;
        e->a = lhs;
        e->b = rhs;
        if (lhs->kind == LGD_E_LOG || rhs->kind == LGD_E_LOG) {
            sem_err(ps, "unexpected log query in a binary operation; "
                        "use a range aggregation such as count_over_time");
            lgd_expr_free(e);
            return NULL;
        }
        if ((op == LGD_B_AND || op == LGD_B_OR || op == LGD_B_UNLESS) &&
            (lhs->kind == LGD_E_NUM || rhs->kind == LGD_E_NUM)) {
            sem_err(ps, "set operations are only allowed between vectors");
            lgd_expr_free(e);
            return NULL;
        }
        lhs = e;
    }
}

int lgd_logql_parse(const char *q, struct lgd_expr **out, struct obs_err *err)
{
    struct parser ps;
    memset(&ps, 0, sizeof(ps));
    ps.q = q;
    ps.qlen = strlen(q);
    ps.line = ps.col = 1;
    ps.err = err;
    *out = NULL;
    next(&ps);
    if (ps.t.type == T_EOF) {
        tok_clear(&ps.t);
        return obs_err_set(err, OBS_EINVAL, "parse error : syntax error: unexpected $end");
    }
    struct lgd_expr *e = parse_expr(&ps, 0);
    if (e && ps.t.type != T_EOF) {
        syntax_err(&ps, NULL);
        lgd_expr_free(e);
        e = NULL;
    }
    tok_clear(&ps.t);
    if (!e)
        return err && err->code ? err->code : OBS_EINVAL;
    *out = e;
    return 0;
}

/* --- push labels ------------------------------------------------------------------------- */

void lgd_labels_free(struct obs_label *v, size_t n)
{
    if (!v)
        return;
    for (size_t i = 0; i < n; i++) {
        obs_free((char *)v[i].name);
        obs_free((char *)v[i].value);
    }
    obs_free(v);
}

static int label_cmp(const void *a, const void *b)
{
    return strcmp(((const struct obs_label *)a)->name, ((const struct obs_label *)b)->name);
}

int lgd_logql_parse_labels(const char *s, size_t len, struct obs_label **out, size_t *n,
                           struct obs_err *err)
{
    struct parser ps;
    memset(&ps, 0, sizeof(ps));
    ps.q = s;
    ps.qlen = len;
    ps.line = ps.col = 1;
    ps.err = err;
    *out = NULL;
    *n = 0;
    struct lgd_matcher *m = NULL;
    size_t nm = 0;
    next(&ps);
    if (ps.t.type != T_LBRACE) {
        syntax_err(&ps, "{");
        tok_clear(&ps.t);
        return OBS_EINVAL;
    }
    int rc = parse_selector(&ps, &m, &nm);
    if (rc == 0 && ps.t.type != T_EOF) {
        syntax_err(&ps, NULL);
        rc = OBS_EINVAL;
    }
    tok_clear(&ps.t);
    if (rc != 0) {
        for (size_t i = 0; i < nm; i++)
            lgd_matcher_deinit(&m[i]);
        obs_free(m);
        return err && err->code ? err->code : OBS_EINVAL;
    }
    struct obs_label *v = obs_calloc(nm ? nm : 1, sizeof(*v));
    if (!v)
        rc = obs_err_set(err, OBS_ENOMEM, "out of memory");
    for (size_t i = 0; rc == 0 && i < nm; i++) {
        if (m[i].type != LGD_M_EQ) {
            rc = obs_err_set(err, OBS_EINVAL, "only = matchers are allowed in stream labels");
            break;
        }
        v[i].name = m[i].name;
        v[i].value = m[i].value;
        m[i].name = m[i].value = NULL;
        (*n)++;
    }
    for (size_t i = 0; i < nm; i++)
        lgd_matcher_deinit(&m[i]);
    obs_free(m);
    if (rc == 0 && *n == 0)
        rc = obs_err_set(err, OBS_EINVAL, "error at least one label pair is required per stream");
    if (rc == 0) {
        qsort(v, *n, sizeof(*v), label_cmp);
        for (size_t i = 1; i < *n; i++)
            if (strcmp(v[i].name, v[i - 1].name) == 0) {
                rc = obs_err_set(err, OBS_EINVAL, "duplicate label name: '%s'", v[i].name);
                break;
            }
    }
    if (rc != 0) {
        lgd_labels_free(v, *n);
        *n = 0;
        return rc;
    }
    *out = v;
    return 0;
}
