#!/bin/bash
# SPDX-License-Identifier: MIT
# Realm hosts learned from upstream challenges are intercepted (issue 4):
# a proxy that intercepts token.test, but not its token realm auth.test
# and with no [registry] section for it, tunnels auth.test until
# token.test's 401 names it (Bearer realm="https://auth.test/token");
# from then on CONNECT auth.test is intercepted (forged certificate,
# requests in the access log, fetched by the proxy's upstream client)
# and pulls still work. One log line per learned host; tunnel_only keeps
# a realm tunnelled; what is learned belongs to a configuration
# generation (SIGHUP forgets it).
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
drp_scenario_init
drp_require_tools skopeo jq
DRP_IT_REGISTRIES="registry.test token.test" drp_own_proxy
first_url=$PROXY_URL first_ca=$PROXY_CA first_dir=$PROXY_DIR first_pid=$PROXY_PID
plog=$PROXY_DIR/proxy.log
# Trusts the real auth.test (a tunnel) and the proxy's CA (interception).
both=$SCEN/both-cas.pem
cat "$TEST_CA" "$PROXY_CA" >"$both"
bcurl()
{
	curl -sS --max-time 30 --proxy "$PROXY_URL" --noproxy '' --cacert "$both" \
		--capath "$WORK/empty-certs" "$@"
}
token_url="https://auth.test/token?service=token.test&scope=repository:public/small:pull"
learned="learned token realm host auth.test:443 from a challenge of token.test"

# n_lines MARK HOST:PORT METHOD PATH: access-log lines for that after MARK.
n_lines() { alog_since "$@" | wc -l; }

# 1. Before any challenge auth.test is tunnelled: its own certificate
# (the proxy's CA alone does not verify it), a TUNNEL line.
amk=$(amark)
expect_eq "realm before the challenge" 200 "$(bcurl -o "$SCEN/t0.json" -w '%{http_code}' "$token_url")"
code=$(pcurl -o /dev/null -w '%{http_code}' "$token_url" 2>/dev/null || true)
expect_eq "the proxy's CA alone, tunnelled" 000 "$code"
expect_eq "access log: tunnelled" "200 TUNNEL" "$(anext '$6, $11' "$amk" auth.test:443 CONNECT -)"

# 2. token.test's challenge names the realm: learned, logged once.
pmk=$(log_mark "$plog")
code=$(pcurl -o /dev/null -D "$SCEN/probe.hdr" -w '%{http_code}' https://token.test/v2/)
expect_eq "registry probe" 401 "$code"
expect_match "its challenge" 'Bearer realm="https://auth.test/token"' "$(hdr WWW-Authenticate <"$SCEN/probe.hdr")"
wait_log "$plog" "$pmk" "$learned" 1 5
pcurl -o /dev/null https://token.test/v2/ || true
expect_eq "learned, logged once" 1 "$(count_since "$plog" "$pmk" "$learned")"

# 3. Now intercepted: the proxy's certificate, the token request itself
# in the access log (PASS), no tunnel.
amk=$(amark)
expect_eq "realm after the challenge" 200 "$(pcurl -o "$SCEN/t1.json" -w '%{http_code}' "$token_url")"
expect_match "a token" '^ey' "$(jq -r .token "$SCEN/t1.json")"
expect_eq "access log: intercepted" "200 PASS 200" "$(anext '$6, $11, $10' "$amk" auth.test:443 GET /token)"
expect_eq "tunnels to the realm" 0 "$(n_lines "$amk" auth.test:443 CONNECT -)"

# 4. Real clients pull through it: skopeo anonymously (public) and with
# alice's credentials (private), curl with a token from the realm.
amk=$(amark)
tmk=$(log_mark "$WORK/logs/token.out")
pskopeo copy --quiet --retry-times 0 docker://token.test/public/small:v1 "dir:$SCEN/small"
check_dir_image "$SCEN/small" "$SMALL_DIGEST" $SMALL_BLOBS
pskopeo copy --quiet --retry-times 0 --src-creds "$ALICE" docker://token.test/private/secret:v1 "dir:$SCEN/secret"
check_dir_image "$SCEN/secret" "$PUSH_DIGEST" $PUSH_BLOBS
expect_ge "skopeo's token requests, intercepted" 2 "$(n_lines "$amk" auth.test:443 GET /token)"
expect_eq "skopeo's tunnels to the realm" 0 "$(n_lines "$amk" auth.test:443 CONNECT -)"
expect_ge "alice's token at the token service" 1 \
	"$(count_since "$WORK/logs/token.out" "$tmk" 'user=alice scope=repository:private/secret:pull status=200')"
tok=$(jq -r .token "$SCEN/t1.json")
code=$(pcurl -o "$SCEN/m.json" -w '%{http_code}' -H "Authorization: Bearer $tok" \
	-H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
	https://token.test/v2/public/small/manifests/v1)
expect_eq "curl with the realm's token" 200 "$code"
expect_file_digest "its manifest" "$SCEN/m.json" "$SMALL_DIGEST"

# 5. tunnel_only: an operator can keep a realm tunnelled.
DRP_IT_REGISTRIES="registry.test token.test" drp_proxy_conf realm-to "$(drp_free_port)" "tunnel_only = auth.test"
drp_start_proxy realm-to
cat "$TEST_CA" "$PROXY_CA" >"$both"
pcurl -o /dev/null https://token.test/v2/ || true
amk=$(amark)
expect_eq "tunnel_only realm" 200 "$(bcurl -o /dev/null -w '%{http_code}' "$token_url")"
expect_eq "tunnel_only: access log" "200 TUNNEL" "$(anext '$6, $11' "$amk" auth.test:443 CONNECT -)"
expect_eq "tunnel_only: nothing learned" 0 "$(count_since "$PROXY_DIR/proxy.log" 0 'learned token realm host')"
# A client trusting only the proxy's CA meets auth.test's own
# certificate (what interception spares it); trusting both, it pulls.
if pskopeo copy --quiet --retry-times 0 docker://token.test/public/small:v1 "dir:$SCEN/small-to" 2>"$SCEN/to.err"; then
	drp_fail "skopeo trusting only the proxy's CA reached a tunnelled realm"
fi
expect_match "tunnel_only: the realm's own certificate" 'auth.test.*x509' "$(cat "$SCEN/to.err")"
PROXY_CA=$both pskopeo copy --quiet --retry-times 0 docker://token.test/public/small:v1 "dir:$SCEN/small-to2"
check_dir_image "$SCEN/small-to2" "$SMALL_DIGEST" $SMALL_BLOBS

# 6. Learned hosts belong to a configuration generation.
PROXY_URL=$first_url PROXY_CA=$first_ca PROXY_DIR=$first_dir
cat "$TEST_CA" "$PROXY_CA" >"$both"
pmk=$(log_mark "$plog")
kill -HUP "$first_pid"
wait_log "$plog" "$pmk" 'configuration reloaded' 1 10
amk=$(amark)
expect_eq "realm after a reload" 200 "$(bcurl -o /dev/null -w '%{http_code}' "$token_url")"
expect_eq "after a reload: tunnelled again" "200 TUNNEL" "$(anext '$6, $11' "$amk" auth.test:443 CONNECT -)"
pcurl -o /dev/null https://token.test/v2/ || true
wait_log "$plog" "$pmk" "$learned" 1 5
expect_eq "learned again" 1 "$(count_since "$plog" "$pmk" "$learned")"
