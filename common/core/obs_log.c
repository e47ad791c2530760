/*
 * obs_log.c -- logfmt logger (see obs_log.h).
 */
#include "core/obs_log.h"
#include "core/obs_err.h"

#include <event2/event.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

int obs_log_level_cur = OBS_LOG_INFO;

static const char *level_names[] = {"error", "warn", "info", "debug", "trace"};

int obs_log_set_level_name(const char *name)
{
    for (int i = 0; i <= OBS_LOG_TRACE; i++) {
        if (strcasecmp(name, level_names[i]) == 0) {
            obs_log_level_cur = i;
            return OBS_OK;
        }
    }
    if (strcasecmp(name, "warning") == 0) {
        obs_log_level_cur = OBS_LOG_WARN;
        return OBS_OK;
    }
    return OBS_EINVAL;
}

void obs_log_set_level(int level) { obs_log_level_cur = level; }

/* Append s to out as a logfmt value, quoting when needed. Returns new length. */
static size_t put_value(char *out, size_t off, size_t cap, const char *s, size_t n)
{
    int quote = n == 0;
    for (size_t i = 0; i < n && !quote; i++)
        if (s[i] == ' ' || s[i] == '"' || s[i] == '=' || (unsigned char)s[i] < 0x20)
            quote = 1;
    if (quote && off < cap)
        out[off++] = '"';
    for (size_t i = 0; i < n && off + 2 < cap; i++) {
        char c = s[i];
        if (c == '"' || c == '\\') {
            out[off++] = '\\';
            out[off++] = c;
        } else if (c == '\n') {
            out[off++] = '\\';
            out[off++] = 'n';
        } else if ((unsigned char)c < 0x20) {
            out[off++] = ' ';
        } else {
            out[off++] = c;
        }
    }
    if (quote && off < cap)
        out[off++] = '"';
    return off;
}

void obs_log_write(int level, const char *comp, const char *fmt, ...)
{
    char msg[2048], line[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    size_t off = (size_t)snprintf(line, sizeof(line),
                                  "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s",
                                  tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                                  tm.tm_min, tm.tm_sec, (long)(tv.tv_usec / 1000),
                                  level_names[level < 0 ? 0 : level > 4 ? 4 : level]);
    if (comp)
        off += (size_t)snprintf(line + off, sizeof(line) - off, " component=%s", comp);
    const char *tab = strchr(msg, '\t');
    size_t mlen = tab ? (size_t)(tab - msg) : strlen(msg);
    off += (size_t)snprintf(line + off, sizeof(line) - off, " msg=");
    off = put_value(line, off, sizeof(line) - 2, msg, mlen);
    if (tab && off + 1 < sizeof(line) - 2) {
        line[off++] = ' ';
        size_t rest = strlen(tab + 1);
        if (rest > sizeof(line) - 2 - off)
            rest = sizeof(line) - 2 - off;
        memcpy(line + off, tab + 1, rest);
        off += rest;
    }
    line[off++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, off);
    (void)w;
}

static void libevent_log_cb(int severity, const char *msg)
{
    int lvl = severity == EVENT_LOG_ERR ? OBS_LOG_ERROR
              : severity == EVENT_LOG_WARN ? OBS_LOG_WARN
              : severity == EVENT_LOG_MSG ? OBS_LOG_INFO
                                          : OBS_LOG_DEBUG;
    OBS_LOG_(lvl, "libevent", "%s", msg);
}

void obs_log_hook_libevent(void) { event_set_log_callback(libevent_log_cb); }
