/* tls: the viewer port's TLS context (see tls.h). */
#include "node/tls.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

/* TLS_KEY and TLS_CERTIFICATE name PEM files; as the original service did,
 * each may instead hold the base64 encoding of the PEM itself. Returns a BIO
 * with PEM text, or NULL. */
static BIO *pem_source(const char *value)
{
    if (access(value, R_OK) == 0)
        return BIO_new_file(value, "r");
    size_t len = strlen(value);
    if (len == 0 || len > (1u << 20))
        return NULL;
    unsigned char *out = malloc(len);
    if (!out)
        return NULL;
    EVP_ENCODE_CTX *ctx = EVP_ENCODE_CTX_new();
    int n = 0, m = 0;
    if (ctx)
        EVP_DecodeInit(ctx);
    if (!ctx || EVP_DecodeUpdate(ctx, out, &n, (const unsigned char *)value, (int)len) < 0 ||
        EVP_DecodeFinal(ctx, out + n, &m) != 1 || n + m < 11 || memcmp(out, "-----BEGIN ", 11) != 0) {
        EVP_ENCODE_CTX_free(ctx);
        OPENSSL_cleanse(out, len);
        free(out);
        return NULL;
    }
    EVP_ENCODE_CTX_free(ctx);
    BIO *b = BIO_new(BIO_s_mem());
    if (b)
        BIO_write(b, out, n + m);
    OPENSSL_cleanse(out, len);
    free(out);
    return b;
}

static int use_certificate_chain(SSL_CTX *ctx, BIO *b)
{
    X509 *cert = PEM_read_bio_X509_AUX(b, NULL, NULL, NULL);
    if (!cert || SSL_CTX_use_certificate(ctx, cert) != 1) {
        X509_free(cert);
        return -1;
    }
    X509_free(cert);
    X509 *ca;
    while ((ca = PEM_read_bio_X509(b, NULL, NULL, NULL))) {
        if (SSL_CTX_add0_chain_cert(ctx, ca) != 1) {
            X509_free(ca);
            return -1;
        }
    }
    ERR_clear_error(); /* the end of the chain */
    return 0;
}

/* OpenSSL's reason for the last error, or what if there is none. */
static const char *tls_reason(const char *what)
{
    const char *r = ERR_reason_error_string(ERR_peek_last_error());
    return r ? r : what;
}

static int use_key(SSL_CTX *ctx, const char *value, char *err, size_t errlen)
{
    BIO *b = pem_source(value);
    EVP_PKEY *key = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
    int ok = key && SSL_CTX_use_PrivateKey(ctx, key) == 1;
    if (!ok && key && ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH)
        snprintf(err, errlen, "TLS_KEY does not match TLS_CERTIFICATE");
    else if (!ok) /* never the value: it may be the key itself */
        snprintf(err, errlen, "cannot use TLS_KEY (a PEM file, or base64 of the PEM): %s",
                 b ? tls_reason("no private key in it") : "not a readable file nor base64 PEM");
    EVP_PKEY_free(key);
    BIO_free(b);
    return ok ? 0 : -1;
}

SSL_CTX *tls_context_new(const struct config *cfg, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    BIO *b = NULL;
    ERR_clear_error();
    if (!ctx) {
        snprintf(err, errlen, "cannot create a TLS context: %s", tls_reason("out of memory"));
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    b = pem_source(cfg->tls_certificate);
    if (!b || use_certificate_chain(ctx, b) != 0) {
        /* the value is a path or a certificate: neither is secret */
        snprintf(err, errlen, "cannot use TLS_CERTIFICATE (a PEM file, or base64 of the PEM): '%.200s': %s",
                 cfg->tls_certificate,
                 b ? tls_reason("no certificate in it") : "not a readable file nor base64 PEM");
        goto fail;
    }
    BIO_free(b);
    b = NULL;
    if (use_key(ctx, cfg->tls_key, err, errlen) != 0)
        goto fail;
    if (SSL_CTX_check_private_key(ctx) != 1) {
        snprintf(err, errlen, "TLS_KEY does not match TLS_CERTIFICATE");
        goto fail;
    }
    ERR_clear_error();
    return ctx;
fail:
    ERR_clear_error();
    BIO_free(b);
    SSL_CTX_free(ctx);
    return NULL;
}

bool tls_same_identity(SSL_CTX *a, SSL_CTX *b)
{
    X509 *ca = SSL_CTX_get0_certificate(a), *cb = SSL_CTX_get0_certificate(b);
    EVP_PKEY *ka = SSL_CTX_get0_privatekey(a), *kb = SSL_CTX_get0_privatekey(b);
    return ca && cb && X509_cmp(ca, cb) == 0 && ka && kb && EVP_PKEY_eq(ka, kb) == 1;
}

void tls_describe(SSL_CTX *ctx, char *out, size_t cap)
{
    X509 *c = SSL_CTX_get0_certificate(ctx);
    char subject[256] = "?";
    char *serial = NULL;
    if (c) {
        X509_NAME_oneline(X509_get_subject_name(c), subject, sizeof subject);
        BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(c), NULL);
        serial = bn ? BN_bn2hex(bn) : NULL;
        BN_free(bn);
    }
    snprintf(out, cap, "subject %s, serial %s", subject, serial ? serial : "?");
    OPENSSL_free(serial);
}
