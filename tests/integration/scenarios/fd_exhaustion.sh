#!/bin/bash
# SPDX-License-Identifier: MIT
# Out of file descriptors (a small `ulimit -n`), with clients that keep
# connecting: the proxy sheds or defers what it cannot take, without
# spinning on a listener it cannot accept from, and serves again once
# descriptors are free. The spin this guards against: the workers share one
# descriptor table, so the slot a worker frees by closing its spare
# descriptor (to accept and drop one client) can go to the other worker's
# accept; without a spare, a worker went back to a listener that stays
# readable and was called again at once, millions of times a second, each
# with a log line. Counted here, not timed: out-of-descriptor events (from
# the proxy's own log) against connection attempts.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
drp_scenario_init
drp_require_tools prlimit python3

# Two workers (the default drp_proxy_conf), 96 descriptors.
DRP_PROXY_WRAPPER="prlimit --nofile=96:96 ${DRP_PROXY_WRAPPER:-}" drp_own_proxy
LOG=$PROXY_DIR/proxy.log

# Hold more plain connections than the proxy has descriptors (they send
# nothing; the proxy waits for their request line), until stdin closes.
cat >"$SCEN/hold.py" <<'EOF'
import socket, sys
held = []
for _ in range(int(sys.argv[2])):
    s = socket.socket()
    s.settimeout(5)
    try:
        s.connect(("127.0.0.1", int(sys.argv[1])))
        held.append(s)
    except OSError:
        s.close()
print("holding", len(held), flush=True)
sys.stdin.read()
EOF
mkfifo "$SCEN/hold.ctl"
python3 "$SCEN/hold.py" "$PROXY_PORT" 200 <"$SCEN/hold.ctl" >"$SCEN/hold.out" 2>&1 &
holder=$!
exec 7>"$SCEN/hold.ctl"
drp_wait "the proxy to run out of descriptors" 30 grep -q 'out of file descriptors' "$LOG"

# 32 clients, 50 connection attempts each: connect, wait (at most 0.2 s)
# for the proxy to close the connection (shed) or not (a client it could
# take, or one left in the backlog while accepting pauses), close.
attempts=$(python3 - "$PROXY_PORT" 32 50 <<'EOF'
import socket, sys, threading
port, threads, each = (int(a) for a in sys.argv[1:4])
done = [0]
lock = threading.Lock()
def client():
    for _ in range(each):
        s = socket.socket()
        s.settimeout(0.2)
        try:
            s.connect(("127.0.0.1", port))
            s.recv(1)
        except OSError:
            pass
        s.close()
        with lock:
            done[0] += 1
ts = [threading.Thread(target=client) for _ in range(threads)]
for t in ts:
    t.start()
for t in ts:
    t.join()
print(done[0])
EOF
)
expect_eq "connection attempts made" 1600 "$attempts"

# The holder leaves: descriptors are free again, and the proxy serves.
exec 7>&-
wait "$holder" || true
pcurl -f -o "$SCEN/manifest" -H "Accept: application/vnd.docker.distribution.manifest.v2+json" \
	"https://registry.test/v2/test/small/manifests/v1"
expect_file_digest "manifest after the exhaustion" "$SCEN/manifest" "$SMALL_DIGEST"

# Stop the proxy (its last counts are logged at exit), then count: a line
# of the form "N connection(s) dropped, accepting paused M time(s)" counts
# N + M events, any other out-of-descriptor line one.
drp_check_proxy "$PROXY_PID" "$PROXY_NAME" || drp_fail "the proxy did not stop cleanly"
drp_unwatch_proxies
events=$(grep 'out of file descriptors' "$LOG" | awk '{
	if (match($0, /: [0-9]+ connection\(s\) dropped, accepting paused [0-9]+ time/)) {
		split(substr($0, RSTART + 2, RLENGTH), f, " ")
		n += f[1] + f[6]
	} else n++ } END { print n + 0 }')
drp_log "out-of-descriptor events: $events for $attempts connection attempts (+ the holder's 200)"
expect_ge "out-of-descriptor events (the proxy did run out)" 1 "$events"
expect_le "out-of-descriptor events, at most 2 per connection attempt + 50" \
	$((2 * (attempts + 200) + 50)) "$events"
