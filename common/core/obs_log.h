/*
 * obs_log.h -- logfmt logger with levels.
 *
 * Output: `ts=2026-11-22T10:00:00.123Z level=info component=ingester msg="..."` to stderr.
 * The macros test the level before evaluating their arguments, so a disabled debug line costs
 * one compare. The logger is one of the two permitted globals; it is thread-safe (one write(2)
 * per line).
 */
#ifndef OBS_LOG_H
#define OBS_LOG_H

enum obs_log_level { OBS_LOG_ERROR = 0, OBS_LOG_WARN, OBS_LOG_INFO, OBS_LOG_DEBUG, OBS_LOG_TRACE };

extern int obs_log_level_cur;

/* Set the level from a name (error|warn|info|debug|trace). Returns 0 or OBS_EINVAL. */
int obs_log_set_level_name(const char *name);
void obs_log_set_level(int level);
/* Route libevent's own log messages into this logger. */
void obs_log_hook_libevent(void);

/* Write one line. comp may be NULL. msg is printf-formatted; extra logfmt pairs may follow
 * in the message itself after a "\t" separator: obs_log_write(L, "ingester", "flushed\tseries=%d", n)
 * prints msg=flushed series=3. */
void obs_log_write(int level, const char *comp, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define OBS_LOG_(lvl, comp, ...)                                                               \
    do {                                                                                       \
        if ((lvl) <= obs_log_level_cur)                                                        \
            obs_log_write((lvl), (comp), __VA_ARGS__);                                         \
    } while (0)

#define obs_log_error(...) OBS_LOG_(OBS_LOG_ERROR, NULL, __VA_ARGS__)
#define obs_log_warn(...) OBS_LOG_(OBS_LOG_WARN, NULL, __VA_ARGS__)
#define obs_log_info(...) OBS_LOG_(OBS_LOG_INFO, NULL, __VA_ARGS__)
#define obs_log_debug(...) OBS_LOG_(OBS_LOG_DEBUG, NULL, __VA_ARGS__)
#define obs_log_trace(...) OBS_LOG_(OBS_LOG_TRACE, NULL, __VA_ARGS__)
#define obs_clog_error(c, ...) OBS_LOG_(OBS_LOG_ERROR, (c), __VA_ARGS__)
#define obs_clog_warn(c, ...) OBS_LOG_(OBS_LOG_WARN, (c), __VA_ARGS__)
#define obs_clog_info(c, ...) OBS_LOG_(OBS_LOG_INFO, (c), __VA_ARGS__)
#define obs_clog_debug(c, ...) OBS_LOG_(OBS_LOG_DEBUG, (c), __VA_ARGS__)
/* Log "what: strerror(errno)" at error level. */
#define obs_log_errno(what) obs_log_write(OBS_LOG_ERROR, NULL, "%s: %s", (what), strerror(errno))

#endif
