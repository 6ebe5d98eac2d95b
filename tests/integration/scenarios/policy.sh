#!/bin/bash
# SPDX-License-Identifier: MIT
# The listener's own answers and its policy: clients outside allow (403),
# CONNECT to a port outside tunnel_ports (403) or to an address the proxy
# must never reach (403), malformed requests (400), oversized headers
# (431), Host/SNI mismatches inside an interception, /ca.crt and /healthz.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
drp_scenario_init

# raw REQUEST-BYTES: send them to the proxy, print its status line's code.
# A write error is ignored: the proxy may answer and close before it has
# read everything (an oversized header), and the answer is what counts.
raw()
{
	timeout 10 bash -c 'trap "" PIPE; exec 3<>/dev/tcp/127.0.0.1/$1; printf "%b" "$2" >&3 2>/dev/null;
		IFS= read -r line <&3; printf "%s\n" "$line"' _ "$PROXY_PORT" "$1" | tr -d '\r' | awk '{ print $2 }'
}

# A client address outside allow (127.0.0.1/32): CONNECT refused with 403.
code=$(curl -s --max-time 10 --interface 127.0.0.5 --proxy "$PROXY_URL" --cacert "$PROXY_CA" \
	-o /dev/null -w '%{http_connect}' https://registry.test/v2/ || true)
expect_eq "CONNECT from 127.0.0.5 (outside allow)" 403 "$code"
refused() { awk '$2 == "127.0.0.5" && $4 == "CONNECT" && $6 == 403' "$PROXY_DIR/access.log"; }
drp_wait "the refused CONNECT in the access log" 5 test -n "$(refused)"
drp_log "ok: access log: $(refused | tail -n 1)"
# ... and the same from 127.0.0.1 is accepted (the test above is not vacuous).
code=$(pcurl -o /dev/null -w '%{http_connect}' https://registry.test/v2/)
expect_eq "CONNECT from 127.0.0.1" 200 "$code"

# CONNECT to a port outside tunnel_ports.
expect_eq "CONNECT tunnel.test:8443" 403 \
	"$(raw 'CONNECT tunnel.test:8443 HTTP/1.1\r\nHost: tunnel.test:8443\r\n\r\n')"
code=$(curl -s --max-time 10 --proxy "$PROXY_URL" --cacert "$TEST_CA" -o /dev/null \
	-w '%{http_connect}' https://tunnel.test:8443/file || true)
expect_eq "curl CONNECT tunnel.test:8443" 403 "$code"

# CONNECT to loopback that [resolve] does not name: never reached.
expect_eq "CONNECT 127.0.0.1:443" 403 \
	"$(raw 'CONNECT 127.0.0.1:443 HTTP/1.1\r\nHost: 127.0.0.1:443\r\n\r\n')"
expect_eq "CONNECT localhost:443" 403 \
	"$(raw 'CONNECT localhost:443 HTTP/1.1\r\nHost: localhost:443\r\n\r\n')"

# Malformed requests.
expect_eq "GARBAGE request line" 400 "$(raw 'GARBAGE\r\n\r\n')"
expect_eq "header line without colon" 400 "$(raw 'GET /healthz HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n')"
# A malformed CONNECT target: the issue calls it a policy refusal (403),
# a parser may call it a bad request (400); either is a clear refusal.
expect_match "CONNECT without a port" '^(400|403)$' \
	"$(raw 'CONNECT registry.test HTTP/1.1\r\nHost: registry.test\r\n\r\n')"

# Headers beyond the limit (max_header_size, 64K by default): 431. The
# proxy stops reading at its limit, answers, shuts its side and then reads
# and drops what the client still sends: a client that writes a 2 MB head
# (more than the socket buffers hold) before reading must get the 431, not
# a reset.
big=$(head -c 100000 /dev/zero | tr '\0' a)
expect_eq "100 kB header" 431 "$(raw "GET /healthz HTTP/1.1\\r\\nHost: x\\r\\nX-Big: $big\\r\\n\\r\\n")"
code=$(timeout 10 bash -c 'exec 3<>/dev/tcp/127.0.0.1/$1
	{ printf "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: "; head -c 2000000 /dev/zero | tr "\0" a
	  printf "\r\n\r\n"; } >&3 || echo "write failed" >&2
	IFS= read -r line <&3; printf "%s\n" "$line"' _ "$PROXY_PORT" | tr -d '\r' | awk '{ print $2 }')
expect_eq "2 MB header, read after sending it all" 431 "$code"

# The listener's own pages.
code=$(curl -s --max-time 10 -o /dev/null -w '%{http_code}' "$PROXY_URL/healthz")
expect_eq "GET /healthz" 200 "$code"
code=$(curl -s --max-time 10 -o /dev/null -w '%{http_code}' "$PROXY_URL/no-such-page")
expect_match "GET /no-such-page" '^4[0-9][0-9]$' "$code"
code=$(curl -s --max-time 10 -o "$SCEN/ca.crt" -D "$SCEN/ca.hdr" -w '%{http_code}' "$PROXY_URL/ca.crt")
expect_eq "GET /ca.crt" 200 "$code"
expect_eq "/ca.crt Content-Type" application/x-x509-ca-cert "$(hdr Content-Type <"$SCEN/ca.hdr")"
fp_served=$(openssl x509 -in "$SCEN/ca.crt" -noout -fingerprint -sha256 | cut -d= -f2)
fp_file=$(openssl x509 -in "$PROXY_CA" -noout -fingerprint -sha256 | cut -d= -f2)
expect_eq "/ca.crt fingerprint" "$fp_file" "$fp_served"
# The fingerprint is logged at start (colon-separated or plain hex, any case).
hex=$(echo "$fp_file" | tr -d : | tr A-F a-f)
if ! cat "$PROXY_DIR/proxy.log" "$WORK/logs/proxy-$PROXY_NAME.err" "$WORK/logs/proxy-$PROXY_NAME.out" 2>/dev/null |
	tr -d : | tr A-F a-f | grep -qF "$hex"; then
	drp_fail "the CA fingerprint $fp_file is not in the proxy's log"
fi
drp_log "ok: CA fingerprint logged"

# Inside an interception: a Host header naming another host gets 421.
code=$(pcurl -o /dev/null -w '%{http_code}' -H 'Host: basic.test' https://registry.test/v2/)
expect_eq "Host mismatch inside registry.test" 421 "$code"

# An SNI that differs from the CONNECT host never gets a registry answer.
resp=$(printf 'GET /v2/ HTTP/1.1\r\nHost: registry.test\r\nConnection: close\r\n\r\n' |
	timeout 10 openssl s_client -quiet -ign_eof -proxy "127.0.0.1:$PROXY_PORT" -connect registry.test:443 \
		-servername basic.test -CAfile "$PROXY_CA" 2>/dev/null | head -1 | tr -d '\r' || true)
expect_no_match "answer with SNI basic.test in a registry.test tunnel" '^HTTP/1\.[01] 200' "$resp"
