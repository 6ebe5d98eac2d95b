/* SPDX-License-Identifier: MIT */
#include "admin/setup.h"

#include <stdbool.h>
#include <string.h>

#include "util/mem.h"

#define PROXY_MARK "@PROXY@"
#define URL_SCHEME "http://"
#define URL_MAX	   255

/* Kept as one string so that the served script is the file reviewed here;
 * the only substitution is the validated URL at each PROXY_MARK. */
/* clang-format off */
static const char script_template[] =
	"#!/bin/sh\n"
	"# docker-registry-proxy client set-up for a systemd host running Docker\n"
	"# and/or containerd. Run as root, e.g.:\n"
	"#   curl -fsS @PROXY@/setup/systemd | sh\n"
	"# It points docker.service and containerd.service at the proxy, makes the\n"
	"# proxy's CA a trusted root, reloads systemd and restarts what is running.\n"
	"set -eu\n"
	"\n"
	"proxy='@PROXY@'\n"
	"root=\"${DRP_SETUP_ROOT:-}\"\n"
	"\n"
	"say() {\n"
	"\techo \"docker-registry-proxy setup: $*\"\n"
	"}\n"
	"\n"
	"die() {\n"
	"\techo \"docker-registry-proxy setup: error: $*\" >&2\n"
	"\texit 1\n"
	"}\n"
	"\n"
	"if [ -z \"$root\" ] && [ \"$(id -u)\" -ne 0 ]; then\n"
	"\tdie \"must run as root\"\n"
	"fi\n"
	"command -v systemctl >/dev/null 2>&1 || die \"systemctl not found: not a systemd host\"\n"
	"\n"
	"# The CA is fetched directly from the proxy, never through a proxy.\n"
	"fetch() {\n"
	"\tif command -v curl >/dev/null 2>&1; then\n"
	"\t\tcurl -fsS --noproxy '*' -o \"$2\" \"$1\"\n"
	"\telif command -v wget >/dev/null 2>&1; then\n"
	"\t\t(unset http_proxy HTTP_PROXY https_proxy HTTPS_PROXY; wget -q -O \"$2\" \"$1\")\n"
	"\telse\n"
	"\t\tdie \"neither curl nor wget found\"\n"
	"\tfi\n"
	"}\n"
	"\n"
	"tmp=$(mktemp)\n"
	"trap 'rm -f \"$tmp\"' EXIT\n"
	"fetch \"$proxy/ca.crt\" \"$tmp\" || die \"cannot fetch $proxy/ca.crt\"\n"
	"grep -q -e '-----BEGIN CERTIFICATE-----' \"$tmp\" || die \"$proxy/ca.crt is not a PEM certificate\"\n"
	"if command -v openssl >/dev/null 2>&1; then\n"
	"\tsay \"proxy CA $(openssl x509 -noout -fingerprint -sha256 -in \"$tmp\")\"\n"
	"\tsay \"compare it with the fingerprint in the proxy's log\"\n"
	"fi\n"
	"\n"
	"if command -v update-ca-certificates >/dev/null 2>&1; then\n"
	"\tdest=\"$root/usr/local/share/ca-certificates/docker-registry-proxy.crt\"\n"
	"\tmkdir -p \"${dest%/*}\"\n"
	"\tcp \"$tmp\" \"$dest\"\n"
	"\tchmod 0644 \"$dest\"\n"
	"\tupdate-ca-certificates >/dev/null\n"
	"\tsay \"installed CA as $dest (update-ca-certificates)\"\n"
	"elif command -v update-ca-trust >/dev/null 2>&1; then\n"
	"\tdest=\"$root/etc/pki/ca-trust/source/anchors/docker-registry-proxy.crt\"\n"
	"\tmkdir -p \"${dest%/*}\"\n"
	"\tcp \"$tmp\" \"$dest\"\n"
	"\tchmod 0644 \"$dest\"\n"
	"\tupdate-ca-trust extract\n"
	"\tsay \"installed CA as $dest (update-ca-trust)\"\n"
	"else\n"
	"\tdie \"neither update-ca-certificates nor update-ca-trust found\"\n"
	"fi\n"
	"\n"
	"for unit in docker containerd; do\n"
	"\tdir=\"$root/etc/systemd/system/$unit.service.d\"\n"
	"\tmkdir -p \"$dir\"\n"
	"\tcat >\"$dir/http-proxy.conf\" <<EOF\n"
	"# Written by docker-registry-proxy's /setup/systemd.\n"
	"[Service]\n"
	"Environment=\"HTTP_PROXY=$proxy\"\n"
	"Environment=\"HTTPS_PROXY=$proxy\"\n"
	"Environment=\"NO_PROXY=localhost,127.0.0.1\"\n"
	"EOF\n"
	"\tsay \"wrote $dir/http-proxy.conf\"\n"
	"done\n"
	"\n"
	"systemctl daemon-reload\n"
	"say \"reloaded systemd\"\n"
	"# containerd first: dockerd runs its containers through it.\n"
	"for unit in containerd docker; do\n"
	"\tif systemctl is-active --quiet \"$unit.service\"; then\n"
	"\t\tsystemctl restart \"$unit.service\"\n"
	"\t\tsay \"restarted $unit.service\"\n"
	"\telse\n"
	"\t\tsay \"$unit.service not active, not restarted\"\n"
	"\tfi\n"
	"done\n"
	"say \"done: images are now pulled through $proxy\"\n";
/* clang-format on */

static bool url_char_ok(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || c == '.' || c == ':' || c == '/' ||
	       c == '[' || c == ']' || c == '-';
}

int drp_setup_url_valid(const char *proxy_url)
{
	if (proxy_url == NULL ||
	    strncmp(proxy_url, URL_SCHEME, strlen(URL_SCHEME)) != 0)
		return 0;
	const char *rest = proxy_url + strlen(URL_SCHEME);
	size_t n = strlen(rest);

	if (n == 0 || n > URL_MAX || rest[0] == '/')
		return 0;
	/* The URL is pasted between single quotes and into a heredoc: this
	 * set has nothing a shell would interpret in either place. */
	for (size_t i = 0; i < n; i++)
		if (!url_char_ok(rest[i]))
			return 0;
	return 1;
}

char *drp_setup_systemd_script(const char *proxy_url)
{
	if (!drp_setup_url_valid(proxy_url))
		return NULL;

	size_t ulen = strlen(proxy_url);
	/* "http://h:3128/" would give "http://h:3128//ca.crt". */
	while (ulen > strlen(URL_SCHEME) + 1 && proxy_url[ulen - 1] == '/')
		ulen--;

	size_t marks = 0;
	for (const char *p = script_template;
	     (p = strstr(p, PROXY_MARK)) != NULL; p += strlen(PROXY_MARK))
		marks++;

	size_t mlen = strlen(PROXY_MARK);
	char *out = drp_malloc(sizeof(script_template) + marks * ulen);
	char *w = out;
	const char *r = script_template;
	const char *m;

	while ((m = strstr(r, PROXY_MARK)) != NULL) {
		memcpy(w, r, (size_t)(m - r));
		w += m - r;
		memcpy(w, proxy_url, ulen);
		w += ulen;
		r = m + mlen;
	}
	memcpy(w, r, strlen(r) + 1);
	return out;
}
