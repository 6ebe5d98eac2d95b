#!/bin/bash
# SPDX-License-Identifier: MIT
# An upstream that serves wrong bytes for a digest, or too few: the
# client's transfer fails (never a clean, complete response with wrong
# bytes), nothing is cached, the next request asks the upstream again,
# the proxy logs it and keeps running.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
drp_scenario_init
drp_start_fakeupstream $((50 * 1024 * 1024))
DRP_IT_REGISTRIES="registry.test bad.test" drp_proxy_conf cache-bad "$(drp_free_port)"
drp_start_proxy cache-bad
layer=${SMALL_LAYERS%% *}
hex=${layer#sha256:}
python3 -c 'import random,sys; sys.stdout.buffer.write(random.Random("drp-bad-" + sys.argv[1]).randbytes(int(sys.argv[2])))' \
	"$hex" "$(stat -c %s "$WORK/allblobs/$hex")" >"$SCEN/wrong"

for mode in bad short; do
	mark=$(log_mark "$WORK/logs/fake.out")
	for attempt in 1 2; do
		# A failed transfer: an error status (the proxy found out before
		# it answered) or a broken body (curl exits non-zero).
		rc=0
		code=$(pcurl -o "$SCEN/got" -w '%{http_code}' "https://bad.test/v2/test/$mode/blobs/$layer" 2>"$SCEN/err") || rc=$?
		if [ $rc = 0 ] && [ "${code:0:1}" = 2 ]; then
			drp_fail "$mode blob, attempt $attempt: a clean $code response ($(stat -c %s "$SCEN/got") bytes)"
		fi
		drp_log "ok: $mode blob, attempt $attempt: transfer failed (curl exit $rc, status $code $(tail -n 1 "$SCEN/err"))"
	done
	# Nothing was cached: the second attempt went upstream again.
	wait_log "$WORK/logs/fake.out" "$mark" "$(req_pat GET "/v2/test/$mode/blobs/$layer")" 2 5
	expect_eq "$mode: upstream GETs for two attempts" 2 \
		"$(count_since "$WORK/logs/fake.out" "$mark" "$(req_pat GET "/v2/test/$mode/blobs/$layer")")"
done
if cache_has_content "$SCEN/wrong"; then
	drp_fail "the wrong bytes are in the cache"
fi
drp_log "ok: the wrong bytes are not in the cache"
grep -qF "$hex" "$WORK/cache-bad/proxy.log" || drp_fail "the proxy did not log the bad digest $hex"
drp_log "ok: proxy log: $(grep -F "$hex" "$WORK/cache-bad/proxy.log" | head -n 1)"

# Manifests. One whose bytes do not hash to the upstream's
# Docker-Content-Digest: 502, not cached (each request asks again).
mark=$(log_mark "$WORK/logs/fake.out")
for attempt in 1 2; do
	code=$(pcurl -o "$SCEN/got" -w '%{http_code}' "https://bad.test/v2/test/baddigest/manifests/v1" || true)
	expect_eq "manifest with a wrong Docker-Content-Digest, attempt $attempt" 502 "$code"
done
wait_log "$WORK/logs/fake.out" "$mark" "$(req_pat GET /v2/test/baddigest/manifests/v1)" 2 5
# A signed schema1 manifest: its digest is that of the unsigned payload, so
# its bytes cannot be checked; they are passed on as they are, not cached.
mark=$(log_mark "$WORK/logs/fake.out")
for attempt in 1 2; do
	pcurl -o "$SCEN/got" -D "$SCEN/h" "https://bad.test/v2/test/schema1/manifests/v1"
	expect_eq "schema1 manifest, attempt $attempt: X-Cache" PASS "$(hdr X-Cache <"$SCEN/h")"
	expect_match "schema1 manifest, attempt $attempt: Content-Type" 'manifest\.v1\+prettyjws' \
		"$(hdr Content-Type <"$SCEN/h")"
	grep -q '"signatures"' "$SCEN/got" || drp_fail "schema1 manifest, attempt $attempt: the signatures are missing"
done
wait_log "$WORK/logs/fake.out" "$mark" "$(req_pat GET /v2/test/schema1/manifests/v1)" 2 5
expect_eq "schema1: upstream GETs for two requests" 2 \
	"$(count_since "$WORK/logs/fake.out" "$mark" "$(req_pat GET /v2/test/schema1/manifests/v1)")"

# The right bytes under the same digest are still fetched, verified, cached.
pcurl -o "$SCEN/got" "https://bad.test/v2/test/good/blobs/$layer"
expect_file_digest "good blob" "$SCEN/got" "$layer"
pcurl -o "$SCEN/got" -D "$SCEN/h" "https://bad.test/v2/test/good/blobs/$layer"
expect_eq "good blob X-Cache on the second GET" HIT "$(hdr X-Cache <"$SCEN/h")"
drp_alive "$PROXY_PID" || drp_fail "the proxy died"
