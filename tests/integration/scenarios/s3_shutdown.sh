#!/bin/bash
# SPDX-License-Identifier: MIT
# SIGTERM with a fill of the S3 tier in flight ([cache] backend = s3, on
# a real Ceph RGW, ceph_lib.sh): the fake upstream's test/stall sends the
# blob's head and first MiB and then nothing, so the fill (and its
# multipart upload into the bucket) is certainly under way at the signal.
# The daemon exits 0 within drain_timeout (1 s) + 3 s, stops the fill
# with its loop (logged), leaves no object in the bucket, and (in the
# sanitizer build) reports no memory error or leak: the fill's upload and
# its references end with the loop, not after it.
# Then the same with [fleet] (Redis): the stalled fill holds its lease at
# the signal; the lease ends with the loop, before the Redis connection
# (no leak, nothing touched after free: in the sanitizer build), and its
# key is left to expire in Redis.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
. "$DRP_IT_DIR/ceph_lib.sh"
drp_scenario_init
drp_require_tools curl python3

ceph_start
B=drp-shutdown
s3_mkbucket $B
drp_start_fakeupstream $((16 * 1024 * 1024))
layer=$LARGE_LAYER
now_ms() { echo $(($(date +%s%N) / 1000000)); }
size_at_least() { [ "$(stat -c %s "$1" 2>/dev/null || echo 0)" -ge "$2" ]; }
proxy_gone() { ! drp_alive "$PROXY_PID"; }
s3head() { s3curl -o /dev/null -w '%{http_code}' -I "$S3_HTTP/$B/blobs/sha256/${1#sha256:}"; }

DRP_IT_REGISTRIES="registry.test bad.test" drp_proxy_conf s3-shutdown "$(drp_free_port)" \
	"drain_timeout = 1s
log_level = info" "$(printf 'backend = s3\ns3_endpoint = %s\ns3_bucket = %s\ns3_region = %s\n' \
		"$S3_HTTP" $B "$S3_REGION"
	printf 's3_access_key = %s\ns3_secret_key_file = %s\ns3_addressing = path\n' \
		"$S3_ACCESS_KEY" "$CEPH_DIR/drp.secret")"
drp_start_proxy s3-shutdown
plog=$PROXY_DIR/proxy.log
mark=$(log_mark "$plog")
PCURL_TIMEOUT=60 pcurl -o "$SCEN/stall" "https://bad.test/v2/test/stall/blobs/$layer" &
client=$!
drp_wait "the fill's first MiB at the client" 20 size_at_least "$SCEN/stall" $((1 << 20))
drp_unwatch_proxies
t0=$(now_ms)
kill -TERM "$PROXY_PID"
drp_wait "the daemon's exit" 10 proxy_gone
t1=$(now_ms)
st=0
wait "$PROXY_PID" || st=$?
wait "$client" || true
expect_eq "exit status after SIGTERM" 0 "$st"
expect_le "ms from SIGTERM to the exit" 4000 $((t1 - t0))
expect_eq "fills stopped with their loop" 1 \
	"$(count_since "$plog" "$mark" "$layer: upstream fetch failed: the proxy is shutting down")"
expect_eq "the stopped fill's object in the bucket" 404 "$(s3head "$layer")"
rm -f "$SCEN/stall"

# ---- the same stop, with the fill holding its fleet lease
redis_start
DRP_IT_REGISTRIES="registry.test bad.test" drp_proxy_conf s3-shutdown-fleet "$(drp_free_port)" \
	"drain_timeout = 1s
log_level = info" "$(printf 'backend = s3\ns3_endpoint = %s\ns3_bucket = %s\ns3_region = %s\n' \
		"$S3_HTTP" $B "$S3_REGION"
	printf 's3_access_key = %s\ns3_secret_key_file = %s\ns3_addressing = path\n' \
		"$S3_ACCESS_KEY" "$CEPH_DIR/drp.secret"
	printf '[fleet]\nredis = %s:%s\nlease_ttl = 60s\n' "$REDIS_IP" "$REDIS_PORT")"
drp_start_proxy s3-shutdown-fleet
plog=$PROXY_DIR/proxy.log
mark=$(log_mark "$plog")
PCURL_TIMEOUT=60 pcurl -o "$SCEN/stall" "https://bad.test/v2/test/stall/blobs/$layer" &
client=$!
drp_wait "the fleet fill's first MiB at the client" 20 size_at_least "$SCEN/stall" $((1 << 20))
expect_eq "the stalled fill holds the lease" 1 \
	"$(count_since "$plog" "$mark" "fleet: $layer: lease taken")"
drp_unwatch_proxies
kill -TERM "$PROXY_PID"
drp_wait "the fleet daemon's exit" 10 proxy_gone
st=0
wait "$PROXY_PID" || st=$?
wait "$client" || true
expect_eq "exit status after SIGTERM (fleet)" 0 "$st"
expect_eq "fleet fills stopped with their loop" 1 \
	"$(count_since "$plog" "$mark" "$layer: upstream fetch failed: the proxy is shutting down")"
expect_eq "no release sent at exit: the key expires" 1 "$(rcli exists "drp:lease:$layer")"
expect_eq "the stopped fleet fill's object in the bucket" 404 "$(s3head "$layer")"
rm -f "$SCEN/stall"
