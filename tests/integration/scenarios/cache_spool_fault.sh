#!/bin/bash
# SPDX-License-Identifier: MIT
# The spool of a cold blob fails under the proxy while clients stream from
# it: the file is truncated behind its back again and again (as a disk
# error would make its pages unreadable). Waiters and the hash jobs read the
# spool through mapped windows, where that is a SIGBUS: the proxy must turn
# it into a failed transfer, not die. Bytes lost after the hash read them
# are found by the verdict (a hole or a short spool). The client's transfer
# fails, nothing is cached, and the proxy keeps serving.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
drp_scenario_init
# A truncation between the proxy's probe of a mapped window and GnuTLS
# reading it (src/proxy/conn.c, client_flush: probe_mapped, then
# tls_write_mapped) faults inside gnutls_record_send, after GnuTLS has
# allocated the record it encrypts into (16 KiB and its headers) and
# before it queues it: the guard leaves GnuTLS by siglongjmp and that
# buffer is lost, one per such fault (LeakSanitizer: a direct leak of
# 16895 bytes from libgnutls, in about one run of three). Closing it
# would take a copy of every mapped slice before GnuTLS sees it, on the
# path of every waiter. So, under the sanitizers, this scenario's
# processes do not report leaks of what libgnutls allocated (the
# allocation stack ends inside libgnutls, which has no frame pointers,
# so the module is all a suppression can name); leaks of the proxy's own
# allocations on these fault paths (the fill, its spool, the waiters,
# the connections) are still reported, and ASan's other checks and
# UBSan run as everywhere. print_suppressions=0: a matched suppression
# would otherwise write a report file, which fails the scenario.
printf 'leak:libgnutls.so\n' >"$SCEN/lsan.supp"
export LSAN_OPTIONS="${LSAN_OPTIONS:+$LSAN_OPTIONS:}suppressions=$SCEN/lsan.supp:print_suppressions=0"
drp_start_fakeupstream $((10 * 1024 * 1024))
DRP_IT_REGISTRIES="registry.test bad.test" drp_proxy_conf cache-fault "$(drp_free_port)"
drp_start_proxy cache-fault
layer=$LARGE_LAYER
url=https://bad.test/v2/test/slow/blobs/$layer

# spool_fds: the proxy's open spool files (unlinked temp files in the
# cache's tmp/).
spool_fds()
{
	local l
	for l in /proc/"$PROXY_PID"/fd/*; do
		case "$(readlink "$l" 2>/dev/null)" in
		*/tmp/*"(deleted)" | */tmp/\#*) echo "$l" ;;
		esac
	done
}

has_spool() { [ -n "$(spool_fds)" ]; }

rc=0
PCURL_TIMEOUT=60 pcurl -o "$SCEN/got" "$url" 2>"$SCEN/err" &
client=$!
drp_wait "a spool file" 10 has_spool
# Some megabytes in, being read.
some_bytes() { [ "$(stat -c %s "$SCEN/got" 2>/dev/null || echo 0)" -ge $((4 << 20)) ]; }
drp_wait "the transfer under way" 20 some_bytes
truncs=0
for _ in $(seq 200); do
	for fd in $(spool_fds); do
		truncate -s 0 "$fd" 2>/dev/null && truncs=$((truncs + 1))
	done
	sleep 0.005
done
wait "$client" || rc=$?
[ "$truncs" -gt 0 ] || drp_fail "no spool file to truncate"
drp_log "ok: truncated the spool $truncs times"
if [ $rc = 0 ] && cmp -s "$SCEN/got" "$WORK/allblobs/${layer#sha256:}"; then
	drp_fail "the transfer completed with the right bytes despite the broken spool"
fi
if [ $rc = 0 ] && [ "$(stat -c %s "$SCEN/got")" = "$(stat -c %s "$WORK/allblobs/${layer#sha256:}")" ]; then
	drp_fail "a complete, clean response with wrong bytes"
fi
drp_log "ok: the transfer failed (curl exit $rc, $(stat -c %s "$SCEN/got") bytes)"
drp_alive "$PROXY_PID" || drp_fail "the proxy died"
drp_log "ok: the proxy is alive"
grep -E "I/O error|do not match|spool" "$PROXY_DIR/proxy.log" | drp_log_first 3 "proxy log: "
# Why it failed, in the log: a fault reading the spool (a waiter's, or the
# hash's, which leaves the fill unverifiable), a hash that does not match,
# or a spool that lost bytes (a hole, a short file) by the verdict.
grep -qE "I/O error|spool read for hashing|not verifiable|do not match|lost bytes before the verdict" "$PROXY_DIR/proxy.log" ||
	drp_fail "no log line says why the transfer failed"
drp_log "ok: the log says why"
cache_has_content "$WORK/allblobs/${layer#sha256:}" && drp_fail "the layer is cached"
drp_log "ok: the layer is not cached"

# Still serving: a small blob through the same proxy, verified and cached.
small=${SMALL_LAYERS%% *}
pcurl -o "$SCEN/small" "https://bad.test/v2/test/good/blobs/$small"
expect_file_digest "small blob after the fault" "$SCEN/small" "$small"
