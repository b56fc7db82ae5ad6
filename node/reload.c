/* reload: SIGHUP re-reads the file-backed secrets and the TLS files (see reload.h). */
#include "node/reload.h"

#include <stdio.h>
#include <string.h>

#include "node/log.h"
#include "node/tls.h"
#include "util/util.h"

/* Points the token keys at the secrets now in the configuration. */
static void reload_keys(struct node *n)
{
    const struct config *cfg = n->cfg_files;
    n->keys.secret_a = cfg->secret_a;
    n->keys.secret_a_len = cfg->secret_a ? strlen(cfg->secret_a) : 0;
    n->keys.secret_b = cfg->secret_b;
    n->keys.secret_b_len = cfg->secret_b ? strlen(cfg->secret_b) : 0;
    if (n->peer_keys.secret_a) { /* in a cluster (glue.c) */
        n->peer_keys.secret_a = cfg->cluster_secret;
        n->peer_keys.secret_a_len = strlen(cfg->cluster_secret);
    }
}

static int reload_failed(struct node *n, struct config *fresh, const char *why)
{
    n->stats.reloads_failed++;
    LOG_E("reload (SIGHUP) failed, the old configuration stays in force: %s", why);
    config_free(fresh);
    return -1;
}

int reload_run(struct node *n)
{
    struct config fresh;
    char err[640], changed[512], tls_info[400] = "";
    SSL_CTX *ctx = NULL;
    if (config_reload_files(n->cfg_files, &fresh, err, sizeof err) != 0)
        return reload_failed(n, &fresh, err);
    if (n->ssl && !(ctx = tls_context_new(&fresh, err, sizeof err)))
        return reload_failed(n, &fresh, err);
    int nchanged = config_changed_files(n->cfg_files, &fresh, changed, sizeof changed);
    if (ctx && !tls_same_identity(n->ssl, ctx)) {
        size_t len = strlen(changed);
        snprintf(changed + len, sizeof changed - len, "%sTLS_CERTIFICATE and TLS_KEY", nchanged ? ", " : "");
        tls_describe(ctx, tls_info, sizeof tls_info);
        nchanged++;
    }
    config_adopt_files(n->cfg_files, &fresh);
    reload_keys(n);
    if (ctx) { /* open connections keep a reference to the old one */
        SSL_CTX_free(n->ssl);
        n->ssl = ctx;
    }
    config_free(&fresh); /* the old values, cleansed */
    n->stats.reloads_ok++;
    n->stats.last_reload_wall_ms = util_wall_ms();
    if (nchanged)
        LOG_I("reload (SIGHUP): changed %s%s%s%s", changed, tls_info[0] ? " (new certificate: " : "",
              tls_info, tls_info[0] ? ")" : "");
    else
        LOG_I("reload (SIGHUP): nothing changed (secret files%s read again)", n->ssl ? " and TLS files" : "");
    return 0;
}
