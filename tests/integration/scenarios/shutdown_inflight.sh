#!/bin/bash
# SPDX-License-Identifier: MIT
# SIGTERM with upstream work still in flight (docker-registry-proxy(8),
# SIGNALS). Every round makes its state certain before the signal: the
# fake upstream's test/stall sends a blob's head and first MiB and then
# nothing, and holds test/hold/manifests/* while $WORK/hold exists. In
# each round the daemon exits 0, within drain_timeout (1 s) + 3 s, and
# (in the sanitizer build) with no memory error or leak report:
#   - a cold blob fill whose client left: its upstream fetch outlives
#     every connection, and is stopped with its loop (logged), not
#     abandoned on a loop that is destroyed;
#   - a cold blob fill with a waiter on each worker, cut by the drain
#     deadline: the same, after the clients were cut;
#   - a manifest fetch that four requests share, held upstream: the
#     requests are cut, the shared fetch stops with its loop.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
drp_scenario_init
drp_require_tools python3 curl
drp_start_fakeupstream 10000000
layer=$LARGE_LAYER
fake=$WORK/logs/fake.out
gate=$WORK/hold
rm -f "$gate"
drp_at_exit "rm -f $gate"
stall_get=$(req_pat GET "/v2/test/stall/blobs/$layer")
now_ms() { echo $(($(date +%s%N) / 1000000)); }
size_at_least() { [ "$(stat -c %s "$1" 2>/dev/null || echo 0)" -ge "$2" ]; }
proxy_gone() { ! drp_alive "$PROXY_PID"; }

DRP_IT_REGISTRIES="registry.test bad.test" drp_proxy_conf shutdown "$(drp_free_port)" "drain_timeout = 1s"
plog=$WORK/shutdown/proxy.log

# term WHAT: SIGTERM the proxy, wait for its exit; it must exit 0 within
# drain_timeout + 3 s.
term()
{
	local t0 t1 st=0
	drp_unwatch_proxies
	t0=$(now_ms)
	kill -TERM "$PROXY_PID"
	drp_wait "the daemon's exit ($1)" 10 proxy_gone
	t1=$(now_ms)
	wait "$PROXY_PID" || st=$?
	expect_eq "exit status after SIGTERM ($1)" 0 "$st"
	expect_le "ms from SIGTERM to the exit ($1)" 4000 $((t1 - t0))
}

# ---- a cold fill whose client left: the fetch goes on alone
drp_start_proxy shutdown
mark=$(log_mark "$plog")
fmark=$(log_mark "$fake")
PCURL_TIMEOUT=60 pcurl -o "$SCEN/alone" "https://bad.test/v2/test/stall/blobs/$layer" &
client=$!
drp_wait "the fill's first MiB at the client" 20 size_at_least "$SCEN/alone" $((1 << 20))
kill "$client"
wait "$client" || true
expect_eq "upstream GETs of the stalled blob" 1 "$(count_since "$fake" "$fmark" "$stall_get")"
term "a fill with no client"
expect_eq "fills stopped with their loop (a fill with no client)" 1 \
	"$(count_since "$plog" "$mark" "$layer: upstream fetch failed: the proxy is shutting down")"
rm -f "$SCEN/alone"

# ---- a cold fill with a waiter on each worker, cut by the deadline
drp_start_proxy shutdown
mark=$(log_mark "$plog")
pids=()
for i in 1 2 3 4; do
	PCURL_TIMEOUT=60 pcurl -o "$SCEN/cut.$i" "https://bad.test/v2/test/stall/blobs/$layer" &
	pids+=($!)
done
for i in 1 2 3 4; do
	drp_wait "client $i at the fill's first MiB" 20 size_at_least "$SCEN/cut.$i" $((1 << 20))
done
term "a fill with waiters"
for p in "${pids[@]}"; do
	rc=0
	wait "$p" || rc=$?
	[ $rc != 0 ] || drp_fail "a client of the stalled fill exited 0"
done
expect_eq "fills stopped with their loop (a fill with waiters)" 1 \
	"$(count_since "$plog" "$mark" "$layer: upstream fetch failed: the proxy is shutting down")"
rm -f "$SCEN"/cut.*

# ---- a shared manifest fetch held upstream
drp_start_proxy shutdown
touch "$gate"
fmark=$(log_mark "$fake")
path=/v2/test/hold/manifests/shut1
pids=()
for i in 1 2 3 4; do
	PCURL_TIMEOUT=60 pcurl -o /dev/null -w '%{http_code}\n' "https://bad.test$path" >"$SCEN/m.$i" &
	pids+=($!)
done
wait_log "$fake" "$fmark" "hold: GET $path" 1 20
# The other three wait on the shared fetch (or the proxy's metric says so).
coalesced() {
	curl -s --max-time 5 "$PROXY_URL/metrics" |
		awk '$1 == "drp_manifest_coalesced_total" { v = $2 } END { exit !(v + 0 >= 3) }'
}
drp_wait "three requests waiting on the shared fetch" 20 coalesced
term "a shared manifest fetch"
rm -f "$gate"
for i in 1 2 3 4; do
	wait "${pids[$((i - 1))]}" || true
	[ "$(cat "$SCEN/m.$i")" != 200 ] || drp_fail "manifest client $i got 200 from a proxy that stopped"
done
expect_eq "upstream GETs of the held manifest" 1 "$(count_since "$fake" "$fmark" "hold: GET $path")"
rm -f "$SCEN"/m.*
