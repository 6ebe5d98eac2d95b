#!/bin/bash
# SPDX-License-Identifier: MIT
# No transfer holds its worker's loop: a client that reads as fast as the
# proxy writes, and an upstream that sends as fast as the proxy reads
# (both on loopback here), get at most about 1 MiB per turn of the loop,
# so that the other connections on that worker (handshakes, heads, the
# other waiters of a fill) get their turn in between. strace on the proxy
# while one client fetches the large layer cold (the fill reads it from
# the registry and writes it to the client on one loop) and then from the
# cache: between two epoll_waits of a loop thread, the bytes its socket
# reads returned and the bytes its socket writes took stay under
# TURN_MAX, where a loop that served one transfer until the socket ran
# dry took the whole layer from the registry in one turn, and wrote
# 16 MiB to the client. The counts are of system calls, not of time: a
# slower machine only makes the turns smaller.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
drp_scenario_init
drp_require_tools strace python3
TURN_MAX=$((3 * 1024 * 1024)) # 1 MiB to write and 1 MiB to read per turn, and a round more
drp_own_proxy
reg=$(reg_log open)
layer=$LARGE_LAYER
size=$(stat -c %s "$WORK/images/large/blobs/sha256/${layer#sha256:}")
[ "$size" -gt $((4 * TURN_MAX)) ] ||
	drp_fail "the large layer ($size bytes) is too small to tell turns apart"

strace -f -qq -o "$SCEN/trace" -p "$PROXY_PID" \
	-e trace=epoll_wait,epoll_pwait,read,recvfrom,recvmsg,readv,write,sendto,sendmsg,writev &
tracer=$!
drp_at_exit "kill $tracer 2>/dev/null"
traced() { [ -s "$SCEN/trace" ]; }
pcurl -o /dev/null https://registry.test/v2/
drp_wait "strace to see the proxy" 10 traced

# turns OFFSET: the largest number of bytes read, and written, by one
# loop thread between two of its epoll_waits, in the trace from byte
# OFFSET on.
turns()
{
	python3 - "$SCEN/trace" "$1" <<-'EOF'
		import re, sys
		call = re.compile(r'^(\d+) +(\w+)\(')
		ret = re.compile(r'= (-?\d+)')
		reads = {"read", "recvfrom", "recvmsg", "readv"}
		writes = {"write", "sendto", "sendmsg", "writev"}
		pending, turn, worst = {}, {}, [0, 0]
		f = open(sys.argv[1], errors="replace")
		f.seek(int(sys.argv[2]))
		f.readline()  # the rest of a line cut at the offset
		for line in f:
		    m = re.match(r'^(\d+) +<\.\.\. (\w+) resumed>', line)
		    if m:
		        tid, name = m.group(1), m.group(2)
		        pending.pop(tid, None)
		    else:
		        m = call.match(line)
		        if not m:
		            continue
		        tid, name = m.group(1), m.group(2)
		        if line.rstrip().endswith("<unfinished ...>"):
		            pending[tid] = name
		            if name.startswith("epoll"):
		                turn[tid] = [0, 0]
		            continue
		    if name.startswith("epoll"):
		        turn[tid] = [0, 0]
		        continue
		    if tid not in turn:
		        continue  # not a loop thread (yet)
		    r = ret.search(line[line.rfind(")"):])
		    n = int(r.group(1)) if r else -1
		    if n <= 0:
		        continue
		    k = 0 if name in reads else 1 if name in writes else None
		    if k is None:
		        continue
		    turn[tid][k] += n
		    worst[k] = max(worst[k], turn[tid][k])
		print(worst[0], worst[1])
	EOF
}

at=$(stat -c %s "$SCEN/trace")
mark=$(log_mark "$reg")
PCURL_TIMEOUT=300 pcurl -o "$SCEN/cold" "https://registry.test/v2/test/large/blobs/$layer"
expect_file_digest "large layer, cold" "$SCEN/cold" "$layer"
rm -f "$SCEN/cold"
wait_log "$reg" "$mark" "$(req_pat GET "/v2/test/large/blobs/$layer")" 1 10
read -r rd wr <<<"$(turns "$at")"
drp_log "cold: at most $rd bytes read and $wr written in one turn of a loop"
# It can fail: the layer went through the traced loops.
expect_ge "bytes the loops read in the busiest turn of the cold fetch" 65536 "$rd"
expect_le "bytes one loop read from its sockets in one turn (cold fill)" $TURN_MAX "$rd"
expect_le "bytes one loop wrote to its sockets in one turn (cold fill)" $TURN_MAX "$wr"

at=$(stat -c %s "$SCEN/trace")
mark=$(log_mark "$reg")
PCURL_TIMEOUT=300 pcurl -o "$SCEN/hot" "https://registry.test/v2/test/large/blobs/$layer"
expect_file_digest "large layer, from the cache" "$SCEN/hot" "$layer"
rm -f "$SCEN/hot"
pcurl -o /dev/null https://registry.test/v2/ # a fence in the registry's log
wait_log "$reg" "$mark" "$(req_pat GET /v2/)" 1 5
expect_eq "registry GETs of the layer for the second fetch" 0 \
	"$(count_since "$reg" "$mark" "/v2/test/large/blobs/")"
read -r rd wr <<<"$(turns "$at")"
drp_log "hot: at most $wr bytes written in one turn of a loop"
expect_ge "bytes the loops wrote in the busiest turn of the hot fetch" 65536 "$wr"
expect_le "bytes one loop wrote to its sockets in one turn (cache hit)" $TURN_MAX "$wr"
kill -INT "$tracer"
wait "$tracer" || true
drp_log "ok"
