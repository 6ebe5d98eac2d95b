#!/bin/bash
# SPDX-License-Identifier: MIT
# The nginx-based proxy's CA keeps working: its ca.crt and its ca.key
# encrypted with the passphrase foobar, made the way its images made them
# (`openssl genrsa -des3`: PKCS#8 with OpenSSL 3, the traditional
# Proc-Type PEM with -traditional, as older OpenSSL wrote), in a read-only
# directory. A client that trusts only that old ca.crt pulls through the
# proxy; without the passphrase the proxy refuses to start and says why.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
drp_scenario_init
drp_require_tools openssl

old_ca()
{
	local d=$1 form=$2
	mkdir -p "$d"
	openssl genrsa $form -des3 -passout pass:foobar -out "$d/ca.key" 2048 2>/dev/null
	openssl req -x509 -new -key "$d/ca.key" -passin pass:foobar -days 365 \
		-subj "/O=nginx-proxy/CN=docker-registry-proxy CA" \
		-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
		-out "$d/ca.crt"
	chmod 0400 "$d/ca.key"
	chmod 0555 "$d"
}
echo foobar >"$SCEN/passphrase"
for form in pkcs8 traditional; do
	name=old-$form
	flag=
	[ $form = traditional ] && flag=-traditional
	old_ca "$WORK/$name/ca" "$flag"
	case $form in
	pkcs8) grep -q 'BEGIN ENCRYPTED PRIVATE KEY' "$WORK/$name/ca/ca.key" || drp_fail "not PKCS#8" ;;
	traditional) grep -q 'Proc-Type: 4,ENCRYPTED' "$WORK/$name/ca/ca.key" || drp_fail "not traditional" ;;
	esac
	before=$(sha256sum "$WORK/$name/ca/ca.crt" "$WORK/$name/ca/ca.key")
	port=$(drp_free_port)
	# Without the passphrase: no start, a clear reason.
	drp_proxy_conf "$name" "$port"
	rc=0
	timeout 20 "$DRP_PROXY" -c "$WORK/$name/proxy.ini" >"$SCEN/$name.nopass" 2>&1 || rc=$?
	expect_eq "$form: exit status without a passphrase" 1 "$rc"
	expect_match "$form: error without a passphrase" "ca\.key is encrypted: set ca_key_passphrase" \
		"$(cat "$SCEN/$name.nopass" "$WORK/$name/proxy.log" 2>/dev/null)"
	# With it (from a file): starts, and forged certificates chain to the
	# old CA, which is all the client trusts.
	drp_proxy_conf "$name" "$port" "ca_key_passphrase_file = $SCEN/passphrase"
	drp_start_proxy "$name"
	expect_eq "$form: /ca.crt is the old certificate" "$(openssl x509 -in "$WORK/$name/ca/ca.crt" -noout -fingerprint -sha256)" \
		"$(openssl x509 -in "$WORK/$name/ca-fetched.crt" -noout -fingerprint -sha256)"
	code=$(pcurl -o "$SCEN/$name.json" -w '%{http_code}' -H "Accept: application/vnd.docker.distribution.manifest.v2+json" \
		https://registry.test/v2/test/small/manifests/v1)
	expect_eq "$form: manifest through the proxy, trusting the old CA" 200 "$code"
	expect_file_digest "$form: manifest bytes" "$SCEN/$name.json" "$SMALL_DIGEST"
	grep -q foobar "$WORK/$name/proxy.log" && drp_fail "the passphrase is in the log"
	expect_eq "$form: CA files untouched" "$before" "$(sha256sum "$WORK/$name/ca/ca.crt" "$WORK/$name/ca/ca.key")"
done
