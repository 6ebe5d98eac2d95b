#!/bin/bash
# SPDX-License-Identifier: MIT
# The cache's disk fills up while a fill is under way (cache_diskfull.sh
# covers a layer that does not fit from the start), on a 96 MiB tmpfs as
# the cache dir, with a 16 MiB blob arriving at 4 MiB/s for three
# clients, and another process filling the disk to the brim once the
# clients have 2 MiB.
# - A blob with a Content-Length has its room allocated before its first
#   byte: the three clients get it whole, from one upstream GET, and the
#   filler gets what is left.
# - A chunked blob (no length to allocate) cannot: the clients get a
#   clean error (a transfer cut short of its length) or the right bytes,
#   never a complete response with wrong ones; the proxy logs the failed
#   spool write, stops the download (nobody can be served from that
#   spool) and lives.
# With the disk still full, a cold image is pulled byte for byte (passed
# through) and nothing is cached from it, with one log line about the
# lack of room (not one per blob) and a count in /metrics; `cache verify`
# finds nothing bad. Once the disk has room again, the blob is fetched
# whole.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
drp_scenario_init
drp_require_tools skopeo mount umount dd
rate=$((4 * 1024 * 1024))
drp_start_fakeupstream $rate
# tmpfs_cache NAME: a 96 MiB tmpfs as the cache dir of proxy NAME.
tmpfs_cache()
{
	local d=$WORK/$1/cache
	mkdir -p "$d"
	mount -t tmpfs -o size=96m "drp-$1" "$d" || drp_fail "cannot mount a tmpfs on $d"
	drp_at_exit "umount -l '$d'"
}

# A 16 MiB blob of its own (incompressible, deterministic), served by the
# fake upstream by its digest.
python3 -c 'import random,sys; sys.stdout.buffer.write(random.Random("drp-fault-diskfull").randbytes(16 << 20))' \
	>"$SCEN/blob"
hex=$(sha256sum <"$SCEN/blob" | cut -c1-64)
blob=sha256:$hex
ln -f "$SCEN/blob" "$WORK/allblobs/$hex"
drp_at_exit "rm -f '$WORK/allblobs/$hex'"
size=$(stat -c %s "$SCEN/blob")
fake=$WORK/logs/fake.out

size_at_least() { [ "$(stat -c %s "$1" 2>/dev/null || echo 0)" -ge "$2" ]; }

# three_clients REPO: three clients fetch the blob from REPO of the fake
# upstream; once each has 2 MiB, the disk is filled to the brim.
# Their curl exit codes and sizes are in $SCEN/rc.1..3.
three_clients()
{
	local repo=$1 i p pids=() rc=0
	rm -f "$SCEN"/got.* "$SCEN"/rc.* "$SCEN"/err.*
	for i in 1 2 3; do
		(
			rc=0
			PCURL_TIMEOUT=60 pcurl -o "$SCEN/got.$i" "https://bad.test/v2/test/$repo/blobs/$blob" 2>"$SCEN/err.$i" || rc=$?
			echo "$rc $(stat -c %s "$SCEN/got.$i" 2>/dev/null || echo 0)" >"$SCEN/rc.$i"
		) &
		pids+=($!)
	done
	for i in 1 2 3; do drp_wait "client $i under way" 20 size_at_least "$SCEN/got.$i" $((2 << 20)); done
	dd if=/dev/zero of="$cdir/filler" bs=1M status=none 2>"$SCEN/dd.err" || rc=$?
	expect_match "the filler ran out of room" 'No space left on device' "$(cat "$SCEN/dd.err")"
	drp_log "disk full: $(df -h "$cdir" | tail -n 1)"
	for p in "${pids[@]}"; do wait "$p"; done
}

# A blob with a Content-Length: its 16 MiB are the fill's from the head
# on (a quarter of the disk's free room is more than 16 MiB: before the
# allocation came for every blob, this one got none and failed here).
name=fault-diskfull-room
tmpfs_cache "$name"
cdir=$WORK/$name/cache
DRP_IT_REGISTRIES="registry.test bad.test" drp_proxy_conf "$name" "$(drp_free_port)"
drp_start_proxy "$name"
fmark=$(log_mark "$fake")
three_clients slow
for i in 1 2 3; do
	read -r rc got <"$SCEN/rc.$i"
	expect_eq "reserved room: client $i's curl exit code ($(cat "$SCEN/err.$i"))" 0 "$rc"
	expect_file_digest "reserved room: client $i's bytes" "$SCEN/got.$i" "$blob"
done
expect_eq "reserved room: upstream GETs of the blob" 1 \
	"$(count_since "$fake" "$fmark" "$(req_pat GET "/v2/test/slow/blobs/$blob")")"
expect_eq "reserved room: proxy log lines about a failed spool write" 0 \
	"$(count_since "$PROXY_DIR/proxy.log" 0 "spool write")"
filled=$(stat -c %s "$cdir/filler")
expect_le "reserved room: the filler's bytes (the fill's 16 MiB were taken)" $((80 << 20)) "$filled"
drp_log "reserved room: the filler got $((filled >> 20)) MiB of 96"
drp_alive "$PROXY_PID" || drp_fail "the proxy died"

# A chunked blob: the disk fills up under the fill.
name=fault-diskfull
tmpfs_cache "$name"
cdir=$WORK/$name/cache
DRP_IT_REGISTRIES="registry.test bad.test" drp_proxy_conf "$name" "$(drp_free_port)"
drp_start_proxy "$name"
cached_blobs() { find "$cdir/blobs" -type f 2>/dev/null | wc -l; }

fmark=$(log_mark "$fake")
pmark=$(log_mark "$PROXY_DIR/proxy.log")
three_clients chunked
errors=0
for i in 1 2 3; do
	read -r rc got <"$SCEN/rc.$i"
	if [ "$rc" = 0 ]; then
		expect_file_digest "client $i exited 0: its bytes" "$SCEN/got.$i" "$blob"
	else
		expect_le "client $i (curl exit $rc): bytes, short of the blob" $((size - 1)) "$got"
		errors=$((errors + 1))
	fi
done
drp_log "clients with a clean error: $errors of 3"
expect_eq "clients whose transfer the full disk cut" 3 "$errors"
wait_log "$PROXY_DIR/proxy.log" "$pmark" "${blob}: spool write" 1 10
expect_match "proxy log: the failed spool write" "${blob}: spool write: No space left on device" \
	"$(log_since "$PROXY_DIR/proxy.log" "$pmark")"
expect_eq "upstream GETs of the blob" 1 "$(count_since "$fake" "$fmark" "$(req_pat GET "/v2/test/chunked/blobs/$blob")")"
# Nobody can be served from a spool that cannot be written: the fill
# stops its download then (the upstream sees its connection closed
# mid-body), rather than drain the rest of a blob nobody gets.
cut="cut: GET /v2/test/chunked/blobs/$blob after"
wait_log "$fake" "$fmark" "$cut" 1 10
expect_eq "upstream transfers of the blob cut short by the proxy" 1 "$(count_since "$fake" "$fmark" "$cut")"
drp_log "upstream: $(log_since "$fake" "$fmark" | grep -F "$cut" | sed 's/.* after/cut after/')"
drp_alive "$PROXY_PID" || drp_fail "the proxy died"

# Still full: a cold image passes through, byte for byte, uncached. The
# failed fill's spool went with it (its room is free again once the
# proxy holds no deleted file on the tmpfs): the filler takes that room
# too.
open_spools() { find "/proc/$PROXY_PID/fd" -lname "$cdir/*(deleted)" 2>/dev/null | wc -l; }
no_open_spool() { [ "$(open_spools)" = 0 ]; }
drp_wait "the failed fill's spool closed" 10 no_open_spool
dd if=/dev/zero of="$cdir/filler.more" bs=64k status=none 2>/dev/null || true
drp_log "disk full again: $(df -h "$cdir" | tail -n 1)"
pmark=$(log_mark "$PROXY_DIR/proxy.log")
pskopeo copy --quiet --retry-times 0 --all docker://registry.test/test/multi:v1 "dir:$SCEN/multi"
check_pulled multi "$SCEN/multi"
expect_eq "blobs cached while the disk is full" 0 "$(cached_blobs)"
# Every cold blob found no room for its spool: one log line for the
# pull, not one per blob (at most one a minute, with a count), and each
# of them counted in /metrics.
# shellcheck disable=SC2086
nblobs=$(printf '%s\n' $MULTI_AMD64_BLOBS $MULTI_ARM64_BLOBS | sort -u | wc -l)
drp_log "proxy log: $(log_since "$PROXY_DIR/proxy.log" "$pmark" | grep -m1 'no room for')"
expect_eq "proxy log lines about no room, a pull of $nblobs cold blobs" 1 \
	"$(count_since "$PROXY_DIR/proxy.log" "$pmark" "on the spool's disk")"
curl -s --noproxy '*' "http://127.0.0.1:$PROXY_PORT/metrics" >"$SCEN/metrics"
expect_ge "blobs passed through for lack of room (/metrics)" "$nblobs" \
	"$(python3 "$DRP_IT_DIR/promq.py" sum "$SCEN/metrics" drp_fills_no_room_total)"
"$DRP_PROXY" -c "$PROXY_DIR/proxy.ini" cache verify >"$SCEN/verify" 2>&1 ||
	drp_fail "cache verify: $(cat "$SCEN/verify")"
expect_match "cache verify: nothing bad" '^verified [0-9]+ object\(s\), .*: 0 bad' "$(cat "$SCEN/verify")"
drp_alive "$PROXY_PID" || drp_fail "the proxy died"

# Room again: the blob is fetched whole. (The fs backend stores nothing
# for 60 s after ENOSPC, docker-registry-proxy.ini(5) max_size: whether
# it is stored is not this test's business, only that nothing bad is.)
rm -f "$cdir/filler" "$cdir/filler.more"
pcurl -o "$SCEN/again" "https://bad.test/v2/test/good/blobs/$blob"
expect_file_digest "the blob once the disk has room" "$SCEN/again" "$blob"
expect_match "proxy log: caching paused" "No space left on device: not caching for 60 s" "$(cat "$PROXY_DIR/proxy.log")"
"$DRP_PROXY" -c "$PROXY_DIR/proxy.ini" cache verify >"$SCEN/verify" 2>&1 ||
	drp_fail "cache verify: $(cat "$SCEN/verify")"
expect_match "cache verify in the end: nothing bad" '^verified [0-9]+ object\(s\), .*: 0 bad' "$(cat "$SCEN/verify")"
drp_alive "$PROXY_PID" || drp_fail "the proxy died"
