"""Differential test of PromQL parse errors and /api/v1/format_query: metricsd against the real
Prometheus 2.42 (/usr/bin/prometheus).

Both servers start on random loopback ports with empty storage (no data is needed: every case
here is decided by the parser or the printer). A corpus of malformed and edge-case queries --
unbalanced brackets and braces, bad label matchers and regexes, bad durations, wrong argument
counts and types, aggregation parameters, binary operators between wrong types, bool misuse,
offset/@ misuse, subquery syntax, unknown functions, string escapes, number formats, unicode,
comments, keywords used as metric names -- goes to /api/v1/query on both, and the answers must
agree on HTTP status, "status", "errorType" and the "error" text byte for byte. A second table
goes to /api/v1/format_query on both and the formatted text must be equal.

Where Prometheus 2.42 and 3.x (metricsd's target) legitimately differ -- 3.x syntax such as
duration expressions, fill modifiers, anchored/smoothed, the trim operators, info(), quoted
UTF-8 names; messages 3.x reworded -- the case is a DOCUMENTED_DIFF entry: query -> (reason,
the exact error text metricsd must give, as 3.x gives it, or None when it accepts the query).
Those are asserted against that text, not against 2.42, and printed. 3.x-only syntax for
format_query is FORMAT_3X (query -> 3.x's printer output, from upstream's printer.go).

Two more tables: every function metricsd knows called with bad argument counts and types
(compared with 2.42; a function 2.42 does not know must be known to metricsd), and the error
cases of upstream's 3.x promql/parser/parse_test.go (text and position), asserted against
metricsd alone, plus queries that file parses (format_query must accept them).

Run: OBS_BIN=$PWD/build/<dir>/bin python3 tests/integration/test_promql_errors_vs_prometheus.py
PROMQL_ERR_VERBOSE=1 prints every case with both answers.
"""
import json
import os
import shutil
import urllib.parse

from obslib import Daemon, RealPrometheus, TestRun, free_port, http, wait_until

PROM_BIN = shutil.which("prometheus") or "/usr/bin/prometheus"
VERBOSE = os.environ.get("PROMQL_ERR_VERBOSE") == "1"

# ---- corpus: /api/v1/query (errors and edge cases) -------------------------------------------
ERROR_QUERIES = [
    # empty, whitespace, comments
    "", " ", "# just a comment", "up # trailing comment", "# c\nup", "up\n# c", "\n\nup)",
    # unbalanced parentheses, brackets, braces
    "up)", "(up", "((up)", "(up))", "sum(up", "sum(up))", "rate(up[5m]", "up[5m", "up]",
    "up[5m]]", "up[[5m]]", "{", "}", "up{", "up}", "up{job=\"a\"", "up{job=\"a\"}}",
    "up{{job=\"a\"}}", "()", "(", ")", "[", "]", "up[", "up[]", "up{}", "{}", "(1+)",
    "sum(up) by", "sum(up) by (", "sum(up) by (job", "sum by (job (up)",
    "1 + (2 * 3", "1 + 2)", "up{job=\"a\",}", "up{,}", "up{job=\"a\",,}",
    # label matchers
    "up{job}", "up{job=}", "up{job=a}", "up{job==\"a\"}", "up{job!\"a\"}", "up{job=~}",
    "up{=\"a\"}", "up{job=\"a\" instance=\"b\"}", "up{job=\"a\";}", "up{1job=\"a\"}",
    "up{job=~\"(\"}", "up{job=~\"[\"}", "up{job=~\"a{2,1}\"}", "up{job=~\"*\"}",
    "up{job=~\"a**\"}", "up{job!~\"(?P<x\"}", "up{job=~\"\\\\\"}", "up{job=~\"a)\"}",
    "up{job=~\"[z-a]\"}", "up{job=~\"(?z)\"}", "up{job=~\"a{1001}\"}", "up{job=~\"\\\\p{Foo}\"}",
    "{job=\"\"}", "{job=~\".*\"}", "{job!=\"x\"}", "{__name__=\"\"}", "{job=~\"\"}",
    "up{__name__=\"x\"}", "{__name__=\"up\", __name__=\"x\"}", "up{job=\"a\"}{b=\"c\"}",
    "up{job=\"\\\\q\"}", "up{job='a'}", "up{job=`a`}", "up{\"job\"=\"a\"}",
    "up{job=\"a\"} == on(\"job\") up",
    # durations and ranges
    "up[1x]", "up[5]", "up[0s]", "up[-5m]", "up[5m:0s]", "up[1.5m]", "up[5mm]", "up[5m5]",
    "up[1y1y]", "up[1h30]", "up[5M]", "up[m]", "up[5 m]", "up[300000000000000000000y]",
    "rate(up[5m:])", "up[5m:1m:1m]", "up[:1m]", "up[5m:1x]", "up[5m:-1m]", "up[5m::]",
    "up[5m] [5m]", "up[5m][5m:]", "(up)[5m]", "sum(up)[5m]", "1[5m]", "\"a\"[5m]",
    "rate(up[5m])[5m]", "up[1ms]", "up[5m] offset 1m [5m]", "up[5m",
    # offset / @
    "up offset", "up offset 5", "up offset x", "up offset -", "up offset 5m offset 1m",
    "up offset 1m1", "sum(up) offset 5m", "1 offset 5m", "(up) offset 5m", "up @", "up @ x",
    "up @ 100 @ 200", "up @ start", "up @ start(", "up @ foo()", "sum(up) @ 100",
    "1 @ 100", "up @ Inf", "up @ NaN", "up @ -Inf", "up @ 1e30", "up @ \"100\"",
    "up offset 5m @ 100 offset 1m", "up @ end() @ start()", "up[5m] @ 100",
    # subqueries
    "up[5m:1m]", "rate(up[5m])[5m:1m]", "\"a\"[5m:1m]", "1[5m:1m]", "up[5m:1m][5m:1m]",
    "up[5m:1m] offset", "sum(up[5m:1m])", "up[5m:1m x]", "up[5m 1m]", "up[5m,1m]",
    # functions: unknown, arg counts, arg types
    "foo(up)", "Rate(up[5m])", "rate()", "rate(up)", "rate(up[5m], 1)", "rate(1)",
    "rate(\"a\")", "abs()", "abs(up, up)", "abs(up[5m])", "abs(\"a\")", "time(1)",
    "vector()", "vector(up)", "vector(\"a\")", "scalar(1)", "scalar(up[5m])",
    "histogram_quantile(up)", "histogram_quantile(0.9)", "histogram_quantile(up, up)",
    "round(up, up)", "round(up, 1, 2)", "clamp(up)", "clamp(up, 1)", "clamp_max(up)",
    "label_replace(up)", "label_replace(up, \"a\", \"b\", \"c\")",
    "label_replace(up, 1, \"b\", \"c\", \"d\")", "label_join(up)", "label_join(up, \"a\")",
    "label_join(up, \"a\", \"b\", 1)", "sort()", "sort(1)", "timestamp(1)",
    "days_in_month(1, 2)", "absent()", "absent_over_time(up)", "predict_linear(up[5m])",
    "predict_linear(up[5m], \"a\")", "holt_winters(up[5m], 0.5)", "quantile_over_time(up[5m])",
    "quantile_over_time(0.5, up)", "count_over_time(up)", "changes()", "rate(up[5m],)",
    "abs(up,)", "abs(,up)", "abs(up,,up)", "time(,)", "sum(rate(up[5m]))", "rate(up[5m]",
    "rate(sum(up))", "irate(up[5m:1m])", "delta(up[5m] offset 1m)",
    # aggregations
    "sum()", "sum(up, up)", "sum(1)", "sum(\"a\")", "sum(up[5m])", "topk(up)", "topk()",
    "topk(1)", "topk(1, up, up)", "topk(up, 1)", "topk(\"a\", up)", "quantile(up)",
    "quantile(0.5)", "count_values(up)", "count_values(1, up)", "count_values(\"a\")",
    "sum by (job) ()", "sum by job (up)", "sum by (job,) (up)", "sum by (job up)",
    "sum by (1) (up)", "sum by (\"job\") (up)", "sum by (job) by (job) (up)",
    "sum by (job) (up) by (job)", "sum without (job) (up) by (x)", "sum(up) without",
    "sum(up) foo", "sum up", "sum", "sum by (job)", "avg by (job) up", "group(up,)",
    "stddev(up[5m])", "sum by (__name__) (up)", "sum by (on) (up)", "sum by (offset) (up)",
    "sum by (a:b) (up)", "sum by (job) (up) + by (job) up", "count_values(\"\", up)",
    "count_values(\"a-b\", up)", "limitk(1, up)", "bottomk(-1, up)",
    # binary operators
    "up +", "+ up", "up + + up", "up +- up", "up ** 2", "up === up", "up =! up", "up = up",
    "up != ", "up == bool up", "1 == 1", "1 == bool 1", "1 < 2", "up + bool up", "1 + bool 1",
    "up and 1", "1 and up", "1 or 2", "up unless 1", "\"a\" + 1", "up + \"a\"", "up[5m] + 1",
    "1 + up[5m]", "up[5m] + up[5m]", "up and on(job) group_left up",
    "up or ignoring(job) group_right up", "up + on(job) group_left(job) up",
    "up + on(job) group_left(instance) up", "up + on(job) up", "1 + on(job) up",
    "1 + on(job) 2", "up + ignoring() 1", "a + group_left b", "up == on() group_left",
    "up + on", "up + on(", "up + on(job", "up + on job up", "up + ignoring up",
    "up + on() group_left(", "up + on() group_left(a", "up + on() group_left group_right up",
    "up > bool", "up bool > up", "up > bool bool up", "up atan2 1", "1 atan2 2",
    "up atan2 bool 1", "up and", "up or bool up", "up unless on(job) 1",
    "-\"a\"", "-up[5m]", "- - -1", "+1", "--1", "-(1)", "+\"a\"",
    # numbers
    "0x", "0xg", "0x1F", "0X1f", "1e3", "1E3", "1e", "1e+", "1e-3", ".5", "5.", "1.2.3",
    "1_000", "1__000", "1_", "0x_1f", "1e1_0", "Inf", "-Inf", "+Inf", "NaN", "nan", "inf",
    "INF", "Infinity", "1ee3", "0755", "08", "1a", "1.5e3m", "9999999999999999999999",
    "0x8000000000000000", "1e400", "-1e400", "1_0.5", "1._5", "0b101", "0o17",
    # strings and escapes
    "\"a", "'a", "`a", "\"a\\\"", "\"\\q\"", "\"\\x4\"", "\"\\xzz\"", "\"\\u12\"",
    "\"\\u00e9\"", "\"\\U0001F600\"", "\"\\UFFFFFFFF\"", "\"\\ud800\"", "\"\\400\"",
    "\"\\101\"", "\"\\0\"", "'\\''", "\"\\'\"", "'\\\"'", "\"a\nb\"", "`a\nb`", "`a\\n`",
    "\"\\", "\"abc\" \"def\"", "\"a\" up",
    # unicode and odd characters
    "up\u00e9", "\u00e9", "up{job=\"\u00e9\"}", "up{j\u00e9=\"a\"}", "up;", "up $", "up & up",
    "up | up", "up !", "up !up", "up ~ up", "up ? up", "up\\", "up\t+\tup", "up\r\n+ up",
    "\u2603", "up{job=\"a\u2603\"}", "up @ \u00e9",
    # keywords as metric names and identifiers
    "sum", "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset",
    "and", "or", "unless", "atan2", "start", "end", "count", "avg", "topk", "quantile",
    "by{job=\"a\"}", "offset{job=\"a\"}", "start + end", "bool + 1", "on + 1",
    "min_over_time", "rate", "rate + 1", "rate{job=\"a\"}", "time", "up:rate5m",
    "up:rate5m[5m]", ":up", "up:", "a:b:c", "__name__", "_up", "up_",
    "sum:rate", "sum_", "step", "range",
    # miscellaneous
    "up up", "1 2", "up 1", "(up) (up)", "up,up", "up, up", "sum(up) (up)", "rate(up[5m]) 1",
    "up{job=\"a\"} up", "up offset 5m up", "up == up == up", "up = 1",
    # 3.x-only syntax (documented: 2.42 refuses it)
    "{\"up\"}", "sort_by_label(up, \"job\")", "info(up)", "up[5m] anchored",
    "rate(up[5m] smoothed)", "up </ 1", "up + fill(0) up", "up[step() + 1m]", "up[5m + 1m]",
    "up offset (1h / 2)", "up[5m:step() + 1m]",
    # more edge cases
    "sum(up))", "(sum(up)", "sum(up) by (job) by (job)", "rate(up[5m] 1)", "sum(up up)",
    "sum(abs(up up))", "abs(up up)", "(up up)", "up[5m] offset -", "foo(up", "foo(",
    "sum(foo(up))", "absent(up) offset 1m", "count_values(\"x\", up[5m])",
    "topk(1, up) by (job) without (x)", "up{job=~\"a\"} offset 1m[5m]",
    "label_replace(up, \"a\", \"$1\", \"b\", \"(\")", "up > bool on(x) 1",
    "1 > bool on(x) up", "up{job=\"a\",job=\"b\"}", "up @ 1e19", "up @ -1e19",
    "up @ 1.5e3 offset 5m", "x{a=\"\\u00e9\"}", "'\\u00e9'", "12345678901",
    "\"0123456789abc\"", "up + 12345678901234 up", "{", "up{job=\"a\" # c\n}",
    "histogram_quantile(0.9, rate(x[5m]), 1)", "vector(1, 2)", "time() + \"a\"",
    "-", "1 + -", "- ", "up and bool up", "time() > 1", "sort(up) [5m:]", "hour(1)",
    "label_replace(up, \"1a\", \"x\", \"job\", \"(.*)\")", "vector(1) and on() 1",
    "up{job=\"a\"}[5m] offset 1m offset 2m", "sum without() (up)", "sum without (up)",
    "{__name__=~\"a\", __name__!=\"b\"}", "up{job=~\"a|\"}", "up{job=~\"(?i)A\"}",
    "up{job=~\"\\\\d+\"}", "up{job=~\"a(?=b)\"}", "up{job=~\"(a)\\\\1\"}",
    "up{job=~\"a*+\"}", "up{job=~\"a{2}{3}\"}", "up{job=~\"[[:alpha:]\"}",
    "up{job=~\"(?P<n>a)\"}", "up{job=~\"a\\\\\"}", "rate(up[5m] offset 1m @ 10)",
    "max_over_time(up[5m:1m] @ end())", "up offset 1m @ start() offset 1m",
    "quantile_over_time(0.5, up[5m], 1)", "round()", "clamp(up, 1, 2, 3)",
    "label_join(up, \"a\", \",\")", "absent(nonexistent, 1)", "day_of_week(up, up)",
    "sum by (job) (up) offset 5m", "sum(up) @ start()", "(up)[5m:] offset 1m @ 100",
    "up[5m:1m] offset 1m offset 1m", "scalar(up) == bool 1", "1 == bool scalar(up)",
    "up == bool on(job) up", "up + ignoring(job) group_left(job) up", "up offset 1d1h",
    "up offset 1h1d", "up offset 0s", "up offset -0s", "up[1d1h]", "up[1h1d]", "up[0m5s]",
    "up @ 1.5", "up @ 0x10", "up @ 1e3", "up @ 5m", "up @ -5m", "up @ +5",
    # which of several errors comes first
    "quantile(rate(x), up[5m])", "topk(rate(x), rate(y))", "topk(up, rate(x))",
    "count_values(1, up[5m])", "abs(rate(x), 1)", "clamp(rate(x), \"a\", up[5m])",
    "rate(x) + up[5m]", "up[5m] + rate(x)", "sum(up) + on(a) group_left(a) 1",
    "1 == 1 + up[5m]", "-up[5m] + \"a\"", "sum(up[5m]) + rate(x)", "foo(rate(x)) + bar(",
    "sum(foo(x)) by (", "up{job=~\"(\"} + foo(", "1e400 + up)", "up offset 1x + foo(",
]

# 3.x accepts or words these differently from 2.42: query -> (reason, metricsd's exact error
# text, None when metricsd accepts the query as 3.x does).
P = 'invalid parameter "query": '
LEX_BRACKET = ("3.x lexes the inside of [...] as a duration expression (lexDurationExpr: "
               "+ - * / % ^ ( ) , step() range() min() max()); 2.42 lexed one duration and "
               "said 'missing unit character in duration' / 'bad duration syntax'")
LEX_NUMBER = ("3.x's number scanner (scanNumber) accepts '_' digit separators and stops at a "
              "bad '.', 'e' or '_' (the text up to it is quoted), 2.42 stopped earlier")
DURATION = ("3.x parses a duration token with prometheus/common's newer ParseDuration "
            "(unknown unit / not a valid duration string); 2.42 had the regexp version and "
            "refused durations in expression position")
ACCEPTED = "3.x syntax 2.42 refuses; metricsd accepts it as 3.x does"
GRAMMAR = ("3.x's grammar (generated_parser.y error productions for duration expressions) "
           "names what it expects differently")
DOCUMENTED_DIFF = {
    "up[[5m]]": (LEX_BRACKET, P + "1:4: parse error: unexpected character in duration "
                 "expression: '['"),
    "up[": (LEX_BRACKET, P + "1:4: parse error: unexpected end of input in duration "
            "expression"),
    "up[1x]": (LEX_BRACKET, P + '1:4: parse error: bad number or duration syntax: "1"'),
    "up[-5m]": (LEX_BRACKET + "; a negative range", P + "1:4: parse error: duration must be "
                "greater than 0"),
    "up[5mm]": (LEX_BRACKET, P + '1:4: parse error: bad number or duration syntax: "5mm"'),
    "up[5m5]": (LEX_BRACKET, P + '1:4: parse error: bad number or duration syntax: "5m5"'),
    "up[1y1y]": (LEX_BRACKET, P + '1:4: parse error: bad number or duration syntax: "1y1"'),
    "up[1h30]": (LEX_BRACKET, P + '1:4: parse error: bad number or duration syntax: "1h30"'),
    "up[5M]": (LEX_BRACKET, P + '1:4: parse error: bad number or duration syntax: "5"'),
    "up[m]": (LEX_BRACKET, P + "1:4: parse error: unexpected character in duration "
              "expression: 'm'"),
    "up[5 m]": (LEX_BRACKET, P + "1:6: parse error: unexpected character: 'm', expected ':'"),
    "up[:1m]": (LEX_BRACKET, P + "1:5: parse error: unexpected colon before duration in "
                "duration expression"),
    "up[5m::]": (LEX_BRACKET + "; '::' is one token in 3.x", P + '1:6: parse error: '
                 'unexpected "::" in subquery or range, expected ":" or "]"'),
    "up[5m:1m x]": (LEX_BRACKET, P + "1:10: parse error: unexpected character: 'x', "
                    "expected ':'"),
    "up[1.5m]": (DURATION, P + '1:4: parse error: unknown unit "." in duration "1.5m"'),
    "up[300000000000000000000y]": (DURATION, P + "1:4: parse error: not a valid duration "
                                   'string: "300000000000000000000y"'),
    "1.5e3m": (DURATION, P + '1:1: parse error: unknown unit "." in duration "1.5e3m"'),
    "1e": (LEX_NUMBER, P + '1:1: parse error: bad number or duration syntax: "1e"'),
    "1e+": (LEX_NUMBER, P + '1:1: parse error: bad number or duration syntax: "1e+"'),
    "1.2.3": (LEX_NUMBER, P + '1:1: parse error: bad number or duration syntax: "1.2."'),
    "1__000": (LEX_NUMBER, P + '1:1: parse error: bad number or duration syntax: "1__"'),
    "1_": (LEX_NUMBER, P + '1:1: parse error: bad number or duration syntax: "1_"'),
    "1ee3": (LEX_NUMBER, P + '1:1: parse error: bad number or duration syntax: "1ee"'),
    "1._5": (LEX_NUMBER, P + '1:1: parse error: bad number or duration syntax: "1._"'),
    "1_000": (LEX_NUMBER + " (1_000 == 1000)", None),
    "0x_1f": (LEX_NUMBER + " (0x_1f == 31)", None),
    "1e1_0": (LEX_NUMBER + " (1e1_0 == 1e10)", None),
    "1_0.5": (LEX_NUMBER + " (1_0.5 == 10.5)", None),
    "up[5]": (ACCEPTED + ": a plain number is a range in seconds", None),
    "up offset 5": (ACCEPTED + ": a plain number is an offset in seconds", None),
    'up{"job"="a"}': (ACCEPTED + ": quoted (UTF-8) label names", None),
    'up{job="a"} == on("job") up': (ACCEPTED + ": quoted label names in on()", None),
    'sum by ("job") (up)': (ACCEPTED + ": quoted label names in by()", None),
    "limitk(1, up)": (ACCEPTED + ": limitk (experimental in 3.x, enabled in metricsd)", None),
    '{"up"}': (ACCEPTED + ": quoted metric name", None),
    'sort_by_label(up, "job")': (ACCEPTED + ": sort_by_label", None),
    "info(up)": (ACCEPTED + ": info()", None),
    "up[5m] anchored": (ACCEPTED + ": anchored (extended range selectors)", None),
    "rate(up[5m] smoothed)": (ACCEPTED + ": smoothed", None),
    "up </ 1": (ACCEPTED + ": trim operator", None),
    "up + fill(0) up": (ACCEPTED + ": fill modifiers", None),
    "up[step() + 1m]": (ACCEPTED + ": duration expressions", None),
    "up[5m + 1m]": (ACCEPTED + ": duration expressions", None),
    "up offset (1h / 2)": (ACCEPTED + ": duration expressions", None),
    "up[5m:step() + 1m]": (ACCEPTED + ": duration expressions", None),
    "up[]": (GRAMMAR, P + '1:4: parse error: unexpected "]" in subquery or range selector, '
             "expected number, duration, step(), or range()"),
    "up[5m:-1m]": (GRAMMAR + "; 3.x parses a signed step and refuses it as not positive",
                   P + "1:7: parse error: duration must be greater than 0"),
    "up offset": (GRAMMAR, P + "1:10: parse error: unexpected end of input in offset, expected "
                  "number, duration, step(), or range()"),
    "up offset x": (GRAMMAR, P + '1:11: parse error: unexpected identifier "x" in offset, '
                    "expected number, duration, step(), or range()"),
    "up offset -": (GRAMMAR, P + "1:12: parse error: unexpected end of input in offset, "
                    "expected number, duration, step(), or range()"),
    "up[5m:1m] offset": (GRAMMAR, P + "1:17: parse error: unexpected end of input in offset, "
                         "expected number, duration, step(), or range()"),
    "up[5m] offset -": (GRAMMAR, P + "1:16: parse error: unexpected end of input in offset, "
                        "expected number, duration, step(), or range()"),
    "sum by (a:b) (up)": (ACCEPTED + ": grouping labels are checked as UTF-8 label names, "
                          "a:b is one", None),
    "up offset 0s": (ACCEPTED + ": a zero offset (2.42: 'duration must be greater than 0')",
                     None),
    "up offset -0s": (ACCEPTED + ": a zero offset", None),
    "up @ 5m": (ACCEPTED + ": a duration as the @ timestamp (upstream's at_modifier.test "
                "uses @ 100s)", None),
    "up @ -5m": (ACCEPTED + ": a duration as the @ timestamp", None),
}

# ---- corpus: /api/v1/format_query ------------------------------------------------------------
FORMAT_QUERIES = [
    "up", "+up", "-up", "- -up", "+-up", "-+up", "+(up)", "+1", "-1", "- 1", "+ -1",
    "up + +up", "1 - -up", "-(1)", "-(-1)", "+sum(up)", "-rate(up[5m])",
    "up offset 5m", "up offset -5m", "up @ 100 offset 5m", "up offset 5m @ 100",
    "up[5m] offset 1m", "up[5m:] offset 1m", "up[1h30m]", "up[90m]", "up[3600s]",
    "up[1d]", "up[7d]", "up[1w]", "up[52w]", "up[1y]", "up[1y1w]", "up[100ms]",
    "up[1500ms]", "sum(up)[10m:1m]", "rate(up[5m])[30m:]", "up{job=\"a\"}[5m] @ end()",
    "a > bool on (x) b", "a + on(x) group_left() b", "a - ignoring(x, y) group_right(z) b",
    "a and ignoring () b", "a or on () b", "sum by (b, a) (up)", "sum without(b,a)(up)",
    "sum(up) by (job)", "topk(1, up) without (a)", "count_values(\"x\", up) by (job)",
    "quantile by (le) (0.5, up)", "{__name__=\"up\"}", "{__name__=~\"up|down\"}",
    "{__name__=\"up\", job=\"x\"}", "up{__name__=~\"x\"}", "up{job=~\"a\", job!=\"b\"}",
    "1e-5", "1.5e300", "0.1", "100000", "1e5", "1e6", "1e15", "1e21", "5e-324", "0x1F",
    ".5", "-0", "1 + 2 * 3 ^ 4 ^ 5", "(1 + 2) * 3", "2 ^ (3 ^ 4)", "(2 ^ 3) ^ 4",
    "a / b % c", "a atan2 b", "a < b", "a <= bool b", "a >= b", "a != b", "a == b",
    "\"str\"", "'single \" quote'", "`raw \\ string`", "\"\\u00e9\\n\"",
    "up # comment", "# c\nsum(\n  up\n)", "label_join(up, \"a\", \",\", \"b\", \"c\")",
    "time()", "pi()", "vector(1)", "scalar(up)", "absent(nonexistent{job=\"x\"})",
    "sort_desc(sum by (job) (rate(http_requests_total{job=~\"api|web\"}[5m])))",
    "holt_winters(up[5m], 0.5, 0.5)", "round(up, 0.1)", "histogram_quantile(0.9, up)",
    "up @ start()", "up @ end()", "up @ 1.5e3", "up @ -100", "rate(up[5m] @ 100)",
    "sum(rate(up[5m] offset 1m))[1h:5m] offset 10m",
]

# 3.x-only syntax: query -> the text 3.x prints (from upstream's printer.go / printer_test.go).
FORMAT_3X = {
    "up[5m] anchored": "up[5m] anchored",
    "up smoothed": "up smoothed",
    "rate(up[5m] smoothed)": "rate(up[5m] smoothed)",
    "up[5m] offset 1m anchored": "up[5m] anchored offset 1m",
    "1_000": "1000",
    "a </ b": "a </ b",
    "a >/ b": "a >/ b",
    "a + fill(0) b": "a + fill (0) b",
    "a + fill_left(1) b": "a + fill_left (1) b",
    "a + fill_right(2) b": "a + fill_right (2) b",
    "a + fill_left(1) fill_right(2) b": "a + fill_left (1) fill_right (2) b",
    "a + on(x) group_left(y) fill(0) b": "a + on (x) group_left (y) fill (0) b",
    "a > bool ignoring(x) fill(-1.5) b": "a > bool ignoring (x) fill (-1.5) b",
    "up[5m:1m+1m]": "up[5m:1m + 1m]",
    "up offset (1h / 2)": "up offset (1h / 2)",
    "up[(5m)]": "up[(5m)]",
    "up[step() * 2 + 30]": "up[step() * 2 + 30]",
    "up[max_of(step(), 1m)]": "up[max(step(), 1m)]",
    "up[5m] smoothed @ 100 offset 1m": "up[5m] smoothed @ 100.000 offset 1m",
    "info(up)": "info(up)",
    "info(up, {k8s_cluster_name=~\".+\"})": "info(up, {k8s_cluster_name=~\".+\"})",
    "up[5m+1m]": "up[5m + 1m]",
    "up[step()]": "up[step()]",
    "up[step() * 2]": "up[step() * 2]",
    "up[5m:step()]": "up[5m:step()]",
    "up offset step()": "up offset step()",
    "up[range()]": "up[range()]",
    "max_over_time(up[step() + 1m])": "max_over_time(up[step() + 1m])",
    "{\"up\"}": "{__name__=\"up\"}",
    "{\"a.b\"}": "{__name__=\"a.b\"}",
    "sum by (\"foo bar\") ({\"some.metric\"})":
        "sum by (\"foo bar\") ({__name__=\"some.metric\"})",
    "{\"a.b\"=\"x\", job=\"y\"}": "{\"a.b\"=\"x\",job=\"y\"}",
    "foo offset -(5)": "foo offset -(5)",
    "foo[-(10s-5s)+20s]": "foo[-(10s - 5s) + 20s]",
    "foo[4s+4s:1s*2] offset (5s-8)": "foo[4s + 4s:1s * 2] offset (5s - 8)",
    "foo[2m/range()]": "foo[2m / range()]",
    "+1": "1",
    "- -1": "1",
    "-(1)": "-(1)",
}


# Error cases of upstream's promql/parser/parse_test.go (3.x, the newest stored version): query ->
# (start offset, message). They are asserted against metricsd alone (2.42 words some of them
# differently, see DOCUMENTED_DIFF); the text is "<line>:<col>: parse error: <message>".
UPSTREAM_3X = {
    "1+": (2, "unexpected end of input"),
    ".": (0, "unexpected character: '.'"),
    "2.5.": (0, 'bad number or duration syntax: "2.5."'),
    "100..4": (0, 'bad number or duration syntax: "100.."'),
    "0deadbeef": (0, 'bad number or duration syntax: "0de"'),
    "1 /": (3, "unexpected end of input"),
    "*1": (0, "unexpected <op:*>"),
    "(1))": (4, "unexpected right parenthesis ')'"),
    "((1)": (4, "unclosed left parenthesis"),
    "(": (1, "unclosed left parenthesis"),
    "1 and 1": (0, 'set operator "and" not allowed in binary scalar expression'),
    "1 == 1": (2, "comparisons between scalars must use BOOL modifier"),
    "1 or 1": (0, 'set operator "or" not allowed in binary scalar expression'),
    "1 unless 1": (0, 'set operator "unless" not allowed in binary scalar expression'),
    "1 !~ 1": (2, "unexpected character after '!': '~'"),
    "1 =~ 1": (2, "unexpected character after '=': '~'"),
    '-"string"': (0, 'unary expression only allowed on expressions of type scalar or instant '
                     'vector, got "string"'),
    "-test[5m]": (0, 'unary expression only allowed on expressions of type scalar or instant '
                     'vector, got "range vector"'),
    "*test": (0, "unexpected <op:*>"),
    "@@": (0, "unexpected <op:@>"),
    "1 offset 1d": (0, "offset modifier must be preceded by an instant vector selector or range "
                       "vector selector or a subquery"),
    "foo offset 1s offset 2s": (0, "offset may not be set multiple times"),
    "a - on(b) ignoring(c) d": (10, "unexpected <ignoring>"),
    "foo or on(bar) group_left(baz) bar": (0, 'no grouping allowed for "or" operation'),
    "foo unless on(bar) group_right(baz) bar": (0, 'no grouping allowed for "unless" '
                                                   'operation'),
    'http_requests{group="production"} + on(instance) group_left(job,instance) '
    'cpu_count{type="smp"}': (34, 'label "instance" must not occur in ON and GROUP clause at '
                                  'once'),
    "foo + bool bar": (4, "bool modifier can only be used on comparison operators"),
    "foo + bool 10": (4, "bool modifier can only be used on comparison operators"),
    "foo and bool 10": (4, "bool modifier can only be used on comparison operators"),
    "foo @ +Inf": (0, "timestamp out of bounds for @ modifier: +Inf"),
    "foo @ -Inf": (0, "timestamp out of bounds for @ modifier: -Inf"),
    "foo @ NaN": (0, "timestamp out of bounds for @ modifier: NaN"),
    "foo @ 9223372036854775808.000000": (0, "timestamp out of bounds for @ modifier: "
                                            "9223372036854775808.000000"),
    "{": (1, "unexpected end of input inside braces"),
    "}": (0, "unexpected character: '}'"),
    "some{": (5, "unexpected end of input inside braces"),
    "some}": (4, "unexpected character: '}'"),
    "some_metric{a=b}": (14, 'unexpected identifier "b" in label matching, expected string'),
    'some_metric{a:b="b"}': (13, "unexpected character inside braces: ':'"),
    'foo{a*"b"}': (5, "unexpected character inside braces: '*'"),
    'foo{a>="b"}': (5, "unexpected character inside braces: '>'"),
    "foo{gibberish}": (13, 'unexpected "}" in label matching, expected label matching '
                           'operator'),
    "foo{1}": (4, "unexpected character inside braces: '1'"),
    "{}": (0, "vector selector must contain at least one non-empty matcher"),
    '{x=""}': (0, "vector selector must contain at least one non-empty matcher"),
    '{x=~".*"}': (0, "vector selector must contain at least one non-empty matcher"),
    '{x!~".+"}': (0, "vector selector must contain at least one non-empty matcher"),
    '{x!="a"}': (0, "vector selector must contain at least one non-empty matcher"),
    'foo{__name__="bar"}': (0, 'metric name must not be set twice: "foo" or "bar"'),
    "foo{__name__= =}": (14, 'unexpected "=" in label matching, expected string'),
    "foo{,}": (4, 'unexpected "," in label matching, expected identifier or "}"'),
    'foo{__name__ == "bar"}': (14, 'unexpected "=" in label matching, expected string'),
    'foo{__name__="bar" lol}': (19, 'unexpected identifier "lol" in label matching, expected '
                                    '"," or "}"'),
    'foo{"a"=}': (8, 'unexpected "}" in label matching, expected string'),
    "foo[5mm]": (4, 'bad number or duration syntax: "5mm"'),
    "foo[5m1]": (4, 'bad number or duration syntax: "5m1"'),
    "foo[5m:1m1]": (7, 'bad number or duration syntax: "1m1"'),
    "foo[5y1hs]": (4, 'unknown unit "hs" in duration "5y1hs"'),
    "foo[5m1h]": (4, 'not a valid duration string: "5m1h"'),
    "foo[5m1m]": (4, 'not a valid duration string: "5m1m"'),
    "foo[0m]": (4, "duration must be greater than 0"),
    'foo["5m"]': (4, "unexpected character in duration expression: '\"'"),
    "foo[]": (4, 'unexpected "]" in subquery or range selector, expected number, duration, '
                 'step(), or range()'),
    "foo[-1]": (4, "duration must be greater than 0"),
    "some_metric[5m] OFFSET 1mm": (23, 'bad number or duration syntax: "1mm"'),
    "some_metric[5m] OFFSET": (22, "unexpected end of input in offset, expected number, "
                                   "duration, step(), or range()"),
    "some_metric OFFSET 1m[5m]": (21, "no offset modifiers allowed before range"),
    "some_metric[5m] @": (17, "unexpected end of input in @, expected timestamp"),
    "some_metric @ 1234 [5m]": (19, "no @ modifiers allowed before range"),
    "some_metric @ start() [5m]": (22, "no @ modifiers allowed before range"),
    "some_metric @ end()[5m]": (19, "no @ modifiers allowed before range"),
    "some_metric offset step()[5m]": (25, "no offset modifiers allowed before range"),
    "(foo + bar)[5m]": (11, "ranges only allowed for vector selectors"),
    'sum by ("foo)(some_metric{})': (8, "unterminated quoted string"),
    "sum without(==)(some_metric)": (12, "unexpected <op:==> in grouping opts, expected label"),
    "sum without(,)(some_metric)": (12, 'unexpected "," in grouping opts, expected label'),
    "sum without(foo,,)(some_metric)": (16, 'unexpected "," in grouping opts, expected label'),
    "sum some_metric by (test)": (4, 'unexpected identifier "some_metric"'),
    "sum (some_metric) by test": (21, 'unexpected identifier "test" in grouping opts, expected '
                                      '"("'),
    "sum () by (test)": (0, "no arguments for aggregate expression provided"),
    "MIN keep_common (some_metric)": (4, 'unexpected identifier "keep_common"'),
    "MIN (some_metric) keep_common": (18, 'unexpected identifier "keep_common"'),
    "sum (some_metric) without (test) by (test)": (33, "unexpected <by>"),
    "sum without (test) (some_metric) by (test)": (33, "unexpected <by>"),
    "topk(some_metric)": (0, "wrong number of arguments for aggregate expression provided, "
                             "expected 2, got 1"),
    "topk(some_metric,)": (16, "trailing commas not allowed in function call args"),
    "topk(some_metric, other_metric)": (5, "expected type scalar in aggregation parameter, got "
                                           "instant vector"),
    "count_values(5, other_metric)": (13, "expected type string in aggregation parameter, got "
                                          "scalar"),
    "rate(some_metric[5m]) @ 1234": (0, "@ modifier must be preceded by an instant vector "
                                        "selector or range vector selector or a subquery"),
    "floor()": (0, 'expected 1 argument(s) in call to "floor", got 0'),
    "floor(some_metric, other_metric)": (0, 'expected 1 argument(s) in call to "floor", got 2'),
    "floor(some_metric, 1)": (0, 'expected 1 argument(s) in call to "floor", got 2'),
    "floor(1)": (6, 'expected type instant vector in call to function "floor", got scalar'),
    "hour(some_metric, some_metric, some_metric)": (0, 'expected at most 1 argument(s) in call '
                                                       'to "hour", got 3'),
    "time(some_metric)": (0, 'expected 0 argument(s) in call to "time", got 1'),
    "non_existent_function_far_bar()": (0, 'unknown function with name '
                                           '"non_existent_function_far_bar"'),
    "rate(some_metric)": (5, 'expected type range vector in call to function "rate", got '
                             'instant vector'),
    "-=": (1, 'unexpected "="'),
    "++-++-+-+-<": (10, "unexpected <op:<>"),
    "e-+=/(0)": (3, 'unexpected "="'),
    "a>b()": (2, 'unknown function with name "b"'),
    "rate(avg)": (5, 'expected type range vector in call to function "rate", got instant '
                     'vector'),
    "`\\``": (3, "unterminated raw string"),
    '"\\': (0, "escape sequence not terminated"),
    '"\\c"': (0, "unknown escape sequence U+0063 'c'"),
    '"\\x."': (0, "illegal character U+002E '.' in escape sequence"),
    'foo{bar="baz"}[': (15, "unexpected end of input in duration expression"),
    "test[5d] OFFSET 10s [10m:5s]": (0, "subquery is only allowed on instant vector, got "
                                        "matrix instead"),
    '(foo + bar{nm="val"})[5m:][10m:5s]': (0, "subquery is only allowed on instant vector, "
                                              "got matrix instead"),
    "rate(food[1m])[1h] offset 1h": (14, "ranges only allowed for vector selectors"),
    "rate(food[1m])[1h] @ 100": (14, "ranges only allowed for vector selectors"),
    'info(rate(http_request_counter_total{}[5m]), target_info{foo="bar"})':
        (45, "expected label selectors only, got vector selector instead"),
    'info(http_request_counter_total{namespace="zzz"}, {foo="bar"} == 1)':
        (50, "expected label selectors only"),
    "foo[step]": (8, 'unexpected "]" in subquery or range selector, expected number, '
                     'duration, step(), or range()'),
    "foo[step()/0d]": (10, "division by zero"),
    "foo[5s/0d]": (6, "division by zero"),
    "foo offset (4d/0)": (14, "division by zero"),
    "foo[5s%0d]": (6, "modulo by zero"),
    "foo offset 9.5e10": (11, "duration out of range"),
    "foo[9.5e10]": (4, "duration out of range"),
    "sum(": (4, "unclosed left parenthesis"),
    "sum(rate(": (9, "unclosed left parenthesis"),
    "foo[5s x 5s]": (7, "unexpected character: 'x', expected ':'"),
    "foo[5s s 5s]": (7, "unexpected character: 's', expected ':'"),
    "1[5m] smoothed": (1, "ranges only allowed for vector selectors"),
    "1[5m] anchored": (1, "ranges only allowed for vector selectors"),
}
# ... and some that upstream parses (format_query must accept them).
UPSTREAM_3X_OK = [
    'offset{step="1s"}[5m]', 'step{offset="1s"}[5m]', 'anchored{job="test"}',
    'smoothed{job="test"}', "foo * sum", "min", "foo offset +(5)", "foo offset -(5)",
    "foo offset (5)", "foo[(5s)]", "foo OFFSET 1h30m", "foo OFFSET 1m30ms", "foo @ .3",
    "foo @ 3.", "foo @ 0xA", "foo @ -3.3e1", 'foo:bar{a="bc"}', '{"foo"}',
    "{'foo\\'bar', 'a\\\\dos\\\\path'='boo\\\\urns'}", '{"foo", a="bc"}',
    "foo{NaN='bc'}", "foo{bar='}'}", '{__name__="bar", __name__="baz"}',
    '{"bar", __name__="baz"}', "test[5]", "some_metric[5m] @ 1m", 'test{a="b"}[5m] OFFSET 3600',
    "foo[4.18] @ 2.345", "sum by (anchored)(some_metric)", 'sum by ("foo bar")({"some.metric"})',
    "sum by (\"foo\", bar, 'baz')({\"some.metric\"})", "sum by (foo,)(some_metric)",
    "sum without(and, by, avg, count, alert, annotations)(some_metric)", "sum(sum)", "a + sum",
    "round(some_metric, 5)", "foo[10m:]", 'foo{bar="baz"}[10m5s:1h6ms]',
    "foo @ start()", "test[5y] @ end()", "foo[10m:6s] @ start()", "start()", "end()", "start",
    "end", 'start{end="foo"}', 'end{start="foo"}', "foo unless on(start) bar",
    "foo unless on(end) bar", "info(rate(http_request_counter_total{}[5m]))",
    'info(http_request_counter_total{namespace="zzz"}, {foo="bar", bar="baz"})',
    "foo[11s+10s-5*2^2]", "foo[-(10s-5s)+20s]", "foo[-10s+15s]", "foo[step()]",
    "foo[  -  step  (  )  ]", "foo[   step  (  )  ]", "foo[-step()]", "foo offset step()",
    "foo offset -step()", "foo[max_of(step(),5s)]", "foo offset max_of(step(),5s)",
    "foo offset -min_of(5s,step()+8s)", "foo[range()]", "foo[2m/range()]", "foo[-range()]",
    "foo offset range()", "foo offset -range()", "foo[max_of(range(),5s)]",
    "foo[4s+4s:1s*2] offset (5s-8)", "foo offset 5s-8", "rate(foo[2m+2m])", "foo offset -1^1",
    "foo offset -(1^2)", "foo offset (-1^2)", "foo[-2^2]", "foo[0+-2^2]", "(sum(foo) )",
    "(sum(foo) by (bar))", "(sum by (bar) (foo))",
]

# ---- servers ---------------------------------------------------------------------------------
class Prometheus(RealPrometheus):
    def __init__(self):
        super().__init__([])


MTD_CONFIG = """
server:
  http_listen_address: 127.0.0.1
  http_listen_port: %(port)d
  grpc_listen_port: %(grpc)d
blocks_storage:
  tsdb:
    dir: ./tsdb
"""


def ask(base, path, params):
    st, body, _ = http("POST", base + path, urllib.parse.urlencode(params),
                       {"Content-Type": "application/x-www-form-urlencoded"}, timeout=30)
    try:
        j = json.loads(body)
    except ValueError:
        return st, {"status": "error", "error": "non-JSON body: %r" % body[:200]}
    return st, j


def summary(st, j):
    """The compared part of an answer."""
    if j.get("status") == "success":
        return (st, "success", None, None)
    return (st, j.get("status"), j.get("errorType"), j.get("error"))


class Servers:
    def __enter__(self):
        port = free_port()
        self.mtd = Daemon("metricsd", MTD_CONFIG % {"port": port, "grpc": free_port()},
                          http_port=port)
        self.prom = None
        self.mtd.start()
        self.prom = Prometheus()
        return self

    def __exit__(self, *a):
        if self.prom:
            self.prom.stop()
        self.mtd.stop()
        self.mtd.cleanup()


def test_parse_errors_match_prometheus():
    if not os.path.exists(PROM_BIN):
        print("skip: prometheus not installed")
        return
    seen = set()
    queries = [q for q in ERROR_QUERIES if not (q in seen or seen.add(q))]
    assert len(queries) >= 150, len(queries)
    mism, doc_seen = [], 0
    with Servers() as s:
        for q in queries:
            params = {"query": q, "time": "1000"}
            a = summary(*ask(s.mtd.url(), "/api/v1/query", params))
            b = summary(*ask(s.prom.url(), "/api/v1/query", params))
            if VERBOSE:
                print("  %-4s %r\n       metricsd:   %s\n       prometheus: %s" % (
                    "ok" if a == b else "DIFF", q, a, b))
            if q in DOCUMENTED_DIFF:
                reason, want = DOCUMENTED_DIFF[q]
                doc_seen += 1
                got = a[3] if a[1] == "error" else None
                print("  documented: %r: %s\n    metricsd %r, 2.42 %r" % (q, reason, got, b[3]))
                if got != want:
                    mism.append((q, a, ("3.x", want)))
                continue
            if a != b:
                mism.append((q, a, b))
    print("  %d queries compared, %d documented 2.42-vs-3.x differences, %d mismatches" % (
        len(queries), doc_seen, len(mism)))
    for q, a, b in mism:
        print("  MISMATCH %r\n    metricsd:   %s\n    prometheus: %s" % (q, a, b))
    assert not mism, "%d of %d queries answered differently" % (len(mism), len(queries))


def test_format_query_matches_prometheus():
    if not os.path.exists(PROM_BIN):
        print("skip: prometheus not installed")
        return
    mism = []
    with Servers() as s:
        for q in FORMAT_QUERIES:
            a = ask(s.mtd.url(), "/api/v1/format_query", {"query": q})
            b = ask(s.prom.url(), "/api/v1/format_query", {"query": q})
            ra = (a[0], a[1].get("data", a[1].get("error")))
            rb = (b[0], b[1].get("data", b[1].get("error")))
            if VERBOSE:
                print("  %-4s %r -> %r / %r" % ("ok" if ra == rb else "DIFF", q, ra, rb))
            if ra != rb:
                mism.append((q, ra, rb))
        for q, want in FORMAT_3X.items():
            st, j = ask(s.mtd.url(), "/api/v1/format_query", {"query": q})
            got = (st, j.get("data", j.get("error")))
            if VERBOSE:
                print("  %-4s %r -> %r (3.x: %r)" % ("ok" if got == (200, want) else "DIFF",
                                                     q, got, want))
            if got != (200, want):
                mism.append((q, got, ("3.x", want)))
    print("  %d format_query cases against 2.42, %d 3.x-only cases" % (
        len(FORMAT_QUERIES), len(FORMAT_3X)))
    for q, a, b in mism:
        print("  MISMATCH %r\n    metricsd:   %r\n    expected:   %r" % (q, a, b))
    assert not mism, "%d format_query answers differ" % len(mism)


# Every function metricsd knows, called with no, a string, six, a range-vector and a scalar
# argument: argument counts and types are checked like Prometheus' checkAST. A function 2.42
# does not know ("unknown function") is a 3.x addition: then metricsd must know it.
FUNCTIONS = (
    "abs absent absent_over_time acos acosh asin asinh atan atanh avg_over_time ceil changes "
    "clamp clamp_max clamp_min cos cosh count_over_time day_of_month day_of_week day_of_year "
    "days_in_month deg delta deriv double_exponential_smoothing exp first_over_time floor "
    "histogram_avg histogram_count histogram_fraction histogram_quantile histogram_stddev "
    "histogram_stdvar histogram_sum holt_winters hour idelta increase info irate label_join "
    "label_replace last_over_time ln log10 log2 mad_over_time max_over_time min_over_time minute "
    "month pi predict_linear present_over_time quantile_over_time rad rate resets round scalar "
    "sgn sin sinh sort sort_by_label sort_by_label_desc sort_desc sqrt stddev_over_time "
    "stdvar_over_time sum_over_time tan tanh time timestamp ts_of_first_over_time "
    "ts_of_last_over_time ts_of_max_over_time ts_of_min_over_time vector year").split()


def test_function_arity_and_types_match_prometheus():
    if not os.path.exists(PROM_BIN):
        print("skip: prometheus not installed")
        return
    mism, newer, compared = [], set(), 0
    with Servers() as s:
        for fn in FUNCTIONS:
            for args in ("", '"x"', "up, up, up, up, up, up", "up[5m]", "1"):
                q = "%s(%s)" % (fn, args)
                params = {"query": q, "time": "1000"}
                a = summary(*ask(s.mtd.url(), "/api/v1/query", params))
                b = summary(*ask(s.prom.url(), "/api/v1/query", params))
                compared += 1
                if b[3] and "unknown function with name" in b[3]:
                    newer.add(fn)
                    if a[3] and "unknown function" in a[3]:
                        mism.append((q, a, b))
                    continue
                if VERBOSE:
                    print("  %-4s %r\n       metricsd:   %s\n       prometheus: %s" % (
                        "ok" if a == b else "DIFF", q, a, b))
                if a != b:
                    mism.append((q, a, b))
    print("  %d calls compared; 3.x functions 2.42 does not know: %s" % (
        compared, ", ".join(sorted(newer))))
    for q, a, b in mism:
        print("  MISMATCH %r\n    metricsd:   %s\n    prometheus: %s" % (q, a, b))
    assert not mism, "%d calls answered differently" % len(mism)


def test_upstream_3x_parser_cases():
    """upstream parse_test.go's error texts and positions, and queries it accepts."""
    port = free_port()
    mtd = Daemon("metricsd", MTD_CONFIG % {"port": port, "grpc": free_port()}, http_port=port)
    mism = []
    try:
        mtd.start()
        for q, (start, msg) in UPSTREAM_3X.items():
            line = q.count("\n", 0, start) + 1
            col = start - (q.rfind("\n", 0, start) + 1) + 1
            want = 'invalid parameter "query": %d:%d: parse error: %s' % (line, col, msg)
            st, j = ask(mtd.url(), "/api/v1/query", {"query": q, "time": "1000"})
            got = j.get("error")
            if VERBOSE:
                print("  %-4s %r -> %r" % ("ok" if got == want else "DIFF", q, got))
            if st != 400 or got != want:
                mism.append((q, (st, got), want))
        for q in UPSTREAM_3X_OK:
            st, j = ask(mtd.url(), "/api/v1/format_query", {"query": q})
            if st != 200:
                mism.append((q, (st, j.get("error")), "accepted"))
    finally:
        mtd.stop()
        mtd.cleanup()
    print("  %d upstream error cases, %d accepted queries" % (len(UPSTREAM_3X),
                                                             len(UPSTREAM_3X_OK)))
    for q, a, b in mism:
        print("  MISMATCH %r\n    metricsd:   %r\n    upstream:   %r" % (q, a, b))
    assert not mism, "%d upstream cases differ" % len(mism)


TestRun(globals()).main()
