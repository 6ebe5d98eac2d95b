#!/bin/bash
# Warming (issue 13): `warm REF` through the running daemon fetches every
# platform of an index, and a pull afterwards costs 0 upstream blob GETs;
# a second warm costs only the tag's revalidation (one HEAD); --platform
# restricts an index to the platforms given, with the proxy's own
# credentials for a registry that needs them; a host the proxy does not
# intercept is refused; with the daemon stopped, warm runs on its own and
# the daemon started afterwards serves the image from the cache.
# Upstream requests are counted in the registries' own logs. (Own proxy,
# empty cache.)
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
drp_scenario_init
drp_require_tools skopeo
drp_own_proxy "" "[registry \"basic.test\"]
plugin = basic
username = $BASIC_USER
password_file = $(drp_secret warm-basic.pw "$BASIC_PASS")"
reg=$(reg_log open)
breg=$(reg_log basic)
ini=$PROXY_DIR/proxy.ini
ctl() { "$DRP_PROXY" -c "$ini" "$@"; }
# count_pat LOG MARK METHOD PATH
cnt() { count_since "$1" "$2" "$(req_pat "$3" "$4")"; }

# ---- every platform of an index, through the daemon
mark=$(log_mark "$reg")
misses() {
	curl -sf --max-time 10 "$PROXY_URL/metrics" >"$SCEN/metrics"
	python3 "$DRP_IT_DIR/promq.py" sum "$SCEN/metrics" 'drp_requests_total{registry="registry.test",result="miss"}'
}
misses0=$(misses)
amk=$(amark)
ctl warm registry.test/test/multi:v1 >"$SCEN/warm1" 2>&1 || drp_fail "warm failed: $(cat "$SCEN/warm1")"
sed 's/^/    /' "$SCEN/warm1" >&2
expect_match "warm: the index and both platforms" "index ${MULTI_DIGEST:0:19}: 2 of 2 manifest\(s\) \(linux/amd64, linux/arm64\)" \
	"$(cat "$SCEN/warm1")"
nblobs=$(wc -w <<<"$MULTI_AMD64_BLOBS $MULTI_ARM64_BLOBS")
expect_match "warm: the summary" "^warmed registry\.test/test/multi:v1: $((nblobs + 3)) object\(s\), $((nblobs + 3)) fetched" \
	"$(cat "$SCEN/warm1")"
for bl in $MULTI_AMD64_BLOBS $MULTI_ARM64_BLOBS; do
	expect_eq "warm: upstream GETs of ${bl:7:12}" 1 "$(cnt "$reg" "$mark" GET "/v2/test/multi/blobs/$bl")"
done
for m in "$MULTI_AMD64_DIGEST" "$MULTI_ARM64_DIGEST"; do
	expect_eq "warm: upstream GETs of manifest ${m:7:12}" 1 "$(cnt "$reg" "$mark" GET "/v2/test/multi/manifests/$m")"
done
grep -q "admin socket: warm registry.test/test/multi:v1" "$PROXY_DIR/proxy.log" ||
	drp_fail "the daemon did not run the warm"
expect_match "warm requests in the access log" " warm registry\.test:443 GET /v2/test/multi/blobs/sha256:[0-9a-f]{64} 200 .* MISS " \
	"$(cat "$PROXY_DIR/access.log")"
# The metrics count a warm's requests as the access log shows them.
expect_eq "warm: misses in the metrics = the warm's MISS lines" \
	"$(log_since "$PROXY_DIR/access.log" "$amk" | awk '$2 == "warm" && $3 == "registry.test:443" && $11 == "MISS"' | wc -l)" \
	$(($(misses) - misses0))

# ---- a pull of every platform afterwards: no blob from upstream
mark=$(log_mark "$reg")
pskopeo copy --all --quiet --retry-times 0 docker://registry.test/test/multi:v1 "dir:$SCEN/pull"
# shellcheck disable=SC2086
check_dir_image "$SCEN/pull" "$MULTI_DIGEST" $MULTI_AMD64_BLOBS $MULTI_ARM64_BLOBS
settle_upstream registry.test "$reg" # an upstream GET would be in its log now
expect_eq "pull after warm: upstream blob GETs" 0 \
	"$(count_since "$reg" "$mark" '"GET /v2/test/multi/blobs/')"
expect_eq "pull after warm: upstream GETs of manifests by digest" 0 \
	"$(count_since "$reg" "$mark" '"GET /v2/test/multi/manifests/sha256:')"

# ---- a second warm: the tag's revalidation only
mark=$(log_mark "$reg")
ctl warm registry.test/test/multi:v1 >"$SCEN/warm2" 2>&1 || drp_fail "second warm failed: $(cat "$SCEN/warm2")"
wait_log "$reg" "$mark" "$(req_pat HEAD /v2/test/multi/manifests/v1)" 1 5
settle_upstream registry.test "$reg"
expect_eq "second warm: HEAD of the tag" 1 "$(cnt "$reg" "$mark" HEAD /v2/test/multi/manifests/v1)"
expect_eq "second warm: every upstream request" 1 "$(count_since "$reg" "$mark" ' /v2/test/multi/')"
expect_match "second warm: nothing fetched" "^warmed registry\.test/test/multi:v1: $((nblobs + 3)) object\(s\), 0 fetched \(0 B\), $((nblobs + 3)) already cached" \
	"$(cat "$SCEN/warm2")"
expect_match "second warm: the tag revalidated" "tag v1: ${MULTI_DIGEST:0:19} \(REVALIDATED\)" "$(cat "$SCEN/warm2")"

# ---- --platform, and the proxy's credentials. The blobs are the same
# on every test registry: the cache starts without them.
ctl cache purge registry.test/test/multi:v1 >"$SCEN/purge"
expect_match "the index purged with what it leads to" "^purged [0-9]+ tag record\(s\), $((nblobs + 3)) object\(s\)" \
	"$(cat "$SCEN/purge")"
mark=$(log_mark "$breg")
ctl warm --platform linux/arm64 basic.test/test/multi:v1 >"$SCEN/warm3" 2>&1 ||
	drp_fail "warm of one platform failed: $(cat "$SCEN/warm3")"
sed 's/^/    /' "$SCEN/warm3" >&2
expect_match "--platform: one of two" "index ${MULTI_DIGEST:0:19}: 1 of 2 manifest\(s\) \(linux/arm64\)" "$(cat "$SCEN/warm3")"
for bl in $MULTI_ARM64_BLOBS; do
	expect_eq "--platform: upstream GETs of arm64 ${bl:7:12}" 1 "$(cnt "$breg" "$mark" GET "/v2/test/multi/blobs/$bl")"
done
for bl in $MULTI_AMD64_BLOBS; do
	expect_eq "--platform: upstream GETs of amd64 ${bl:7:12}" 0 "$(cnt "$breg" "$mark" GET "/v2/test/multi/blobs/$bl")"
done
expect_eq "--platform: the amd64 manifest" 0 "$(cnt "$breg" "$mark" GET "/v2/test/multi/manifests/$MULTI_AMD64_DIGEST")"

# ---- only intercepted registries
rc=0
ctl warm elsewhere.test/x/y:1 >"$SCEN/warm4" 2>&1 || rc=$?
expect_eq "a host the proxy does not intercept: exit status" 1 "$rc"
expect_match "... and why" "elsewhere\.test is not a registry this proxy intercepts" "$(cat "$SCEN/warm4")"
rc=0
ctl warm 'registry.test/Test:v1' >"$SCEN/warm5" 2>&1 || rc=$?
expect_eq "a malformed reference: exit status" 2 "$rc"

# ---- the daemon stopped: warm on its own, then the daemon serves it
drp_unwatch_proxies
drp_stop "$PROXY_PID" 15 || drp_fail "the proxy did not stop"
mark=$(log_mark "$reg")
ctl warm registry.test/test/small:v1 >"$SCEN/warm6" 2>&1 || drp_fail "standalone warm failed: $(cat "$SCEN/warm6")"
sed 's/^/    /' "$SCEN/warm6" >&2
nsmall=$(wc -w <<<"$SMALL_BLOBS")
expect_match "standalone warm" "^warmed registry\.test/test/small:v1: $((nsmall + 1)) object\(s\), $((nsmall + 1)) fetched" \
	"$(cat "$SCEN/warm6")"
for bl in $SMALL_BLOBS; do
	expect_eq "standalone warm: upstream GETs of ${bl:7:12}" 1 "$(cnt "$reg" "$mark" GET "/v2/test/small/blobs/$bl")"
done
drp_start_proxy "own-$SCEN_NAME"
mark=$(log_mark "$reg")
pskopeo copy --quiet --retry-times 0 docker://registry.test/test/small:v1 "dir:$SCEN/small"
check_dir_image "$SCEN/small" "$SMALL_DIGEST" $SMALL_BLOBS
settle_upstream registry.test "$reg"
expect_eq "pull after a standalone warm: upstream blob GETs" 0 \
	"$(count_since "$reg" "$mark" '"GET /v2/test/small/blobs/')"
