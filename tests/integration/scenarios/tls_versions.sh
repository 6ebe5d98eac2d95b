#!/bin/bash
# SPDX-License-Identifier: MIT
# TLS 1.2 or newer on both legs, like current nginx and Go defaults: a
# client that offers only TLS 1.0 or 1.1 through CONNECT fails the
# handshake with the proxy, and an upstream that speaks only TLS 1.1 gets a
# 502; TLS 1.2 works on both legs.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
drp_scenario_init
drp_require_tools gnutls-serv openssl

# Client leg: an interception of registry.test by the shared proxy.
# SECLEVEL=0 lets OpenSSL 3 offer TLS 1.0/1.1 at all.
s_client()
{
	openssl s_client -proxy "127.0.0.1:$PROXY_PORT" -connect registry.test:443 \
		-servername registry.test -CAfile "$PROXY_CA" -verify_return_error \
		-cipher 'DEFAULT@SECLEVEL=0' "$@" </dev/null >"$SCEN/s_client.out" 2>&1
}
for v in tls1 tls1_1; do
	rc=0
	s_client "-$v" || rc=$?
	expect_eq "openssl s_client -$v through CONNECT fails" 1 "$rc"
	expect_match "no -$v session" 'Cipher is \(NONE\)' "$(cat "$SCEN/s_client.out")"
done
expect_match "the proxy logged why" 'TLS handshake for registry.test failed: .*UNSUPPORTED_VERSION' \
	"$(cat "$PROXY_DIR/proxy.log")"
s_client -tls1_2 || drp_fail "TLS 1.2 handshake through the proxy failed: $(tail -5 "$SCEN/s_client.out")"
expect_match "TLS 1.2 through CONNECT" 'Protocol *: TLSv1\.2' "$(cat "$SCEN/s_client.out")"

# Upstream leg: bad.test is gnutls-serv on a port of its own, speaking only
# the versions given; the proxy intercepts bad.test and resolves it there.
port=$(drp_free_port)
DRP_IT_REGISTRIES="bad.test" drp_proxy_conf "own-$SCEN_NAME" "$(drp_free_port)"
sed -i "s/^bad\.test = .*/bad.test = 127.0.0.1:$port/" "$WORK/own-$SCEN_NAME/proxy.ini"
drp_start_proxy "own-$SCEN_NAME"
upstream()
{
	drp_bg "gnutls-serv-$1" gnutls-serv --http --port "$port" --priority "NORMAL:-VERS-ALL:+VERS-$1" \
		--x509certfile "$WORK/pki/bad.test.crt" --x509keyfile "$WORK/pki/bad.test.key"
	SERV_PID=$DRP_LAST_PID
	drp_wait_started "gnutls-serv-$1" "$SERV_PID" 20 drp_port_open 127.0.0.1 "$port"
}
url=https://bad.test/v2/test/tls/manifests/v1
upstream TLS1.1
code=$(pcurl -o "$SCEN/body" -w '%{http_code}' "$url" 2>"$SCEN/err" || true)
expect_eq "status from a TLS 1.1-only upstream" 502 "$code"
expect_match "the proxy logged why" 'upstream bad\.test .*UNSUPPORTED_VERSION' "$(cat "$PROXY_DIR/proxy.log")"
drp_stop "$SERV_PID" || true
upstream TLS1.2
pcurl -o "$SCEN/body" "$url" 2>"$SCEN/err" || true
drp_stop "$SERV_PID" || true
# (gnutls-serv's HTML page is no manifest: only the handshake matters.)
expect_match "TLS 1.2 with the upstream" '^- Version: TLS1\.2' "$(cat "$WORK/logs/gnutls-serv-TLS1.2.out")"
expect_eq "upstream TLS failures logged" 1 "$(grep -c 'upstream bad\.test .*GNUTLS_E' "$PROXY_DIR/proxy.log")"
