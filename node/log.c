/* The node's log sink, see log.h: a line is admitted (rate limit), formatted,
 * shaped as text or JSON into a line buffer, then appended to the output
 * buffer that log_flush() writes. */
#include "node/log.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util/util.h"

#define LOG_WRITE_WAIT_MS 1000 /* at most this long waiting for a non-blocking sink */
#define LOG_MSG_LOCAL 1024     /* a message this long is formatted on the stack */
#define LOG_LINE_LOCAL 4096    /* a line this long is shaped on the stack */
#define LOG_FIXED 512          /* room for everything in a line but escaped strings */
#define LOG_ESC_MAX 6          /* the longest escape of one byte: \u00XX, \ufffd */

enum log_level log_current_level = LOG_INFO;

static const char *const names[] = {"error", "warn", "info", "debug"};

/* One kind of line: the calls with one fmt pointer. */
struct log__kind {
    const char *fmt;  /* NULL: a free slot */
    int64_t start_ms; /* when its window began */
    uint64_t seen;    /* log__s.seq at its last line, for eviction */
    uint32_t count;   /* lines in the window, written or not */
    uint64_t dropped; /* dropped since the last line written */
};

/* The log sink: with the config, the only global (STYLE.md habit 9). */
static struct {
    int fd;
    enum log_format format;
    int64_t (*now_ms)(void);
    int64_t (*wall_ms)(void);
    int atexit_done;
    char buf[LOG_BUF_SIZE];
    size_t len;
    int64_t oldest_ms; /* when the first buffered byte came */
    struct log__kind kinds[LOG_RATE_SLOTS];
    int64_t global_start_ms;
    uint32_t global_count;
    uint64_t dropped_total;
    uint64_t seq;     /* lines of log_write(), admitted or not */
    int64_t time_sec; /* the second time_text holds, or -1 */
    char time_text[32];
} log__s = {
    .fd = 2, .format = LOG_FORMAT_TEXT, .now_ms = util_now_ms, .wall_ms = util_wall_ms, .time_sec = -1};

int log_parse_level(const char *s, enum log_level *out)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(s, names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    return -1;
}

void log_set_format(enum log_format f)
{
    log__s.format = f == LOG_FORMAT_JSON ? LOG_FORMAT_JSON : LOG_FORMAT_TEXT;
}

void log__set_clock(int64_t (*now_ms)(void))
{
    log__s.now_ms = now_ms ? now_ms : util_now_ms;
}

void log__set_wall_clock(int64_t (*wall_ms)(void))
{
    log__s.wall_ms = wall_ms ? wall_ms : util_wall_ms;
    log__s.time_sec = -1;
}

uint64_t log_dropped_total(void)
{
    return log__s.dropped_total;
}

void log__reset(void)
{
    memset(log__s.kinds, 0, sizeof log__s.kinds);
    log__s.global_start_ms = 0;
    log__s.global_count = 0;
    log__s.dropped_total = 0;
    log__s.len = 0;
}

/* ---- the sink ---------------------------------------------------------------------------------- */

/* Writes n bytes to fd: through short writes and EINTR, waiting at most
 * LOG_WRITE_WAIT_MS in all for a non-blocking fd; on any other error the rest
 * is lost (there is nowhere to report it). */
static void log__write_all(int fd, const char *p, size_t n)
{
    int waited = 0;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
        } else if (w < 0 && errno == EINTR) {
            continue;
        } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && waited < LOG_WRITE_WAIT_MS) {
            struct pollfd pfd = {.fd = fd, .events = POLLOUT};
            (void)poll(&pfd, 1, 100);
            waited += 100;
        } else {
            return;
        }
    }
}

void log_flush(void)
{
    if (log__s.len == 0)
        return;
    log__write_all(log__s.fd, log__s.buf, log__s.len);
    log__s.len = 0;
}

void log_set_fd(int fd)
{
    log_flush();
    log__s.fd = fd;
}

/* Appends one whole line (n bytes, its newline included) to the output
 * buffer, writing first what is there when the line does not fit or the
 * oldest buffered line is LOG_FLUSH_MS old. An event line (not an access
 * line) is written at once, with what waits before it: events are rare and
 * someone may be watching for them; access lines, one per request, wait for
 * a full buffer, the next event or the flush timer. A line longer than the
 * buffer is written directly. */
static void log__emit(int event, const char *p, size_t n)
{
    int64_t now = log__s.now_ms();
    if (log__s.len > 0 && (n > sizeof log__s.buf - log__s.len || now - log__s.oldest_ms >= LOG_FLUSH_MS))
        log_flush();
    if (!log__s.atexit_done) {
        log__s.atexit_done = 1;
        atexit(log_flush);
    }
    if (n > sizeof log__s.buf) {
        log__write_all(log__s.fd, p, n);
        return;
    }
    if (log__s.len == 0)
        log__s.oldest_ms = now;
    memcpy(log__s.buf + log__s.len, p, n);
    log__s.len += n;
    if (event)
        log_flush();
}

/* ---- the rate limit ---------------------------------------------------------------------------- */

/* The slot of fmt, taken if fmt has none (the least recently seen kind
 * evicted when the table is full). Open addressing, probing from a hash of
 * the pointer; slots are never emptied but all at once (log__reset), so a
 * free slot ends the search. A full table is scanned whole on a miss: 128
 * compares, only once the node has more than 128 kinds of line. */
static struct log__kind *log__kind_of(const char *fmt, int64_t now)
{
    uint64_t h = ((uint64_t)(uintptr_t)fmt >> 3) * 0x9E3779B97F4A7C15ull;
    size_t first = (size_t)(h >> 32);
    struct log__kind *victim = NULL;
    for (size_t i = 0; i < LOG_RATE_SLOTS; i++) {
        struct log__kind *k = &log__s.kinds[(first + i) % LOG_RATE_SLOTS];
        if (k->fmt == fmt)
            return k;
        if (!k->fmt) {
            victim = k;
            break;
        }
        if (!victim || k->seen < victim->seen)
            victim = k;
    }
    memset(victim, 0, sizeof *victim);
    victim->fmt = fmt;
    victim->start_ms = now;
    return victim;
}

/* 1 if a line of kind fmt may be written now, with *note set to the lines of
 * that kind dropped before it (to be said on it); 0 if it is dropped. */
static int log__admit(const char *fmt, uint64_t *note)
{
    int64_t now = log__s.now_ms();
    struct log__kind *k = log__kind_of(fmt, now);
    k->seen = ++log__s.seq;
    if (now - k->start_ms >= LOG_RATE_WINDOW_MS || now < k->start_ms) {
        k->start_ms = now;
        k->count = 0;
    }
    if (now - log__s.global_start_ms >= LOG_RATE_WINDOW_MS || now < log__s.global_start_ms) {
        log__s.global_start_ms = now;
        log__s.global_count = 0;
    }
    if (k->count >= LOG_RATE_MAX || log__s.global_count >= LOG_GLOBAL_MAX) {
        if (k->count < LOG_RATE_MAX)
            k->count++;
        k->dropped++;
        log__s.dropped_total++;
        return 0;
    }
    k->count++;
    log__s.global_count++;
    *note = k->dropped;
    k->dropped = 0;
    return 1;
}

/* ---- shaping a line ---------------------------------------------------------------------------- */

/* A line being shaped: on the stack when short, else on the heap; put()
 * never writes past cap (it is sized so that it does not have to cut). */
struct log__line {
    char *p;
    size_t len, cap;
    char local[LOG_LINE_LOCAL];
};

/* Readies l for up to need bytes. Returns 0, or -1 when memory is short. */
static int log__line_open(struct log__line *l, size_t need)
{
    l->len = 0;
    l->p = l->local;
    l->cap = sizeof l->local;
    if (need <= sizeof l->local)
        return 0;
    l->p = malloc(need);
    if (!l->p) {
        l->p = l->local;
        return -1;
    }
    l->cap = need;
    return 0;
}

static void log__line_close(struct log__line *l)
{
    if (l->p != l->local)
        free(l->p);
}

static void log__put(struct log__line *l, const char *s, size_t n)
{
    if (n > l->cap - l->len)
        n = l->cap - l->len;
    if (n > 0)
        memcpy(l->p + l->len, s, n);
    l->len += n;
}

static void log__puts(struct log__line *l, const char *s)
{
    log__put(l, s, strlen(s));
}

static void log__putf(struct log__line *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void log__putf(struct log__line *l, const char *fmt, ...)
{
    char tmp[64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0)
        log__put(l, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* Writes v in decimal to out (at least 21 bytes); returns the length. No
 * printf: an access line per request must cost little. */
static size_t log__u64(char *out, uint64_t v)
{
    char tmp[21];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    return n;
}

/* ms with two decimals ("1.25"), rounded; at most 1e15. */
static size_t log__ms(char *out, double ms)
{
    uint64_t h = (uint64_t)(ms * 100 + 0.5);
    size_t n = log__u64(out, h / 100);
    out[n++] = '.';
    out[n++] = (char)('0' + h / 10 % 10);
    out[n++] = (char)('0' + h % 10);
    return n;
}

/* The time of a line, "2026-12-01T20:00:01.123Z" (24 bytes, UTC). The date
 * and the seconds are kept from the last call of the same second. */
static void log__put_time(struct log__line *l)
{
    int64_t ms = log__s.wall_ms();
    if (ms < 0)
        ms = 0;
    int64_t sec = ms / 1000;
    if (sec != log__s.time_sec) {
        time_t t = (time_t)sec;
        struct tm tm;
        if (!gmtime_r(&t, &tm) ||
            !strftime(log__s.time_text, sizeof log__s.time_text, "%Y-%m-%dT%H:%M:%S", &tm))
            strcpy(log__s.time_text, "1970-01-01T00:00:00");
        log__s.time_sec = sec;
    }
    int frac = (int)(ms % 1000);
    char tail[5] = {'.', (char)('0' + frac / 100), (char)('0' + frac / 10 % 10), (char)('0' + frac % 10),
                    'Z'};
    log__puts(l, log__s.time_text);
    log__put(l, tail, sizeof tail);
}

/* The length of the valid UTF-8 sequence of 2 to 4 bytes at s (n bytes
 * left), or 0 (overlong forms, surrogates and code points past U+10FFFF are
 * not valid). */
static size_t log__utf8_len(const unsigned char *s, size_t n)
{
    size_t need;
    if (s[0] >= 0xc2 && s[0] <= 0xdf)
        need = 2;
    else if ((s[0] & 0xf0) == 0xe0)
        need = 3;
    else if (s[0] >= 0xf0 && s[0] <= 0xf4)
        need = 4;
    else
        return 0;
    if (n < need)
        return 0;
    uint32_t cp = s[0] & (0x7fu >> need);
    for (size_t i = 1; i < need; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3fu);
    }
    if (need == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff)))
        return 0;
    if (need == 4 && (cp < 0x10000 || cp > 0x10ffff))
        return 0;
    return need;
}

/* One byte that JSON cannot carry as it is: a quote, a backslash, a control
 * byte, or a byte of invalid UTF-8 (which becomes U+FFFD). */
static void log__put_json_escape(struct log__line *l, unsigned char c)
{
    switch (c) {
    case '"': log__puts(l, "\\\""); break;
    case '\\': log__puts(l, "\\\\"); break;
    case '\n': log__puts(l, "\\n"); break;
    case '\r': log__puts(l, "\\r"); break;
    case '\t': log__puts(l, "\\t"); break;
    case '\b': log__puts(l, "\\b"); break;
    case '\f': log__puts(l, "\\f"); break;
    default:
        if (c >= 0x80)
            log__puts(l, "\\ufffd");
        else
            log__putf(l, "\\u%04x", c);
    }
}

/* The n bytes of s as the inside of a JSON string (at most 6 bytes a byte). */
static void log__put_json_str(struct log__line *l, const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t start = 0, i = 0;
    while (i < n) {
        size_t seq;
        if (u[i] >= 0x20 && u[i] < 0x80 && u[i] != '"' && u[i] != '\\') {
            i++;
            continue;
        }
        if (u[i] >= 0x80 && (seq = log__utf8_len(u + i, n - i)) > 0) {
            i += seq;
            continue;
        }
        log__put(l, s + start, i - start);
        log__put_json_escape(l, u[i]);
        start = ++i;
    }
    log__put(l, s + start, i - start);
}

/* The n bytes of s as a text access-log value: spaces, control bytes, DEL
 * and non-ASCII bytes as %XX (at most 3 bytes a byte). */
static void log__put_text_value(struct log__line *l, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    const unsigned char *u = (const unsigned char *)s;
    size_t start = 0, i = 0;
    while (i < n && u[i] - 0x21u < 0x5eu) /* the usual case: nothing to escape */
        i++;
    if (i == n) {
        log__put(l, s, n);
        return;
    }
    for (; i < n; i++) {
        if (u[i] > 0x20 && u[i] < 0x7f)
            continue;
        char esc[3] = {'%', hex[u[i] >> 4], hex[u[i] & 15]};
        log__put(l, s + start, i - start);
        log__put(l, esc, 3);
        start = i + 1;
    }
    log__put(l, s + start, n - start);
}

/* ',"key":' and the n bytes of s: as they are when number, else as a JSON
 * string. key needs no escaping. */
static void log__put_json_field(struct log__line *l, const char *key, const char *s, size_t n, int number)
{
    log__puts(l, ",\"");
    log__puts(l, key);
    log__puts(l, number ? "\":" : "\":\"");
    if (number) {
        log__put(l, s, n);
        return;
    }
    log__put_json_str(l, s, n);
    log__puts(l, "\"");
}

/* "{"time":"...","level":"..."," */
static void log__put_json_head(struct log__line *l, enum log_level level)
{
    log__puts(l, "{\"time\":\"");
    log__put_time(l);
    log__puts(l, "\",\"level\":\"");
    log__puts(l, names[level]);
    log__puts(l, "\",");
}

/* "<time> <level padded to 5> " */
static void log__put_text_head(struct log__line *l, enum log_level level)
{
    static const char *const padded[] = {" error ", " warn  ", " info  ", " debug "};
    log__put_time(l);
    log__put(l, padded[level], 7);
}

/* ---- log_write --------------------------------------------------------------------------------- */

/* A formatted message: on the stack when short, else on the heap, cut at
 * LOG_MAX_MSG bytes. */
struct log__msg {
    char *p;
    size_t len;
    char local[LOG_MSG_LOCAL];
};

static void log__msg_format(struct log__msg *m, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
static void log__msg_format(struct log__msg *m, const char *fmt, va_list ap)
{
    va_list again;
    va_copy(again, ap);
    int n = vsnprintf(m->local, sizeof m->local, fmt, ap);
    m->p = m->local;
    m->len = n < 0 ? 0 : (size_t)n;
    if (m->len >= sizeof m->local) {
        size_t want = m->len > LOG_MAX_MSG ? LOG_MAX_MSG : m->len;
        char *big = malloc(want + 1);
        if (big) {
            vsnprintf(big, want + 1, fmt, again);
            m->p = big;
            m->len = want;
        } else {
            m->len = sizeof m->local - 1;
        }
    }
    va_end(again);
}

/* A leading "key=value" token of a message lifted into a JSON field. */
struct log__field {
    const struct log__lift_key *key;
    const char *val;
    size_t val_len;
};

/* The keys lifted, and whether a value of digits is given as a number. */
static const struct log__lift_key {
    const char *name;
    int number;
} log__lift_keys[] = {{"conn", 1}, {"worker", 0}, {"peer", 0}, {"session", 1}, {"request_id", 0}};
#define LOG_LIFT_KEYS (sizeof log__lift_keys / sizeof log__lift_keys[0])

/* The key of the token at s (n bytes), or NULL. */
static const struct log__lift_key *log__lift_key(const char *s, size_t n)
{
    for (size_t k = 0; k < LOG_LIFT_KEYS; k++) {
        size_t kl = strlen(log__lift_keys[k].name);
        if (n > kl && memcmp(s, log__lift_keys[k].name, kl) == 0 && s[kl] == '=')
            return &log__lift_keys[k];
    }
    return NULL;
}

/* Fills out with the leading key=value tokens of msg (see log.h); returns
 * how many. */
static size_t log__lift(const char *msg, size_t len, struct log__field out[LOG_LIFT_KEYS])
{
    size_t n = 0, i = 0;
    while (i < len && n < LOG_LIFT_KEYS) {
        const struct log__lift_key *key = log__lift_key(msg + i, len - i);
        if (!key)
            break;
        for (size_t j = 0; j < n; j++)
            if (out[j].key == key)
                return n;
        size_t v = i + strlen(key->name) + 1, e = v;
        while (e < len && msg[e] != ' ')
            e++;
        if (e == v)
            break;
        out[n++] = (struct log__field){key, msg + v, e - v};
        i = e + 1;
    }
    return n;
}

/* 1 if s (n bytes) is 1 to 19 decimal digits without a leading zero: a JSON
 * number that fits a uint64_t. */
static int log__is_number(const char *s, size_t n)
{
    if (n == 0 || n > 19 || (n > 1 && s[0] == '0'))
        return 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return 1;
}

static void log__json_message(struct log__line *l, enum log_level level, const struct log__msg *m,
                              const char *note)
{
    struct log__field f[LOG_LIFT_KEYS];
    size_t nf = log__lift(m->p, m->len, f);
    log__put_json_head(l, level);
    log__puts(l, "\"msg\":\"");
    log__put_json_str(l, m->p, m->len);
    log__puts(l, note);
    log__puts(l, "\"");
    for (size_t i = 0; i < nf; i++) {
        int number = f[i].key->number && log__is_number(f[i].val, f[i].val_len);
        log__put_json_field(l, f[i].key->name, f[i].val, f[i].val_len, number);
    }
}

void log_write(enum log_level level, const char *fmt, ...)
{
    uint64_t dropped = 0;
    if ((unsigned)level > LOG_DEBUG)
        level = LOG_DEBUG;
    if (!fmt)
        return;
    if (!log__admit(fmt, &dropped))
        return;
    struct log__msg m;
    va_list ap;
    va_start(ap, fmt);
    log__msg_format(&m, fmt, ap);
    va_end(ap);
    char note[64] = "";
    if (dropped)
        snprintf(note, sizeof note, " (%llu similar lines dropped)", (unsigned long long)dropped);
    struct log__line l;
    if (log__line_open(&l, LOG_FIXED + 2 * LOG_ESC_MAX * m.len) != 0 && m.len > 0)
        m.len = (sizeof l.local - LOG_FIXED) / (2 * LOG_ESC_MAX); /* short of memory: cut the message */
    if (log__s.format == LOG_FORMAT_JSON) {
        log__json_message(&l, level, &m, note);
        if (dropped)
            log__putf(&l, ",\"dropped\":%llu", (unsigned long long)dropped);
        log__puts(&l, "}\n");
    } else {
        log__put_text_head(&l, level);
        log__put(&l, m.p, m.len);
        log__puts(&l, note);
        log__puts(&l, "\n");
    }
    log__emit(1, l.p, l.len);
    log__line_close(&l);
    if (m.p != m.local)
        free(m.p);
}

void log_summarize(void)
{
    int64_t now = log__s.now_ms();
    for (size_t i = 0; i < LOG_RATE_SLOTS; i++) {
        struct log__kind *k = &log__s.kinds[i];
        if (!k->fmt || !k->dropped || now - k->start_ms < LOG_RATE_WINDOW_MS)
            continue;
        uint64_t n = k->dropped;
        k->dropped = 0;
        struct log__msg m;
        m.p = m.local;
        int len = snprintf(m.local, sizeof m.local,
                           "%llu lines like \"%s\" dropped (at most %d a second of one kind)",
                           (unsigned long long)n, k->fmt, LOG_RATE_MAX);
        m.len = len < 0 ? 0 : (size_t)len < sizeof m.local ? (size_t)len : sizeof m.local - 1;
        struct log__line l;
        if (log__line_open(&l, LOG_FIXED + 2 * LOG_ESC_MAX * m.len) != 0)
            m.len = (sizeof l.local - LOG_FIXED) / (2 * LOG_ESC_MAX); /* short of memory: cut the message */
        if (log__s.format == LOG_FORMAT_JSON) {
            log__json_message(&l, LOG_WARN, &m, "");
            log__putf(&l, ",\"dropped\":%llu}\n", (unsigned long long)n);
        } else {
            log__put_text_head(&l, LOG_WARN);
            log__put(&l, m.p, m.len);
            log__puts(&l, "\n");
        }
        log__emit(1, l.p, l.len);
        log__line_close(&l);
    }
}

/* ---- log_access -------------------------------------------------------------------------------- */

/* One field of an access line: its text key, its JSON key, and a string or
 * a number already written out. */
struct log__av {
    const char *text_key, *json_key;
    const char *s;
    size_t n;
    int number; /* s holds a JSON number, written unquoted */
};

static void log__access_fields(const struct log_access *a, struct log__av f[11], char nums[5][32])
{
    size_t path_len = a->path ? a->path_len : 0;
    const char *q = path_len ? memchr(a->path, '?', path_len) : NULL;
    if (q)
        path_len = (size_t)(q - a->path);
    double ms = a->duration_ms >= 0 ? a->duration_ms : 0; /* NaN too */
    if (ms > 1e15)
        ms = 1e15;
    nums[0][log__u64(nums[0], a->conn)] = 0;
    if (a->status < 0)
        snprintf(nums[1], 32, "%d", a->status);
    else
        nums[1][log__u64(nums[1], (uint64_t)a->status)] = 0;
    nums[2][log__u64(nums[2], a->bytes_in)] = 0;
    nums[3][log__u64(nums[3], a->bytes_out)] = 0;
    nums[4][log__ms(nums[4], ms)] = 0;
#define LOG_AV_STR(tk, jk, str)                                                                              \
    {                                                                                                        \
        tk, jk, (str) ? (str) : "", (str) ? strlen(str) : 0, 0                                               \
    }
#define LOG_AV_NUM(tk, jk, i)                                                                                \
    {                                                                                                        \
        tk, jk, nums[i], strlen(nums[i]), 1                                                                  \
    }
    struct log__av all[11] = {
        LOG_AV_NUM("conn", "conn", 0),
        LOG_AV_STR("worker", "worker", a->worker),
        {"method", "method", a->method ? a->method : "", a->method ? a->method_len : 0, 0},
        {"path", "path", a->path ? a->path : "", path_len, 0},
        LOG_AV_NUM("status", "status", 1),
        LOG_AV_NUM("in", "bytes_in", 2),
        LOG_AV_NUM("out", "bytes_out", 3),
        LOG_AV_NUM("ms", "duration_ms", 4),
        LOG_AV_STR("via", "via", a->via),
        LOG_AV_STR("request_id", "request_id", a->request_id),
        LOG_AV_STR("client", "client", a->client),
    };
#undef LOG_AV_STR
#undef LOG_AV_NUM
    memcpy(f, all, sizeof all);
}

/* The text form of an access line into l (enough room: see log_access). */
static void log__access_text(struct log__line *l, const struct log_access *a, size_t path_len)
{
    char num[24];
    double ms = a->duration_ms >= 0 ? a->duration_ms : 0; /* NaN too */
    log__put_text_head(l, LOG_INFO);
    log__put(l, "access conn=", 12);
    log__put(l, num, log__u64(num, a->conn));
    log__put(l, " worker=", 8);
    log__put_text_value(l, a->worker ? a->worker : "", a->worker ? strlen(a->worker) : 0);
    log__put(l, " method=", 8);
    log__put_text_value(l, a->method ? a->method : "", a->method ? a->method_len : 0);
    log__put(l, " path=", 6);
    log__put_text_value(l, a->path ? a->path : "", path_len);
    log__put(l, " status=", 8);
    if (a->status >= 0)
        log__put(l, num, log__u64(num, (uint64_t)a->status));
    else
        log__putf(l, "%d", a->status);
    log__put(l, " in=", 4);
    log__put(l, num, log__u64(num, a->bytes_in));
    log__put(l, " out=", 5);
    log__put(l, num, log__u64(num, a->bytes_out));
    log__put(l, " ms=", 4);
    log__put(l, num, log__ms(num, ms > 1e15 ? 1e15 : ms));
    log__put(l, " via=", 5);
    log__put_text_value(l, a->via ? a->via : "", a->via ? strlen(a->via) : 0);
    log__put(l, " request_id=", 12);
    log__put_text_value(l, a->request_id ? a->request_id : "", a->request_id ? strlen(a->request_id) : 0);
    log__put(l, " client=", 8);
    log__put_text_value(l, a->client ? a->client : "", a->client ? strlen(a->client) : 0);
    log__put(l, "\n", 1);
}

void log_access(const struct log_access *a)
{
    if (log_current_level < LOG_INFO)
        return;
    size_t path_len = a->path ? a->path_len : 0;
    const char *q = path_len ? memchr(a->path, '?', path_len) : NULL;
    if (q)
        path_len = (size_t)(q - a->path);
    size_t strs = path_len + (a->method ? a->method_len : 0) + (a->worker ? strlen(a->worker) : 0) +
                  (a->via ? strlen(a->via) : 0) + (a->request_id ? strlen(a->request_id) : 0) +
                  (a->client ? strlen(a->client) : 0);
    struct log__line l;
    if (log__line_open(&l, LOG_FIXED + LOG_ESC_MAX * strs) != 0)
        return; /* short of memory: strings that long are not worth the line */
    if (log__s.format == LOG_FORMAT_JSON) {
        struct log__av f[11];
        char nums[5][32];
        log__access_fields(a, f, nums);
        log__put_json_head(&l, LOG_INFO);
        log__puts(&l, "\"msg\":\"access\"");
        for (size_t i = 0; i < 11; i++)
            log__put_json_field(&l, f[i].json_key, f[i].s, f[i].n, f[i].number);
        log__puts(&l, "}\n");
    } else {
        log__access_text(&l, a, path_len);
    }
    log__emit(0, l.p, l.len);
    log__line_close(&l);
}
