#!/bin/bash
# SPDX-License-Identifier: MIT
# The upstream answers but is overloaded (503) or rate-limits (429 with
# Retry-After): a cached tag whose lifetime is over is served from the
# cache (STALE), byte for byte, after one revalidation the upstream
# refused; a tag never cached gets the upstream's own status.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
drp_scenario_init
drp_start_fakeupstream $((50 * 1024 * 1024))
DRP_IT_REGISTRIES="registry.test bad.test" drp_proxy_conf cache-status "$(drp_free_port)" "" "tag_ttl = 1s"
drp_start_proxy cache-status
fake=$WORK/logs/fake.out
status_file=$WORK/fake-status
url=https://bad.test/v2/test/plain/manifests/v1
accept='Accept: application/vnd.docker.distribution.manifest.v2+json'
# Requests for the tag the upstream saw (a revalidation is a HEAD or a GET).
tag_requests() { count_since "$fake" "$1" ' /v2/test/plain/manifests/v1 HTTP/1.1"'; }

rm -f "$status_file"
pcurl -o "$SCEN/fresh" -H "$accept" "$url"
want=$(sha256sum <"$SCEN/fresh" | cut -c1-64)

for forced in "503" "429 7"; do
	status=${forced%% *}
	echo "$forced" >"$status_file"
	sleep 1.2 # the tag's lifetime (1 s) is over
	mark=$(log_mark "$fake")
	amk=$(amark)
	code=$(pcurl -o "$SCEN/got" -D "$SCEN/h" -w '%{http_code}' -H "$accept" "$url")
	expect_eq "$status: status of the stale tag" 200 "$code"
	expect_eq "$status: X-Cache" STALE "$(hdr X-Cache <"$SCEN/h")"
	expect_eq "$status: bytes" "$want" "$(sha256sum <"$SCEN/got" | cut -c1-64)"
	expect_eq "$status: access-log status, result" "200 STALE" \
		"$(anext '$6, $11' "$amk" bad.test:443 GET /v2/test/plain/manifests/v1)"
	wait_log "$fake" "$mark" "HTTP/1.1\" $status" 1 5
	expect_eq "$status: upstream requests for the tag" 1 "$(tag_requests "$mark")"
	grep -q "revalidation failed (the upstream answered $status); serving sha256:" \
		"$WORK/cache-status/proxy.log" || drp_fail "$status: no log line for the stale answer"
	# Never cached: the client hears the upstream.
	code=$(pcurl -o /dev/null -w '%{http_code}' -H "$accept" \
		https://bad.test/v2/test/other/manifests/v1) || true
	expect_eq "$status: uncached tag" "$status" "$code"
done
rm -f "$status_file"
