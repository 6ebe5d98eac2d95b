#!/bin/bash
# SPDX-License-Identifier: MIT
# kill -9 during a large fetch into the cache, restart on the same cache
# dir, fetch again: the right bytes (a partial object is never served),
# and then a hit.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
drp_scenario_init
drp_start_fakeupstream $((20 * 1024 * 1024))
DRP_IT_REGISTRIES="registry.test bad.test" drp_proxy_conf cache-crash "$(drp_free_port)"
drp_start_proxy cache-crash
layer=$LARGE_LAYER

# The fake holds the slow blob at half while $WORK/slowgate exists: the
# fetch is still under way at the kill, however late that comes.
touch "$WORK/slowgate"
drp_at_exit "rm -f $WORK/slowgate"
PCURL_TIMEOUT=300 pcurl -o "$SCEN/partial" "https://bad.test/v2/test/slow/blobs/$layer" 2>/dev/null &
client=$!
# Well into the fetch: 8 MiB of the layer at the client.
some_bytes() { [ "$(stat -c %s "$SCEN/partial" 2>/dev/null || echo 0)" -ge $((8 << 20)) ]; }
drp_wait "the fetch under way" 20 some_bytes
drp_unwatch_proxies
kill -KILL "$PROXY_PID"
rm -f "$WORK/slowgate"
rc=0
wait $client || rc=$?
[ $rc != 0 ] || drp_fail "the client of the killed proxy exited 0"
drp_log "ok: killed the proxy after $(stat -c %s "$SCEN/partial") bytes"
wait "$PROXY_PID" 2>/dev/null || true

drp_start_proxy cache-crash
pcurl -o "$SCEN/again" -D "$SCEN/h1" "https://bad.test/v2/test/good/blobs/$layer"
expect_file_digest "after restart" "$SCEN/again" "$layer"
pcurl -o "$SCEN/again" -D "$SCEN/h2" "https://bad.test/v2/test/good/blobs/$layer"
expect_file_digest "after restart, second GET" "$SCEN/again" "$layer"
expect_eq "second GET X-Cache" HIT "$(hdr X-Cache <"$SCEN/h2")"
