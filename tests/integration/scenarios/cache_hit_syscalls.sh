#!/bin/bash
# SPDX-License-Identifier: MIT
# What a cached hit costs in system calls, counted by strace on the proxy
# while one client makes 40 requests on one keep-alive connection
# (CONNECT, TLS): a manifest GET by tag, its HEAD and a small blob, each
# answered from the cache with the right bytes and headers. Once warm,
# no file of the cache is opened twice (the tag and media-type records
# and small objects are kept in memory; a copy is only stat'ed), and a
# request costs one read of the socket, not also reads that find it
# empty after the response.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
drp_scenario_init
drp_require_tools strace
drp_own_proxy
reg=$(reg_log open)
accept='Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json'
murl=https://registry.test/v2/test/small/manifests/v1
config=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["config"]["digest"])' \
	"$WORK/images/small/blobs/sha256/${SMALL_DIGEST#sha256:}")
burl=https://registry.test/v2/test/small/blobs/$config

# Cached, then read once (what a proxy in service has done).
for _ in 1 2; do
	pcurl -o "$SCEN/m" -H "$accept" "$murl"
	pcurl -o "$SCEN/b" "$burl"
done
expect_file_digest "manifest" "$SCEN/m" "$SMALL_DIGEST"
expect_file_digest "config" "$SCEN/b" "$config"

n=40
# One curl per method, each on one connection: HEADs, then GETs.
heads=()
gets=()
for i in $(seq 1 $n); do
	if [ $((i % 4)) = 1 ]; then heads+=(-o "$SCEN/h.$i" "$murl"); fi
	if [ $((i % 4)) = 0 ]; then gets+=(-o "$SCEN/b.$i" "$burl"); fi
	if [ $((i % 4)) -ge 2 ]; then gets+=(-o "$SCEN/m.$i" "$murl"); fi
done

mark=$(log_mark "$reg")
strace -f -qq -o "$SCEN/trace" -p "$PROXY_PID" -e trace=recvfrom,read,openat,open,newfstatat,statx &
tracer=$!
drp_at_exit "kill $tracer 2>/dev/null"
# Attached once a request shows in the trace (strace attaches a moment
# after it starts).
traced() {
	pcurl -o /dev/null https://registry.test/v2/
	[ -s "$SCEN/trace" ]
}
drp_wait "strace to see the proxy" 10 traced
start=$(wc -l <"$SCEN/trace")
pcurl -D "$SCEN/heads.h" -I -H "$accept" "${heads[@]}"
pcurl -D "$SCEN/gets.h" -H "$accept" "${gets[@]}"
kill -INT "$tracer"
wait "$tracer" || true
tail -n +"$((start + 1))" "$SCEN/trace" >"$SCEN/run"

# Right answers, all from the cache, none from the registry.
for f in "$SCEN"/m.*; do expect_file_digest "GET $(basename "$f")" "$f" "$SMALL_DIGEST"; done
for f in "$SCEN"/b.*; do expect_file_digest "GET $(basename "$f")" "$f" "$config"; done
expect_eq "HEAD answers" $((n / 4)) "$(grep -c '^HTTP/1.1 200 OK' "$SCEN/heads.h")"
expect_eq "GET answers" $((n - n / 4)) "$(grep -c '^HTTP/1.1 200 OK' "$SCEN/gets.h")"
expect_eq "hits" $n "$(grep -ci '^X-Cache: HIT' "$SCEN/heads.h" "$SCEN/gets.h" | awk -F: '{ s += $2 } END { print s }')"
expect_eq "HEAD Content-Length" "$(stat -c %s "$SCEN/m")" \
	"$(hdr Content-Length <"$SCEN/heads.h" | head -n 1)"
expect_eq "HEAD Docker-Content-Digest" "$SMALL_DIGEST" "$(hdr Docker-Content-Digest <"$SCEN/heads.h" | head -n 1)"
pcurl -o /dev/null https://registry.test/v2/ # a fence in the registry's log
settle_upstream registry.test "$reg"
expect_eq "registry requests for the manifests and blobs" 0 \
	"$(count_since "$reg" "$mark" '/v2/test/small/')"

# The cache's files: none opened twice (each record and small object is
# read once, then kept; one stored or written behind during the warm-up
# may be read for the first time now); on main every hit opened its tag
# record and its object.
opens=$(grep -cE 'open(at)?\(.*"(meta|blobs)/' "$SCEN/run" || true)
again=$({ grep -oE 'open(at)?\(.*"(meta|blobs)/[^"]*"' "$SCEN/run" || true; } | sort | uniq -d | wc -l)
{ grep -E 'open(at)?\(.*"(meta|blobs)/' "$SCEN/run" || true; } | drp_log_first 3 "open: "
drp_log "cache files opened: $opens for $n hits"
expect_eq "cache files opened more than once for $n hits" 0 "$again"
expect_le "cache files opened for $n hits" 4 "$opens"
# The socket, once the connections are up (the reads into the 64 KiB
# read-ahead of a TLS session): one read per request, that found its
# request; the reads that found the socket empty were 2.8 per request
# (one after every response, one more when the next request was kicked).
reads=$(grep -cE '^[0-9]+ +recvfrom\([0-9]+, [^,]+, 65536, .*= [0-9]+$' "$SCEN/run" || true)
empty=$(grep -cE '^[0-9]+ +recvfrom\([0-9]+, [^,]+, 65536, .*= -1 EAGAIN' "$SCEN/run" || true)
drp_log "socket reads: $reads that got bytes, $empty that found nothing, for $n requests"
expect_le "socket reads that got bytes, for $n requests" $((n + 4)) "$reads"
expect_le "socket reads that found nothing, for $n requests" $((n / 4)) "$empty"
