#!/bin/bash
# SPDX-License-Identifier: MIT
# The cap on learned token realm hosts (docker-registry-proxy(8), CONNECT
# HANDLING: "at most 256 per configuration"): an intercepted registry
# whose 401s name a new realm host each time (bad.test,
# /v2/realm/LABEL/...) teaches the proxy 256 of them, each logged once;
# the 257th and every later one are refused with a single warning, their
# CONNECTs are tunnelled while the first one's is intercepted, and 2000
# more challenges naming long host names (244 characters) leave the
# proxy's memory where it was. A reload starts a new list (the 257th is
# learned then). The clients always get the registry's 401.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
drp_scenario_init
drp_require_tools python3 openssl
# AddressSanitizer keeps freed memory in a quarantine (256 MB by default)
# before reusing it: the RSS growth measured below would be that
# quarantine filling up, not memory the proxy holds. Without one, the
# bound holds under ASan as it is.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=0"
drp_start_fakeupstream $((20 * 1024 * 1024))
DRP_IT_REGISTRIES="registry.test bad.test" drp_own_proxy "[resolve]
late.realms.test = ${DRP_IP[tunnel.test]}:443"
plog=$PROXY_DIR/proxy.log
learned="learned token realm host "
full="256 token realm hosts learned: late.realms.test:443 and later ones are tunnelled"

# The labels: first, 255 long ones, late (the 257th), 2000 more long ones.
python3 - "$SCEN/labels" <<'EOF'
import sys
def long(n):
    return "%05d-%s.%s.%s.%s" % (n, "a" * 57, "b" * 63, "c" * 63, "d" * 40)
with open(sys.argv[1], "w") as f:
    f.write("first\n")
    for n in range(1, 256):
        f.write(long(n) + "\n")
    f.write("late\n")
    for n in range(257, 2300):
        f.write(long(n) + "\n")
EOF
expect_eq "a long realm host's length" 244 "$(sed -n 2p "$SCEN/labels" | awk '{ print length($0 ".realms.test") }')"
head -n 300 "$SCEN/labels" >"$SCEN/labels.300"
tail -n +301 "$SCEN/labels" >"$SCEN/labels.rest"
challenges() { python3 "$DRP_IT_DIR/clientprobe.py" "$PROXY_PORT" realms --connect bad.test --ca "$PROXY_CA" \
	--labels "$1" --count "$2" --limit 120; }
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$PROXY_PID/status"; }

mark=$(log_mark "$plog")
expect_eq "300 challenges: the client's answers" "300-401" "$(challenges "$SCEN/labels.300" 300)"
wait_log "$plog" "$mark" "$full" 1 10
expect_eq "realm hosts learned" 256 "$(count_since "$plog" "$mark" "$learned")"
expect_eq "the first one learned" 1 "$(count_since "$plog" "$mark" "${learned}first.realms.test:443 from a challenge of bad.test")"
expect_eq "the 257th learned" 0 "$(count_since "$plog" "$mark" "${learned}late.realms.test:443")"
expect_eq "warnings about the cap" 1 "$(count_since "$plog" "$mark" "$full")"

rss0=$(rss_kb)
expect_eq "2000 more challenges: the client's answers" "2000-401" "$(challenges "$SCEN/labels.rest" 2000)"
rss1=$(rss_kb)
drp_log "proxy RSS: $rss0 kB after the first 300 challenges, $rss1 kB after 2000 more"
# ASan's allocator grows in its own steps even without a quarantine
# (1124 kB measured once): the bound holds for the plain build only.
if ldd "$DRP_PROXY" 2>/dev/null | grep -q libasan; then
	drp_log "memory bound not checked (sanitizer build)"
else
	expect_le "RSS growth (kB) over 2000 refused realm hosts of 244 bytes" 256 $((rss1 - rss0))
fi
expect_eq "realm hosts learned in the end" 256 "$(count_since "$plog" "$mark" "$learned")"
expect_eq "warnings about the cap in the end" 1 "$(count_since "$plog" "$mark" "$full")"

# The first realm host is intercepted (the proxy's certificate), the
# 257th tunnelled (the origin's, here tunnel.test's nginx).
issuer()
{
	openssl s_client -proxy "127.0.0.1:$PROXY_PORT" -connect "$1:443" -servername "$1" </dev/null 2>/dev/null |
		openssl x509 -noout -issuer -nameopt RFC2253
}
proxy_issuer=$(openssl x509 -in "$PROXY_CA" -noout -subject -nameopt RFC2253 | sed 's/^subject=/issuer=/')
amk=$(amark)
expect_eq "issuer seen through CONNECT first.realms.test" "$proxy_issuer" "$(issuer first.realms.test)"
expect_eq "issuer seen through CONNECT late.realms.test" "issuer=CN=drp integration test CA" "$(issuer late.realms.test)"
expect_eq "access log: the 257th tunnelled" "200 TUNNEL" "$(anext '$6, $11' "$amk" late.realms.test:443 CONNECT -)"
expect_eq "access log: no tunnel to the first" "" "$(alog_since "$amk" first.realms.test:443 CONNECT -)"

# A reload starts a new list: the 257th is learned now.
mark=$(log_mark "$plog")
kill -HUP "$PROXY_PID"
wait_log "$plog" "$mark" "configuration reloaded" 1 10
echo late >"$SCEN/labels.late"
expect_eq "the 257th's challenge after the reload" "1-401" "$(challenges "$SCEN/labels.late" 1)"
wait_log "$plog" "$mark" "${learned}late.realms.test:443" 1 10
expect_eq "the 257th learned after the reload" 1 "$(count_since "$plog" "$mark" "${learned}late.realms.test:443")"
