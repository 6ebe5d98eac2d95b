#!/bin/bash
# SPDX-License-Identifier: MIT
# Signals under traffic (docker-registry-proxy(8), SIGNALS):
#   SIGTERM  the listener closes at once; two clients of a cold blob fill
#            (a slow upstream) and one reading a cached blob slowly finish
#            byte for byte, then the daemon exits 0 (well before
#            drain_timeout); the fill was stored meanwhile (after a
#            restart the blob is served with no upstream GET). With a
#            transfer longer than drain_timeout, the daemon cuts it and
#            exits drain_timeout (+2 s) after the signal.
#   SIGHUP   a transfer under way finishes under the configuration it
#            started with, but each new request is served under the new
#            one: a client that the reload removed from allow gets 403 on
#            its next request, on the connection it already has (inside
#            an interception and on the plain port) as on a new one. A
#            broken configuration is refused (the error names file:line)
#            and the running one stays: that client stays refused until a
#            good reload lets it in again.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
drp_scenario_init
drp_require_tools python3 curl
rate=$((20 * 1024 * 1024))
drp_start_fakeupstream $rate
layer=$LARGE_LAYER
small=${SMALL_LAYERS%% *}
fake=$WORK/logs/fake.out
slow_get=$(req_pat GET "/v2/test/slow/blobs/$layer")
now_ms() { echo $(($(date +%s%N) / 1000000)); }
size_at_least() { [ "$(stat -c %s "$1" 2>/dev/null || echo 0)" -ge "$2" ]; }
refused() {
	local rc=0
	curl -s -o /dev/null --max-time 2 "$PROXY_URL/healthz" || rc=$?
	[ $rc = 7 ]
}
proxy_gone() { ! drp_alive "$PROXY_PID"; }

# ---- SIGTERM: the transfers under way finish, then the daemon exits
DRP_IT_REGISTRIES="registry.test bad.test" drp_proxy_conf life "$(drp_free_port)" "drain_timeout = 30s"
drp_start_proxy life
pcurl -o "$SCEN/small" "https://bad.test/v2/test/good/blobs/$small"
expect_file_digest "the small blob, warming the cache" "$SCEN/small" "$small"
drp_wait "the small blob stored" 10 cache_has_content "$SCEN/small"
rm -f "$SCEN/small"

fmark=$(log_mark "$fake")
pids=()
for i in 1 2; do
	PCURL_TIMEOUT=120 pcurl -o "$SCEN/fill.$i" "https://bad.test/v2/test/slow/blobs/$layer" &
	pids+=($!)
done
PCURL_TIMEOUT=120 pcurl --limit-rate 100k -o "$SCEN/slowread" "https://bad.test/v2/test/good/blobs/$small" &
pids+=($!)
drp_wait "both fill clients under way" 20 size_at_least "$SCEN/fill.1" $((1 << 20))
drp_wait "both fill clients under way" 20 size_at_least "$SCEN/fill.2" $((1 << 20))
drp_wait "the slow reader under way" 20 size_at_least "$SCEN/slowread" 65536
drp_unwatch_proxies
t_term=$(now_ms)
kill -TERM "$PROXY_PID"
drp_wait "the listener closed" 5 refused
drp_log "ok: new connections refused after SIGTERM"
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=$?; done
t_done=$(now_ms)
drp_wait "the daemon's exit" 10 proxy_gone
t_exit=$(now_ms)
expect_eq "every client of the draining proxy exited 0" 0 "$rc"
expect_file_digest "fill client 1" "$SCEN/fill.1" "$layer"
expect_file_digest "fill client 2" "$SCEN/fill.2" "$layer"
expect_file_digest "slow reader" "$SCEN/slowread" "$small"
rm -f "$SCEN/fill.1" "$SCEN/fill.2"
expect_le "ms from the last transfer's end to the exit" 2000 $((t_exit - t_done))
expect_le "ms from SIGTERM to the exit (drain_timeout 30 s)" 20000 $((t_exit - t_term))
st=0
wait "$PROXY_PID" || st=$?
expect_eq "exit status after the drain" 0 "$st"
expect_eq "upstream GETs of the blob (one fill)" 1 "$(count_since "$fake" "$fmark" "$slow_get")"

# The fill was stored before the exit: served after a restart, no GET.
drp_start_proxy life
fmark=$(log_mark "$fake")
pcurl -o "$SCEN/again" "https://bad.test/v2/test/slow/blobs/$layer"
expect_file_digest "the drained fill, after a restart" "$SCEN/again" "$layer"
rm -f "$SCEN/again"
expect_eq "upstream GETs of the blob after the restart" 0 "$(count_since "$fake" "$fmark" "$slow_get")"

# ---- SIGTERM with a transfer longer than drain_timeout: cut, exit on time
drp_stop "$PROXY_PID" 15 || drp_fail "the proxy did not stop"
sed -i 's/^drain_timeout = 30s$/drain_timeout = 2s/' "$PROXY_DIR/proxy.ini"
drp_start_proxy life
PCURL_TIMEOUT=300 pcurl --limit-rate 1m -o "$SCEN/cut" "https://bad.test/v2/test/slow/blobs/$layer" &
cut=$!
drp_wait "the long transfer under way" 20 size_at_least "$SCEN/cut" $((1 << 20))
drp_unwatch_proxies
t_term=$(now_ms)
kill -TERM "$PROXY_PID"
drp_wait "the daemon's exit" 10 proxy_gone
t_exit=$(now_ms)
expect_ge "ms from SIGTERM to the exit (drain_timeout 2 s)" 1700 $((t_exit - t_term))
expect_le "ms from SIGTERM to the exit (drain_timeout 2 s)" 4000 $((t_exit - t_term))
st=0
wait "$PROXY_PID" || st=$?
expect_eq "exit status after the cut" 0 "$st"
rc=0
wait "$cut" || rc=$?
[ $rc != 0 ] || drp_fail "the transfer cut by the drain exited 0"
expect_le "bytes of the cut transfer" $(($(stat -c %s "$WORK/allblobs/${layer#sha256:}") - 1)) "$(stat -c %s "$SCEN/cut")"
drp_log "ok: the cut transfer failed (curl exit $rc after $(stat -c %s "$SCEN/cut") bytes)"
rm -f "$SCEN/cut"

# ---- SIGHUP: transfers under way finish, new requests meet the new allow
DRP_IT_REGISTRIES="registry.test bad.test" DRP_IT_ALLOW="127.0.0.1/32 127.0.0.5/32" \
	drp_proxy_conf life-hup "$(drp_free_port)"
drp_start_proxy life-hup
ini=$PROXY_DIR/proxy.ini
cp "$ini" "$SCEN/both.ini"
sed 's|^allow = .*|allow = 127.0.0.1/32|' "$SCEN/both.ini" >"$SCEN/one.ini"
sed 's|^\[resolve\]$|no_such_key = 1\n[resolve]|' "$SCEN/both.ini" >"$SCEN/broken.ini"
plog=$PROXY_DIR/proxy.log
# reload FILE LOG-LINE: install FILE, SIGHUP, wait for LOG-LINE.
reload()
{
	local mark
	mark=$(log_mark "$plog")
	cp "$1" "$ini"
	kill -HUP "$PROXY_PID"
	wait_log "$plog" "$mark" "$2" 1 10
	expect_eq "proxy log after SIGHUP: $2" 1 "$(count_since "$plog" "$mark" "$2")"
}
# from5 ARGS...: pcurl from 127.0.0.5; prints the CONNECT and GET codes.
from5() { pcurl --interface 127.0.0.5 -o /dev/null -w '%{http_connect} %{http_code}' "$@" 2>/dev/null || true; }

expect_eq "127.0.0.5 before the reload (CONNECT, GET)" "200 200" "$(from5 "https://bad.test/v2/test/good/blobs/$small")"
fmark=$(log_mark "$fake")
python3 "$DRP_IT_DIR/clientprobe.py" "$PROXY_PORT" twostep --src 127.0.0.5 --connect bad.test --ca "$PROXY_CA" \
	--path "/v2/test/slow/blobs/$layer" --second "/v2/test/good/blobs/$small" \
	--ready "$SCEN/ready.tls" --go "$SCEN/go" --limit 60 >"$SCEN/tls.out" 2>"$SCEN/tls.err" &
ptls=$!
python3 "$DRP_IT_DIR/clientprobe.py" "$PROXY_PORT" twostep --src 127.0.0.5 --path /healthz --second /healthz \
	--ready "$SCEN/ready.plain" --go "$SCEN/go" --limit 60 >"$SCEN/plain.out" 2>"$SCEN/plain.err" &
pplain=$!
drp_wait "the intercepted transfer under way" 20 test -e "$SCEN/ready.tls"
drp_wait "the plain connection's first request" 20 test -e "$SCEN/ready.plain"
reload "$SCEN/one.ini" "configuration reloaded"
touch "$SCEN/go"
wait "$ptls" || drp_fail "the intercepted client failed: $(cat "$SCEN/tls.out" "$SCEN/tls.err")"
wait "$pplain" || drp_fail "the plain client failed: $(cat "$SCEN/plain.out" "$SCEN/plain.err")"
expect_eq "the transfer under way during SIGHUP" "first 200 $layer" "$(sed -n 1p "$SCEN/tls.out")"
expect_eq "upstream GETs of that transfer" 1 "$(count_since "$fake" "$fmark" "$slow_get")"
expect_eq "its next request on the same connection" "second 403 closed" "$(sed -n 2p "$SCEN/tls.out")"
expect_eq "plain keep-alive connection, first request" "first 200" "$(sed -n 1p "$SCEN/plain.out" | cut -d' ' -f1-2)"
expect_eq "plain keep-alive connection, next request" "second 403 closed" "$(sed -n 2p "$SCEN/plain.out")"
expect_eq "127.0.0.5 on a new connection (CONNECT, GET)" "403 000" "$(from5 "https://bad.test/v2/test/good/blobs/$small")"
expect_eq "127.0.0.1 after the reload" 200 "$(pcurl -o /dev/null -w '%{http_code}' "https://bad.test/v2/test/good/blobs/$small")"

# A broken configuration is refused, and the running one stays.
reload "$SCEN/broken.ini" "reload failed"
expect_match "the error names file:line and the key" "$ini:[0-9]+: .*no_such_key" "$(cat "$plog")"
expect_eq "127.0.0.5 after the refused reload" "403 000" "$(from5 "https://bad.test/v2/test/good/blobs/$small")"
expect_eq "127.0.0.1 after the refused reload" 200 "$(pcurl -o /dev/null -w '%{http_code}' "https://bad.test/v2/test/good/blobs/$small")"
reload "$SCEN/both.ini" "configuration reloaded"
expect_eq "127.0.0.5 after a good reload" "200 200" "$(from5 "https://bad.test/v2/test/good/blobs/$small")"
