#!/bin/bash
# SPDX-License-Identifier: MIT
# A parent (corporate) proxy (issue 12): Debian's squid, once open and
# once with basic auth (basic_ncsa_auth). The proxy cannot resolve the
# test registries itself (no [resolve] entry, a name server that never
# answers): squid resolves them (its hosts_file). Through the parent go
# intercepted pulls (CONNECT, the registry's certificate still verified
# by the proxy), their CDN redirects, mirror pulls, tunnels, and plain
# http:// requests (absolute form, no CONNECT); counted in squid's access
# log (a CONNECT line when the tunnel closes: the proxy is stopped, which
# closes its pooled connections, before counting). A wrong parent
# password: 502 and one log line naming the parent and its 407, for a
# fetch and for a tunnel; no password in any log.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
. "$DRP_IT_DIR/mirror_lib.sh"
drp_scenario_init
drp_require_tools squid skopeo htpasswd
[ -x /usr/lib/squid/basic_ncsa_auth ] || drp_skip "squid's basic_ncsa_auth missing"
SQ_USER=drpuser SQ_PW='Parent-Pw7'

# plain.test: a plain-HTTP origin on port 80.
mkdir -p "$SCEN/www"
printf 'plain http through the parent\n' >"$SCEN/www/file"
drp_bg plain python3 -m http.server --bind 127.0.0.142 --directory "$SCEN/www" 80
drp_wait_started plain "$DRP_LAST_PID" 10 drp_port_open 127.0.0.142 80

# start_squid NAME PORT [auth]: squid on 127.0.0.1:PORT, names from the
# test hosts file; log $SCEN/squid-NAME/access.log.
start_squid()
{
	local d=$SCEN/squid-$1
	mkdir -p "$d"
	{
		cat "$WORK/hosts"
		echo "127.0.0.142 plain.test"
	} >"$d/hosts"
	cat >"$d/squid.conf" <<-SQUID
		http_port 127.0.0.1:$2
		pid_filename $d/squid.pid
		cache deny all
		cache_dir null /tmp
		access_log stdio:$d/access.log squid
		cache_log $d/cache.log
		cache_store_log none
		logfile_rotate 0
		hosts_file $d/hosts
		dns_nameservers 127.0.0.254
		coredump_dir $d
		shutdown_lifetime 1 seconds
	SQUID
	if [ "${3:-}" = auth ]; then
		htpasswd -bcm "$d/passwd" "$SQ_USER" "$SQ_PW" 2>/dev/null
		cat >>"$d/squid.conf" <<-SQUID
			auth_param basic program /usr/lib/squid/basic_ncsa_auth $d/passwd
			auth_param basic realm drp-test-parent
			acl authed proxy_auth REQUIRED
			http_access allow authed
		SQUID
	else
		echo "http_access allow localhost" >>"$d/squid.conf"
	fi
	echo "http_access deny all" >>"$d/squid.conf"
	chown -R proxy "$d"
	drp_bg "squid-$1" squid -N -f "$d/squid.conf"
	drp_wait_started "squid-$1" "$DRP_LAST_PID" 20 drp_port_open 127.0.0.1 "$2"
}

# The proxy's own name server never answers.
printf 'nameserver 127.0.0.253\noptions timeout:1 attempts:1\n' >"$SCEN/resolv.conf"
printf '#!/bin/bash\nmount --bind "%s" /etc/resolv.conf || exit 125\nexec "$@"\n' \
	"$SCEN/resolv.conf" >"$SCEN/ns.sh"
chmod +x "$SCEN/ns.sh"

# parent_proxy NAME PARENT-URL [PASSWORD]: a proxy of its own whose only
# way out is the parent (no [resolve] for the test names).
parent_proxy()
{
	local extra="upstream_proxy = $2"
	if [ -n "${3:-}" ]; then
		(umask 077 && printf '%s\n' "$3" >"$SCEN/$1.pw")
		extra="$extra
upstream_proxy_password_file = $SCEN/$1.pw"
	fi
	drp_proxy_conf "$1" "$(drp_free_port)" "$extra"
	sed -i '/^\[resolve\]$/,/^\[cache\]$/{/^[a-z0-9.-]* = /d}' "$WORK/$1/proxy.ini"
	DRP_PROXY_WRAPPER="unshare -m -- $SCEN/ns.sh ${DRP_PROXY_WRAPPER:-}" drp_start_proxy "$1"
}

# stop_proxy: SIGTERM (it drains, closing its tunnels through the
# parent), which must end it cleanly.
stop_proxy()
{
	drp_unwatch_proxies
	drp_stop "$PROXY_PID" 15 || drp_fail "proxy $PROXY_NAME did not stop"
	expect_eq "proxy $PROXY_NAME's exit status" 0 "$DRP_STOP_STATUS"
}

# mirror_pull REF DEST: skopeo with a path-prefixed mirror in
# registries.conf.
mirror_pull()
{
	printf '[[registry]]\nprefix = "registry.test"\nlocation = "registry.test"\n[[registry.mirror]]\nlocation = "127.0.0.1:%s/registry.test"\ninsecure = true\n' \
		"$PROXY_PORT" >"$SCEN/registries.conf"
	drp_ns "$WORK/hosts-proxied" SSL_CERT_FILE="$PROXY_CA" SSL_CERT_DIR="$WORK/empty-certs" -- \
		skopeo --registries-conf "$SCEN/registries.conf" copy --quiet --retry-times 0 "docker://$1" "dir:$2"
}

# squid_count LOG CONDITION: its lines (squid format: $4 result/status,
# $6 method, $7 URL, $8 user) for which the awk condition holds.
squid_count() { awk "$2" "$1" | wc -l; }
squid_summary() { awk '{print $4, $6, $7, $8}' "$1" | sort | uniq -c | tr -s ' ' | paste -sd';'; }

# ---- an open parent
sq=$(drp_free_port)
start_squid open "$sq"
parent_proxy par-open "http://127.0.0.1:$sq"
reg=$(reg_log open)
m=$(log_mark "$reg")
pskopeo copy --quiet --retry-times 0 docker://registry.test/test/small:v1 "dir:$SCEN/small"
check_dir_image "$SCEN/small" "$SMALL_DIGEST" $SMALL_BLOBS
mirror_pull registry.test/test/multi:v1 "$SCEN/multi"
expect_eq "mirror pull through the parent: manifest" "$MULTI_AMD64_DIGEST" \
	"sha256:$(sha256sum <"$SCEN/multi/manifest.json" | cut -c1-64)"
settle_upstream registry.test "$reg" # its log is complete up to here
expect_ge "upstream blob GETs (they came from squid)" 5 "$(mirror_count "$reg" "$m" GET /v2/test/)"
code=$(curl -sS -o "$SCEN/tfile" -w '%{http_code}' --proxy "$PROXY_URL" --cacert "$TEST_CA" https://tunnel.test/file)
expect_eq "a tunnel through the parent" 200 "$code"
expect_file_digest "the tunnelled file" "$SCEN/tfile" "$TUNNEL_FILE_DIGEST"
expect_eq "plain http through the parent" "plain http through the parent" \
	"$(curl -sS --proxy "$PROXY_URL" http://plain.test/file)"
stop_proxy
log=$SCEN/squid-open/access.log
drp_wait "squid's CONNECT line for the tunnel" 10 \
	bash -c "awk '\$6 == \"CONNECT\" && \$7 == \"tunnel.test:443\"' '$log' | grep -q ."
drp_log "open squid's log: $(squid_summary "$log")"
expect_ge "open squid: CONNECTs to registry.test" 1 \
	"$(squid_count "$log" '$6 == "CONNECT" && $7 == "registry.test:443" && $4 ~ /\/200$/')"
expect_eq "open squid: the tunnel" 1 "$(squid_count "$log" '$6 == "CONNECT" && $7 == "tunnel.test:443"')"
expect_eq "open squid: the plain GET" 1 "$(squid_count "$log" '$6 == "GET" && $7 == "http://plain.test/file"')"
# (The one line without a request is the start-up's port probe.)
expect_eq "open squid: anything else" 0 \
	"$(squid_count "$log" '$4 != "NONE_NONE/000" && $7 !~ /^(registry\.test:443|tunnel\.test:443|http:\/\/plain\.test\/file)$/')"

# ---- a parent with basic auth; a registry whose blobs redirect to a CDN
sqa=$(drp_free_port)
start_squid auth "$sqa" auth
parent_proxy par-auth "http://$SQ_USER@127.0.0.1:$sqa" "$SQ_PW"
pskopeo copy --quiet --retry-times 0 docker://redirect.test/test/small:v1 "dir:$SCEN/red"
check_dir_image "$SCEN/red" "$SMALL_DIGEST" $SMALL_BLOBS
mirror_pull registry.test/test/small:v1 "$SCEN/small2"
check_dir_image "$SCEN/small2" "$SMALL_DIGEST" $SMALL_BLOBS
stop_proxy
log=$SCEN/squid-auth/access.log
drp_wait "squid's CONNECT line for the CDN" 10 bash -c "awk '\$7 == \"cdn.test:443\"' '$log' | grep -q ."
drp_log "auth squid's log: $(squid_summary "$log")"
for h in redirect.test cdn.test registry.test; do
	expect_ge "auth squid: CONNECT $h:443 as $SQ_USER" 1 \
		"$(squid_count "$log" "\$6 == \"CONNECT\" && \$7 == \"$h:443\" && \$8 == \"$SQ_USER\" && \$4 ~ /\\/200\$/")"
done
expect_eq "auth squid: refused requests" 0 "$(squid_count "$log" '$4 ~ /\/407$/')"

# ---- the wrong password
parent_proxy par-bad "http://$SQ_USER@127.0.0.1:$sqa" wrong-password
code=$(pcurl -o /dev/null -w '%{http_code}' https://registry.test/v2/test/multi/manifests/v1 || true)
expect_eq "intercepted, wrong parent password" 502 "$code"
expect_match "its log line" \
	"the upstream proxy 127.0.0.1:$sqa refused CONNECT registry.test:443: 407 .*upstream_proxy_password_file" \
	"$(cat "$PROXY_DIR/proxy.log")"
expect_eq "mirror, wrong parent password" 502 \
	"$(curl -sS -o /dev/null -w '%{http_code}' "$PROXY_URL/v2/test/multi/manifests/v1?ns=registry.test")"
code=$(curl -sS -o /dev/null -w '%{http_connect}' --proxy "$PROXY_URL" --cacert "$TEST_CA" https://tunnel.test/file 2>/dev/null || true)
expect_eq "a tunnel, wrong parent password (the CONNECT's answer)" 502 "$code"
expect_match "the tunnel's log line" "CONNECT tunnel.test:443: the upstream proxy 127.0.0.1:$sqa refused: 407" \
	"$(cat "$PROXY_DIR/proxy.log")"
expect_eq "plain http, wrong parent password" 502 \
	"$(curl -sS -o /dev/null -w '%{http_code}' --proxy "$PROXY_URL" http://plain.test/file)"
expect_match "its log line" \
	"GET plain.test/file: 502: the upstream proxy 127.0.0.1:$sqa refused the request for plain.test: 407" \
	"$(cat "$PROXY_DIR/proxy.log")"
for f in "$WORK"/par-*/access.log "$WORK"/par-*/proxy.log "$WORK"/logs/proxy-par-*.err; do
	if grep -qF -e "$SQ_PW" -e wrong-password -e "$(printf '%s:%s' "$SQ_USER" "$SQ_PW" | base64 -w0)" \
		-e "$(printf '%s:wrong-password' "$SQ_USER" | base64 -w0)" "$f"; then
		drp_fail "a parent password in $f"
	fi
done
drp_log "ok: no parent password in the proxies' logs"
