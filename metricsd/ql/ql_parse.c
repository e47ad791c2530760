/*
 * ql_parse.c -- PromQL lexer and parser (Prometheus 3.x grammar) with type checking.
 *
 * A hand-written lexer feeds a precedence-climbing parser. Precedence, lowest first:
 *   or  <  and unless  <  == != <= < >= >  <  + -  <  * / % atan2  <  ^ (right-assoc)
 * Unary minus/plus binds like * (so -2^2 == -4). Postfix [range], [range:step], offset and @
 * bind to the primary before any operator. Type rules and error texts follow Prometheus'
 * checkAST so API clients see the same "1:col: parse error: ..." messages.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
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
    T_LTE, T_GTE, T_ADD, T_SUB, T_MUL, T_DIV, T_MOD, T_POW, T_TRIM_UPPER, T_TRIM_LOWER, T_BAD
};

struct parser {
    struct ql_arena *a;
    const char *src;
    size_t len;
    size_t pos;          /* lexer cursor */
    /* current token */
    enum tok tk;
    size_t tpos, tlen;
    double num;          /* T_NUM / T_DUR (ms for durations) */
    char *str;           /* T_STR unquoted */
    int nsel;
    int brackets;        /* inside [...] : colon is a token, not an identifier char */
    size_t max_re;       /* regex length limit (bytes) */
    int depth;           /* parse_expr recursion depth */
    int lax_sel;         /* next selector may match empty (info()'s label selector) */
};

static const char *tok_desc(enum tok t)
{
    static const char *d[] = {"end of input", "identifier", "number", "duration", "string",
                              "\"(\"", "\")\"", "\"{\"", "\"}\"", "\"[\"", "\"]\"", "\",\"",
                              "\":\"", "\"@\"", "\"=\"", "\"==\"", "\"!=\"", "\"=~\"", "\"!~\"",
                              "\"<\"", "\">\"", "\"<=\"", "\">=\"", "\"+\"", "\"-\"", "\"*\"",
                              "\"/\"", "\"%\"", "\"^\"", "\"</\"", "\">/\"", "character"};
    return d[t];
}

__attribute__((format(printf, 3, 4), noreturn)) static void perr(struct parser *p, size_t at,
                                                                 const char *fmt, ...)
{
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    int line = 1;
    size_t ls = 0;
    for (size_t i = 0; i < at && i < p->len; i++)
        if (p->src[i] == '\n') {
            line++;
            ls = i + 1;
        }
    ql_throw(p->a, OBS_EINVAL, "%d:%zu: parse error: %s", line, at - ls + 1, msg);
}

static int is_ident_start(int c)
{
    return isalpha(c) || c == '_' || c == ':';
}

static int is_ident_char(int c)
{
    return isalnum(c) || c == '_' || c == ':';
}

/* Lex a number or duration at p->pos. */
static void lex_number(struct parser *p)
{
    const char *s = p->src + p->pos;
    size_t n = 0, max = p->len - p->pos;
    /* Scan the maximal run that can belong to a number or a duration. */
    while (n < max && (isalnum((unsigned char)s[n]) || s[n] == '.' || s[n] == '_' ||
                       ((s[n] == '+' || s[n] == '-') && n > 0 &&
                        (s[n - 1] == 'e' || s[n - 1] == 'E') && !(n > 1 && s[0] == '0' &&
                                                                  (s[1] == 'x' || s[1] == 'X')))))
        n++;
    char buf[64];
    if (n >= sizeof(buf))
        perr(p, p->pos, "bad number or duration syntax: \"%.*s\"", (int)n, s);
    memcpy(buf, s, n);
    buf[n] = 0;
    p->tpos = p->pos;
    p->tlen = n;
    p->pos += n;
    /* Plain float / hex / octal? */
    char *end;
    errno = 0;
    double v;
    if (n > 1 && buf[0] == '0' && (buf[1] == 'x' || buf[1] == 'X')) {
        v = (double)strtoull(buf, &end, 16);
    } else if (n > 1 && buf[0] == '0' && isdigit((unsigned char)buf[1]) &&
               !strpbrk(buf, ".eE")) {
        v = (double)strtoull(buf, &end, 8);
        if (*end) {
            end = buf;
            v = 0;
        }
    } else {
        v = strtod(buf, &end);
        /* strtod accepts "inf"/"nan"/hex floats; a number token starts with a digit or '.'. */
    }
    if (*end == 0 && end != buf) {
        p->tk = T_NUM;
        p->num = v;
        return;
    }
    int64_t ms;
    if (strchr(buf, '.') == NULL && obs_duration_parse_ms(buf, &ms) == 0) {
        p->tk = T_DUR;
        p->num = (double)ms;
        return;
    }
    perr(p, p->tpos, "bad number or duration syntax: \"%s\"", buf);
}

static void next(struct parser *p)
{
    const char *s = p->src;
    for (;;) {
        while (p->pos < p->len && isspace((unsigned char)s[p->pos]))
            p->pos++;
        if (p->pos < p->len && s[p->pos] == '#') {
            while (p->pos < p->len && s[p->pos] != '\n')
                p->pos++;
            continue;
        }
        break;
    }
    p->tpos = p->pos;
    p->tlen = 1;
    if (p->pos >= p->len) {
        p->tk = T_EOF;
        p->tlen = 0;
        return;
    }
    char c = s[p->pos], d = p->pos + 1 < p->len ? s[p->pos + 1] : 0;
    if (isdigit((unsigned char)c) || (c == '.' && isdigit((unsigned char)d))) {
        lex_number(p);
        return;
    }
    if (is_ident_start((unsigned char)c) && !(c == ':' && p->brackets)) {
        size_t n = 1;
        while (p->pos + n < p->len && is_ident_char((unsigned char)s[p->pos + n]) &&
               !(s[p->pos + n] == ':' && p->brackets))
            n++;
        p->tk = T_IDENT;
        p->tlen = n;
        p->pos += n;
        return;
    }
    if (c == '"' || c == '\'' || c == '`') {
        size_t used;
        char *out;
        if (obs_go_unquote(s + p->pos, p->len - p->pos, &out, &used) < 0)
            perr(p, p->pos, "unterminated quoted string or invalid escape");
        p->str = ql_strdup(p->a, out);
        obs_free(out);
        p->tk = T_STR;
        p->tlen = used;
        p->pos += used;
        return;
    }
    p->pos++;
    switch (c) {
    case '(': p->tk = T_LPAREN; return;
    case ')': p->tk = T_RPAREN; return;
    case '{': p->tk = T_LBRACE; return;
    case '}': p->tk = T_RBRACE; return;
    case '[': p->tk = T_LBRACK; return;
    case ']': p->tk = T_RBRACK; return;
    case ',': p->tk = T_COMMA; return;
    case ':': p->tk = T_COLON; return;
    case '@': p->tk = T_AT; return;
    case '+': p->tk = T_ADD; return;
    case '-': p->tk = T_SUB; return;
    case '*': p->tk = T_MUL; return;
    case '/': p->tk = T_DIV; return;
    case '%': p->tk = T_MOD; return;
    case '^': p->tk = T_POW; return;
    case '=':
        if (d == '=') { p->pos++; p->tlen = 2; p->tk = T_EQLC; return; }
        if (d == '~') { p->pos++; p->tlen = 2; p->tk = T_RE; return; }
        p->tk = T_ASSIGN;
        return;
    case '!':
        if (d == '=') { p->pos++; p->tlen = 2; p->tk = T_NEQ; return; }
        if (d == '~') { p->pos++; p->tlen = 2; p->tk = T_NRE; return; }
        perr(p, p->tpos, "unexpected character after '!': %c", d ? d : ' ');
    case '<':
        if (d == '=') { p->pos++; p->tlen = 2; p->tk = T_LTE; return; }
        if (d == '/') { p->pos++; p->tlen = 2; p->tk = T_TRIM_UPPER; return; }
        p->tk = T_LSS;
        return;
    case '>':
        if (d == '=') { p->pos++; p->tlen = 2; p->tk = T_GTE; return; }
        if (d == '/') { p->pos++; p->tlen = 2; p->tk = T_TRIM_LOWER; return; }
        p->tk = T_GTR;
        return;
    default:
        perr(p, p->tpos, "unexpected character: '%c'", c);
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

/* What is still open at the end of the input (Prometheus' lexer reports these at EOF):
 * '(' -> 1, '[' -> 2, '{' -> 3, nothing -> 0. Quoted strings and comments are skipped. */
static int open_at_eof(const struct parser *p)
{
    int par = 0, brk = 0, brc = 0;
    for (size_t i = 0; i < p->len; i++) {
        char c = p->src[i];
        if (c == '"' || c == '\'' || c == '`') {
            for (i++; i < p->len && p->src[i] != c; i++)
                if (c != '`' && p->src[i] == '\\')
                    i++;
            continue;
        }
        if (c == '#') {
            while (i < p->len && p->src[i] != '\n')
                i++;
            continue;
        }
        par += c == '(' ? 1 : c == ')' ? -1 : 0;
        brk += c == '[' ? 1 : c == ']' ? -1 : 0;
        brc += c == '{' ? 1 : c == '}' ? -1 : 0;
    }
    return brc > 0 ? 3 : par > 0 ? 1 : brk > 0 ? 2 : 0;
}

__attribute__((noreturn)) static void unexpected(struct parser *p, const char *ctx)
{
    if (p->tk == T_EOF) {
        switch (open_at_eof(p)) {
        case 1: perr(p, p->tpos, "unclosed left parenthesis");
        case 2: perr(p, p->tpos, "unclosed left bracket");
        case 3: perr(p, p->tpos, "unexpected end of input inside braces");
        default: break;
        }
    }
    if (p->tk == T_EOF)
        perr(p, p->tpos, "unexpected end of input%s%s", ctx ? " " : "", ctx ? ctx : "");
    if (p->tk == T_IDENT || p->tk == T_NUM || p->tk == T_DUR || p->tk == T_STR)
        perr(p, p->tpos, "unexpected %s \"%.*s\"%s%s", tok_desc(p->tk), (int)p->tlen,
             p->src + p->tpos, ctx ? " " : "", ctx ? ctx : "");
    perr(p, p->tpos, "unexpected %s%s%s", tok_desc(p->tk), ctx ? " " : "", ctx ? ctx : "");
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
        if (p->tk == T_IDENT) {
            name = tok_text(p);
            if (!obs_label_name_valid(name, strlen(name)))
                perr(p, p->tpos, "unexpected %s \"%s\" in grouping opts, expected label",
                     tok_desc(p->tk), name);
        } else if (p->tk == T_STR) {
            name = p->str;
        } else {
            unexpected(p, "in grouping opts, expected label");
        }
        QL_PUSH(p->a, *out, *n, cap, name);
        next(p);
        if (p->tk == T_COMMA)
            next(p);
        else if (p->tk != T_RPAREN)
            unexpected(p, "in grouping opts, expected \")\" or \",\"");
    }
    next(p);
}

static void set_type_check_binary(struct parser *p, struct ql_node *n, size_t oppos)
{
    enum mtd_ql_vtype lt = n->lhs->type, rt = n->rhs->type;
    if ((lt != MTD_QL_SCALAR && lt != MTD_QL_VECTOR) ||
        (rt != MTD_QL_SCALAR && rt != MTD_QL_VECTOR))
        perr(p, n->pos, "binary expression must contain only scalar and instant vector types");
    if (n->bool_mod && !is_cmp(n->op))
        perr(p, oppos, "bool modifier can only be used on comparison operators");
    if (is_cmp(n->op) && lt == MTD_QL_SCALAR && rt == MTD_QL_SCALAR && !n->bool_mod)
        perr(p, oppos, "comparisons between scalars must use BOOL modifier");
    if (is_set(n->op) && (lt == MTD_QL_SCALAR || rt == MTD_QL_SCALAR))
        perr(p, n->pos, "set operator \"%s\" not allowed in binary scalar expression",
             op_str(n->op));
    if ((lt != MTD_QL_VECTOR || rt != MTD_QL_VECTOR) && n->has_matching) {
        if (n->nmlabels > 0 || n->on || n->card != QC_ONE_ONE)
            perr(p, n->pos, "vector matching only allowed between instant vectors");
        n->has_matching = 0;
    }
    if (is_set(n->op)) {
        if (n->card == QC_MANY_ONE || n->card == QC_ONE_MANY)
            perr(p, oppos, "no grouping allowed for \"%s\" operation", op_str(n->op));
        n->card = QC_MANY_MANY;
    }
    for (size_t i = 0; n->on && i < n->ninclude; i++)
        for (size_t j = 0; j < n->nmlabels; j++)
            if (strcmp(n->include[i], n->mlabels[j]) == 0)
                perr(p, oppos, "label \"%s\" must not occur in ON and GROUP clause at once",
                     n->include[i]);
    n->type = (lt == MTD_QL_SCALAR && rt == MTD_QL_SCALAR) ? MTD_QL_SCALAR : MTD_QL_VECTOR;
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
            unexpected(p, "in label matching, expected label");
        int quoted = p->tk == T_STR;
        next(p);
        enum obs_match_type mt;
        if (quoted && (p->tk == T_COMMA || p->tk == T_RBRACE)) {
            /* {"metric.name"} */
            if (name || n->name)
                perr(p, mpos, "metric name must not be set twice: %s", lname);
            n->name = lname;
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
                perr(p, mpos, "metric name must not be set twice: \"%s\" or \"%s\"", name,
                     p->str);
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
    if (!nonempty)
        perr(p, pos, "vector selector must contain at least one non-empty matcher");
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
static struct ql_dur *parse_dur_func(struct parser *p)
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
    next(p);
    expect(p, T_LPAREN, "in duration expression, expected \"(\"");
    if (op == QD_STEP || op == QD_RANGE) {
        expect(p, T_RPAREN, "in duration expression, expected \")\"");
        return dur_new(p, op, pos, NULL, NULL);
    }
    struct ql_dur *a = parse_dur_expr(p, 0, "in duration expression, expected duration");
    expect(p, T_COMMA, "in duration expression, expected \",\"");
    struct ql_dur *b = parse_dur_expr(p, 0, "in duration expression, expected duration");
    expect(p, T_RPAREN, "in duration expression, expected \")\"");
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
        d->num = p->tk == T_DUR ? p->num / 1000.0 : p->num;
        next(p);
        return d;
    case T_LPAREN:
        next(p);
        d = parse_dur_expr(p, 0, "in duration expression, expected duration");
        expect(p, T_RPAREN, "in duration expression, expected \")\"");
        return d;
    case T_IDENT:
        if ((d = parse_dur_func(p)) != NULL)
            return d;
        unexpected(p, ctx);
    default:
        unexpected(p, ctx);
    }
}

static struct ql_dur *dur_negate(struct parser *p, struct ql_dur *d, size_t pos)
{
    if (d->op == QD_NUM) {
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
        struct ql_dur *r = parse_dur_expr(p, t == T_POW ? pr : pr + 1,
                                          "in duration expression, expected duration");
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

static struct ql_node *parse_aggr(struct parser *p, enum ql_agg agg, size_t pos)
{
    struct ql_node *n = node(p, QN_AGG, pos);
    n->agg = agg;
    char *aname = tok_text(p);
    next(p);
    if (tok_is(p, "by") || tok_is(p, "without")) {
        n->without = tok_is(p, "without");
        n->has_grouping = 1;
        next(p);
        parse_label_list(p, &n->grouping, &n->ngrouping);
    }
    expect(p, T_LPAREN, "in aggregation, expected \"(\"");
    int needs_param = agg == QA_TOPK || agg == QA_BOTTOMK || agg == QA_QUANTILE ||
                      agg == QA_COUNT_VALUES || agg == QA_LIMITK || agg == QA_LIMIT_RATIO;
    if (p->tk == T_RPAREN)
        perr(p, p->tpos, "no arguments for aggregate expression provided");
    struct ql_node *first = parse_expr(p, 0);
    if (needs_param) {
        if (p->tk != T_COMMA)
            perr(p, p->tpos, "wrong number of arguments for aggregate expression provided, "
                             "expected 2, got 1");
        next(p);
        n->param = first;
        n->lhs = parse_expr(p, 0);
    } else {
        n->lhs = first;
        if (p->tk == T_COMMA)
            perr(p, p->tpos, "wrong number of arguments for aggregate expression provided, "
                             "expected 1, got 2");
    }
    if (p->tk == T_COMMA)
        next(p);
    expect(p, T_RPAREN, "in aggregation, expected \")\"");
    if (tok_is(p, "by") || tok_is(p, "without")) {
        if (n->has_grouping)
            perr(p, p->tpos, "unexpected <%s>", tok_is(p, "by") ? "by" : "without");
        n->without = tok_is(p, "without");
        n->has_grouping = 1;
        next(p);
        parse_label_list(p, &n->grouping, &n->ngrouping);
    }
    if (n->lhs->type != MTD_QL_VECTOR)
        perr(p, n->lhs->pos, "expected type instant vector in aggregation expression, got %s",
             type_str(n->lhs->type));
    if (n->param) {
        enum mtd_ql_vtype want = agg == QA_COUNT_VALUES ? MTD_QL_STRING : MTD_QL_SCALAR;
        if (n->param->type != want)
            perr(p, n->param->pos, "expected type %s in aggregation parameter, got %s",
                 type_str(want), type_str(n->param->type));
    }
    /* count_values' label name is checked at evaluation, as Prometheus does */
    (void)aname;
    n->type = MTD_QL_VECTOR;
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

static struct ql_node *parse_call(struct parser *p, const struct ql_func *f, size_t pos)
{
    struct ql_node *n = node(p, QN_CALL, pos);
    n->fn = f;
    next(p); /* name */
    expect(p, T_LPAREN, NULL);
    size_t cap = 0;
    int is_info = strcmp(f->name, "info") == 0;
    while (p->tk != T_RPAREN) {
        p->lax_sel = is_info && n->nargs == 1;
        struct ql_node *a = parse_expr(p, 0);
        p->lax_sel = 0;
        QL_PUSH(p->a, n->args, n->nargs, cap, a);
        if (p->tk == T_COMMA)
            next(p);
        else if (p->tk != T_RPAREN)
            unexpected(p, "in call to function, expected \",\" or \")\"");
    }
    next(p);
    int minargs = f->nargs, maxargs = f->variadic < 0 ? 1 << 20 : f->nargs + f->variadic;
    if (f->variadic != 0 && f->nargs > 0 && f->variadic > 0)
        minargs = f->nargs;
    if (f->variadic == 0 && (int)n->nargs != f->nargs)
        perr(p, pos, "expected %d argument(s) in call to \"%s\", got %zu", f->nargs, f->name,
             n->nargs);
    if ((int)n->nargs < minargs)
        perr(p, pos, "expected at least %d argument(s) in call to \"%s\", got %zu", minargs,
             f->name, n->nargs);
    if ((int)n->nargs > maxargs)
        perr(p, pos, "expected at most %d argument(s) in call to \"%s\", got %zu", maxargs,
             f->name, n->nargs);
    for (size_t i = 0; i < n->nargs; i++) {
        enum mtd_ql_vtype want;
        int last = 0;
        while (last < 3 && f->argt[last + 1] != MTD_QL_NONE)
            last++;
        want = (int)i <= last ? f->argt[i] : f->argt[last];
        if (n->args[i]->type != want)
            perr(p, n->args[i]->pos, "expected type %s in call to function \"%s\", got %s",
                 type_str(want), f->name, type_str(n->args[i]->type));
    }
    n->type = f->ret;
    if (is_info)
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
static struct ql_node *parse_postfix(struct parser *p, struct ql_node *e)
{
    for (;;) {
        if (p->tk == T_LBRACK) {
            size_t bpos = p->tpos;
            p->brackets++;
            next(p);
            struct ql_dur *rd = parse_dur_expr(p, 0, "in subquery or range selector, "
                                                     "expected duration");
            int64_t range = 0;
            int rconst = dur_fold(p, rd, &range);
            if (rconst)
                rd = NULL;
            else
                range = 1; /* resolved per query */
            if (p->tk == T_COLON) {
                next(p);
                int64_t step = 0;
                struct ql_dur *sd = NULL;
                if (p->tk != T_RBRACK) {
                    sd = parse_dur_expr(p, 0, "in subquery, expected duration");
                    if (dur_fold(p, sd, &step)) {
                        if (step <= 0 && sd->op != QD_NUM)
                            perr(p, (size_t)sd->pos, "duration must be greater than 0");
                        sd = NULL;
                    }
                }
                p->brackets--;
                expect(p, T_RBRACK, "in subquery, expected \"]\"");
                if (e->type != MTD_QL_VECTOR)
                    perr(p, e->pos, "subquery is only allowed on instant vector, got %s "
                                    "instead", e->type == MTD_QL_MATRIX ? "matrix" :
                                                 type_str(e->type));
                if (range <= 0)
                    perr(p, bpos, "range must be greater than 0");
                struct ql_node *s = node(p, QN_SUBQ, e->pos);
                s->lhs = e;
                s->range = range;
                s->step = step;
                s->range_expr = rd;
                s->step_expr = sd;
                s->type = MTD_QL_MATRIX;
                e = s;
            } else {
                p->brackets--;
                expect(p, T_RBRACK, "in range selector, expected \"]\"");
                if (e->kind != QN_VSEL)
                    perr(p, bpos, "ranges only allowed for vector selectors");
                if (e->offset != 0 || e->offset_expr || e->at_kind != QAT_NONE)
                    perr(p, bpos, "no offset or @ modifiers allowed before range");
                if (range <= 0)
                    perr(p, bpos, "range must be greater than 0");
                struct ql_node *m = node(p, QN_MSEL, e->pos);
                m->lhs = e;
                m->range = range;
                m->range_expr = rd;
                m->type = MTD_QL_MATRIX;
                e = m;
            }
        } else if (tok_is(p, "anchored") || tok_is(p, "smoothed")) {
            /* extended range selector modifiers (Prometheus 3, experimental) */
            struct ql_node *t = e->kind == QN_MSEL ? e->lhs : e;
            int anch = tok_is(p, "anchored");
            if (t->kind != QN_VSEL || (anch && e->kind != QN_MSEL))
                perr(p, p->tpos, "%s modifier must be preceded by a %s", anch ? "anchored" :
                     "smoothed", anch ? "range vector selector" :
                     "vector selector or range vector selector");
            if (t->anchored || t->smoothed)
                perr(p, p->tpos, "anchored or smoothed may not be set multiple times");
            t->anchored = anch;
            t->smoothed = !anch;
            next(p);
        } else if (tok_is(p, "offset")) {
            next(p);
            struct ql_dur *od = parse_offset_dur(p, "in offset, expected duration");
            int64_t off = 0;
            if (dur_fold(p, od, &off))
                od = NULL;
            struct ql_node *t = e->kind == QN_MSEL ? e->lhs : e;
            if (t->kind != QN_VSEL && t->kind != QN_SUBQ)
                perr(p, e->pos, "offset modifier must be preceded by an instant vector "
                                "selector or range vector selector or a subquery");
            if (t->offset != 0 || t->offset_expr)
                perr(p, e->pos, "offset may not be set multiple times");
            t->offset = off;
            t->offset_expr = od;
        } else if (p->tk == T_AT) {
            size_t apos = p->tpos;
            next(p);
            struct ql_node *t = e->kind == QN_MSEL ? e->lhs : e;
            if (t->kind != QN_VSEL && t->kind != QN_SUBQ)
                perr(p, e->pos, "@ modifier must be preceded by an instant vector selector or "
                                "range vector selector or a subquery");
            if (t->at_kind != QAT_NONE)
                perr(p, e->pos, "@ <timestamp> may not be set multiple times");
            if (tok_is(p, "start") || tok_is(p, "end")) {
                t->at_kind = tok_is(p, "start") ? QAT_START : QAT_END;
                next(p);
                expect(p, T_LPAREN, "in @, expected \"(\"");
                expect(p, T_RPAREN, "in @, expected \")\"");
            } else {
                int neg = 0;
                if (p->tk == T_SUB || p->tk == T_ADD) {
                    neg = p->tk == T_SUB;
                    next(p);
                }
                if (p->tk != T_NUM && p->tk != T_DUR)
                    unexpected(p, "in @, expected timestamp");
                double v = p->tk == T_DUR ? p->num / 1000.0 : p->num;
                if (neg)
                    v = -v;
                if (!isfinite(v) || fabs(v) > 9.2e15)
                    perr(p, apos, "timestamp out of bounds for @ modifier: %g", v);
                t->at_kind = QAT_TS;
                t->at = (int64_t)llround(v * 1000.0);
                next(p);
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
        n->num = p->num;
        n->type = MTD_QL_SCALAR;
        next(p);
        return n;
    case T_DUR:
        n = node(p, QN_NUM, pos);
        n->num = p->num / 1000.0;
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
        expect(p, T_RPAREN, "in paren expression, expected \")\"");
        return n;
    case T_LBRACE:
        return parse_vsel(p, NULL, pos);
    case T_IDENT: {
        enum ql_agg agg;
        if (tok_is(p, "inf") || tok_is(p, "nan")) {
            n = node(p, QN_NUM, pos);
            n->num = tok_is(p, "inf") ? INFINITY : NAN;
            n->type = MTD_QL_SCALAR;
            next(p);
            return n;
        }
        /* Look ahead: '(' after an identifier makes a call or aggregation. */
        size_t save = p->pos;
        while (save < p->len && isspace((unsigned char)p->src[save]))
            save++;
        int paren = save < p->len && p->src[save] == '(';
        if (is_aggr(p, &agg)) {
            size_t q = save;
            int grouping = 0;
            if (!paren) {
                /* sum by (x) (...) / sum without (x) (...) */
                if ((p->len - q >= 2 && strncasecmp(p->src + q, "by", 2) == 0 &&
                     !is_ident_char((unsigned char)p->src[q + 2])) ||
                    (p->len - q >= 7 && strncasecmp(p->src + q, "without", 7) == 0 &&
                     !is_ident_char((unsigned char)p->src[q + 7])))
                    grouping = 1;
            }
            if (paren || grouping)
                return parse_aggr(p, agg, pos);
        }
        if (paren) {
            const struct ql_func *f = ql_func_lookup(p->src + p->tpos, p->tlen);
            if (!f)
                perr(p, pos, "unknown function with name \"%.*s\"", (int)p->tlen,
                     p->src + p->tpos);
            return parse_call(p, f, pos);
        }
        char *name = tok_text(p);
        static const char *kw[] = {"and", "or", "unless", "atan2", "by", "without", "on",
                                   "ignoring", "group_left", "group_right", "offset", "bool",
                                   NULL};
        for (int i = 0; kw[i]; i++)
            if (tok_is(p, kw[i]))
                unexpected(p, NULL);
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
        if (e->type != MTD_QL_SCALAR && e->type != MTD_QL_VECTOR)
            perr(p, pos, "unary expression only allowed on expressions of type scalar or "
                         "instant vector, got \"%s\"", e->type == MTD_QL_MATRIX ? "range vector"
                                                                               : "string");
        if (e->kind == QN_NUM) {
            if (neg)
                e->num = -e->num;
            e->pos = (int)pos;
            return e;
        }
        if (!neg)
            return e;
        struct ql_node *n = node(p, QN_UNARY, pos);
        n->op = QOP_SUB;
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
            }
        } else if (tok_is(p, "group_left") || tok_is(p, "group_right")) {
            unexpected(p, NULL);
        }
        parse_fill(p, n);
        n->rhs = parse_expr(p, op == QOP_POW ? prec(op) : prec(op) + 1);
        set_type_check_binary(p, n, oppos);
        if ((n->fill_l || n->fill_r) && (n->lhs->type != MTD_QL_VECTOR ||
                                          n->rhs->type != MTD_QL_VECTOR))
            perr(p, oppos, "filling in missing series only allowed between instant vectors");
        if ((n->fill_l || n->fill_r) && is_set(n->op))
            perr(p, oppos, "filling in missing series not allowed for set operators");
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
