/* tls: the viewer port's TLS context, built from TLS_CERTIFICATE and
 * TLS_KEY (node.c at start, reload.c on SIGHUP). No event loop here. */
#ifndef WHT_NODE_TLS_H
#define WHT_NODE_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

#include "node/config.h"

/* A new server SSL_CTX (TLS 1.2 and up) with cfg's certificate chain and
 * key: each setting a PEM file or the base64 of the PEM. Returns it (the
 * caller owns one reference), or NULL with a one-line reason in err that
 * names the setting, and the certificate's path but never the key's value. */
SSL_CTX *tls_context_new(const struct config *cfg, char *err, size_t errlen);

/* True when both contexts present the same leaf certificate and key. */
bool tls_same_identity(SSL_CTX *a, SSL_CTX *b);

/* The subject and serial of ctx's leaf certificate, for a log line:
 * "subject CN=x, serial 0A1B". */
void tls_describe(SSL_CTX *ctx, char *out, size_t cap);

#endif
