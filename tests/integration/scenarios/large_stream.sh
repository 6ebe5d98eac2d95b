#!/bin/bash
# SPDX-License-Identifier: MIT
# The large layer streams through the interception in bounded memory:
# correct bytes, and the proxy's anonymous memory (RssAnon: what it
# allocates) grows by far less than the layer. Mapped file pages do not
# count (the spool's and the stored file's windows, which this proxy keeps
# with keep_mapped = 256M: the whole layer, in RssFile, by design).
# Its own proxy: the first GET is a cache miss (streamed to the client and
# into the cache at once), the second a hit.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
drp_scenario_init
# Under AddressSanitizer freed memory waits in a quarantine (256 MB by
# default) before reuse, which is RSS this check would count against the
# proxy: keep it small for this proxy.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=8"
drp_own_proxy "" "keep_mapped = 256M"
status_kb() { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$PROXY_PID/status"; }
anon0=$(status_kb RssAnon)
# RssAnon has no high-water mark of its own: sampled every 50 ms while the
# transfers run (a sample can only miss a peak, never make one up).
(
	peak=0
	while v=$(status_kb RssAnon 2>/dev/null) && [ -n "$v" ]; do
		if [ "$v" -gt "$peak" ]; then
			peak=$v
			echo "$peak" >"$SCEN/anon.new"
			mv "$SCEN/anon.new" "$SCEN/anon.peak"
		fi
		sleep 0.05
	done
) &
sampler=$!
drp_at_exit "kill $sampler 2>/dev/null"
layer=$LARGE_LAYER
size=$(stat -c %s "$WORK/images/large/blobs/sha256/${layer#sha256:}")

ts=$(date +%s.%N)
PCURL_TIMEOUT=300 pcurl -o "$SCEN/large" "https://registry.test/v2/test/large/blobs/$layer"
te=$(date +%s.%N)
expect_file_digest "large blob" "$SCEN/large" "$layer"
rm -f "$SCEN/large"
drp_log "$((size >> 20)) MiB in $(awk -v a="$ts" -v b="$te" 'BEGIN { printf "%.2f", b - a }') s"

# Slow reader: the proxy must apply back-pressure, not buffer the layer.
PCURL_TIMEOUT=300 pcurl --limit-rate 20M -o "$SCEN/large" "https://registry.test/v2/test/large/blobs/$layer"
expect_file_digest "large blob, slow reader" "$SCEN/large" "$layer"
rm -f "$SCEN/large"

# Sanitizers and valgrind keep freed memory in quarantine: no bound then.
if [ -n "${DRP_PROXY_WRAPPER:-}" ] || ldd "$DRP_PROXY" 2>/dev/null | grep -q libasan; then
	drp_log "memory bound not checked (sanitizer or wrapper)"
	exit 0
fi
kill "$sampler" 2>/dev/null || true
wait "$sampler" 2>/dev/null || true
peak=$(cat "$SCEN/anon.peak")
drp_log "proxy RssAnon at start ${anon0} kB, peak ${peak} kB; VmHWM $(status_kb VmHWM) kB, RssFile $(status_kb RssFile) kB"
expect_le "proxy peak RssAnon growth (kB), layer $((size >> 10)) kB" $((size / 1024 / 3)) $((peak - anon0))
stored=$PROXY_DIR/cache/blobs/sha256/${layer:7:2}/${layer#sha256:}
kept=0
while read -r range _ _ _ _ path rest; do
	{ [ "$path" = "$stored" ] && [ -z "$rest" ]; } || continue
	kept=$((kept + 16#${range#*-} - 16#${range%-*}))
done <"/proc/$PROXY_PID/maps"
# The hit left the layer's windows mapped: the bound above held with them.
expect_ge "stored layer's bytes kept mapped (VmRSS counts them, RssAnon not)" "$size" "$kept"
