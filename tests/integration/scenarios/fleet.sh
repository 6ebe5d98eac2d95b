#!/bin/bash
# SPDX-License-Identifier: MIT
# One upstream fetch per blob for a fleet: two proxies on one S3 bucket
# (Ceph RGW) with the Redis lease ([fleet] redis), the upstream a slow
# registry (fakeupstream.py, whose own log counts its GETs):
#  1. 8 curl clients on each proxy ask for one cold blob at once: exactly
#     1 upstream GET, every client gets the right bytes, and one proxy
#     waited for the other's fill instead of fetching;
#  2. kill -9 of the lease holder mid-fill: the other proxy takes over
#     once the lease expires (Redis's TTL), its client gets the right
#     bytes, and nothing partial is visible in the bucket before;
#  3. Redis stopped: each proxy fetches on its own (logged), and serves.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
. "$DRP_IT_DIR/ceph_lib.sh"
drp_scenario_init
drp_require_tools curl sha256sum

ceph_start
redis_start
B=drp-fleet
s3_mkbucket $B
drp_start_fakeupstream $((16 * 1024 * 1024))
fake=$WORK/logs/fake.out

# proxy NAME: a proxy of the fleet (fleet-NAME: the work dir is shared
# with other scenarios), empty local tier, lease of 3 s.
proxy()
{
	DRP_IT_REGISTRIES="bad.test" drp_proxy_conf "fleet-$1" "$(drp_free_port)" "log_level = info" \
		"$(printf 'backend = s3\ns3_endpoint = %s\ns3_bucket = %s\ns3_access_key = %s\ns3_secret_key_file = %s\n[fleet]\nredis = %s:%s\nlease_ttl = 3s\nwait = 60s\n' \
			"$S3_HTTP" $B "$S3_ACCESS_KEY" "$CEPH_DIR/drp.secret" "$REDIS_IP" "$REDIS_PORT")"
	drp_start_proxy "fleet-$1"
}
key() { echo "blobs/sha256/${1#sha256:}"; }
s3head() { s3curl -o /dev/null -w '%{http_code}' -I "$S3_HTTP/$B/$(key "$1")"; }
gets() { count_since "$fake" "$1" "$(req_pat GET "/v2/test/slow/blobs/$2")"; }

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

# ---- 1. 8 + 8 clients, one cold 3 MB blob: 1 upstream GET.
blob=$(cd "$WORK/images/push/blobs/sha256" && ls -S | head -n 1)
blob=sha256:$blob
m=$(log_mark "$fake")
pids=()
clients 8 "$A_URL" "$A_CA" "$blob" a
clients 8 "$B_URL" "$B_CA" "$blob" b
for p in "${pids[@]}"; do wait "$p" || drp_fail "a client of the fleet failed: $(cat "$SCEN"/*.err)"; done
for f in "$SCEN"/a.[0-9] "$SCEN"/b.[0-9]; do
	expect_file_digest "client $(basename "$f")" "$f" "$blob"
done
wait_log "$fake" "$m" "$(req_pat GET "/v2/test/slow/blobs/$blob")" 1 5
expect_eq "upstream GETs of ${blob:7:12} for the fleet (16 clients, 2 proxies)" 1 "$(gets "$m" "$blob")"
if ! grep -q "fleet: $blob: another proxy is fetching it" "$A_DIR/proxy.log" "$B_DIR/proxy.log"; then
	drp_fail "neither proxy waited for the other's fill (the lease was not exercised)"
fi
lq() { curl -s --max-time 10 -o "$SCEN/m" "$1/metrics"; python3 "$DRP_IT_DIR/promq.py" sum "$SCEN/m" "drp_fleet_leases_total{outcome=\"$2\"}"; }
expect_eq "leases taken in the fleet (/metrics)" 1 $(($(lq "$A_URL" taken) + $(lq "$B_URL" taken)))
expect_ge "fills that read another proxy's blob (/metrics)" 1 $(($(lq "$A_URL" stored) + $(lq "$B_URL" stored)))
drp_log "ok: $(grep -l "fleet: $blob: lease taken" "$A_DIR/proxy.log" "$B_DIR/proxy.log" | xargs -n1 dirname | xargs -n1 basename | sed 's/^fleet-//') took the lease"

# ---- 2. kill -9 of the holder mid-fill.
layer=$LARGE_LAYER
m=$(log_mark "$fake") mr=$(log_mark "$(rgw_log)")
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
expect_ge "upstream GETs without Redis" 1 "$n"
expect_le "upstream GETs without Redis (at most one per proxy)" 2 "$n"
