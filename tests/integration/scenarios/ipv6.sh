#!/bin/bash
# SPDX-License-Identifier: MIT
# IPv6 (issue 12). The proxy listens dual-stack on [::]:PORT (the default
# form): IPv4 and IPv6 clients are served, and an IPv4 client is logged
# and judged by `allow` as 127.0.0.1, not as ::ffff:127.0.0.1. Upstream,
# a host whose IPv6 address does not answer (a listener whose queue is
# full: SYNs are dropped) falls back to IPv4 within a second, for a
# tunnel and for a fetch, although connect_timeout is 20 s: the next
# family's attempt starts after 250 ms while the first goes on.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
drp_scenario_init
[ -e /proc/net/if_inet6 ] || drp_skip "no IPv6 on this host"

# An IPv6 address that never answers.
cat >"$SCEN/hang6.py" <<'PY'
import os, socket, sys, time
s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
s.bind(("::1", 0))
s.listen(0)
fill = []
for _ in range(8):
    c = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    c.setblocking(False)
    try:
        c.connect(("::1", s.getsockname()[1]))
    except BlockingIOError:
        pass
    fill.append(c)
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write("%d\n" % s.getsockname()[1])
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
while True:
    time.sleep(3600)
PY
drp_bg hang6 python3 "$SCEN/hang6.py" "$SCEN/hang6.port"
drp_wait_started hang6 "$DRP_LAST_PID" 10 test -s "$SCEN/hang6.port"
hang=$(cat "$SCEN/hang6.port")

port=$(drp_free_port)
DRP_IT_ALLOW="127.0.0.1/32 ::1/128" drp_proxy_conf v6 "$port" "connect_timeout = 20"
sed -i -e "s|^listen = 127.0.0.1:|listen = [::]:|" \
	-e "s|^registry.test = .*|registry.test = [::1]:$hang 127.0.0.11:443|" \
	-e "s|^tunnel.test = .*|tunnel.test = [::1]:$hang 127.0.0.15:443|" "$WORK/v6/proxy.ini"
drp_start_proxy v6

# Both families on the one socket.
am=$(amark)
expect_eq "/healthz over IPv4" 200 "$(curl -sS -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/healthz")"
expect_eq "/healthz over IPv6" 200 "$(curl -sS -o /dev/null -w '%{http_code}' "http://[::1]:$port/healthz")"
drp_wait "both access log lines" 5 bash -c "[ \$(tail -c +$((am + 1)) '$PROXY_DIR/access.log' | grep -c ' GET /healthz ') -ge 2 ]"
expect_eq "the clients in the access log" "127.0.0.1 ::1" \
	"$(log_since "$PROXY_DIR/access.log" "$am" | awk '$5 == "/healthz" { printf "%s%s", sep, $2; sep = " " }')"

# A tunnel: [::1] first (it hangs), then IPv4.
out=$(curl -sS -o "$SCEN/tfile" -w '%{http_code} %{time_total}' --proxy "http://[::1]:$port" \
	--cacert "$TEST_CA" https://tunnel.test/file)
drp_log "tunnel over the IPv6 client side, origin by IPv4 fallback: $out"
expect_eq "the tunnel" 200 "${out%% *}"
expect_file_digest "the tunnelled file" "$SCEN/tfile" "$TUNNEL_FILE_DIGEST"
expect_le "the tunnel's time, in ms" 3000 "$(awk -v t="${out#* }" 'BEGIN { printf "%d", t * 1000 }')"

# A fetch: the same fallback.
out=$(pcurl -o "$SCEN/m" -w '%{http_code} %{time_total}' \
	-H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
	https://registry.test/v2/test/small/manifests/v1)
drp_log "intercepted fetch with IPv4 fallback: $out"
expect_file_digest "the manifest" "$SCEN/m" "$SMALL_DIGEST"
expect_le "the fetch's time, in ms" 3000 "$(awk -v t="${out#* }" 'BEGIN { printf "%d", t * 1000 }')"
