#!/bin/bash
# SPDX-License-Identifier: MIT
# A host the proxy does not intercept is tunnelled byte for byte: the
# client sees the origin's own certificate (the test CA verifies it, the
# proxy CA does not).
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
drp_scenario_init
tcurl() { curl -sS --max-time 30 --proxy "$PROXY_URL" --noproxy '' --capath "$WORK/empty-certs" "$@"; }

mark=$(log_mark "$WORK/logs/tunnel-access.log")
amk=$(amark)
code=$(tcurl --cacert "$TEST_CA" -o "$SCEN/file" -w '%{http_code} %{http_connect}' https://tunnel.test/file)
expect_eq "tunnel status (GET, CONNECT)" "200 200" "$code"
expect_file_digest "tunnelled file" "$SCEN/file" "$TUNNEL_FILE_DIGEST"
wait_log "$WORK/logs/tunnel-access.log" "$mark" "$(req_pat GET /file)" 1 5
expect_eq "origin saw the request" 1 "$(count_since "$WORK/logs/tunnel-access.log" "$mark" "$(req_pat GET /file)")"

# The certificate is the origin's: trusting only the proxy CA fails
# verification (curl exit 60), so the proxy did not intercept.
rc=0
tcurl --cacert "$PROXY_CA" -o /dev/null https://tunnel.test/file 2>"$SCEN/err" || rc=$?
expect_eq "curl exit trusting only the proxy CA" 60 "$rc"

# The issuer the client saw is the test CA.
issuer=$(openssl s_client -proxy "127.0.0.1:$PROXY_PORT" -connect tunnel.test:443 \
	-servername tunnel.test -CAfile "$TEST_CA" -verify_return_error </dev/null 2>/dev/null |
	openssl x509 -noout -issuer -nameopt RFC2253)
expect_eq "origin certificate issuer" "issuer=CN=drp integration test CA" "$issuer"

# The access log has a TUNNEL line with the bytes both ways.
line=$(anext '$0' "$amk" tunnel.test:443 CONNECT -)
[ -n "$line" ] || drp_fail "no access-log line for the tunnel"
expect_eq "tunnel access-log client, status, result" "127.0.0.1 200 TUNNEL" \
	"$(echo "$line" | awk '{ print $2, $6, $11 }')"
expect_ge "tunnel bytes_out" "$(stat -c %s "$WORK/tunnel-root/file")" "$(echo "$line" | awk '{ print $8 }')"
expect_ge "tunnel bytes_in (ClientHello at least)" 100 "$(echo "$line" | awk '{ print $7 }')"

# HTTP/2 inside the tunnel works too (the proxy only relays bytes).
code=$(tcurl --cacert "$TEST_CA" --http2 -o /dev/null -w '%{http_version}' https://tunnel.test/file)
expect_eq "HTTP version inside the tunnel" 2 "$code"
