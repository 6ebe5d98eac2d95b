#!/bin/bash
# SPDX-License-Identifier: MIT
# [cache] keep_mapped: a large cached blob's mapped windows stay mapped
# between hits (the proxy's /proc/PID/maps shows them once the hit is
# done, and the next hit, traced, maps nothing of the blob), as
# anonymous memory they do not count (RssAnon stays put), at most
# keep_mapped bytes of them. They go with their object: after a purge (the
# admin's remove) and after damage found (the stored file truncated), no
# window of the old file is left, the blob is fetched once more and the
# next hits are served from windows of the new file, with the right
# bytes. SIGHUP applies a lowered keep_mapped at once, and 0 unmaps them
# all. /metrics counts the kept bytes (drp_cache_mapped_bytes). (Own
# proxy, empty cache.)
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
drp_scenario_init
drp_require_tools strace
drp_own_proxy "" "keep_mapped = 256M"
reg=$(reg_log open)
ini=$PROXY_DIR/proxy.ini
large=$LARGE_LAYER
hex=${large#sha256:}
size=$(stat -c %s "$WORK/images/large/blobs/sha256/$hex")
stored=$PROXY_DIR/cache/blobs/sha256/${hex:0:2}/$hex
url=https://registry.test/v2/test/large/blobs/$large
[ "$size" -ge $((32 << 20)) ] || drp_fail "the large layer ($size bytes) is too small for this scenario"
whole=$(((size + 4095) / 4096 * 4096)) # every window of the blob, in pages
stored_ok() { [ "$(stat -c %s "$stored" 2>/dev/null)" = "$size" ]; }

# mapped [stale]: bytes of the proxy's mappings of the stored file; with
# "stale", of any other file in the cache directory (a file removed or
# moved aside since, a spool).
mapped()
{
	local total=0 range path rest
	while read -r range _ _ _ _ path rest; do
		if [ "${1:-}" = stale ]; then
			case $path in "$PROXY_DIR/cache/"*) ;; *) continue ;; esac
			[ "$path" != "$stored" ] || [ -n "$rest" ] || continue
		else
			{ [ "$path" = "$stored" ] && [ -z "$rest" ]; } || continue
		fi
		total=$((total + 16#${range#*-} - 16#${range%-*}))
	done <"/proc/$PROXY_PID/maps"
	echo "$total"
}
stale_is() { [ "$(mapped stale)" = "$1" ]; }
mapped_is() { [ "$(mapped)" = "$1" ]; }
rss_kb() { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$PROXY_PID/status"; }

upstream_gets() { count_since "$reg" "$1" "$(req_pat GET "/v2/test/large/blobs/$large")"; }
# fetch WHAT: one GET of the blob, its bytes checked
fetch()
{
	pcurl -o "$SCEN/got" "$url"
	expect_file_digest "$1" "$SCEN/got" "$large"
	rm -f "$SCEN/got"
}

umark=$(log_mark "$reg")
fetch "cold GET"
drp_wait "the blob in the cache" 30 stored_ok
anon0=$(rss_kb RssAnon)

# ---- a hit leaves the windows mapped; the next one maps none of them
fetch "first hit"
drp_wait "the blob's windows kept ($whole bytes)" 10 mapped_is "$whole"
drp_log "after the first hit: $(mapped) bytes of the blob mapped, VmRSS $(rss_kb VmRSS) kB, RssFile $(rss_kb RssFile) kB, RssAnon $(rss_kb RssAnon) kB"
metric() { curl -s --max-time 5 "$PROXY_URL/metrics" | awk -v k="$1" '$1 == k { print $2 }'; }
expect_eq "drp_cache_mapped_bytes after the first hit" "$size" "$(metric drp_cache_mapped_bytes)"
drp_trace_start "$url"
fetch "second hit (traced)"
drp_trace_stop
maps=$(grep -cE 'mmap\(NULL, [0-9]+, PROT_READ, MAP_SHARED\|MAP_POPULATE, ' "$SCEN/run" || true)
expect_eq "windows mapped for the second hit" 0 "$maps"
expect_eq "bytes of the blob mapped after the second hit" "$whole" "$(mapped)"
# The kept windows are file pages: anonymous memory did not grow by them
# (a few MiB of TLS and connection buffers come and go). Not under the
# sanitizers (their allocator and shadow memory would count).
anon=$(rss_kb RssAnon)
drp_log "RssAnon: $anon0 kB after the fill, $anon kB with the windows kept"
if [ -z "${DRP_PROXY_WRAPPER:-}" ] && ! ldd "$DRP_PROXY" 2>/dev/null | grep -q libasan; then
	expect_le "RssAnon growth (kB) with $((whole >> 10)) kB kept" $((16 << 10)) $((anon - anon0))
fi

# ---- a purge takes the windows with the object
"$DRP_PROXY" -c "$ini" cache purge "$large" >"$SCEN/purge.out"
expect_eq "bytes of the purged blob mapped" 0 "$(mapped)"
drp_wait "no mapping of the purged file" 10 stale_is 0
umark=$(log_mark "$reg")
fetch "GET after the purge"
wait_log "$reg" "$umark" "$(req_pat GET "/v2/test/large/blobs/$large")" 1 10
expect_eq "upstream GETs after the purge" 1 "$(upstream_gets "$umark")"
drp_wait "the blob in the cache again" 30 stored_ok
fetch "hit after the purge"
drp_wait "windows of the new file kept" 10 mapped_is "$whole"

# ---- damage found: the windows of the old file go
truncate -s $((size / 2)) "$stored"
umark=$(log_mark "$reg")
fetch "GET after the truncation"
wait_log "$reg" "$umark" "$(req_pat GET "/v2/test/large/blobs/$large")" 1 10
expect_eq "upstream GETs after the truncation" 1 "$(upstream_gets "$umark")"
drp_wait "the blob in the cache again" 30 stored_ok
drp_wait "no mapping of the damaged file (nor the spool)" 10 stale_is 0
fetch "hit after the truncation"
drp_wait "windows of the new file kept" 10 mapped_is "$whole"

# ---- SIGHUP: lowered, then off
reload() # VALUE
{
	local mark
	mark=$(log_mark "$PROXY_DIR/proxy.log")
	sed -i "s/^keep_mapped = .*/keep_mapped = $1/" "$ini"
	kill -HUP "$PROXY_PID"
	wait_log "$PROXY_DIR/proxy.log" "$mark" "configuration reloaded" 1 10
	expect_eq "reloaded" 1 "$(count_since "$PROXY_DIR/proxy.log" "$mark" "configuration reloaded")"
}
reload 16M
kept=$(mapped)
expect_le "bytes mapped with keep_mapped = 16M" $((16 << 20)) "$kept"
expect_ge "bytes mapped with keep_mapped = 16M" 1 "$kept"
fetch "hit with keep_mapped = 16M"
kept=$(mapped)
expect_le "bytes mapped after a hit with keep_mapped = 16M" $((16 << 20)) "$kept"
reload 0
expect_eq "bytes mapped with keep_mapped = 0" 0 "$(mapped)"
expect_eq "drp_cache_mapped_bytes with keep_mapped = 0" 0 "$(metric drp_cache_mapped_bytes)"
fetch "hit with keep_mapped = 0"
drp_wait "the hit's windows unmapped" 10 mapped_is 0
drp_log "ok: windows kept across hits, bounded, gone with their object, and on SIGHUP"
