#!/bin/bash
# SPDX-License-Identifier: MIT
# The proxy's CA and the leaf it forges for an intercepted host: CA:TRUE,
# keyCertSign, key file 0600; leaf SAN = the host, serverAuth, signed by
# the CA, validity at most 397 days, notBefore backdated, ALPN http/1.1.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
drp_scenario_init
cadir=$(dirname "$PROXY_CA")

# The CA.
catext=$(openssl x509 -in "$PROXY_CA" -noout -text)
expect_match "CA basicConstraints" 'CA:TRUE' "$catext"
expect_match "CA keyUsage" 'Certificate Sign' "$catext"
days=$(( ($(date -d "$(openssl x509 -in "$PROXY_CA" -noout -enddate | cut -d= -f2)" +%s) - $(date +%s)) / 86400 ))
expect_ge "CA validity (days)" 365 "$days"
keyfile=$(find "$cadir" -maxdepth 1 -type f -exec grep -lE -- '-----BEGIN (RSA |EC |ENCRYPTED )?PRIVATE KEY-----' {} + | head -1)
[ -n "$keyfile" ] || drp_fail "no private key file in $cadir"
expect_eq "CA key file mode ($keyfile)" 600 "$(stat -c %a "$keyfile")"

# The leaf seen through an interception of registry.test.
openssl s_client -proxy "127.0.0.1:$PROXY_PORT" -connect registry.test:443 -servername registry.test \
	-CAfile "$PROXY_CA" -verify_return_error -alpn h2,http/1.1 </dev/null >"$SCEN/s_client.out" 2>&1 ||
	drp_fail "TLS handshake through the proxy failed: $(tail -5 "$SCEN/s_client.out")"
expect_match "verification against the proxy CA" 'Verify return code: 0 \(ok\)' "$(cat "$SCEN/s_client.out")"
expect_match "ALPN" 'ALPN protocol: http/1.1' "$(cat "$SCEN/s_client.out")"
openssl x509 -in "$SCEN/s_client.out" -out "$SCEN/leaf.pem"
leaf=$(openssl x509 -in "$SCEN/leaf.pem" -noout -text)
expect_match "leaf SAN" 'DNS:registry\.test' "$leaf"
expect_no_match "leaf SAN has no other host" 'DNS:(basic|redirect|cdn|tunnel)\.test' "$leaf"
expect_match "leaf EKU" 'TLS Web Server Authentication' "$leaf"
expect_no_match "leaf is no CA" 'CA:TRUE' "$leaf"
expect_eq "leaf issuer = CA subject" "$(openssl x509 -in "$PROXY_CA" -noout -subject | sed 's/^subject=//')" \
	"$(openssl x509 -in "$SCEN/leaf.pem" -noout -issuer | sed 's/^issuer=//')"
nb=$(date -d "$(openssl x509 -in "$SCEN/leaf.pem" -noout -startdate | cut -d= -f2)" +%s)
na=$(date -d "$(openssl x509 -in "$SCEN/leaf.pem" -noout -enddate | cut -d= -f2)" +%s)
expect_le "leaf validity (days)" 397 $(( (na - nb) / 86400 ))
expect_ge "leaf notBefore backdated (s)" 1 $(( $(date +%s) - nb ))
serial=$(openssl x509 -in "$SCEN/leaf.pem" -noout -serial | cut -d= -f2)
expect_ge "leaf serial hex digits" 16 "${#serial}"

# The test CA does not verify the forged leaf: the client really trusts the
# proxy CA only.
rc=0
curl -sS --max-time 10 --proxy "$PROXY_URL" --cacert "$TEST_CA" --capath "$WORK/empty-certs" \
	-o /dev/null https://registry.test/v2/ 2>/dev/null || rc=$?
expect_eq "curl exit trusting only the test CA" 60 "$rc"

# Another intercepted host gets its own leaf (a different SAN).
openssl s_client -proxy "127.0.0.1:$PROXY_PORT" -connect basic.test:443 -servername basic.test \
	-CAfile "$PROXY_CA" -verify_return_error </dev/null 2>/dev/null | openssl x509 -noout -text >"$SCEN/leaf2.txt"
expect_match "basic.test leaf SAN" 'DNS:basic\.test' "$(cat "$SCEN/leaf2.txt")"
