/*
 * obs_err.h -- the one return-code convention and the caller-owned error detail.
 *
 * Every int-returning function in the suite returns 0 (OBS_OK) on success or a negative
 * OBS_E* code. Slow paths (config, parsers, storage open) also fill a caller-owned
 * struct obs_err with a message and, for config, the file/line/col it refers to.
 */
#ifndef OBS_ERR_H
#define OBS_ERR_H

#include <stdarg.h>

enum obs_rc {
    OBS_OK = 0,
    OBS_ENOMEM = -1,   /* allocation failed */
    OBS_EINVAL = -2,   /* bad input (client error) */
    OBS_EIO = -3,      /* I/O error (disk, network) */
    OBS_ENOENT = -4,   /* not found */
    OBS_EAGAIN = -5,   /* try again later (would block) */
    OBS_ERETRY = -6,   /* temporary failure; caller retries */
    OBS_EFATAL = -7,   /* permanent failure; do not retry */
    OBS_ELIMIT = -8,   /* a limit was hit (size, rate, series) */
    OBS_ECORRUPT = -9, /* checksum or format corruption */
    OBS_EEXIST = -10,  /* already exists / duplicate */
    OBS_ERANGE = -11,  /* out of range (e.g. out-of-order sample) */
};

struct obs_err {
    int code;
    char msg[256];
    const char *file; /* borrowed; config file name when relevant */
    int line;         /* 1-based, 0 when unknown */
    int col;          /* 1-based, 0 when unknown */
};

/* Fill err (which may be NULL) with code and a printf-style message. Returns code, so
 * callers can write `return obs_err_set(err, OBS_EINVAL, "bad %s", x);`. */
int obs_err_set(struct obs_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Same, with a source position (config errors print as file:line:col: msg). */
int obs_err_setpos(struct obs_err *err, int code, const char *file, int line, int col,
                   const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/* Reset err to OBS_OK and an empty message. err may be NULL. */
void obs_err_clear(struct obs_err *err);

/* Short constant name of a return code ("EINVAL"). */
const char *obs_rc_str(int code);

#endif
