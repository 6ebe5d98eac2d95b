#!/bin/bash
# SPDX-License-Identifier: MIT
# A CONNECT the proxy would tunnel but cannot open gets its own answer and
# a notice line: an address the proxy may not reach 403, an origin that
# refuses 502, an origin that does not answer within connect_timeout 502,
# a name that does not resolve 502, a name the resolver does not answer
# within connect_timeout 504. The proxy resolves through a name server of
# the test (its own mount namespace's resolv.conf).
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
drp_scenario_init

NS=127.0.0.253
drp_bg deadends python3 "$DRP_IT_DIR/deadends.py" "$NS" "$SCEN/ports"
drp_wait_started deadends "$DRP_LAST_PID" 10 test -s "$SCEN/ports"
read -r refusing hanging _ <"$SCEN/ports"

printf 'nameserver %s\n' "$NS" >"$SCEN/resolv.conf"
cat >"$SCEN/ns.sh" <<EOF
#!/bin/bash
mount --bind "$SCEN/resolv.conf" /etc/resolv.conf || exit 125
exec "\$@"
EOF
chmod +x "$SCEN/ns.sh"
# connect_timeout is also the resolver's own deadline, for the life of the
# process; the reload below shortens only the proxy's, so that its 504
# cannot race the resolver's failure (a 502).
DRP_PROXY_WRAPPER="unshare -m -- $SCEN/ns.sh ${DRP_PROXY_WRAPPER:-}" \
	drp_own_proxy "connect_timeout = 30
[resolve]
refusing.test = 127.0.0.1:$refusing
hanging.test = 127.0.0.1:$hanging"

# connect_answer HOST:PORT: the code of the proxy's answer to a CONNECT and
# the first line of its body ("502 cannot connect to ...").
connect_answer()
{
	timeout 40 bash -c 'exec 3<>/dev/tcp/127.0.0.1/$1
		printf "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" "$2" "$2" >&3; cat <&3' _ "$PROXY_PORT" "$1" |
		tr -d '\r' | awk 'NR == 1 { code = $2 } body { print code, $0; exit } /^$/ { body = 1 }'
}
notice() { drp_wait "proxy log: $1" 5 grep -qF "$1" "$PROXY_DIR/proxy.log"; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }

expect_eq "CONNECT to loopback" "403 the proxy may not connect to 127.0.0.1" \
	"$(connect_answer 127.0.0.1:443)"
notice "CONNECT 127.0.0.1:443: address not allowed"
expect_eq "CONNECT to a refusing origin" "502 cannot connect to refusing.test:443" \
	"$(connect_answer refusing.test:443)"
notice "CONNECT refusing.test:443: cannot connect"
expect_eq "CONNECT to a name that does not exist" "502 cannot resolve nx.test" \
	"$(connect_answer nx.test:443)"
notice "CONNECT nx.test:443: cannot resolve"
drp_wait "the name server asked for nx.test" 5 grep -qx "query nx.test" "$WORK/logs/deadends.out"

mark=$(log_mark "$PROXY_DIR/proxy.log")
sed -i 's/^connect_timeout = 30$/connect_timeout = 1/' "$PROXY_DIR/proxy.ini"
kill -HUP "$PROXY_PID"
drp_wait "the reload" 10 bash -c "tail -c +$((mark + 1)) '$PROXY_DIR/proxy.log' | grep -q 'configuration reloaded'"

t0=$(now_ms)
expect_eq "CONNECT to an origin that does not answer" "502 cannot connect to hanging.test:443" \
	"$(connect_answer hanging.test:443)"
t=$(($(now_ms) - t0))
expect_ge "ms until the 502 (connect_timeout = 1)" 900 "$t"
expect_le "ms until the 502" 10000 "$t"
notice "CONNECT hanging.test:443: cannot connect"

t0=$(now_ms)
expect_eq "CONNECT to a name the resolver does not answer" "504 timed out resolving silent.test" \
	"$(connect_answer silent.test:443)"
t=$(($(now_ms) - t0))
expect_ge "ms until the 504 (connect_timeout = 1)" 900 "$t"
expect_le "ms until the 504" 10000 "$t"
drp_wait "the name server asked for silent.test" 5 grep -qx "query silent.test" "$WORK/logs/deadends.out"

# The access log has each of them as a TUNNEL line with its status.
for s in 403 502 502 502 504; do echo "$s TUNNEL"; done >"$SCEN/want"
awk '$4 == "CONNECT" { print $6, $11 }' "$PROXY_DIR/access.log" >"$SCEN/got"
expect_eq "access-log status and result of the five CONNECTs" "$(cat "$SCEN/want")" "$(cat "$SCEN/got")"
