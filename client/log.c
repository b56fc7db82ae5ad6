/* whclient: the log sink. One line per message on stderr:
 *   2024-05-01T12:00:00.123Z INFO  connected to wss://node.example (session 3)
 * The level is checked before formatting. Tokens are never passed in. */
#include "client/client.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static const char *const level_names[] = {"ERROR", "WARN ", "INFO ", "DEBUG"};

int client_log_enabled(enum client_log_level level)
{
    enum client_log_level max = client_cfg ? client_cfg->log_level : CLIENT_LOG_INFO;
    return level <= max;
}

static void emit(const char *level_name, const char *msg)
{
    char stamp[32];
    int64_t ms = util_wall_ms();
    time_t sec = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&sec, &tm);
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
    /* one fprintf per line: lines from one process never interleave */
    fprintf(stderr, "%s.%03dZ %s %s\n", stamp, (int)(ms % 1000), level_name, msg);
}

void client_log(enum client_log_level level, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    if (!client_log_enabled(level))
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    emit(level_names[level], msg);
}

static void lws_emit(int level, const char *line)
{
    char msg[1024];
    size_t n;
    (void)level;
    snprintf(msg, sizeof msg, "lws: %s", line);
    n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    emit(level_names[CLIENT_LOG_DEBUG], msg);
}

void client_log_setup_lws(enum client_log_level level)
{
    /* lws logs ordinary events (a refused connection, a 401) as errors; whclient
     * reports those itself, so lws's own lines are shown at debug level only. */
    lws_set_log_level(level >= CLIENT_LOG_DEBUG ? LLL_ERR | LLL_WARN | LLL_NOTICE : 0, lws_emit);
}
