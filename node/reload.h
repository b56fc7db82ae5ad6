/* reload: what SIGHUP does (docs/operations.md, "Reloading").
 *
 * It reads again the files of the file-backed secrets (<VARIABLE>_FILE:
 * secrets A and B, the cluster secret, the admin token; not REDIS_URL_FILE)
 * and, with TLS, the TLS_CERTIFICATE and TLS_KEY files. Nothing else is
 * reloaded. All or nothing: when a file cannot be read or the result is not
 * valid (config_validate(), a certificate and key that do not go together)
 * the node keeps its whole old configuration and logs why at level error;
 * otherwise it takes the new one and logs which settings changed, never a
 * value. New TLS handshakes use the new context, connections already open
 * keep theirs (an SSL holds a reference to its SSL_CTX); new registrations
 * are checked against the new secrets, workers already registered stay. */
#ifndef WHT_NODE_RELOAD_H
#define WHT_NODE_RELOAD_H

#include "node/node.h"

/* Reloads as above, counting the result in n->stats (reloads_ok,
 * reloads_failed, last_reload_wall_ms). Returns 0 or -1 (logged). */
int reload_run(struct node *n);

#endif
