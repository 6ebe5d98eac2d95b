#!/bin/bash
# SPDX-License-Identifier: MIT
# A lease that lapses while its holder stalls but lives on: two proxies
# on one S3 bucket (Ceph RGW) with the Redis lease (lease_ttl 3 s), the
# upstream a slow registry (fakeupstream.py, whose own log counts GETs).
# Proxy a takes the lease for the cold 100 MB layer; the fake holds a's
# fill at half ($WORK/slowgate), so a renews no more and Redis ends its
# lease; proxy b, waiting, takes over. Then a is stopped (SIGSTOP), the
# fake let go, and a resumed (SIGCONT) once b has stored the layer: the
# rest of a's body comes in one burst, and a's fill reaches its verdict
# before any renewal could tell it the lease is gone (the first check
# after a stall sees no progress and does not renew). Then:
#  - a confirms the lease with Redis before completing its upload, is
#    answered that it is not a's, and aborts the upload: the object is
#    completed in the bucket exactly once (b's), counted in radosgw's
#    log, and a's /metrics counts the lapsed confirmation;
#  - a goes on serving its own client, exact bytes;
#  - a sets no failure marker in Redis (the lease was b's: a marker would
#    send b's waiters upstream); b's client gets exact bytes;
#  - 2 upstream GETs in all (a's and b's), the bucket's object is exact,
#    and a third, fresh proxy reads it from the bucket: 0 upstream GETs
#    (its [fleet] redis a name, redis.test, found in [resolve]); a
#    reload that changes its [fleet] keys logs that they need a restart;
#  - Redis down at the verdict, the lease ended meanwhile: the holder
#    stores nothing (a small blob: its single PUT is gated too).
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
. "$DRP_IT_DIR/ceph_lib.sh"
drp_scenario_init
drp_require_tools curl sha256sum

ceph_start
redis_start
B=drp-stall
s3_mkbucket $B
drp_start_fakeupstream $((16 * 1024 * 1024))
fake=$WORK/logs/fake.out
rgw=$(rgw_log)

# proxy NAME [REDIS-HOST]: a proxy of the fleet, empty local tier, lease
# of 3 s; Redis by address, or by a name in [resolve].
DRP_IP["redis.test"]=$REDIS_IP
proxy()
{
	DRP_IT_REGISTRIES="bad.test" drp_proxy_conf "stall-$1" "$(drp_free_port)" "log_level = info" \
		"$(printf 'backend = s3\ns3_endpoint = %s\ns3_bucket = %s\ns3_access_key = %s\ns3_secret_key_file = %s\n[fleet]\nredis = %s:%s\nlease_ttl = 3s\nwait = 60s\n' \
			"$S3_HTTP" $B "$S3_ACCESS_KEY" "$CEPH_DIR/drp.secret" "${2:-$REDIS_IP}" "$REDIS_PORT")"
	drp_start_proxy "stall-$1"
}
layer=$LARGE_LAYER
key=blobs/sha256/${layer#sha256:}
gets() { count_since "$fake" "$1" "$(req_pat GET "/v2/test/slow/blobs/$layer")"; }
# client URL CA NAME: one curl of the layer through a proxy, background.
client()
{
	curl -sS --max-time 120 --proxy "$1" --noproxy '' --cacert "$2" --capath "$WORK/empty-certs" \
		-o "$SCEN/$3" "https://bad.test/v2/test/slow/blobs/$layer" 2>"$SCEN/$3.err" &
	CLIENT_PID=$!
}

proxy a
A_URL=$PROXY_URL A_CA=$PROXY_CA A_DIR=$PROXY_DIR A_PID=$PROXY_PID
proxy b
B_URL=$PROXY_URL B_CA=$PROXY_CA B_DIR=$PROXY_DIR

m=$(log_mark "$fake") mr=$(log_mark "$rgw")
touch "$WORK/slowgate"
drp_at_exit "rm -f $WORK/slowgate"
client "$A_URL" "$A_CA" a
a_client=$CLIENT_PID
wait_log "$rgw" "$mr" "PUT /$B/$key?partNumber=1&" 1 30
grep -q "fleet: $layer: lease taken" "$A_DIR/proxy.log" || drp_fail "proxy a did not take the lease"
drp_wait "the fake to hold proxy a's fill at half" 30 \
	grep -qF "slowgate: GET /v2/test/slow/blobs/$layer held at half" "$fake"
client "$B_URL" "$B_CA" b
b_client=$CLIENT_PID
drp_wait "proxy b to wait for proxy a's fill" 10 grep -q "fleet: $layer: another proxy is fetching it" "$B_DIR/proxy.log"

# a's fill makes no progress: a renews no more, and Redis ends its lease.
t0=$SECONDS
drp_wait "proxy b to take over the lapsed lease" 20 \
	grep -q "fleet: $layer: the other proxy's lease ended without the object: taking it" "$B_DIR/proxy.log"
drp_wait "proxy b to hold the lease" 10 grep -q "fleet: $layer: lease taken" "$B_DIR/proxy.log"
drp_log "ok: proxy b took the lease $((SECONDS - t0)) s after proxy a's fill was held"
# a stalls, alive, while the fake lets go (b's fill is not held): the rest
# of a's body waits for a in its socket and in the fake, which catches up
# once a reads again.
kill -STOP "$A_PID"
rm -f "$WORK/slowgate"
wait "$b_client" || drp_fail "proxy b's client failed: $(cat "$SCEN/b.err")"
expect_file_digest "proxy b's client (the taker's)" "$SCEN/b" "$layer"
drp_wait "the layer in the bucket" 60 grep -q "$layer: in the S3 tier" "$B_DIR/proxy.log"
wait_log "$rgw" "$mr" "POST /$B/$key?uploadId=" 1 10
expect_eq "uploads of the layer completed while a was stopped (b's)" 1 \
	"$(count_since "$rgw" "$mr" "POST /$B/$key?uploadId=")"
kill -CONT "$A_PID"

wait "$a_client" || drp_fail "proxy a's client failed after the stall: $(cat "$SCEN/a.err")"
expect_file_digest "proxy a's client (the stalled holder's)" "$SCEN/a" "$layer"
# Its upload ends either way: completed ("in the S3 tier"), or not.
drp_wait "proxy a's upload to end" 30 \
	grep -qE "$layer: in the S3 tier|fleet: $layer: verified, but the lease" "$A_DIR/proxy.log"
if grep -q "$layer: in the S3 tier" "$A_DIR/proxy.log"; then
	drp_fail "proxy a published its copy after its lease lapsed"
fi
grep -q "fleet: $layer: verified, but the lease is no longer this proxy's" "$A_DIR/proxy.log" ||
	drp_fail "proxy a did not log why it did not publish"
lc() { curl -s --max-time 10 -o "$SCEN/m" "$1/metrics"; python3 "$DRP_IT_DIR/promq.py" sum "$SCEN/m" "drp_fleet_lease_checks_total{result=\"$2\"}"; }
expect_eq "proxy a: uploads not completed, the lease lapsed (/metrics)" 1 "$(lc "$A_URL" lapsed)"
expect_eq "proxy a: uploads completed on a confirmed lease (/metrics)" 0 "$(lc "$A_URL" held)"
expect_eq "proxy b: uploads completed on a confirmed lease (/metrics)" 1 "$(lc "$B_URL" held)"

# radosgw logs a request once answered: an own request after the uploads
# ended, logged, makes the counts final.
s3curl -o /dev/null "$S3_HTTP/$B?uploads=" || true
wait_log "$rgw" "$mr" "GET /$B?uploads" 1 10
expect_eq "uploads of the layer completed in the bucket (b's only)" 1 \
	"$(count_since "$rgw" "$mr" "POST /$B/$key?uploadId=")"
expect_ge "uploads of the layer aborted (a's)" 1 "$(count_since "$rgw" "$mr" "DELETE /$B/$key?uploadId=")"
expect_no_match "no upload left" '<Upload>' "$(s3curl "$S3_HTTP/$B?uploads=")"
expect_eq "failure marker in Redis" 0 "$(rcli EXISTS "drp:failed:$layer")"
expect_eq "upstream GETs of the layer (a's and b's)" 2 "$(gets "$m")"
s3curl -o "$SCEN/obj" "$S3_HTTP/$B/$key"
expect_file_digest "the bucket's object" "$SCEN/obj" "$layer"

# A third proxy reads it from the bucket (its Redis named redis.test,
# found in [resolve]).
proxy c redis.test
grep -q "fleet: Redis redis.test:$REDIS_PORT is $REDIS_IP" "$PROXY_DIR/proxy.log" ||
	drp_fail "proxy c did not resolve redis.test through [resolve]"
m=$(log_mark "$fake")
client "$PROXY_URL" "$PROXY_CA" c
wait "$CLIENT_PID" || drp_fail "proxy c's client failed: $(cat "$SCEN/c.err")"
expect_file_digest "proxy c's client (from the bucket)" "$SCEN/c" "$layer"
expect_eq "proxy c: upstream GETs of the layer" 0 "$(gets "$m")"

# A reload that changes [fleet] keeps the lease's settings of the start,
# and says so.
sed -i 's/^lease_ttl = 3s$/lease_ttl = 4s/' "$PROXY_DIR/proxy.ini"
kill -HUP "$PROXY_PID"
drp_wait "proxy c to log that [fleet] changes need a restart" 10 \
	grep -qF "[cache] s3_* and [fleet] changes take effect only after a restart" "$PROXY_DIR/proxy.log"

# Redis down at the verdict: a holder that cannot confirm its lease, and
# whose lease Redis may have ended meanwhile, does not publish. Proxy a
# takes the lease for a cold 3 MB blob (one PUT, no multipart), the fake
# holds its fill at half until Redis ended the unrenewed lease (the key
# gone), Redis stops, the fake lets go: a's check is unanswered and its
# last confirmation older than lease_ttl, so nothing is stored; a's
# client still gets exact bytes.
small=${PUSH_BLOBS##* }
skey=blobs/sha256/${small#sha256:}
mr=$(log_mark "$rgw")
touch "$WORK/slowgate"
curl -sS --max-time 120 --proxy "$A_URL" --noproxy '' --cacert "$A_CA" --capath "$WORK/empty-certs" \
	-o "$SCEN/a2" "https://bad.test/v2/test/slow/blobs/$small" 2>"$SCEN/a2.err" &
a2_client=$!
drp_wait "the fake to hold proxy a's fill of the small blob at half" 30 \
	grep -qF "slowgate: GET /v2/test/slow/blobs/$small held at half" "$fake"
grep -q "fleet: $small: lease taken" "$A_DIR/proxy.log" || drp_fail "proxy a did not take the small blob's lease"
drp_wait "Redis to end proxy a's unrenewed lease" 20 \
	bash -c "[ \"\$(timeout 10 redis-cli -h $REDIS_IP -p $REDIS_PORT EXISTS drp:lease:$small)\" = 0 ]"
redis_stop
rm -f "$WORK/slowgate"
wait "$a2_client" || drp_fail "proxy a's client failed without Redis: $(cat "$SCEN/a2.err")"
expect_file_digest "proxy a's client of the small blob, Redis down" "$SCEN/a2" "$small"
drp_wait "proxy a's upload of the small blob to end" 30 \
	grep -qE "$small: in the S3 tier|fleet: $small: verified, but the lease" "$A_DIR/proxy.log"
if grep -q "$small: in the S3 tier" "$A_DIR/proxy.log"; then
	drp_fail "proxy a stored the small blob on a lease it could not confirm"
fi
grep -q "fleet: $small: verified, but the lease is no longer this proxy's for sure (Redis did not confirm it" \
	"$A_DIR/proxy.log" || drp_fail "proxy a did not log why it did not store the small blob"
expect_eq "proxy a: unanswered checks of a stale lease (/metrics)" 1 "$(lc "$A_URL" unanswered_stale)"
s3curl -o /dev/null "$S3_HTTP/$B?uploads=" || true
wait_log "$rgw" "$mr" "GET /$B?uploads" 1 10
expect_eq "PUTs of the small blob to the bucket" 0 "$(count_since "$rgw" "$mr" "PUT /$B/$skey")"
expect_eq "the small blob in the bucket" 404 \
	"$(s3curl -o /dev/null -w '%{http_code}' "$S3_HTTP/$B/$skey" || true)"
