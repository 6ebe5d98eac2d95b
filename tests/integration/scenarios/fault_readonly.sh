#!/bin/bash
# SPDX-License-Identifier: MIT
# The cache's filesystem turns read-only under the running proxy, as ext4
# does by itself after an I/O error (errors=remount-ro): an ext4 image on
# a loop device, aborted with the debugging mount option `abort`, which
# remounts it read-only although the proxy has files open for writing (a
# plain `mount -o remount,ro` refuses then, and root ignores mode bits, so
# a chmod would prove nothing). What is cached is still served from the
# cache, byte for byte, with no upstream GET of its blobs; a cold image is
# pulled byte for byte (passed through) and stays uncached (its blobs go
# upstream again on the next pull); `cache verify` finds nothing bad; the
# proxy logs it, lives, and stops cleanly. Then an operator's repair:
# e2fsck, mount, `cache verify` on the directory (0 bad), start: the cold
# image is cached on its next pull and then served with no upstream GET
# of its blobs.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
drp_scenario_init
drp_require_tools skopeo mount umount mkfs.ext4 e2fsck losetup
name=fault-readonly
cdir=$WORK/$name/cache
img=$SCEN/cache.ext4
mkdir -p "$cdir"
truncate -s 128M "$img"
mkfs.ext4 -q -F "$img" || drp_fail "mkfs.ext4 failed"
mount -o loop,errors=remount-ro "$img" "$cdir" || drp_fail "cannot mount an ext4 image on $cdir"
drp_at_exit "umount -l '$cdir' 2>/dev/null"
drp_proxy_conf "$name" "$(drp_free_port)"
drp_start_proxy "$name"
reg=$(reg_log open)
obj() { echo "$cdir/blobs/sha256/${1:7:2}/${1#sha256:}"; }
all_stored() {
	local d
	for d in "$@"; do [ -s "$(obj "$d")" ] || return 1; done
}
# blob_gets MARK IMAGE DIGEST...: upstream GETs of those blobs of
# test/IMAGE since MARK.
blob_gets()
{
	local mark=$1 img=$2 n=0 d
	shift 2
	for d in "$@"; do
		n=$((n + $(count_since "$reg" "$mark" "$(req_pat GET "/v2/test/$img/blobs/$d")")))
	done
	echo "$n"
}
# pull NAME: through the proxy, checked byte for byte.
pull()
{
	rm -rf "${SCEN:?}/$1"
	pskopeo copy --quiet --retry-times 0 --all "docker://registry.test/test/$1:v1" "dir:$SCEN/$1"
	check_pulled "$1" "$SCEN/$1"
}
multi_blobs="$MULTI_AMD64_BLOBS $MULTI_ARM64_BLOBS"

pull small
# shellcheck disable=SC2086
drp_wait "the small image stored" 20 all_stored "$SMALL_DIGEST" $SMALL_BLOBS
mount -o remount,abort "$cdir" || drp_fail "cannot abort the filesystem of $cdir"
if touch "$cdir/probe" 2>/dev/null; then drp_fail "$cdir is still writable"; fi
expect_match "the filesystem is read-only now" '(^|,)(ro|emergency_ro)(,|$)' "$(findmnt -n -o OPTIONS "$cdir")"
drp_log "ok: $cdir is read-only, for root too"

# Cached: served from the cache.
mark=$(log_mark "$reg")
pull small
settle_upstream registry.test "$reg"
# shellcheck disable=SC2086
expect_eq "upstream GETs of the cached image's blobs" 0 "$(blob_gets "$mark" small $SMALL_BLOBS)"

# Cold: passed through, twice (not cached in between).
pmark=$(log_mark "$PROXY_DIR/proxy.log")
mark=$(log_mark "$reg")
pull multi
pull multi
# shellcheck disable=SC2086
wait_log "$reg" "$mark" '"GET /v2/test/multi/blobs/' 8 10
# shellcheck disable=SC2086
expect_eq "upstream GETs of the cold image's blobs, two pulls" 8 "$(blob_gets "$mark" multi $multi_blobs)"
expect_match "proxy log: the read-only cache" 'Read-only file system' "$(log_since "$PROXY_DIR/proxy.log" "$pmark")"
drp_log "proxy log: $(log_since "$PROXY_DIR/proxy.log" "$pmark" | grep -m1 'Read-only file system')"
# Once per episode, not once per object: the fs backend pauses caching
# (nospace_retry), and the fills' own spool fails once a minute in the
# log (two lines, where each of the 16 cold requests wrote two).
expect_le "proxy log lines about the read-only cache, two pulls" 2 \
	"$(count_since "$PROXY_DIR/proxy.log" "$pmark" 'Read-only file system')"
# shellcheck disable=SC2086
for d in $multi_blobs; do [ ! -e "$(obj "$d")" ] || drp_fail "blob $d cached on a read-only disk"; done
"$DRP_PROXY" -c "$PROXY_DIR/proxy.ini" cache verify >"$SCEN/verify" 2>&1 ||
	drp_fail "cache verify: $(cat "$SCEN/verify")"
expect_match "cache verify: nothing bad" '^verified [0-9]+ object\(s\), .*: 0 bad' "$(cat "$SCEN/verify")"
drp_alive "$PROXY_PID" || drp_fail "the proxy died"

drp_unwatch_proxies
drp_stop "$PROXY_PID" 15 || drp_fail "the proxy did not stop within 15 s of SIGTERM"
expect_eq "exit status of the proxy with a read-only cache" 0 "$DRP_STOP_STATUS"

# The repair: check the filesystem, mount it again, verify the cache.
umount "$cdir" || drp_fail "cannot unmount $cdir"
rc=0
e2fsck -fy "$img" >"$SCEN/fsck" 2>&1 || rc=$?
[ $rc -le 1 ] || drp_fail "e2fsck exit $rc: $(tail -n 5 "$SCEN/fsck")"
mount -o loop,errors=remount-ro "$img" "$cdir" || drp_fail "cannot mount $cdir again"
"$DRP_PROXY" -c "$PROXY_DIR/proxy.ini" cache verify >"$SCEN/verify" 2>&1 ||
	drp_fail "cache verify after the repair: $(cat "$SCEN/verify")"
expect_match "cache verify after the repair: nothing bad" '^verified [0-9]+ object\(s\), .*: 0 bad' "$(cat "$SCEN/verify")"
drp_start_proxy "$name"
mark=$(log_mark "$reg")
pull small
settle_upstream registry.test "$reg"
# shellcheck disable=SC2086
expect_eq "upstream GETs of the cached image's blobs after the repair" 0 "$(blob_gets "$mark" small $SMALL_BLOBS)"
pull multi
# shellcheck disable=SC2086
drp_wait "the multi image stored" 20 all_stored $multi_blobs
mark=$(log_mark "$reg")
pull multi
settle_upstream registry.test "$reg"
# shellcheck disable=SC2086
expect_eq "upstream GETs of its blobs once cached" 0 "$(blob_gets "$mark" multi $multi_blobs)"
