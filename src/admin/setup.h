/* SPDX-License-Identifier: MIT */
/*
 * Client set-up script served at GET /setup/systemd on the proxy port.
 *
 * An operator runs it as root on a systemd Docker/containerd host:
 *     curl -fsS http://PROXY:3128/setup/systemd | sh
 * The script (POSIX sh, `set -eu`):
 *   - writes /etc/systemd/system/docker.service.d/http-proxy.conf and
 *     /etc/systemd/system/containerd.service.d/http-proxy.conf with
 *     HTTP_PROXY and HTTPS_PROXY = the proxy URL and
 *     NO_PROXY=localhost,127.0.0.1;
 *   - fetches PROXY/ca.crt (curl, else wget; never through a proxy), checks
 *     it is PEM, prints its SHA-256 fingerprint when openssl is present, and
 *     installs it as a trusted root: /usr/local/share/ca-certificates/
 *     docker-registry-proxy.crt + update-ca-certificates (Debian, Ubuntu),
 *     or /etc/pki/ca-trust/source/anchors/docker-registry-proxy.crt +
 *     update-ca-trust extract (RHEL, Fedora, SUSE-likes);
 *   - systemctl daemon-reload, then restarts containerd and docker if they
 *     are active; prints one line per action.
 * The environment variable DRP_SETUP_ROOT, when set, prefixes every path
 * the script writes and skips the root check (for tests).
 *
 * Thread-safe, no state.
 */
#ifndef DRP_ADMIN_SETUP_H
#define DRP_ADMIN_SETUP_H

/*
 * Returns the script for the proxy reachable at proxy_url (e.g.
 * "http://192.168.1.10:3128" or "http://[fd00::1]:3128"; trailing '/'
 * dropped), malloc'd, NUL-terminated; the caller frees it.
 *
 * proxy_url usually comes from the client's Host header, so it is pasted
 * into the script only if it is "http://" followed by 1..255 characters of
 * [A-Za-z0-9.:/[]-] (no quote, space, '$', ';', backquote, newline...).
 * Otherwise returns NULL (callers answer 400).
 */
char *drp_setup_systemd_script(const char *proxy_url)
	__attribute__((malloc, warn_unused_result));

/* Whether proxy_url passes the check above. */
int drp_setup_url_valid(const char *proxy_url);

#endif
