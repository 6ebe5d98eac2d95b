#!/bin/bash
# SPDX-License-Identifier: MIT
# The S3 tier ([cache] backend = s3) on a real Ceph RGW (ceph_lib.sh):
#  1. a fill killed (kill -9) after its first multipart part leaves no
#     visible object, and the next proxy's sweep aborts its upload;
#  2. a pull through proxy A stores every blob in the bucket (the large
#     layer as a multipart upload), only complete and verified objects;
#  3. proxy B, with an empty local cache, on the same bucket (over TLS,
#     virtual-hosted): the same pull costs the upstream no blob GET; its
#     local tier is in local_dir (local_max_size), not in dir, and -t
#     accepts the keys only with backend = s3;
#  3b. tag records in the bucket (tags/<registry>/<repository>/<tag>/...):
#     proxy B's pull by tag in step 3 cost the upstream no manifest GET;
#     a record older than tag_ttl by the store's clock costs one, and is
#     rewritten; a garbage record is logged, ignored and rewritten;
#  4. a damaged object in the bucket is detected (the client is reset,
#     never served wrong bytes), deleted, and fetched again upstream;
#  5. radosgw stopped: the local tier and the upstream still serve.
# Upstream requests are counted in the registry's own log, the store's
# in radosgw's.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
. "$DRP_IT_DIR/ceph_lib.sh"
drp_scenario_init
drp_require_tools curl skopeo sha256sum

ceph_start
B=drp-cache
s3_mkbucket $B
DRP_IP["$B.s3.test"]=$CEPH_IP
reg=$(reg_log open)
rgw=$(rgw_log)

# s3conf [ENDPOINT [ADDRESSING]]: the [cache] lines of a proxy on the
# bucket (an IP literal on loopback by default: the configured store is
# exempt from the address policy).
s3conf()
{
	printf 'backend = s3\ns3_endpoint = %s\ns3_bucket = %s\ns3_region = %s\n' \
		"${1:-$S3_HTTP}" $B "$S3_REGION"
	printf 's3_access_key = %s\ns3_secret_key_file = %s\ns3_addressing = %s\n' \
		"$S3_ACCESS_KEY" "$CEPH_DIR/drp.secret" "${2:-path}"
	printf 's3_abandoned_after = 2s\n'
}
# proxy NAME [ENDPOINT [ADDRESSING]]: a proxy with an empty local tier
# (s3c-NAME: the work dir is shared with other scenarios).
proxy()
{
	local name=s3c-$1
	shift
	DRP_IT_REGISTRIES="registry.test bad.test" drp_proxy_conf "$name" "$(drp_free_port)" "log_level = info" \
		"$(s3conf "$@")${S3C_EXTRA:+$'\n'$S3C_EXTRA}"
	drp_start_proxy "$name"
}
key() { echo "blobs/sha256/${1#sha256:}"; }
# s3head DIGEST: the bucket's status for the object.
s3head() { s3curl -o /dev/null -w '%{http_code}' -I "$S3_HTTP/$B/$(key "$1")"; }
# s3obj DIGEST FILE: the bucket's object into FILE.
s3obj() { s3curl -o "$2" "$S3_HTTP/$B/$(key "$1")"; }
uploads() { s3curl "$S3_HTTP/$B?uploads="; }
s3has() { [ "$(s3head "$1")" = 200 ]; }

# ---- 1. kill -9 mid-fill: no object, an unfinished upload, swept.
drp_start_fakeupstream $((16 * 1024 * 1024))
proxy killed
m=$(log_mark "$rgw")
PCURL_TIMEOUT=300 pcurl -o "$SCEN/partial" "https://bad.test/v2/test/slow/blobs/$LARGE_LAYER" 2>/dev/null &
client=$!
wait_log "$rgw" "$m" "PUT /$B/$(key "$LARGE_LAYER")?partNumber=1&" 1 60
expect_eq "first part uploaded before the kill" 1 \
	"$(count_since "$rgw" "$m" "PUT /$B/$(key "$LARGE_LAYER")?partNumber=1&")"
drp_unwatch_proxies
kill -KILL "$PROXY_PID"
wait $client 2>/dev/null || true
wait "$PROXY_PID" 2>/dev/null || true
expect_eq "the killed fill's object in the bucket" 404 "$(s3head "$LARGE_LAYER")"
expect_match "its multipart upload is left" "<Key>$(key "$LARGE_LAYER")</Key>" "$(uploads)"

# ---- 2. Proxy A pulls the large image: every blob from the upstream
# once, each in the bucket once complete, the layer in parts.
proxy a
drp_wait "proxy a's sweep to abort the killed fill's upload" 20 \
	grep -q "aborted the unfinished multipart upload .* of $(key "$LARGE_LAYER")" "$PROXY_DIR/proxy.log"
expect_no_match "no upload left after the sweep" '<Upload>' "$(uploads)"
m=$(log_mark "$reg") mr=$(log_mark "$rgw")
pskopeo copy --quiet --retry-times 0 docker://registry.test/test/large:v1 "dir:$SCEN/a" ||
	drp_fail "skopeo through proxy a failed"
check_dir_image "$SCEN/a" "$LARGE_DIGEST" $LARGE_BLOBS
for b in $LARGE_BLOBS; do
	wait_log "$reg" "$m" "$(req_pat GET "/v2/test/large/blobs/$b")" 1 5
	expect_eq "proxy a: upstream GETs of ${b:7:12}" 1 \
		"$(count_since "$reg" "$m" "$(req_pat GET "/v2/test/large/blobs/$b")")"
	drp_wait "${b:7:12} in the bucket" 60 s3has "$b"
	s3obj "$b" "$SCEN/obj"
	expect_file_digest "the bucket's ${b:7:12}" "$SCEN/obj" "$b"
done
parts=$(count_since "$rgw" "$mr" "PUT /$B/$(key "$LARGE_LAYER")?partNumber=")
expect_ge "the large layer's parts" 2 "$parts"
expect_no_match "no upload left after the pull" '<Upload>' "$(uploads)"
# Proxy a's answer by tag went into the bucket as a tag record (PUT
# after the answer: wait for radosgw to log it; not there, step 3 fails).
wait_log "$rgw" "$mr" "PUT /$B/tags/registry.test/test/large/v1/" 1 10

# ---- 3. Proxy B: empty local tier, the same bucket over TLS,
# virtual-hosted: no upstream blob GET, the bytes right, from the bucket.
S3C_EXTRA="local_dir = $WORK/s3c-b/local"$'\n'"local_max_size = 1G" proxy b https://s3.test virtual
"$DRP_PROXY" -t -c "$PROXY_DIR/proxy.ini" >"$SCEN/t.out" 2>&1 || drp_fail "-t refused local_dir: $(cat "$SCEN/t.out")"
sed 's/^backend = s3$/backend = fs/' "$PROXY_DIR/proxy.ini" >"$SCEN/fs.ini"
rc=0
"$DRP_PROXY" -t -c "$SCEN/fs.ini" >"$SCEN/t.out" 2>&1 || rc=$?
expect_eq "-t of local_dir with backend = fs: exit status" 1 "$rc"
expect_match "-t of local_dir with backend = fs: the error" \
	"\[cache\] local_dir: only with backend = s3" "$(cat "$SCEN/t.out")"
m=$(log_mark "$reg") mr=$(log_mark "$rgw") am=$(amark)
pskopeo copy --quiet --retry-times 0 docker://registry.test/test/large:v1 "dir:$SCEN/b" ||
	drp_fail "skopeo through proxy b failed"
check_dir_image "$SCEN/b" "$LARGE_DIGEST" $LARGE_BLOBS
for b in $LARGE_BLOBS; do
	expect_eq "proxy b: upstream GETs of ${b:7:12}" 0 \
		"$(count_since "$reg" "$m" "$(req_pat GET "/v2/test/large/blobs/$b")")"
	expect_eq "proxy b: ${b:7:12} from the bucket" HIT \
		"$(anext '$11' "$am" registry.test:443 GET "/v2/test/large/blobs/$b")"
done
# Nor a manifest GET: the tag resolved through the bucket's record
# (fresh within tag_ttl) to the manifest in the bucket; the repository
# confirmed by a HEAD of this proxy's own (the bucket holds no policy).
settle_upstream registry.test "$reg"
expect_eq "proxy b: upstream manifest GETs" 0 \
	"$(count_since "$reg" "$m" "\"GET /v2/test/large/manifests/")"
expect_eq "proxy b: upstream HEADs confirming the tag" 1 \
	"$(count_since "$reg" "$m" "$(req_pat HEAD /v2/test/large/manifests/v1)")"
# (radosgw logs a request once it is answered: wait for the line.)
wait_log "$rgw" "$mr" "GET /$(key "$LARGE_LAYER") " 1 10
expect_eq "proxy b: GETs of the layer that reached radosgw" 1 "$(count_since "$rgw" "$mr" "GET /$(key "$LARGE_LAYER") ")"

# The local tier is local_dir: the layer is there, dir has no object.
drp_wait "the layer in proxy b's local_dir" 20 bash -c \
	"find '$WORK/s3c-b/local' -type f -size $(stat -c %s "$SCEN/b/${LARGE_LAYER#sha256:}")c | grep -q ."
lf=$(find "$WORK/s3c-b/local" -type f -size "$(stat -c %s "$SCEN/b/${LARGE_LAYER#sha256:}")c" | head -n 1)
expect_file_digest "the layer in proxy b's local_dir" "$lf" "$LARGE_LAYER"
expect_eq "objects of proxy b under dir (not its local tier)" 0 \
	"$(find "$PROXY_DIR/cache" -type f -size +1M 2>/dev/null | wc -l)"
curl -s --max-time 10 -o "$SCEN/b.metrics" "$PROXY_URL/metrics"
expect_eq "proxy b: blobs read from the bucket (/metrics)" 2 \
	"$(python3 "$DRP_IT_DIR/promq.py" sum "$SCEN/b.metrics" 'drp_s3_tier_total{event="read"}')"
expect_eq "proxy b: fresh tag records read from the bucket (/metrics)" 1 \
	"$(python3 "$DRP_IT_DIR/promq.py" sum "$SCEN/b.metrics" 'drp_s3_tag_reads_total{outcome="fresh"}')"

# ---- 3b. Tag records: one object per tag and Accept set, one line
# "<digest> <media type> <accept key>", its age the store's Date minus
# its Last-Modified.
tprefix=tags/registry.test/test/large/v1/
# (The query as SigV4 canonicalizes it: curl signs it as written.)
tkey=$(s3curl "$S3_HTTP/$B?prefix=${tprefix//\//%2F}" | grep -o "<Key>$tprefix[^<]*</Key>" | sed 's/<[^>]*>//g')
expect_eq "tag records of test/large:v1 in the bucket" 1 "$(printf '%s\n' "$tkey" | grep -c .)"
turl="$S3_HTTP/$B/$tkey"
expect_match "the tag record" "^$LARGE_DIGEST application/[^ ]+ [^ ]+\$" "$(s3curl "$turl")"
# rec_lm: the record's Last-Modified (unix seconds); rec_age: its age by
# the store's clock (Date - Last-Modified of one answer).
rec_lm() { date -d "$(s3curl -I "$turl" | tr -d '\r' | sed -n 's/^[Ll]ast-[Mm]odified: //p')" +%s; }
rec_age()
{
	local h
	h=$(s3curl -I "$turl" | tr -d '\r')
	echo $(($(date -d "$(sed -n 's/^[Dd]ate: //p' <<<"$h")" +%s) - $(date -d "$(sed -n 's/^[Ll]ast-[Mm]odified: //p' <<<"$h")" +%s)))
}
rec_older() { [ "$(rec_age)" -ge "$1" ]; }
# pinspect: the manifest by tag through the current proxy, with skopeo's
# Accept (the record's key), its bytes into $SCEN/m.
pinspect() { pskopeo inspect --raw --retry-times 0 docker://registry.test/test/large:v1 >"$SCEN/m"; }

# A record older than tag_ttl (2 s here) by the store's clock is stale:
# one upstream GET, the same bytes, and the record rewritten.
S3C_EXTRA="tag_ttl = 2s" proxy d
drp_wait "the tag record to be 2 s old by the store's clock" 30 rec_older 2
lm=$(rec_lm)
m=$(log_mark "$reg") mr=$(log_mark "$rgw")
pinspect || drp_fail "skopeo inspect through proxy d failed"
expect_file_digest "proxy d: the manifest by tag" "$SCEN/m" "$LARGE_DIGEST"
wait_log "$reg" "$m" "$(req_pat GET /v2/test/large/manifests/v1)" 1 5
settle_upstream registry.test "$reg"
expect_eq "proxy d (stale record): upstream manifest GETs" 1 \
	"$(count_since "$reg" "$m" "\"GET /v2/test/large/manifests/")"
wait_log "$rgw" "$mr" "PUT /$B/$tkey " 1 10
expect_eq "proxy d: the stale record rewritten" 1 "$(count_since "$rgw" "$mr" "PUT /$B/$tkey ")"
expect_ge "proxy d: the record's new Last-Modified" $((lm + 2)) "$(rec_lm)"
curl -s --max-time 10 -o "$SCEN/d.metrics" "$PROXY_URL/metrics"
expect_eq "proxy d: stale tag records (/metrics)" 1 \
	"$(python3 "$DRP_IT_DIR/promq.py" sum "$SCEN/d.metrics" 'drp_s3_tag_reads_total{outcome="stale"}')"
# Both proxy d's own record and the bucket's stale again: the HEAD
# revalidation (no GET) rewrites the bucket's record too.
drp_wait "the tag record to be 2 s old again" 30 rec_older 2
lm=$(rec_lm)
m=$(log_mark "$reg") mr=$(log_mark "$rgw")
pinspect || drp_fail "skopeo inspect through proxy d failed"
expect_file_digest "proxy d: the manifest by tag, revalidated" "$SCEN/m" "$LARGE_DIGEST"
wait_log "$rgw" "$mr" "PUT /$B/$tkey " 1 10
settle_upstream registry.test "$reg"
expect_eq "proxy d (revalidation): upstream manifest GETs" 0 \
	"$(count_since "$reg" "$m" "\"GET /v2/test/large/manifests/")"
expect_eq "proxy d (revalidation): upstream HEADs of the tag" 1 \
	"$(count_since "$reg" "$m" "$(req_pat HEAD /v2/test/large/manifests/v1)")"
expect_eq "proxy d: the revalidated record rewritten" 1 "$(count_since "$rgw" "$mr" "PUT /$B/$tkey ")"
expect_ge "proxy d: the revalidated record's Last-Modified" $((lm + 2)) "$(rec_lm)"

# A garbage record (the bucket is shared, not trusted): logged, ignored,
# the manifest fetched upstream, the record rewritten.
printf 'sha256:nothex application/x\r\nX-Evil: 1 -\n' >"$SCEN/garbage-tag"
expect_eq "writing a garbage tag record" 200 \
	"$(s3curl -o /dev/null -w '%{http_code}' -T "$SCEN/garbage-tag" "$turl")"
proxy e
m=$(log_mark "$reg") mr=$(log_mark "$rgw")
pinspect || drp_fail "skopeo inspect through proxy e failed"
expect_file_digest "proxy e (garbage record): the manifest by tag" "$SCEN/m" "$LARGE_DIGEST"
wait_log "$reg" "$m" "$(req_pat GET /v2/test/large/manifests/v1)" 1 5
settle_upstream registry.test "$reg"
expect_eq "proxy e (garbage record): upstream manifest GETs" 1 \
	"$(count_since "$reg" "$m" "\"GET /v2/test/large/manifests/")"
drp_wait "the garbage record in proxy e's log" 10 grep -q "tag record $tkey in the S3 tier is not valid" "$PROXY_DIR/proxy.log"
wait_log "$rgw" "$mr" "PUT /$B/$tkey " 1 10
expect_match "proxy e: the record rewritten" "^$LARGE_DIGEST application/[^ ]+ [^ ]+\$" "$(s3curl "$turl")"
curl -s --max-time 10 -o "$SCEN/e.metrics" "$PROXY_URL/metrics"
expect_eq "proxy e: invalid tag records (/metrics)" 1 \
	"$(python3 "$DRP_IT_DIR/promq.py" sum "$SCEN/e.metrics" 'drp_s3_tag_reads_total{outcome="invalid"}')"

# ---- 4. A damaged copy in the bucket: proxy C (empty local tier) sends
# no clean response with it, deletes it, and the next pull fetches the
# blob upstream and puts it back.
cfg=${LARGE_BLOBS%% *}
[ "$cfg" != "$LARGE_LAYER" ] || cfg=${LARGE_BLOBS##* }
printf 'not the blob you are looking for\n' >"$SCEN/garbage"
expect_eq "damaging ${cfg:7:12} in the bucket" 200 \
	"$(s3curl -o /dev/null -w '%{http_code}' -T "$SCEN/garbage" "$S3_HTTP/$B/$(key "$cfg")")"
proxy c
rc=0
pcurl -o "$SCEN/damaged" "https://registry.test/v2/test/large/blobs/$cfg" 2>/dev/null || rc=$?
expect_match "the client of a damaged copy fails" '^[1-9][0-9]*$' "$rc"
if [ -s "$SCEN/damaged" ] && [ "$(sha256sum <"$SCEN/damaged" | cut -c1-64)" = "${cfg#sha256:}" ]; then
	drp_fail "the damaged copy's client got the right bytes?"
fi
drp_wait "the mismatch in proxy c's log" 10 grep -q "$cfg: the S3 tier sent .* do not match" "$PROXY_DIR/proxy.log"
drp_wait "the damaged copy deleted" 20 grep -q "$cfg: the S3 tier's damaged copy was deleted" "$PROXY_DIR/proxy.log"
expect_eq "the damaged copy is gone from the bucket" 404 "$(s3head "$cfg")"
m=$(log_mark "$reg")
pcurl -o "$SCEN/again" "https://registry.test/v2/test/large/blobs/$cfg"
expect_file_digest "${cfg:7:12} after the damage" "$SCEN/again" "$cfg"
wait_log "$reg" "$m" "$(req_pat GET "/v2/test/large/blobs/$cfg")" 1 5
expect_eq "upstream GETs of ${cfg:7:12} after the damage" 1 \
	"$(count_since "$reg" "$m" "$(req_pat GET "/v2/test/large/blobs/$cfg")")"
drp_wait "${cfg:7:12} back in the bucket" 20 grep -q "$cfg: in the S3 tier" "$PROXY_DIR/proxy.log"
s3obj "$cfg" "$SCEN/obj"
expect_file_digest "the bucket's ${cfg:7:12} after the refetch" "$SCEN/obj" "$cfg"

# ---- 5. radosgw stopped: the local tier and the upstream still serve
# (the bucket's failure is logged, not the client's business).
drp_stop "$CEPH_RGW_PID" 15 || true
am=$(amark)
pcurl -o "$SCEN/local" "https://registry.test/v2/test/large/blobs/$cfg"
expect_file_digest "${cfg:7:12} from the local tier with radosgw down" "$SCEN/local" "$cfg"
expect_eq "its result" HIT "$(anext '$11' "$am" registry.test:443 GET "/v2/test/large/blobs/$cfg")"
sb=${SMALL_LAYERS%% *}
m=$(log_mark "$reg")
pcurl -o "$SCEN/small" "https://registry.test/v2/test/small/blobs/$sb"
expect_file_digest "${sb:7:12} from the upstream with radosgw down" "$SCEN/small" "$sb"
wait_log "$reg" "$m" "$(req_pat GET "/v2/test/small/blobs/$sb")" 1 5
expect_eq "upstream GETs of ${sb:7:12}" 1 "$(count_since "$reg" "$m" "$(req_pat GET "/v2/test/small/blobs/$sb")")"
drp_wait "the bucket's failure in proxy c's log" 10 grep -q "$sb: the S3 tier did not answer" "$PROXY_DIR/proxy.log"
curl -s --max-time 10 -o "$SCEN/c.metrics" "$PROXY_URL/metrics"
pq() { python3 "$DRP_IT_DIR/promq.py" sum "$SCEN/c.metrics" "drp_s3_tier_total{event=\"$1\"}"; }
expect_eq "proxy c: damaged copies deleted (/metrics)" 1 "$(pq damaged)"
expect_eq "proxy c: blobs stored in the bucket (/metrics)" 1 "$(pq stored)"
expect_ge "proxy c: lookups the bucket did not answer (/metrics)" 1 "$(pq unavailable)"
