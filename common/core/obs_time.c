/*
 * obs_time.c -- clocks and time formats (see obs_time.h).
 */
#include "core/obs_time.h"
#include "core/obs_err.h"

#include <ctype.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int64_t obs_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t obs_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int64_t obs_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int obs_duration_parse_ms(const char *s, int64_t *out_ms)
{
    if (s == NULL || *s == '\0')
        return OBS_EINVAL;
    /* plain number: seconds */
    char *end;
    double f = strtod(s, &end);
    if (*end == '\0' && end != s) {
        if (!isfinite(f) || fabs(f) > 9.2e15)
            return OBS_EINVAL;
        *out_ms = (int64_t)llround(f * 1000.0);
        return OBS_OK;
    }
    int64_t total = 0;
    const char *p = s;
    int any = 0;
    int64_t last_unit = INT64_MAX; /* units must be strictly decreasing: 1h30m, not 30m1h */
    while (*p) {
        if (!isdigit((unsigned char)*p))
            return OBS_EINVAL;
        int64_t n = 0;
        while (isdigit((unsigned char)*p)) {
            if (n > 922337203685LL)
                return OBS_EINVAL;
            n = n * 10 + (*p++ - '0');
        }
        int64_t unit;
        if (p[0] == 'm' && p[1] == 's') {
            unit = 1;
            p += 2;
        } else {
            switch (*p) {
            case 's': unit = 1000; break;
            case 'm': unit = 60000; break;
            case 'h': unit = 3600000; break;
            case 'd': unit = 86400000; break;
            case 'w': unit = 7 * 86400000LL; break;
            case 'y': unit = 365 * 86400000LL; break;
            default: return OBS_EINVAL;
            }
            p++;
        }
        if (unit >= last_unit)
            return OBS_EINVAL;
        last_unit = unit;
        if (n > (INT64_MAX - total) / unit)
            return OBS_EINVAL; /* out of int64 range */
        total += n * unit;
        any = 1;
    }
    if (!any)
        return OBS_EINVAL;
    *out_ms = total;
    return OBS_OK;
}

int obs_duration_format(char *out, unsigned cap, int64_t ms)
{
    if (ms == 0)
        return snprintf(out, cap, "0s");
    int off = 0;
    if (ms < 0) {
        off += snprintf(out + off, cap - off, "-");
        ms = -ms;
    }
    static const struct { int64_t u; const char *n; } units[] = {
        {365 * 86400000LL, "y"}, {7 * 86400000LL, "w"}, {86400000LL, "d"}, {3600000, "h"},
        {60000, "m"}, {1000, "s"}, {1, "ms"}};
    for (unsigned i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (ms >= units[i].u) {
            off += snprintf(out + off, cap - off, "%lld%s", (long long)(ms / units[i].u), units[i].n);
            ms %= units[i].u;
        }
    }
    return off;
}

/* Parse RFC3339 into ns. Returns 0 or OBS_EINVAL. */
static int parse_rfc3339_ns(const char *s, int64_t *out_ns)
{
    int Y, M, D, h, m, sec, n = 0;
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &Y, &M, &D, &h, &m, &sec, &n) != 6 || n != 19)
        return OBS_EINVAL;
    const char *p = s + n;
    int64_t frac_ns = 0;
    if (*p == '.') {
        p++;
        int64_t scale = 100000000;
        if (!isdigit((unsigned char)*p))
            return OBS_EINVAL;
        while (isdigit((unsigned char)*p)) {
            frac_ns += (*p - '0') * scale;
            scale /= 10;
            p++;
        }
    }
    int64_t off_s = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh, om;
        if (!isdigit((unsigned char)p[1]) || !isdigit((unsigned char)p[2]) || p[3] != ':' ||
            !isdigit((unsigned char)p[4]) || !isdigit((unsigned char)p[5]))
            return OBS_EINVAL;
        oh = (p[1] - '0') * 10 + (p[2] - '0');
        om = (p[4] - '0') * 10 + (p[5] - '0');
        off_s = (oh * 3600 + om * 60) * (*p == '-' ? -1 : 1);
        p += 6;
    } else {
        return OBS_EINVAL;
    }
    if (*p != '\0' || M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || sec > 60)
        return OBS_EINVAL;
    struct tm tm = {0};
    tm.tm_year = Y - 1900;
    tm.tm_mon = M - 1;
    tm.tm_mday = D;
    tm.tm_hour = h;
    tm.tm_min = m;
    tm.tm_sec = sec;
    int64_t t = (int64_t)timegm(&tm) - off_s, ns;
    /* years outside ~1678..2262 do not fit in int64 nanoseconds */
    if (__builtin_mul_overflow(t, 1000000000LL, &ns) ||
        __builtin_add_overflow(ns, frac_ns, out_ns))
        return OBS_EINVAL;
    return OBS_OK;
}

int obs_time_parse_ms(const char *s, int64_t *out_ms)
{
    if (s == NULL || *s == '\0')
        return OBS_EINVAL;
    char *end;
    double f = strtod(s, &end);
    if (*end == '\0' && end != s) {
        if (!isfinite(f) || fabs(f) > 9.2e15)
            return OBS_EINVAL;
        *out_ms = (int64_t)llround(f * 1000.0);
        return OBS_OK;
    }
    int64_t ns;
    if (parse_rfc3339_ns(s, &ns) != OBS_OK)
        return OBS_EINVAL;
    *out_ms = ns / 1000000;
    return OBS_OK;
}

int obs_time_parse_ns(const char *s, int64_t *out_ns)
{
    if (s == NULL || *s == '\0')
        return OBS_EINVAL;
    char *end;
    long long iv = strtoll(s, &end, 10);
    if (*end == '\0' && end != s) {
        if (iv > 100000000000000LL || iv < -100000000000000LL)
            *out_ns = iv; /* already nanoseconds */
        else
            *out_ns = iv * 1000000000LL;
        return OBS_OK;
    }
    double f = strtod(s, &end);
    if (*end == '\0' && end != s) {
        if (!isfinite(f) || fabs(f) > 9.2e9)
            return OBS_EINVAL;
        *out_ns = (int64_t)llround(f * 1e9);
        return OBS_OK;
    }
    return parse_rfc3339_ns(s, out_ns);
}

int obs_time_format_rfc3339(char *out, unsigned cap, int64_t ms)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    return snprintf(out, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                    tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                    (int)(ms % 1000));
}
