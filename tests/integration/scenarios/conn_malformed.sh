#!/bin/bash
# SPDX-License-Identifier: MIT
# Malformed chunked request bodies (a bad size, a negative one, one of 17
# hex digits, a 10 KB chunk extension, 70 KB of trailers, lines ended by
# a bare LF), on the plain port and inside an intercepted CONNECT session:
# each gets a 400 and the connection is closed; the proxy logs it and keeps
# running (a client inside `allow` must not be able to kill it).
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
drp_scenario_init
drp_own_proxy

# send_chunked MODE CASE: prints the status the proxy answered (000: none)
# and "closed" once it closed the connection.
send_chunked()
{
	python3 - "$PROXY_PORT" "$PROXY_CA" "$1" "$2" <<-'EOF'
		import socket, ssl, sys
		port, ca, mode, case = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
		bodies = {
		    "zz": b"zz\r\n",
		    "negative": b"-5\r\nhello\r\n0\r\n\r\n",
		    "17digits": b"1" * 17 + b"\r\n",
		    "longext": b"5;" + b"e" * 10240 + b"\r\nhello\r\n0\r\n\r\n",
		    "trailers": b"5\r\nhello\r\n0\r\n" + b"".join(b"X-T%d: %s\r\n" % (i, b"a" * 1000) for i in range(70)) + b"\r\n",
		    "bare-lf": b"5\nhello\n0\n\n",
		}
		s = socket.create_connection(("127.0.0.1", port), timeout=20)
		if mode == "plain":
		    host = "nonexistent.invalid"
		    target = "http://nonexistent.invalid/"
		else:
		    host = "registry.test"
		    target = "/v2/test/upload/blobs/uploads/"
		    s.sendall(b"CONNECT registry.test:443 HTTP/1.1\r\nHost: registry.test:443\r\n\r\n")
		    head = b""
		    while b"\r\n\r\n" not in head:
		        d = s.recv(1)
		        if not d:
		            print("000 closed-before-tunnel")
		            sys.exit(0)
		        head += d
		    ctx = ssl.create_default_context(cafile=ca)
		    s = ctx.wrap_socket(s, server_hostname="registry.test")
		req = (b"POST %s HTTP/1.1\r\nHost: %s\r\nTransfer-Encoding: chunked\r\n\r\n"
		       % (target.encode(), host.encode())) + bodies[case]
		try:
		    s.sendall(req)
		except OSError:
		    pass
		got = b""
		closed = False
		try:
		    while True:
		        d = s.recv(65536)
		        if not d:
		            closed = True
		            break
		        got += d
		except (OSError, ssl.SSLError):
		    closed = True
		status = got.split(b" ", 2)[1].decode() if got.startswith(b"HTTP/1.1 ") else "000"
		print(status, "closed" if closed else "open")
	EOF
}

for mode in plain intercepted; do
	for c in zz negative 17digits longext trailers bare-lf; do
		out=$(send_chunked "$mode" "$c")
		drp_alive "$PROXY_PID" || drp_fail "$mode $c: the proxy died"
		expect_eq "$mode $c: status, connection" "400 closed" "$out"
	done
done
n=$(grep -c "malformed chunked request body" "$PROXY_DIR/proxy.log" || true)
expect_eq "log lines about malformed chunked bodies" 12 "$n"
drp_log "proxy log: $(grep -m1 "malformed chunked request body" "$PROXY_DIR/proxy.log")"
# Still serving.
code=$(curl -sS -o /dev/null -w '%{http_code}' "$PROXY_URL/healthz")
expect_eq "healthz after the malformed bodies" 200 "$code"
