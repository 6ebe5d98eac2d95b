#!/bin/bash
# SPDX-License-Identifier: MIT
# One upstream fetch per blob for a fleet: proxies on one S3 bucket (Ceph
# RGW) with the Redis lease ([fleet] redis). Upstream requests are
# counted in the registry's own log (the Debian registry's, or
# fakeupstream.py's), the store's in radosgw's:
#  1. the issue's size: two proxies, 16 clients each (8 curl, 8 skopeo),
#     one cold image with a 100 MB layer, from the real registry: exactly
#     1 upstream GET per blob for the fleet, every client's digests right,
#     one lease taken per blob, each confirmed with Redis just before
#     its upload completed; then a third, fresh proxy pulls the same
#     image: 0 upstream blob GETs, each blob read once from the bucket,
#     and the manifest by digest from the bucket too (0 upstream GETs);
#     a damaged manifest in the bucket is detected, not served;
#  2. kill -9 of the lease holder mid-fill (a slow registry): the other
#     proxy takes over once the lease expires (Redis's TTL), its client
#     gets the right bytes, and nothing partial is visible in the bucket;
#  3. Redis stopped: each proxy fetches on its own (logged), and serves.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
. "$DRP_IT_DIR/ceph_lib.sh"
drp_scenario_init
drp_require_tools curl skopeo sha256sum

ceph_start
redis_start
B=drp-fleet
s3_mkbucket $B
s3_mkbucket drp-fleet-big
reg=$(reg_log open)
rgw=$(rgw_log)
drp_start_fakeupstream $((16 * 1024 * 1024))
fake=$WORK/logs/fake.out

# proxy NAME [BUCKET [TTL]]: a proxy of the fleet (fleet-NAME: the work
# dir is shared with other scenarios), empty local tier, lease of TTL
# (3 s: short, for step 2's takeover).
proxy()
{
	DRP_IT_REGISTRIES="bad.test registry.test" drp_proxy_conf "fleet-$1" "$(drp_free_port)" "log_level = info" \
		"$(printf 'backend = s3\ns3_endpoint = %s\ns3_bucket = %s\ns3_access_key = %s\ns3_secret_key_file = %s\n[fleet]\nredis = %s:%s\nlease_ttl = %s\nwait = 60s\n' \
			"$S3_HTTP" "${2:-$B}" "$S3_ACCESS_KEY" "$CEPH_DIR/drp.secret" "$REDIS_IP" "$REDIS_PORT" "${3:-3s}")"
	drp_start_proxy "fleet-$1"
}
# why_gets DIGEST DIR...: the proxies' log lines about DIGEST, printed
# when an upstream count is off (the lease's and the fills' decisions).
why_gets()
{
	local d=$1
	shift
	grep -H -- "$d" "${@/%//proxy.log}" | tail -n 40 >&2 || true
}
key() { echo "blobs/sha256/${1#sha256:}"; }
s3head() { s3curl -o /dev/null -w '%{http_code}' -I "$S3_HTTP/$B/$(key "$1")"; }
gets() { count_since "$fake" "$1" "$(req_pat GET "/v2/test/slow/blobs/$2")"; }

# ---- 1. The issue's size: two proxies, 16 clients each (8 curl, 8
# skopeo), one cold image whose layer is 100 MB, from the real registry.
# A lease of 15 s: step 1 is about one fetch for the fleet, and a fill
# starved of CPU for 2 s (32 clients on two busy cores, a sanitizer
# build) would lose a 3 s lease to the other proxy, as it should.
proxy big-a drp-fleet-big 15s
BA_URL=$PROXY_URL BA_CA=$PROXY_CA BA_DIR=$PROXY_DIR
proxy big-b drp-fleet-big 15s
BB_URL=$PROXY_URL BB_CA=$PROXY_CA BB_DIR=$PROXY_DIR

# bigcurl URL CA NAME: curl of the large layer through one proxy, in the
# background, its bytes hashed as they come (no 100 MB file per client).
bigcurl()
{
	(
		set -o pipefail
		curl -sS --max-time 300 --proxy "$1" --noproxy '' --cacert "$2" --capath "$WORK/empty-certs" \
			"https://registry.test/v2/test/large/blobs/$LARGE_LAYER" 2>"$SCEN/$3.err" |
			sha256sum | cut -c1-64 >"$SCEN/$3.sum"
	) &
	pids+=($!)
}
# bigskopeo URL CA NAME: skopeo copy of test/large:v1 through one proxy
# into $SCEN/NAME, in the background.
bigskopeo()
{
	(
		PROXY_URL=$1 PROXY_CA=$2
		pskopeo copy --quiet --retry-times 0 docker://registry.test/test/large:v1 "dir:$SCEN/$3" \
			>"$SCEN/$3.err" 2>&1
	) &
	pids+=($!)
}
m=$(log_mark "$reg") mr=$(log_mark "$rgw")
t0=$SECONDS
pids=()
for i in $(seq 1 8); do
	bigcurl "$BA_URL" "$BA_CA" "bca.$i"
	bigskopeo "$BA_URL" "$BA_CA" "bsa.$i"
	bigcurl "$BB_URL" "$BB_CA" "bcb.$i"
	bigskopeo "$BB_URL" "$BB_CA" "bsb.$i"
done
for p in "${pids[@]}"; do wait "$p" || drp_fail "a client of the fleet failed: $(cat "$SCEN"/b*.err)"; done
drp_log "32 clients on two proxies pulled the 100 MB layer in $((SECONDS - t0)) s"
for f in "$SCEN"/bc[ab].*.sum; do
	expect_eq "curl client $(basename "$f" .sum): the layer's digest" "${LARGE_LAYER#sha256:}" "$(cat "$f")"
done
for d in "$SCEN"/bs[ab].[0-9]*; do
	[ -d "$d" ] || continue
	check_dir_image "$d" "$LARGE_DIGEST" $LARGE_BLOBS
	rm -rf "$d"
done
expect_eq "skopeo clients checked" 16 "$(find "$SCEN" -maxdepth 1 -name 'bs[ab].*.err' | wc -l)"
settle_upstream registry.test "$reg"
for b in $LARGE_BLOBS; do
	n=$(count_since "$reg" "$m" "$(req_pat GET "/v2/test/large/blobs/$b")")
	[ "$n" = 1 ] || why_gets "$b" "$BA_DIR" "$BB_DIR"
	expect_eq "upstream GETs of ${b:7:12} for the fleet (32 clients, 2 proxies)" 1 "$n"
	expect_eq "completed uploads of ${b:7:12} to the bucket" 1 \
		"$(($(count_since "$rgw" "$mr" "PUT /drp-fleet-big/$(key "$b") HTTP/") +
			$(count_since "$rgw" "$mr" "POST /drp-fleet-big/$(key "$b")?uploadId=")))"
done
if ! grep -q "fleet: $LARGE_LAYER: another proxy is fetching it" "$BA_DIR/proxy.log" "$BB_DIR/proxy.log"; then
	drp_fail "neither proxy waited for the other's fill of the layer (the lease was not exercised)"
fi
lq() { curl -s --max-time 10 -o "$SCEN/m" "$1/metrics"; python3 "$DRP_IT_DIR/promq.py" sum "$SCEN/m" "drp_fleet_leases_total{outcome=\"$2\"}"; }
nblobs=$(echo $LARGE_BLOBS | wc -w)
expect_eq "leases taken in the fleet, one per blob (/metrics)" "$nblobs" $(($(lq "$BA_URL" taken) + $(lq "$BB_URL" taken)))
# Each holder confirmed its lease with Redis just before completing its
# upload, and it held.
lc() { curl -s --max-time 10 -o "$SCEN/m" "$1/metrics"; python3 "$DRP_IT_DIR/promq.py" sum "$SCEN/m" "drp_fleet_lease_checks_total{result=\"$2\"}"; }
expect_eq "lease checks before completing, confirmed, one per blob (/metrics)" "$nblobs" $(($(lc "$BA_URL" held) + $(lc "$BB_URL" held)))
expect_eq "lease checks before completing, refused (/metrics)" 0 $(($(lc "$BA_URL" lapsed) + $(lc "$BB_URL" lapsed)))
drp_log "ok: $(grep -l "fleet: $LARGE_LAYER: lease taken" "$BA_DIR/proxy.log" "$BB_DIR/proxy.log" | xargs -n1 dirname | xargs -n1 basename | sed 's/^fleet-//') took the layer's lease"

# A third proxy, fresh (empty local tier), pulls the same image: no
# upstream blob GET, each blob read once from the bucket. First the
# manifest by digest: from the bucket too (verified; the upstream only
# confirms the repository with a HEAD).
proxy big-c drp-fleet-big
m=$(log_mark "$reg") mr=$(log_mark "$rgw")
mpath=/v2/test/large/manifests/$LARGE_DIGEST
accept='application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json'
pcurl -H "Accept: $accept" -o "$SCEN/manifest" "https://registry.test$mpath"
expect_file_digest "third proxy: the manifest by digest" "$SCEN/manifest" "$LARGE_DIGEST"
settle_upstream registry.test "$reg"
expect_eq "third proxy: upstream GETs of the manifest by digest" 0 \
	"$(count_since "$reg" "$m" "$(req_pat GET "$mpath")")"
expect_eq "third proxy: radosgw GETs of the manifest" 1 \
	"$(count_since "$rgw" "$mr" "GET /drp-fleet-big/manifests/sha256/${LARGE_DIGEST#sha256:} ")"
m=$(log_mark "$reg") mr=$(log_mark "$rgw")
pskopeo copy --quiet --retry-times 0 docker://registry.test/test/large:v1 "dir:$SCEN/bsc" ||
	drp_fail "skopeo through the third proxy failed"
check_dir_image "$SCEN/bsc" "$LARGE_DIGEST" $LARGE_BLOBS
rm -rf "$SCEN/bsc"
settle_upstream registry.test "$reg"
for b in $LARGE_BLOBS; do
	expect_eq "third proxy: upstream GETs of ${b:7:12}" 0 \
		"$(count_since "$reg" "$m" "$(req_pat GET "/v2/test/large/blobs/$b")")"
	wait_log "$rgw" "$mr" "GET /drp-fleet-big/$(key "$b") " 1 10
	expect_eq "third proxy: GETs of ${b:7:12} that reached radosgw" 1 \
		"$(count_since "$rgw" "$mr" "GET /drp-fleet-big/$(key "$b") ")"
done
# A damaged manifest in the bucket: a fresh proxy detects it, deletes
# it, and serves the registry's bytes.
printf '{"not":"the manifest"}' >"$SCEN/garbage"
expect_eq "damaging the manifest in the bucket" 200 \
	"$(s3curl -o /dev/null -w '%{http_code}' -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
		-T "$SCEN/garbage" "$S3_HTTP/drp-fleet-big/manifests/sha256/${LARGE_DIGEST#sha256:}")"
proxy big-d drp-fleet-big
m=$(log_mark "$reg")
pcurl -H "Accept: $accept" -o "$SCEN/manifest2" "https://registry.test$mpath"
expect_file_digest "the manifest by digest, its copy in the bucket damaged" "$SCEN/manifest2" "$LARGE_DIGEST"
grep -q "$LARGE_DIGEST: the S3 tier's manifest hashes to" "$PROXY_DIR/proxy.log" ||
	drp_fail "the damaged manifest in the bucket was not detected"
wait_log "$reg" "$m" "$(req_pat GET "$mpath")" 1 5
expect_eq "upstream GETs of the manifest after the damage" 1 "$(count_since "$reg" "$m" "$(req_pat GET "$mpath")")"
drp_log "ok: step 1 took $((SECONDS - t0)) s"

proxy a
A_URL=$PROXY_URL A_CA=$PROXY_CA A_DIR=$PROXY_DIR A_PID=$PROXY_PID
proxy b
B_URL=$PROXY_URL B_CA=$PROXY_CA B_DIR=$PROXY_DIR

# clients N URL CA BLOB TAG: N curls through one proxy, in the background.
clients()
{
	local i
	for i in $(seq 1 "$1"); do
		curl -sS --max-time 120 --proxy "$2" --noproxy '' --cacert "$3" --capath "$WORK/empty-certs" \
			-o "$SCEN/$5.$i" "https://bad.test/v2/test/slow/blobs/$4" 2>"$SCEN/$5.$i.err" &
		pids+=($!)
	done
}

# ---- 2. kill -9 of the holder mid-fill.
# The fake holds the slow blob at half while $WORK/slowgate exists: the
# holder's fill is still under way when it is killed, however long proxy
# b took to start waiting (the whole fill is 4 s at 16 MiB/s).
layer=$LARGE_LAYER
m=$(log_mark "$fake") mr=$(log_mark "$(rgw_log)")
touch "$WORK/slowgate"
drp_at_exit "rm -f $WORK/slowgate"
pids=()
clients 1 "$A_URL" "$A_CA" "$layer" killed
wait_log "$(rgw_log)" "$mr" "PUT /$B/$(key "$layer")?partNumber=1&" 1 30
grep -q "fleet: $layer: lease taken" "$A_DIR/proxy.log" || drp_fail "proxy a did not take the lease"
survivor=${pids[0]}
pids=()
clients 1 "$B_URL" "$B_CA" "$layer" taker
drp_wait "proxy b to wait for proxy a's fill" 10 grep -q "fleet: $layer: another proxy is fetching it" "$B_DIR/proxy.log"
drp_unwatch_proxies
kill -KILL "$A_PID"
t0=$SECONDS
rm -f "$WORK/slowgate" # (b's own fill, after the lease's end, is not held)
wait "$survivor" 2>/dev/null || true
expect_eq "the killed fill's object in the bucket" 404 "$(s3head "$layer")"
wait "${pids[0]}" || drp_fail "proxy b's client failed after the holder died: $(cat "$SCEN/taker.1.err")"
expect_file_digest "proxy b's client after the holder died" "$SCEN/taker.1" "$layer"
grep -q "fleet: $layer: the other proxy's lease ended without the object: taking it" "$B_DIR/proxy.log" ||
	drp_fail "proxy b did not take over from the lease's end"
drp_log "ok: proxy b took over and served in $((SECONDS - t0)) s after the kill"
expect_eq "upstream GETs of the layer (the killed one and the taker's)" 2 "$(gets "$m" "$layer")"
drp_wait "the layer in the bucket" 30 bash -c "grep -q '$layer: in the S3 tier' '$B_DIR/proxy.log'"

# ---- 3. Redis stopped: each proxy on its own, still serving.
redis_stop
proxy c
C_URL=$PROXY_URL C_CA=$PROXY_CA C_DIR=$PROXY_DIR
small=${MULTI_ARM64_BLOBS##* }
m=$(log_mark "$fake")
pids=()
clients 2 "$B_URL" "$B_CA" "$small" nb
clients 2 "$C_URL" "$C_CA" "$small" nc
for p in "${pids[@]}"; do wait "$p" || drp_fail "a client failed without Redis"; done
for f in "$SCEN"/nb.[0-9] "$SCEN"/nc.[0-9]; do
	expect_file_digest "client $(basename "$f") without Redis" "$f" "$small"
done
for d in "$B_DIR" "$C_DIR"; do
	grep -q "fleet: Redis at $REDIS_IP:$REDIS_PORT unavailable" "$d/proxy.log" ||
		drp_fail "$(basename "$d") did not log Redis as unavailable"
done
curl -s --max-time 10 -o "$SCEN/c.metrics" "$C_URL/metrics"
expect_ge "proxy c: Redis unavailable (/metrics)" 1 \
	"$(python3 "$DRP_IT_DIR/promq.py" sum "$SCEN/c.metrics" drp_fleet_redis_unavailable_total)"
n=$(gets "$m" "$small")
[ "$n" -le 2 ] || why_gets "$small" "$B_DIR" "$C_DIR"
expect_ge "upstream GETs without Redis" 1 "$n"
expect_le "upstream GETs without Redis (at most one per proxy)" 2 "$n"
