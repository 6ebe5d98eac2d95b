#!/bin/bash
# SPDX-License-Identifier: MIT
# [proxy] tcp_congestion (docker-registry-proxy.ini(5)): the connections
# accepted on listen and on mirror_tls_listen run the algorithm it names
# (seen by ss on the proxy's side of each connection) and are served;
# the proxy's own connections to the registry keep the system's, and so
# does every client connection of a proxy without the setting. A name
# the kernel does not have stops the start with a message that says what
# it has, and -t finds it too; -t refuses a name that cannot be one. A
# SIGHUP with another name says that it takes a restart, and new
# connections keep the running one. (Own proxy.)
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
drp_scenario_init
drp_require_tools ss curl timeout

sys=$(cat /proc/sys/net/ipv4/tcp_congestion_control)
avail=$(cat /proc/sys/net/ipv4/tcp_available_congestion_control)
# reno is built into every kernel; cubic when reno is the system's.
alt=reno
[ "$sys" != reno ] || alt=cubic
case " $avail " in *" $alt "*) ;; *) drp_skip "no second algorithm besides $sys (available: $avail)" ;; esac
drp_log "system's algorithm $sys; the proxy's client connections get $alt"

# one_conn PORT: ss shows exactly one established connection on local
# port PORT.
one_conn() { [ "$(ss -tnH state established "( sport = :$1 )" | grep -c "127.0.0.1:$1 ")" = 1 ]; }

# cc_of PORT: the algorithm of the proxy's side of the established
# connection to local port PORT (exactly one such connection).
cc_of()
{
	drp_wait "one connection on port $1" 10 one_conn "$1"
	ss -tniH state established "( sport = :$1 )" | sed -n 2p | awk '{print $1}'
}

# held PORT NAME: open a connection to PORT and keep it open (fd in
# variable NAME).
held()
{
	local fd
	exec {fd}<>"/dev/tcp/127.0.0.1/$1"
	printf -v "$2" '%s' "$fd"
}

tport=$(drp_free_port)
drp_own_proxy "tcp_congestion = $alt
mirror_tls_listen = 127.0.0.1:$tport
mirror_names = 127.0.0.1"
ini=$PROXY_DIR/proxy.ini

# ---- the client port: the connection runs $alt, and is served
held "$PROXY_PORT" c1
expect_eq "listen: the proxy's side of a client connection" "$alt" "$(cc_of "$PROXY_PORT")"
printf 'GET /healthz HTTP/1.1\r\nHost: p\r\nConnection: close\r\n\r\n' >&"$c1"
status=$(timeout 10 head -n 1 <&"$c1" | tr -d '\r')
expect_eq "that connection served" "HTTP/1.1 200 OK" "$status"
exec {c1}>&-

# ---- the mirror's TLS port: the same, with a TLS request
held "$tport" c2
expect_eq "mirror_tls_listen: the proxy's side" "$alt" "$(cc_of "$tport")"
exec {c2}>&-
code=$(curl -sS --max-time 20 --noproxy '*' --cacert "$PROXY_CA" --capath "$WORK/empty-certs" \
	-o /dev/null -w '%{http_code}' "https://127.0.0.1:$tport/v2/")
expect_eq "mirror over TLS: /v2/" 200 "$code"

# ---- the proxy's connection to the registry keeps the system's
layer=${SMALL_LAYERS%% *}
pcurl -o "$SCEN/blob" "https://registry.test/v2/test/small/blobs/$layer"
expect_file_digest "a blob through the proxy" "$SCEN/blob" "$layer"
up=$(ss -tnpiH state established "( dport = :443 )" | grep -A1 "pid=$PROXY_PID," || true)
[ -n "$up" ] || drp_fail "no upstream connection of the proxy (pid $PROXY_PID) left open: $(ss -tnpiH state established)"
expect_eq "the upstream connection's algorithm" "$sys" "$(printf '%s\n' "$up" | sed -n 2p | awk '{print $1}')"

# ---- SIGHUP with another name (the system's): a restart is needed; the
# running one stays
mark=$(log_mark "$PROXY_DIR/proxy.log")
sed -i "s/^tcp_congestion = .*/tcp_congestion = $sys/" "$ini"
kill -HUP "$PROXY_PID"
wait_log "$PROXY_DIR/proxy.log" "$mark" "configuration reloaded" 1 10
expect_eq "reload: tcp_congestion takes a restart" 1 \
	"$(count_since "$PROXY_DIR/proxy.log" "$mark" "tcp_congestion changes take effect only after a restart")"
held "$PROXY_PORT" c3
expect_eq "after the reload: still $alt" "$alt" "$(cc_of "$PROXY_PORT")"
exec {c3}>&-

# ---- without the setting: the system's
port=$(drp_free_port)
drp_proxy_conf plain-cc "$port"
drp_start_proxy plain-cc
held "$port" c4
expect_eq "no tcp_congestion: the system's" "$sys" "$(cc_of "$port")"
exec {c4}>&-

# ---- a name the kernel does not have: no start, and what it has
port=$(drp_free_port)
drp_proxy_conf bad-cc "$port" "tcp_congestion = nosuchcc"
rc=0
timeout 20 "$DRP_PROXY" -c "$WORK/bad-cc/proxy.ini" >"$SCEN/bad.out" 2>&1 || rc=$?
expect_eq "an unknown algorithm: the start fails" 1 $((rc != 0 && rc != 124))
expect_match "... and the log says what the kernel has" \
	"listen 127\.0\.0\.1:$port: tcp_congestion nosuchcc: the kernel has no such algorithm \(it has: $avail; a module must be loaded first: modprobe tcp_nosuchcc\)" \
	"$(cat "$WORK/bad-cc/proxy.log" "$SCEN/bad.out")"

# ---- -t: the running proxy's file passes, the unknown name does not
out=$("$DRP_PROXY" -t -c "$ini" 2>&1) || drp_fail "-t on the running proxy's file failed: $out"
expect_match "-t: the file with tcp_congestion = $sys" "configuration OK" "$out"
rc=0
"$DRP_PROXY" -t -c "$WORK/bad-cc/proxy.ini" >"$SCEN/t0.out" 2>&1 || rc=$?
expect_eq "-t: an unknown algorithm fails" 1 $((rc != 0))
expect_match "-t: ... with what the kernel has" \
	"bad-cc/proxy\.ini: \[proxy\] tcp_congestion nosuchcc: the kernel has no such algorithm \(it has: $avail;" \
	"$(cat "$SCEN/t0.out")"

# ---- a name that cannot be one: -t refuses it
sed -i "s/^tcp_congestion = .*/tcp_congestion = cubic;rm/" "$WORK/bad-cc/proxy.ini"
rc=0
"$DRP_PROXY" -t -c "$WORK/bad-cc/proxy.ini" >"$SCEN/t.out" 2>&1 || rc=$?
expect_eq "-t: an invalid name fails" 1 $((rc != 0))
expect_match "-t: the message" "\[proxy\] tcp_congestion: invalid name 'cubic;rm'" "$(cat "$SCEN/t.out")"
