#!/bin/bash
# SPDX-License-Identifier: MIT
# Credentials follow a redirect only to the same origin (scheme, host,
# effective port) and never over plain http. bad.test is redirectsink.py:
# a Basic-auth registry whose blob GETs redirect to http://bad.test:8080,
# https://bad.test:6443, https://BAD.TEST:443 or /data/...; it logs the
# Authorization each port receives. Both the proxy's credentials
# ([registry "bad.test"] plugin = basic) and a client's own are checked.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
drp_scenario_init

ip=${DRP_IP[bad.test]}
mkdir -p "$SCEN/blobs"
for f in "$WORK"/images/{small,multi,push}/blobs/sha256/*; do
	ln -f "$f" "$SCEN/blobs/$(basename "$f")"
done
CLIENT_USER=client CLIENT_PASS=client-pw
drp_bg sink python3 "$DRP_IT_DIR/redirectsink.py" "$ip" bad.test \
	"$WORK/pki/bad.test.crt" "$WORK/pki/bad.test.key" "$SCEN/blobs" \
	"$BASIC_USER:$BASIC_PASS" "$CLIENT_USER:$CLIENT_PASS"
SINK_PID=$DRP_LAST_PID
drp_wait_started sink "$SINK_PID" 20 drp_port_open "$ip" 8080
drp_wait_started sink "$SINK_PID" 20 drp_port_open "$ip" 6443
drp_wait_started sink "$SINK_PID" 20 drp_port_open "$ip" 443
SINK_LOG=$WORK/logs/sink.out

DRP_IT_REGISTRIES="bad.test" drp_proxy_conf redircreds "$(drp_free_port)" "[registry \"bad.test\"]
plugin = basic
username = $BASIC_USER
password = $BASIC_PASS"
# Every port of bad.test goes to the sink (an address without a port
# keeps the port of the request).
sed -i "s/^bad\.test = .*/bad.test = $ip/" "$WORK/redircreds/proxy.ini"
drp_start_proxy redircreds

proxy_auth="Basic $(printf '%s:%s' "$BASIC_USER" "$BASIC_PASS" | base64 -w0)"
client_auth="Basic $(printf '%s:%s' "$CLIENT_USER" "$CLIENT_PASS" | base64 -w0)"
blobs=($SMALL_BLOBS $MULTI_AMD64_BLOBS $MULTI_ARM64_BLOBS $PUSH_BLOBS)
n=0

# check WHO MODE PORT EXPECTED-AUTHORIZATION [CURL-ARGS...]: a blob GET
# the registry redirects per MODE; the client gets the right bytes, and
# the redirect target (PORT) saw EXPECTED-AUTHORIZATION ("-": none).
check()
{
	local who=$1 mode=$2 port=$3 want=$4 b=${blobs[$n]} m line
	shift 4
	n=$((n + 1))
	m=$(log_mark "$SINK_LOG")
	pcurl -o "$SCEN/blob" "$@" "https://bad.test/v2/test/$mode/blobs/$b"
	expect_file_digest "$who, $mode: bytes" "$SCEN/blob" "$b"
	wait_log "$SINK_LOG" "$m" "$port $(req_pat GET "/data/$b")" 1 5
	line=$(log_since "$SINK_LOG" "$m" | grep -F "$port $(req_pat GET "/data/$b")" || true)
	expect_eq "$who, $mode: requests at :$port" 1 "$(printf '%s' "$line" | grep -c . || true)"
	expect_eq "$who, $mode: Authorization at :$port" "\"$want\"" \
		"$(printf '%s' "$line" | sed 's/^.*" [0-9][0-9][0-9] //')"
}

# The proxy's credentials.
check "proxy's credentials" http8080 8080 -
check "proxy's credentials" https6443 6443 -
check "proxy's credentials" same 443 "$proxy_auth"
check "proxy's credentials" relative 443 "$proxy_auth"
# A client's own credentials (they win over the section's).
check "client's credentials" http8080 8080 - -u "$CLIENT_USER:$CLIENT_PASS"
check "client's credentials" https6443 6443 - -u "$CLIENT_USER:$CLIENT_PASS"
check "client's credentials" same 443 "$client_auth" -u "$CLIENT_USER:$CLIENT_PASS"

# Nothing but the sink's own port 443 ever saw a credential.
expect_eq "credentials at :8080 or :6443" "" \
	"$(grep -E '^(8080|6443) ' "$SINK_LOG" | grep -v '"-"$' || true)"
