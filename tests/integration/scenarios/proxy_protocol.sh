#!/bin/bash
# SPDX-License-Identifier: MIT
# The proxy behind a TCP load balancer: HAProxy (Debian's) in TCP mode
# with send-proxy-v2, connecting from 127.0.0.20, which is the proxy's
# proxy_protocol_from. Policy and the access log see the real client: a
# client that [proxy] allow admits by address pulls through the
# balancer, one it does not is refused, although both reach the proxy
# from the balancer's address (which allow does not admit). A peer in
# proxy_protocol_from without a header is closed with a log line; a
# header from any other peer is not trusted. PROXY v1 from curl
# (--haproxy-protocol) and by hand.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
drp_scenario_init
drp_require_tools haproxy curl

LB=127.0.0.20     # the balancer's source address towards the proxy
V1LB=127.0.0.21   # a second trusted peer, speaking v1 itself (curl)
GOOD=127.0.0.7    # a client allow admits
BAD=127.0.0.8     # a client allow does not admit
# (127.0.0.1: the harness waits for the proxy through /ca.crt.)
tport=$(drp_free_port)
DRP_IT_ALLOW="127.0.0.1/32 $GOOD/32 $V1LB/32 ::1/128" drp_own_proxy "proxy_protocol_from = $LB/32 $V1LB/32
mirror_tls_listen = 127.0.0.1:$tport
mirror_names = localhost"
direct_url=$PROXY_URL

hport=$(drp_free_port) hmport=$(drp_free_port)
cat >"$SCEN/haproxy.cfg" <<EOF
global
	maxconn 200
defaults
	mode tcp
	timeout connect 5s
	timeout client 60s
	timeout server 60s
frontend fe
	bind 127.0.0.1:$hport
	bind [::1]:$hport
	default_backend proxies
backend proxies
	server p1 127.0.0.1:$PROXY_PORT send-proxy-v2 source $LB
frontend mirror
	bind 127.0.0.1:$hmport
	default_backend mirrors
backend mirrors
	server m1 127.0.0.1:$tport send-proxy-v2 source $LB
EOF
haproxy -c -f "$SCEN/haproxy.cfg" >/dev/null || drp_fail "haproxy rejects its configuration"
drp_bg haproxy haproxy -db -f "$SCEN/haproxy.cfg"
drp_wait_started haproxy "$DRP_LAST_PID" 10 drp_port_open 127.0.0.1 "$hport"
drp_wait "haproxy's mirror port" 10 drp_port_open 127.0.0.1 "$hmport"
LB_URL=http://127.0.0.1:$hport
SCHEMA2=application/vnd.docker.distribution.manifest.v2+json

# lbcurl SOURCE ARGS...: curl from SOURCE through the balancer.
lbcurl()
{
	local src=$1
	shift
	curl -sS --max-time 60 --interface "$src" --proxy "$LB_URL" --noproxy '' \
		--cacert "$PROXY_CA" --capath "$WORK/empty-certs" "$@"
}
# client_lines ADDR: access-log lines whose client is ADDR.
client_lines() { awk -v a="$1" '$2 == a' "$PROXY_DIR/access.log"; }

# ---- 1. v2 through HAProxy: the allowed client pulls (manifest and
# every blob, digests right), and the access log names it, not the
# balancer.
code=$(lbcurl $GOOD -o "$SCEN/m.json" -w '%{http_code}' -H "Accept: $SCHEMA2" \
	https://registry.test/v2/test/small/manifests/v1)
expect_eq "manifest through the balancer from $GOOD" 200 "$code"
expect_file_digest "manifest bytes" "$SCEN/m.json" "$SMALL_DIGEST"
for b in $SMALL_BLOBS; do
	code=$(lbcurl $GOOD -o "$SCEN/blob" -w '%{http_code}' "https://registry.test/v2/test/small/blobs/$b")
	expect_eq "blob ${b:7:12} through the balancer" 200 "$code"
	expect_file_digest "blob ${b:7:12} bytes" "$SCEN/blob" "$b"
done
drp_wait "the manifest's line for $GOOD" 5 bash -c \
	"awk -v a=$GOOD '\$2 == a && \$4 == \"GET\" && \$5 ~ /manifests/ && \$6 == 200' '$PROXY_DIR/access.log' | grep -q ."
expect_eq "access-log lines naming the balancer $LB" 0 "$(client_lines $LB | wc -l)"

# ---- 2. v2 through HAProxy: the client allow does not admit is refused
# (403 to its CONNECT), logged as itself.
code=$(lbcurl $BAD -o /dev/null -w '%{http_connect}' https://registry.test/v2/ || true)
expect_eq "CONNECT through the balancer from $BAD" 403 "$code"
drp_wait "the refusal of $BAD in the access log" 5 bash -c \
	"awk -v a=$BAD '\$2 == a && \$4 == \"CONNECT\" && \$6 == 403' '$PROXY_DIR/access.log' | grep -q ."
wait_log "$PROXY_DIR/proxy.log" 0 "$BAD: refused: client not in allow" 1 5

# ---- 3. v2 with an IPv6 client (HAProxy's [::1] listener): the header
# carries AF_INET6, and ::1 is allowed.
code=$(curl -sS --max-time 60 -g --proxy "http://[::1]:$hport" --noproxy '' --cacert "$PROXY_CA" \
	--capath "$WORK/empty-certs" -o /dev/null -w '%{http_code}' https://registry.test/v2/)
expect_eq "GET /v2/ through the balancer from ::1" 200 "$code"
drp_wait "a line for ::1" 5 bash -c "awk '\$2 == \"::1\"' '$PROXY_DIR/access.log' | grep -q ."

# ---- 3b. The mirror TLS listener behind the balancer: the header comes
# before the TLS handshake; policy sees the client there too.
mcurl()
{
	local src=$1
	shift
	curl -sS --max-time 60 --interface "$src" --noproxy '*' --cacert "$PROXY_CA" \
		--capath "$WORK/empty-certs" "$@"
}
code=$(mcurl $GOOD -o "$SCEN/mm.json" -w '%{http_code}' -H "Accept: $SCHEMA2" \
	"https://localhost:$hmport/v2/test/small/manifests/v1?ns=registry.test")
expect_eq "mirror TLS through the balancer from $GOOD" 200 "$code"
expect_file_digest "mirror manifest bytes" "$SCEN/mm.json" "$SMALL_DIGEST"
code=$(mcurl $BAD -o /dev/null -w '%{http_code}' -H "Accept: $SCHEMA2" \
	"https://localhost:$hmport/v2/test/small/manifests/v1?ns=registry.test" || true)
expect_eq "mirror TLS through the balancer from $BAD" 403 "$code"

# ---- 4. The balancer's address without a header: closed, with a log
# line (whatever it sends first).
mark=$(log_mark "$PROXY_DIR/proxy.log")
rc=0
curl -sS --max-time 10 --interface $LB "$direct_url/ca.crt" -o /dev/null 2>"$SCEN/nohdr.err" || rc=$?
# (52: empty reply, or 56: reset, as the request was left unread)
expect_match "curl exit for a request without a header from $LB" '^(52|56)$' "$rc"
wait_log "$PROXY_DIR/proxy.log" "$mark" "$LB: refused: no valid PROXY protocol header" 1 5
# ... and one that never sends anything is closed at header_timeout
# (5 s here would slow the suite; the state's timer is the same as a
# request head's, covered by policy and conn_malformed).

# v1req SOURCE CLIENT REQUEST-LINE: from SOURCE, a v1 header naming
# CLIENT, then REQUEST-LINE; prints the status of the answer ("-": none).
v1req()
{
	python3 - "$PROXY_PORT" "$@" <<'EOF'
import socket, sys
port, src, client, line = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
s = socket.socket()
s.settimeout(10)
s.bind((src, 0))
s.connect(("127.0.0.1", port))
s.sendall(("PROXY TCP4 %s 127.0.0.1 40000 %d\r\n" % (client, port)).encode())
s.sendall(("%s\r\nHost: registry.test:443\r\nConnection: close\r\n\r\n" % line).encode())
words = s.makefile("rb").readline().decode().split()
print(words[1] if len(words) > 1 else "-")
EOF
}

# ---- 5. A header from a peer not in proxy_protocol_from is not read as
# one: $BAD claiming to be $GOOD gets no tunnel (its "PROXY" line is a
# malformed request), and is logged as itself.
expect_eq "CONNECT after a v1 header from the untrusted $BAD naming $GOOD" 400 \
	"$(v1req $BAD $GOOD 'CONNECT registry.test:443 HTTP/1.1')"
drp_wait "the 400 for $BAD in the access log" 5 bash -c \
	"awk -v a=$BAD '\$2 == a && \$6 == 400' '$PROXY_DIR/access.log' | grep -q ."

# ---- 6. PROXY v1 from curl (--haproxy-protocol; curl sends it only on
# a connection it makes to the server itself, not to a proxy, so this is
# a request for the proxy's own page): from the trusted $V1LB its header
# names $V1LB, which allow admits; the same peer without it is closed.
code=$(curl -sS --max-time 10 --interface $V1LB --haproxy-protocol -o "$SCEN/ca-v1.crt" \
	-w '%{http_code}' "$direct_url/ca.crt")
expect_eq "GET /ca.crt with curl's v1 header from $V1LB" 200 "$code"
expect_eq "the CA it served" "$(sha256sum <"$PROXY_CA")" "$(sha256sum <"$SCEN/ca-v1.crt")"
rc=0
curl -sS --max-time 10 --interface $V1LB -o /dev/null "$direct_url/ca.crt" 2>/dev/null || rc=$?
expect_match "curl exit without the header from $V1LB" '^(52|56)$' "$rc"

# ---- 7. PROXY v1 by hand from the trusted $V1LB, naming other clients:
# policy follows the header's address both ways.
expect_eq "v1 header naming $GOOD" 200 "$(v1req $V1LB $GOOD 'GET /healthz HTTP/1.1')"
expect_eq "v1 header naming $BAD" 403 "$(v1req $V1LB $BAD 'GET /healthz HTTP/1.1')"
expect_eq "v1 header naming $GOOD, CONNECT" 200 "$(v1req $V1LB $GOOD 'CONNECT registry.test:443 HTTP/1.1')"
expect_eq "access-log lines naming $LB" 0 "$(client_lines $LB | wc -l)"
