/* The node's log sink: one line per event on stderr, with a level checked
 * before anything is formatted. Lines carry the connection, worker and
 * stream they are about; never a secret or a token. */
#ifndef WHT_NODE_LOG_H
#define WHT_NODE_LOG_H

enum log_level { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

extern enum log_level log_current_level;

/* Parses "error", "warn", "info" or "debug". Returns 0 or -1. */
int log_parse_level(const char *s, enum log_level *out);

void log_write(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define LOG(level, ...)                                                                                      \
    do {                                                                                                     \
        if ((level) <= log_current_level)                                                                    \
            log_write((level), __VA_ARGS__);                                                                 \
    } while (0)
#define LOG_E(...) LOG(LOG_ERROR, __VA_ARGS__)
#define LOG_W(...) LOG(LOG_WARN, __VA_ARGS__)
#define LOG_I(...) LOG(LOG_INFO, __VA_ARGS__)
#define LOG_D(...) LOG(LOG_DEBUG, __VA_ARGS__)

#endif
