#!/bin/bash
# SPDX-License-Identifier: MIT
# /metrics after a cold and a warm pull (issue 13). Every counter moves as
# the pulls imply: the cold pull's misses are the upstream's GETs, the warm
# pull moves no blob or manifest miss counter while its /v2/ probe still
# passes; each drp_requests_total series of the registry moves by what the
# JSON access log says, and drp_sent_bytes_total by its bytes; the
# histograms stay consistent. Token fetches by plugin match the token
# service's log; Docker Hub's rate limit is taken only from responses made
# with the section's own credentials; reloads are counted; /metrics and
# /readyz are on the admin listener (admin_allow applies), not on the
# client port; --cache-stats reads the new names. (Own proxy, empty cache.)
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
drp_scenario_init
drp_require_tools skopeo
promq() { python3 "$DRP_IT_DIR/promq.py" "$@"; }
code_of() { curl -s --max-time 10 -o /dev/null -w '%{http_code}' "$@"; }

drp_start_fakeupstream 10000000
aport=$(drp_free_port)
drp_own_proxy "admin_listen = 127.0.0.1:$aport
access_log_format = json
log_level = info" "[registry \"token.test\"]
plugin = basic
username = ${PROXYUSER%%:*}
password_file = $(drp_secret token.pw "${PROXYUSER#*:}")
[registry \"bad.test\"]
plugin = basic
username = limited
password_file = $(drp_secret limited.pw limited-pw)"
admin=http://127.0.0.1:$aport
alog=$PROXY_DIR/access.log
reg=$(reg_log open)
tlog=$WORK/logs/token.out

# The admin listener holds /metrics and /readyz; /healthz is on both.
expect_eq "admin /metrics" 200 "$(code_of "$admin/metrics")"
expect_eq "admin /readyz" ok "$(curl -sf --max-time 10 "$admin/readyz")"
expect_eq "admin /healthz" 200 "$(code_of "$admin/healthz")"
expect_eq "admin POST /metrics" 405 "$(code_of -X POST "$admin/metrics")"
expect_eq "admin /ca.crt (client port only)" 404 "$(code_of "$admin/ca.crt")"
expect_eq "client-port /metrics" 404 "$(code_of "$PROXY_URL/metrics")"
expect_eq "client-port /readyz" 404 "$(code_of "$PROXY_URL/readyz")"
expect_eq "client-port /healthz" 200 "$(code_of "$PROXY_URL/healthz")"

# scrape NAME: /metrics into $SCEN/NAME once every client connection has
# ended (its requests are counted when they end), checked for form.
scrape()
{
	local i=0
	while :; do
		curl -sf --max-time 10 "$admin/metrics" >"$SCEN/$1"
		[ "$(promq sum "$SCEN/$1" drp_connections_open)" = 0 ] && break
		[ $i -lt 50 ] || drp_fail "connections still open after 10 s"
		sleep 0.2
		i=$((i + 1))
	done
	promq check "$SCEN/$1" || drp_fail "malformed exposition in $1"
}
d() { promq delta "$SCEN/$1" "$SCEN/$2" "$3"; }
R='registry="registry.test"'

# Every family is named by a scrape even before it has a sample.
scrape s0
promq families "$SCEN/s0" >"$SCEN/families"
for fam in drp_requests_total drp_sent_bytes_total drp_upstream_received_bytes_total \
	drp_request_duration_seconds drp_first_byte_seconds drp_upstream_responses_total \
	drp_token_fetches_total drp_ratelimit_remaining drp_ratelimit_limit \
	drp_tls_handshake_failures_total drp_forged_certificates_total drp_fills_in_flight \
	drp_fill_waiters drp_reloads_total drp_build_info process_cpu_seconds_total \
	process_resident_memory_bytes process_open_fds process_start_time_seconds \
	drp_cache_objects drp_cache_size_bytes; do
	grep -qx "$fam" "$SCEN/families" || drp_fail "no family $fam in /metrics"
done
expect_eq "build_info" 1 "$(promq sum "$SCEN/s0" drp_build_info)"
expect_eq "build_info's version is -V's" "$("$DRP_PROXY" -V | awk '{ print $NF }')" \
	"$(promq label-values "$SCEN/s0" version)"
expect_ge "process_start_time_seconds" 1700000000 "$(promq sum "$SCEN/s0" process_start_time_seconds)"
expect_ge "process_resident_memory_bytes" 1000000 "$(promq sum "$SCEN/s0" process_resident_memory_bytes)"
expect_ge "process_open_fds" 5 "$(promq sum "$SCEN/s0" process_open_fds)"

# Cold pull.
# The registry's log after MARK, without the test's own settle_upstream
# requests (straight to the registry, never seen by the proxy).
reg_since() { log_since "$reg" "$1" | grep -vF drp-settle- || true; }
reg_count() { reg_since "$1" | grep -cF -- "$2" || true; }
rmark=$(log_mark "$reg")
amk=$(amark)
pskopeo copy --quiet --retry-times 0 docker://registry.test/test/small:v1 "dir:$SCEN/cold"
check_dir_image "$SCEN/cold" "$SMALL_DIGEST" $SMALL_BLOBS
nblobs=$(echo $SMALL_BLOBS | wc -w)
wait_log "$reg" "$rmark" '"GET /v2/test/small/blobs/' "$nblobs" 5
# Every request the registry answered for the pull is in its log (the
# probe and the manifest too, not only the blobs waited for above).
settle_upstream registry.test "$reg"
scrape s1
n=$(promq requests-vs-log "$SCEN/s0" "$SCEN/s1" "$alog" "$amk" registry.test registry.test:443) ||
	drp_fail "cold pull: the metrics and the access log disagree"
expect_ge "cold pull: requests logged" $((nblobs + 2)) "$n"
up_blobs=$(reg_count "$rmark" '"GET /v2/test/small/blobs/')
up_manifests=$(reg_count "$rmark" '"GET /v2/test/small/manifests/')
expect_eq "cold upstream blob GETs" "$nblobs" "$up_blobs"
expect_eq "cold: blob and manifest misses = the upstream's GETs" $((up_blobs + up_manifests)) \
	"$(d s0 s1 "drp_requests_total{$R,method=\"get\",result=\"miss\"}")"
expect_eq "cold: hits" 0 "$(d s0 s1 "drp_requests_total{$R,result=\"hit\"}")"
expect_ge "cold: the /v2/ probe passed through" 1 "$(d s0 s1 "drp_requests_total{$R,result=\"pass\"}")"
expect_eq "cold: upstream responses = the upstream's requests" \
	$(($(reg_count "$rmark" '"GET /v2/') + $(reg_count "$rmark" '"HEAD /v2/'))) \
	"$(d s0 s1 "drp_upstream_responses_total{$R}")"
expect_eq "cold: bytes received = bytes sent from upstream" \
	"$(d s0 s1 "drp_sent_bytes_total{$R,source=\"upstream\"}")" \
	"$(d s0 s1 "drp_upstream_received_bytes_total{$R}")"
blob_bytes=0
for b in $SMALL_BLOBS; do
	blob_bytes=$((blob_bytes + $(stat -c %s "$WORK/images/small/blobs/sha256/${b#sha256:}")))
done
expect_ge "cold: upstream bytes cover the blobs" "$blob_bytes" "$(d s0 s1 "drp_upstream_received_bytes_total{$R}")"
# The registry's log has the body bytes of each GET (its HEAD lines name
# bytes that were never sent): exactly what the proxy received.
get_bytes() { reg_since "$1" | awk '$6 == "\"GET" { s += $10 } END { print s + 0 }'; }
expect_eq "cold: bytes received = the bodies of the registry's GETs" "$(get_bytes "$rmark")" \
	"$(d s0 s1 "drp_upstream_received_bytes_total{$R}")"
expect_eq "cold: miss durations counted" "$(d s0 s1 'drp_requests_total{result="miss"}')" \
	"$(d s0 s1 'drp_request_duration_seconds_count{result="miss"}')"
expect_eq "cold: miss first bytes counted" "$(d s0 s1 'drp_requests_total{result="miss"}')" \
	"$(d s0 s1 'drp_first_byte_seconds_count{result="miss"}')"
expect_eq "cold: one certificate forged (registry.test)" 1 "$(d s0 s1 drp_forged_certificates_total)"
expect_eq "cold: fills in flight after the pull" 0 "$(promq sum "$SCEN/s1" drp_fills_in_flight)"
expect_eq "cold: fill waiters after the pull" 0 "$(promq sum "$SCEN/s1" drp_fill_waiters)"
expect_ge "cold: objects cached" "$nblobs" "$(promq sum "$SCEN/s1" drp_cache_objects)"

# Warm pull by a fresh client: no blob or manifest miss, no upstream blob.
rmark=$(log_mark "$reg")
amk=$(amark)
pskopeo copy --quiet --retry-times 0 docker://registry.test/test/small:v1 "dir:$SCEN/warm"
check_dir_image "$SCEN/warm" "$SMALL_DIGEST" $SMALL_BLOBS
scrape s2
promq requests-vs-log "$SCEN/s1" "$SCEN/s2" "$alog" "$amk" registry.test registry.test:443 >/dev/null ||
	drp_fail "warm pull: the metrics and the access log disagree"
expect_eq "warm: misses" 0 "$(d s1 s2 "drp_requests_total{$R,result=\"miss\"}")"
expect_eq "warm: coalesced" 0 "$(d s1 s2 "drp_requests_total{$R,result=\"coalesced\"}")"
expect_ge "warm: blob and manifest hits" $((nblobs + 1)) "$(d s1 s2 "drp_requests_total{$R,result=\"hit\"}")"
expect_ge "warm: the /v2/ probe still passed through" 1 "$(d s1 s2 "drp_requests_total{$R,result=\"pass\"}")"
expect_ge "warm: bytes sent from the cache" "$blob_bytes" "$(d s1 s2 "drp_sent_bytes_total{$R,source=\"cache\"}")"
expect_eq "warm: bytes received = bytes sent from upstream (the probe)" \
	"$(d s1 s2 "drp_sent_bytes_total{$R,source=\"upstream\"}")" \
	"$(d s1 s2 "drp_upstream_received_bytes_total{$R}")"
expect_eq "warm: hit durations counted" "$(d s1 s2 'drp_requests_total{result="hit"}')" \
	"$(d s1 s2 'drp_request_duration_seconds_count{result="hit"}')"
awk -v s="$(promq sum "$SCEN/s2" 'drp_request_duration_seconds_sum{result="hit"}')" 'BEGIN { exit !(s > 0) }' ||
	drp_fail "warm: the hits took no time at all (the loop's clock, not the real one?)"
expect_eq "warm: no certificate forged (cached)" 0 "$(d s1 s2 drp_forged_certificates_total)"
# The registry logs a request after answering it: once the test's own
# request is logged, every request it answered before is there too.
settle_upstream registry.test "$reg"
expect_eq "warm: upstream blob GETs" 0 "$(reg_count "$rmark" '"GET /v2/test/small/blobs/')"
expect_eq "warm: upstream manifest GETs" 0 "$(reg_count "$rmark" '"GET /v2/test/small/manifests/')"
expect_eq "warm: upstream responses = the registry's requests (the probes)" \
	$(($(reg_count "$rmark" '"GET /v2/') + $(reg_count "$rmark" '"HEAD /v2/'))) \
	"$(d s1 s2 "drp_upstream_responses_total{$R}")"
expect_eq "warm: bytes received = the bodies of the registry's GETs" "$(get_bytes "$rmark")" \
	"$(d s1 s2 "drp_upstream_received_bytes_total{$R}")"

# Every access-log line is one JSON object with the 14 fields.
python3 - "$alog" <<-'EOF' || drp_fail "access log lines are not the JSON objects expected"
	import json, sys
	keys = {"time", "conn", "client", "user", "host", "method", "path", "status",
	        "bytes_in", "bytes_out", "ms", "upstream_status", "result", "ua"}
	n = 0
	for raw in open(sys.argv[1], "rb"):
	    o = json.loads(raw)
	    assert set(o) == keys, sorted(o)
	    assert o["conn"].startswith("c") and o["time"].endswith("Z"), o
	    n += 1
	assert n > 10, n
	EOF
expect_match "skopeo's User-Agent logged" '"ua":"skopeo/' "$(tail -n 1 "$alog")"

# A tunnel, and hosts no configuration names (CONNECTs and a plain GET to
# names a client made up): all under registry="other", which is the only
# value of the label besides the configured registries'.
amk=$(amark)
tmark=$(log_mark "$WORK/logs/tunnel-access.log")
expect_eq "tunnel" 200 "$(curl -sS --max-time 30 --proxy "$PROXY_URL" --noproxy '' --cacert "$TEST_CA" \
	--capath "$WORK/empty-certs" -o "$SCEN/tfile" -w '%{http_code}' https://tunnel.test/file)"
expect_file_digest "tunnelled file" "$SCEN/tfile" "$TUNNEL_FILE_DIGEST"
wait_log "$WORK/logs/tunnel-access.log" "$tmark" "$(req_pat GET /file)" 1 5
scrape s2t
promq requests-vs-log "$SCEN/s2" "$SCEN/s2t" "$alog" "$amk" other tunnel.test:443 >/dev/null ||
	drp_fail "tunnel: the metrics and the access log disagree"
expect_eq "tunnel counted" 1 "$(d s2 s2t 'drp_requests_total{registry="other",method="connect",result="tunnel",code="2xx"}')"
expect_ge "tunnel: bytes sent from upstream" "$(stat -c %s "$WORK/tunnel-root/file")" \
	"$(d s2 s2t 'drp_sent_bytes_total{registry="other",source="upstream"}')"
for i in 1 2 3; do
	curl -s --max-time 10 --proxy "$PROXY_URL" --noproxy '' -o /dev/null "https://made-up-$i-$RANDOM.example/" || true
	curl -s --max-time 10 --proxy "$PROXY_URL" --noproxy '' -o /dev/null "http://Made-Up-$i.example/x" || true
done
scrape s2u
expect_eq "made-up hosts counted as other" 6 "$(d s2t s2u 'drp_requests_total{registry="other"}')"
# Registry-mirror requests on the client port count for the registry they
# name (ns=); one the proxy does not serve is refused, under "other".
expect_eq "mirror GET of a cached blob" 200 "$(curl -s --max-time 10 -o /dev/null -w '%{http_code}' \
	"$PROXY_URL/v2/test/small/blobs/$(echo $SMALL_BLOBS | awk '{ print $1 }')?ns=registry.test")"
expect_eq "mirror GET for a registry not served" 403 "$(curl -s --max-time 10 -o /dev/null -w '%{http_code}' \
	"$PROXY_URL/v2/x/y/manifests/v1?ns=not-served.example")"
scrape s2m
expect_eq "mirror hit counted for registry.test" 1 \
	"$(d s2u s2m 'drp_requests_total{registry="registry.test",method="get",result="hit",code="2xx"}')"
expect_eq "mirror refusal counted as other" 1 \
	"$(d s2u s2m 'drp_requests_total{registry="other",method="get",code="4xx"}')"
configured=" registry.test basic.test redirect.test token.test auth.test bad.test docker.io other "
for v in $(promq label-values "$SCEN/s2m" registry); do
	case $configured in
	*" $v "*) ;;
	*) drp_fail "registry=\"$v\" is no configured registry" ;;
	esac
done

# Token fetches: with the proxy's account (plugin basic) and with a
# client's own credentials (the proxy's token flow, "client"), each as
# many as the token service answered for that account.
tmark=$(log_mark "$tlog")
pskopeo copy --quiet --retry-times 0 docker://token.test/private/small:v1 "dir:$SCEN/tok"
check_dir_image "$SCEN/tok" "$SMALL_DIGEST" $SMALL_BLOBS
pskopeo copy --quiet --retry-times 0 --src-creds "$ALICE" docker://token.test/private/secret:v1 "dir:$SCEN/sec"
check_dir_image "$SCEN/sec" "$PUSH_DIGEST" $PUSH_BLOBS
scrape s3
expect_ge "token fetches of plugin basic" 1 \
	"$(d s2 s3 'drp_token_fetches_total{plugin="basic",outcome="ok"}')"
tokens_of() { log_since "$tlog" "$tmark" | grep -cE "^[A-Z]+ user=$1 scope=[^ ]+ status=200 " || true; }
expect_eq "token fetches of plugin basic = the service's answers to proxyuser" \
	"$(tokens_of proxyuser)" "$(d s2 s3 'drp_token_fetches_total{plugin="basic",outcome="ok"}')"
# (The client's: its credentials checked at /v2/, then its scope.)
expect_eq "token fetches for the client = the service's answers to alice" \
	"$(tokens_of alice)" "$(d s2 s3 'drp_token_fetches_total{plugin="client",outcome="ok"}')"
expect_ge "client token fetches" 1 "$(d s2 s3 'drp_token_fetches_total{plugin="client",outcome="ok"}')"
# A client's wrong password: the token service refuses, the fetch failed.
tmark=$(log_mark "$tlog")
if pskopeo copy --quiet --retry-times 0 --src-creds "${ALICE%%:*}:wrong-pw-4711" \
	docker://token.test/private/secret:v1 "dir:$SCEN/wrong" 2>"$SCEN/wrong.err"; then
	drp_fail "a pull with a wrong password passed"
fi
scrape s3f
refused_of() { log_since "$tlog" "$tmark" | grep -cE "^[A-Z]+ user=$1 scope=[^ ]* status=401 " || true; }
expect_ge "the token service refused alice" 1 "$(refused_of "${ALICE%%:*}")"
expect_eq "failed token fetches for the client = the service's refusals" \
	"$(refused_of "${ALICE%%:*}")" "$(d s3 s3f 'drp_token_fetches_total{plugin="client",outcome="failed"}')"
# The plugin's own log line names the connection it ran for, as the
# access log does.
tl=$(grep -F "token for scope 'repository:private/small:pull'" "$PROXY_DIR/proxy.log" | head -n 1)
expect_match "plugin log line with its connection" 'info plugin: \[c[0-9]{6}\] basic/token\.test: token for scope' "$tl"
conn=$(printf '%s' "$tl" | sed -n 's/.*\[\(c[0-9]\{6\}\)\].*/\1/p')
expect_match "that connection in the access log" "\"conn\":\"$conn\".*\"host\":\"token\.test:443\"" "$(cat "$alog")"

# Docker Hub's pull limit (bad.test answers like it): recorded from the
# responses to the section's credentials only, not from a client's own.
RL='{section="bad.test"}'
limited=https://bad.test/v2/test/limited/tags/list
expect_eq "limited, proxy's credentials" 200 "$(pcurl -o /dev/null -w '%{http_code}' "$limited")"
scrape s4
expect_eq "ratelimit_limit" 100 "$(promq sum "$SCEN/s4" "drp_ratelimit_limit$RL")"
expect_eq "ratelimit_remaining" 99 "$(promq sum "$SCEN/s4" "drp_ratelimit_remaining$RL")"
expect_eq "limited, client's credentials" 200 "$(pcurl -o /dev/null -w '%{http_code}' -u other:pw "$limited")"
scrape s5
expect_eq "ratelimit_remaining after the client's own request" 99 \
	"$(promq sum "$SCEN/s5" "drp_ratelimit_remaining$RL")"
expect_eq "limited, proxy's credentials again" 200 "$(pcurl -o /dev/null -w '%{http_code}' "$limited")"
scrape s6
expect_eq "ratelimit_remaining" 97 "$(promq sum "$SCEN/s6" "drp_ratelimit_remaining$RL")"
# An upstream 5xx: counted by code, passed on (not the proxy's error),
# logged at notice.
emark=$(log_mark "$PROXY_DIR/proxy.log")
expect_eq "upstream 503" 503 "$(pcurl -o /dev/null -w '%{http_code}' https://bad.test/v2/test/down/x)"
scrape s7
expect_eq "upstream 503 counted" 1 \
	"$(d s6 s7 'drp_upstream_responses_total{registry="bad.test",code="503"}')"
expect_eq "a passed-on 503" 1 \
	"$(d s6 s7 'drp_requests_total{registry="bad.test",result="pass",code="5xx"}')"
wait_log "$PROXY_DIR/proxy.log" "$emark" "notice proxy: [c" 1 5
expect_eq "503 logged at notice" 1 \
	"$(count_since "$PROXY_DIR/proxy.log" "$emark" 'answered 503 to GET /v2/test/down/x')"

# Reloads: counted by outcome; admin_allow of the new generation applies.
conf=$PROXY_DIR/proxy.ini
cp "$conf" "$SCEN/proxy.ini.orig"
sed -i 's|^\[proxy\]$|[proxy]\nadmin_allow = 10.0.0.0/8|' "$conf"
emark=$(log_mark "$PROXY_DIR/proxy.log")
kill -HUP "$PROXY_PID"
wait_log "$PROXY_DIR/proxy.log" "$emark" "configuration reloaded" 1 10
expect_eq "admin outside admin_allow" 403 "$(code_of "$admin/metrics")"
cp "$SCEN/proxy.ini.orig" "$conf"
echo "bogus_key = 1" >>"$conf"
emark=$(log_mark "$PROXY_DIR/proxy.log")
kill -HUP "$PROXY_PID"
wait_log "$PROXY_DIR/proxy.log" "$emark" "reload failed" 1 10
expect_eq "still refused (the failed reload kept the generation)" 403 "$(code_of "$admin/metrics")"
cp "$SCEN/proxy.ini.orig" "$conf"
emark=$(log_mark "$PROXY_DIR/proxy.log")
kill -HUP "$PROXY_PID"
wait_log "$PROXY_DIR/proxy.log" "$emark" "configuration reloaded" 1 10
scrape s8
expect_eq "reloads ok" 2 "$(promq sum "$SCEN/s8" 'drp_reloads_total{outcome="ok"}')"
expect_eq "reloads failed" 1 "$(promq sum "$SCEN/s8" 'drp_reloads_total{outcome="failed"}')"

# --cache-stats asks the admin listener and reads the new names.
"$DRP_PROXY" -c "$conf" --cache-stats >"$SCEN/stats" 2>&1 || drp_fail "--cache-stats failed"
expect_match "--cache-stats source" "running proxy \(127.0.0.1:$aport\)" "$(cat "$SCEN/stats")"
expect_match "--cache-stats objects" "objects +$(promq sum "$SCEN/s8" drp_cache_objects)\$" "$(cat "$SCEN/stats")"
expect_match "--cache-stats hits" "hit $(promq sum "$SCEN/s8" 'drp_requests_total{result="hit"}'), miss " "$(cat "$SCEN/stats")"
expect_match "--cache-stats hit ratio" "hit ratio +[0-9]+%" "$(cat "$SCEN/stats")"

# Nothing secret reached either log at info: no password the proxy or a
# client used, no Basic credentials, no token (the service's are JWTs).
for secret in "${PROXYUSER#*:}" "${ALICE#*:}" limited-pw wrong-pw-4711 \
	"$(printf '%s' "$PROXYUSER" | base64)" "$(printf '%s' "$ALICE" | base64)" \
	"$(printf 'limited:limited-pw' | base64)" eyJ; do
	expect_eq "'$secret' in the logs" 0 "$(cat "$alog" "$PROXY_DIR/proxy.log" | grep -cF -- "$secret" || true)"
done
