/* The node's log sink (docs/operations.md, "Logs"): one line per event,
 * with a level checked before anything is formatted. Lines carry the
 * connection, worker and stream they are about; never a secret or a token.
 *
 * Lines go into a 64 KiB buffer that is written to the sink (stderr by
 * default) with one write(): right after every event line (log_write, any
 * level: events are rare, and someone may be watching for them), when it is
 * full, when the oldest buffered line is LOG_FLUSH_MS old and another line
 * comes, on log_flush(), and at exit(). So only access lines (one per
 * request) wait, until the next event line or the node's next log_flush()
 * (its 100 ms timer). The node is one thread: none of this is thread-safe. */
#ifndef WHT_NODE_LOG_H
#define WHT_NODE_LOG_H

#include <stddef.h>
#include <stdint.h>

enum log_level { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

/* The least severe level written; LOG() checks it before formatting. */
extern enum log_level log_current_level;

/* Parses "error", "warn", "info" or "debug". Returns 0 or -1. */
int log_parse_level(const char *s, enum log_level *out);

/* The shape of a line.
 * TEXT: "2026-12-01T20:00:01.123Z info  <message>\n": UTC time with
 *   milliseconds, the level padded to 5 columns, the message as formatted
 *   (not escaped).
 * JSON: {"time":"2026-12-01T20:00:01.123Z","level":"info","msg":"<message>"}
 *   and a newline. Strings are JSON-escaped; a byte that is not part of
 *   valid UTF-8 becomes \ufffd. The leading "key=value " tokens of the
 *   message whose key is conn, worker, peer, session or request_id are also
 *   given as fields of their own ("conn=12 worker=w1 registered" gives
 *   "conn":12,"worker":"w1"); lifting stops at the first other token or at a
 *   repeated key. conn and session are numbers when their value is 1 to 19
 *   digits without a leading zero (as in the access line), else strings;
 *   the others are always strings.
 *   msg keeps the whole message, tokens included. */
enum log_format { LOG_FORMAT_TEXT, LOG_FORMAT_JSON };

/* Chooses the shape of the lines that follow (default LOG_FORMAT_TEXT). */
void log_set_format(enum log_format f);

/* Writes a message (printf-style) at level. Call it through LOG_E/W/I/D,
 * which check the level first. A message is cut at LOG_MAX_MSG bytes.
 *
 * Rate limit: calls with the same fmt pointer are one kind of line; a kind
 * written more than LOG_RATE_MAX times within one second (a window starting
 * at its first line) is dropped for the rest of that window, and the next
 * line of that kind written afterwards ends with " (N similar lines
 * dropped)" (in JSON also the field "dropped":N). At most LOG_GLOBAL_MAX
 * lines a second are written in all (access lines aside); a line over that
 * cap is dropped and counted against its kind the same way. The kinds are
 * tracked in a fixed table of LOG_RATE_SLOTS; when the table is full the
 * least recently seen kind is forgotten, its pending count with it
 * (log_dropped_total() still has it). */
void log_write(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define LOG_MAX_MSG (256 * 1024) /* bytes of a formatted message; the rest is cut */
#define LOG_RATE_MAX 10          /* lines of one kind per window */
#define LOG_RATE_WINDOW_MS 1000
#define LOG_RATE_SLOTS 128
#define LOG_GLOBAL_MAX 1000 /* non-access lines per window, all kinds together */
#define LOG_BUF_SIZE (64 * 1024)
#define LOG_FLUSH_MS 100 /* a buffered line is written once it is this old and another line comes */

/* One viewer request (docs/operations.md, "Access log"). The strings are
 * read during the call only; NULL is taken as "". */
struct log_access {
    const char *worker; /* id, or "" */
    const char *method;
    size_t method_len;
    const char *path; /* the request target; cut at '?' by log_access() */
    size_t path_len;
    int status;
    uint64_t bytes_in, bytes_out;
    double duration_ms; /* negative or NaN is written as 0 */
    const char *via;    /* "local", "relayed_in", "relayed_out", "endpoint" */
    const char *request_id;
    const char *client; /* the viewer's address */
    uint64_t conn;
};

/* Writes one access line at level info (nothing when log_current_level is
 * below info). Never rate-limited, never counted against the global cap.
 * TEXT: "<time> info  access conn=12 worker=w1 method=GET path=/x
 *   status=200 in=10 out=20 ms=1.25 via=local request_id=ab client=1.2.3.4"
 *   (one line). In every value, a byte that is a space, a control byte,
 *   DEL or not ASCII is written as %XX (upper-case hex); an empty value is
 *   written as nothing after '='.
 * JSON: {"time":..,"level":"info","msg":"access","conn":12,"worker":"w1",
 *   "method":"GET","path":"/x","status":200,"bytes_in":10,"bytes_out":20,
 *   "duration_ms":1.25,"via":"local","request_id":"ab","client":"1.2.3.4"}.
 * ms / duration_ms have two decimals. */
void log_access(const struct log_access *a);

/* Writes out whatever is buffered (the node calls it from a 100 ms timer and
 * at exit; it is also registered with atexit()). */
void log_flush(void);

/* Says what the rate limit dropped when nobody else will: for each kind
 * whose window is over with dropped lines not yet said on a later line of
 * that kind, one warn line "N lines like \"<format>\" dropped" (in JSON also
 * "dropped":N), so that a flood that stops is still summarised. At most one
 * line per kind per window. The node calls it from its 100 ms timer. */
void log_summarize(void);

/* Makes fd the sink (default 2, stderr), after writing what is buffered to
 * the previous one. The caller keeps owning fd. */
void log_set_fd(int fd);

/* Lines dropped by the rate limit and the global cap since start (the metric
 * whtunnel_log_lines_dropped_total). */
uint64_t log_dropped_total(void);

/* For tests: the clocks. now_ms is monotonic (the rate windows and the flush
 * age; default util_now_ms), wall_ms is milliseconds since the epoch (the
 * time of a line; default util_wall_ms). NULL restores the default. */
void log__set_clock(int64_t (*now_ms)(void));
void log__set_wall_clock(int64_t (*wall_ms)(void));
/* For tests: forgets the rate-limit table, both windows, the drop count and
 * buffered bytes (they are discarded, not written). */
void log__reset(void);

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
