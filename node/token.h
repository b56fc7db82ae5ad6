/* token: worker registration tokens (docs/protocol.md, "Tokens"), without I/O.
 *
 * A worker proves it may register an id with a JWT, HS256 only, signed with
 * one of two shared secrets (A and B, so a secret can be rotated without
 * downtime). token_verify() checks one; token_mint() makes one (the
 * `whtunnel token` subcommand and the tests). libjwt 1.10 checks the
 * signature and signs, jansson reads the JSON; what libjwt 1.10 gets wrong or
 * does not check is checked here:
 *
 *   - shape: 1..TOKEN_MAX_LEN bytes of [A-Za-z0-9_.-], exactly three
 *     dot-separated parts, header and payload non-empty base64url;
 *   - header: a JSON object whose "alg" is the string "HS256" (libjwt 1.10
 *     also accepts "hs256", HS384/HS512 with the same key, and "none"); no
 *     member given twice ("alg" twice is TOKEN_E_ALG; libjwt takes the last);
 *     a "typ", if present, is "JWT" in any case (libjwt's own rule);
 *   - payload: a JSON object (libjwt also takes an array), the whole decoded
 *     part (libjwt reads up to a NUL byte); of duplicate members the last
 *     counts (RFC 7519 section 4, as libjwt);
 *   - signature: libjwt's jwt_decode with secret A, else secret B: the
 *     canonical base64url of HMAC-SHA256 of "header.payload", compared in
 *     constant time (Debian's libjwt 1.10.2-1+deb12u1, CVE-2024-25189);
 *   - claims (as libjwt parsed them, which must equal the payload above):
 *     "tid" a string equal to the id byte for byte; "exp" and "nbf" integers
 *     (NumericDate, seconds; a real such as 1795549652.0 or 1.7e9 is
 *     refused); 0 < exp - nbf <= TOKEN_MAX_WINDOW_S (31 days, in seconds: the
 *     originals compared seconds with nanoseconds); "aud" checked only when
 *     an audience is configured, and then required and equal to it (a string,
 *     or an array with it among its strings); with no audience configured,
 *     any "aud" is accepted; "iat" informational;
 *   - time: nbf - leeway <= now < exp + leeway, leeway (clock skew allowance)
 *     0 by default: minted tokens already start 5 minutes in the past.
 *
 * Checks run in this order, so a token with several faults reports the
 * first: shape, header (JSON, alg, typ), payload is a JSON object, signature,
 * libjwt's view of the payload, claim presence and types, tid, aud, window,
 * time.
 *
 * No logging here, and nothing returned contains the token or a secret:
 * token_strerror() gives a short reason fit for a log line and a 401 body.
 */
#ifndef WHT_NODE_TOKEN_H
#define WHT_NODE_TOKEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TOKEN_MAX_LEN 8192                     /* bytes of a token (the part after "Bearer ") */
#define TOKEN_MAX_ID_LEN 255                   /* bytes of a worker id (util_valid_worker_id) */
#define TOKEN_MAX_SECRET_LEN 4096              /* bytes of a secret */
#define TOKEN_MAX_AUDIENCE_LEN 1024            /* bytes of the configured audience and of minted aud */
#define TOKEN_MAX_WINDOW_S (31 * 86400)        /* largest exp - nbf, seconds */
#define TOKEN_MINT_BACKDATE_S 300              /* minted nbf = now - 300: 5 minutes of clock skew */
#define TOKEN_MAX_LEEWAY_S 300                 /* largest clock skew allowance token_verify() takes */
#define TOKEN_MAX_TIME_S INT64_C(253402300799) /* 9999-12-31T23:59:59Z: largest now_s for token_mint() */

/* Errors: 0 is success, these are negative. */
enum token_err {
    TOKEN_OK = 0,
    TOKEN_E_MALFORMED = -1,      /* not three base64url parts of JSON, or JSON libjwt refuses */
    TOKEN_E_TOO_LONG = -2,       /* token longer than TOKEN_MAX_LEN */
    TOKEN_E_ALG = -3,            /* header alg missing, not a string, given twice, or not HS256 */
    TOKEN_E_SIGNATURE = -4,      /* signature not 32 bytes, or made with neither secret */
    TOKEN_E_MISSING_CLAIM = -5,  /* tid, exp or nbf absent */
    TOKEN_E_CLAIM_TYPE = -6,     /* tid not a string, or exp/nbf not an integer */
    TOKEN_E_TID = -7,            /* tid differs from the id */
    TOKEN_E_AUDIENCE = -8,       /* an audience is configured and aud lacks it */
    TOKEN_E_WINDOW = -9,         /* exp - nbf over 31 days, or exp <= nbf */
    TOKEN_E_NOT_YET_VALID = -10, /* now < nbf (minus leeway) */
    TOKEN_E_EXPIRED = -11,       /* now >= exp (plus leeway) */
    TOKEN_E_NO_KEY = -12,        /* no usable secret: both absent, or one too long */
    TOKEN_E_BEARER = -13,        /* Authorization value is not "Bearer <token>" */
    TOKEN_E_INVAL = -14,         /* bad argument (id, ttl, now, leeway, audience) */
    TOKEN_E_NOMEM = -15,
};

/* What token_verify() checks against. Secrets are raw bytes (the value of
 * TASKCLUSTER_PROXY_SECRET_A / _B as given). The struct and what it points to
 * stay the caller's; token_verify() keeps no pointer. */
struct token_keys {
    const char *secret_a; /* NULL or secret_a_len 0: absent */
    size_t secret_a_len;  /* at most TOKEN_MAX_SECRET_LEN */
    const char *secret_b; /* NULL or secret_b_len 0: absent. At least one secret is needed */
    size_t secret_b_len;
    const char *audience; /* NUL-terminated; NULL or "": aud not checked */
    int64_t leeway_s;     /* clock skew allowance 0..TOKEN_MAX_LEEWAY_S, applied to nbf and exp */
};

/* Claims of a token that passed (token_verify) or parsed (token_inspect). */
struct token_claims {
    char tid[TOKEN_MAX_ID_LEN + 1]; /* NUL-terminated (token_inspect: truncated if longer) */
    size_t tid_len;
    int64_t exp, nbf;
    int64_t iat;  /* valid when has_iat */
    bool has_iat; /* iat present and an integer */
    int key;      /* token_verify: 1 if secret A verified it, 2 if secret B; token_inspect: 0 */
};

/* Verifies `token` (token_len bytes, not NUL-terminated; pointers are only
 * read during the call) for worker `id` (id_len bytes) at time now_s (Unix
 * seconds), with the checks listed at the top of this file.
 * Returns 0 and fills *out (if out is not NULL), or a negative enum
 * token_err; *out is then unspecified. */
int token_verify(const struct token_keys *keys, const char *token, size_t token_len, const char *id,
                 size_t id_len, int64_t now_s, struct token_claims *out);

/* Reads a token's claims WITHOUT checking its signature, time or window:
 * for tools and diagnostics only, never to authorise anything. Checks shape
 * and alg as token_verify() does; tid must be a string, exp and nbf
 * integers. Returns 0 and fills *out (key 0), or a negative enum token_err. */
int token_inspect(const char *token, size_t token_len, struct token_claims *out);

/* Mints an HS256 token for worker `id` (NUL-terminated, must pass
 * util_valid_worker_id) with claims tid, iat = now_s, nbf = now_s - 300,
 * exp = now_s + ttl_s, and aud = `aud` unless aud is NULL or "". secret is
 * secret_len raw bytes, 1..TOKEN_MAX_SECRET_LEN. ttl_s must be > 0 and keep
 * exp - nbf within 31 days (ttl_s <= TOKEN_MAX_WINDOW_S - 300); now_s must be
 * in 300..TOKEN_MAX_TIME_S. On success returns 0 and stores in *out a
 * NUL-terminated token in malloc'd memory that the caller frees; otherwise a
 * negative enum token_err (TOKEN_E_WINDOW for a ttl too long, TOKEN_E_NO_KEY
 * for a bad secret) and *out is NULL. */
int token_mint(const char *secret, size_t secret_len, const char *id, int64_t now_s, int64_t ttl_s,
               const char *aud, char **out);

/* Checks an Authorization header value (len bytes, surrounding whitespace
 * already trimmed by the HTTP parser) against ^Bearer ([\w.-]+)$: exactly
 * "Bearer", one space, then bytes of [A-Za-z0-9_.-] to the end.
 * Case-sensitive, as the original. On success returns 0 and points *tok /
 * *tok_len at the token inside authz_value; TOKEN_E_TOO_LONG if the token
 * matches but is longer than TOKEN_MAX_LEN (the node answers 401, as
 * token_verify would); else TOKEN_E_BEARER (the node answers 400). */
int token_parse_bearer(const char *authz_value, size_t len, const char **tok, size_t *tok_len);

/* A short static description of a token_verify/token_mint/... result, for
 * logs and 401 bodies; never NULL. */
const char *token_strerror(int err);

#endif
