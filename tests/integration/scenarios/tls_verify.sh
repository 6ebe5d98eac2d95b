#!/bin/bash
# SPDX-License-Identifier: MIT
# Upstream certificate verification (docker-registry-proxy.ini(5),
# verify_upstream): an intercepted registry that presents a self-signed
# certificate, one for another name, or an expired one gets a 502 and a
# log line naming the host; no HTTP request reaches it (counted in its
# own access log) and nothing is cached. With verify_upstream = no the
# same registry serves the same request, byte for byte.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
drp_scenario_init
drp_require_tools skopeo certtool
host=stale.test
ip=${DRP_IP[$host]}
ACCEPT="application/vnd.oci.image.manifest.v1+json,application/vnd.docker.distribution.manifest.v2+json"
layer=${SMALL_LAYERS%% *}

# The registry with its valid certificate, for the push.
drp_start_registry tlsv "$host"
drp_push_direct small "$host/test/small:v1"
reg=$(reg_log tlsv)
drp_stop "${REG_PID[tlsv]}" 10 || true

# The three bad certificates, each with its own key.
d=$SCEN/pki
mkdir -p "$d"
for k in selfsigned wrongname expired; do
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$d/$k.key" 2>/dev/null
done
openssl req -x509 -key "$d/selfsigned.key" -out "$d/selfsigned.crt" -days 3 \
	-subj "/CN=$host" -addext "subjectAltName=DNS:$host,IP:$ip" \
	-addext extendedKeyUsage=serverAuth 2>/dev/null
printf 'cn = "other.test"\ndns_name = "other.test"\ntls_www_server\nsigning_key\nexpiration_days = 3\n' >"$d/wrongname.tmpl"
printf 'cn = "%s"\ndns_name = "%s"\nip_address = "%s"\ntls_www_server\nsigning_key\nactivation_date = "2020-01-01 00:00:00 UTC"\nexpiration_date = "2020-01-31 00:00:00 UTC"\n' \
	"$host" "$host" "$ip" >"$d/expired.tmpl"
for k in wrongname expired; do
	certtool --generate-certificate --load-privkey "$d/$k.key" --load-ca-certificate "$WORK/pki/ca.crt" \
		--load-ca-privkey "$WORK/pki/ca.key" --template "$d/$k.tmpl" --outfile "$d/$k.crt" 2>/dev/null ||
		drp_fail "certtool: $k certificate"
done
# Each is what it claims to be, seen by a client that trusts the test CA.
for k in selfsigned wrongname expired; do
	rc=0
	openssl verify -CAfile "$TEST_CA" -verify_hostname "$host" "$d/$k.crt" >"$d/$k.verify" 2>&1 || rc=$?
	expect_eq "openssl verify of the $k certificate fails" 1 $((rc != 0))
done
expect_match "expired certificate" 'certificate has expired' "$(cat "$d/expired.verify")"
expect_match "wrong-name certificate" 'hostname mismatch' "$(cat "$d/wrongname.verify")"

# serve KIND: the registry (same storage) with KIND's certificate.
serve()
{
	sed -e "s#certificate: .*#certificate: $d/$1.crt#" -e "s#key: .*#key: $d/$1.key#" \
		"$WORK/reg-tlsv.yml" >"$SCEN/reg-$1.yml"
	drp_bg "reg-tlsv-$1" env -u REGISTRY_AUTH_FILE docker-registry serve "$SCEN/reg-$1.yml"
	REG_PID[$1]=$DRP_LAST_PID
	reg=$(reg_log "tlsv-$1")
	drp_wait_started "reg-tlsv-$1" "$DRP_LAST_PID" 30 drp_port_open "$ip" 443
}

cached_files() { find "$PROXY_DIR/cache/blobs" "$PROXY_DIR/cache/meta" -type f 2>/dev/null | wc -l; }

# Verification on (the default): 502, a log line, no request upstream,
# nothing cached.
declare -A why=([selfsigned]='issuer is unknown' [wrongname]='name in the certificate does not match'
	[expired]='expired')
DRP_IT_REGISTRIES="registry.test $host" drp_proxy_conf tls-verify "$(drp_free_port)"
drp_start_proxy tls-verify
tls_failures() {
	curl -sf --max-time 10 "$PROXY_URL/metrics" >"$SCEN/metrics"
	python3 "$DRP_IT_DIR/promq.py" sum "$SCEN/metrics" \
		'drp_tls_handshake_failures_total{side="upstream",reason="certificate"}'
}
for k in selfsigned wrongname expired; do
	serve "$k"
	rmark=$(log_mark "$reg")
	pmark=$(log_mark "$PROXY_DIR/proxy.log")
	failures=$(tls_failures)
	for path in "/v2/test/small/manifests/v1" "/v2/test/small/blobs/$layer"; do
		code=$(pcurl -o "$SCEN/body" -w '%{http_code}' -H "Accept: $ACCEPT" "https://$host$path" || true)
		expect_eq "$k: status of GET $path" 502 "$code"
	done
	# The log line comes when the handshake has failed, before any
	# request could be sent: then the registry's log is complete.
	# One line from the TLS layer per attempt (the cache adds its own
	# for the blob fill).
	wait_log "$PROXY_DIR/proxy.log" "$pmark" "certificate verification failed for $host" 2 10
	lines=$(log_since "$PROXY_DIR/proxy.log" "$pmark" |
		grep -E " tls: .*\\($ip:443\\): certificate verification failed for $host" || true)
	expect_eq "$k: TLS log lines" 2 "$(printf '%s\n' "$lines" | grep -c . || true)"
	expect_match "$k: the log line says why" "${why[$k]}" "$lines"
	expect_eq "$k: upstream certificate failures counted" 2 $(($(tls_failures) - failures))
	expect_eq "$k: HTTP requests that reached the registry" 0 "$(count_since "$reg" "$rmark" '"GET /v2/')"
	expect_eq "$k: files in the cache" 0 "$(cached_files)"
	drp_stop "${REG_PID[$k]}" 10 || true
done

# Verification off: the same requests pass, the bytes are right (a proxy
# with an empty cache for each certificate, so that each request goes
# upstream).
for k in selfsigned wrongname expired; do
	DRP_IT_REGISTRIES="registry.test $host" drp_proxy_conf "tls-noverify-$k" "$(drp_free_port)" "verify_upstream = no"
	drp_start_proxy "tls-noverify-$k"
	serve "$k"
	rmark=$(log_mark "$reg")
	code=$(pcurl -o "$SCEN/m-$k" -w '%{http_code}' -H "Accept: $ACCEPT" "https://$host/v2/test/small/manifests/v1")
	expect_eq "$k, verify_upstream = no: manifest status" 200 "$code"
	expect_file_digest "$k, verify_upstream = no: manifest bytes" "$SCEN/m-$k" "$SMALL_DIGEST"
	code=$(pcurl -o "$SCEN/b-$k" -w '%{http_code}' "https://$host/v2/test/small/blobs/$layer")
	expect_eq "$k, verify_upstream = no: blob status" 200 "$code"
	expect_file_digest "$k, verify_upstream = no: blob bytes" "$SCEN/b-$k" "$layer"
	wait_log "$reg" "$rmark" '"GET /v2/test/small/blobs/' 1 10
	expect_eq "$k, verify_upstream = no: manifest GETs upstream" 1 \
		"$(count_since "$reg" "$rmark" '"GET /v2/test/small/manifests/v1 ')"
	expect_eq "$k, verify_upstream = no: blob GETs upstream" 1 \
		"$(count_since "$reg" "$rmark" "\"GET /v2/test/small/blobs/$layer ")"
	drp_stop "${REG_PID[$k]}" 10 || true
done
