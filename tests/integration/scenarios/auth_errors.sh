#!/bin/bash
# SPDX-License-Identifier: MIT
# Configuration and credential errors of the auth plugins (issue 4): -t
# names file:line for a wrong plugin name, an unknown key and an
# unreadable password_file, and exits 1; wrong proxy credentials give a
# clear log line at the first pull (naming the section and the account)
# and 403 to the client, for a Basic and a token registry; a client's own
# wrong password fails its login through the proxy (checked with the
# upstream), the right one works; the proxy survives all of it.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
. "$DRP_IT_DIR/auth_lib.sh"
drp_scenario_init
SCHEMA2=application/vnd.docker.distribution.manifest.v2+json

# -t: every problem with its file:line, exit status 1.
drp_proxy_conf badconf "$(drp_free_port)" "[registry \"basic.test\"]
plugin = no-such-plugin
username = u
password = p
[registry \"token.test\"]
plugin = basic
username = u
password_file = $WORK/secrets/missing.pw
[registry \"registry.test\"]
plugin = basic
username = u
password = p
colour = blue"
ini=$WORK/badconf/proxy.ini
line() { grep -n -m1 -F -- "$1" "$ini" | cut -d: -f1; }
rc=0
DRP_PLUGIN_DIR=$(cd "$(dirname "$DRP_PROXY")/plugins" && pwd) \
	"$DRP_PROXY" -t -c "$ini" >"$SCEN/t.out" 2>&1 || rc=$?
expect_eq "-t exit status" 1 "$rc"
t=$(cat "$SCEN/t.out")
expect_match "-t: unknown plugin" "$ini:$(line 'plugin = no-such-plugin'): \[registry \"basic.test\"\] plugin: cannot load .*no-such-plugin" "$t"
expect_match "-t: unreadable password_file" "$ini:$(line 'password_file = '): \[registry \"token.test\"\] password_file: cannot read '$WORK/secrets/missing.pw': No such file or directory" "$t"
expect_match "-t: unknown key" "$ini:$(line 'colour = blue'): \[registry \"registry.test\"\] colour: unknown key for plugin 'basic'" "$t"
expect_no_match "-t: no OK" "configuration OK" "$t"

# Wrong passwords for both registries: -t cannot know, the first pull
# tells (log line naming the section and the account; 403 to the client).
drp_proxy_conf wrongpw "$(drp_free_port)" "$(auth_sections wrong-basic-pw wrong-token-pw)"
DRP_PLUGIN_DIR=$(cd "$(dirname "$DRP_PROXY")/plugins" && pwd) \
	"$DRP_PROXY" -t -c "$WORK/wrongpw/proxy.ini" >"$SCEN/t2.out" 2>&1 ||
	drp_fail "-t refused a valid configuration: $(cat "$SCEN/t2.out")"
expect_match "-t with wrong passwords" "configuration OK" "$(cat "$SCEN/t2.out")"
drp_start_proxy wrongpw
code=$(pcurl -o /dev/null -w '%{http_code}' -H "Accept: $SCHEMA2" https://basic.test/v2/test/small/manifests/v1 || true)
expect_eq "pull from basic.test with a wrong proxy password" 403 "$code"
drp_wait "the basic.test refusal in the log" 5 grep -q "refused (HTTP 401) the credentials of \[registry \"basic.test\"\] (plugin basic, user '$BASIC_USER')" "$PROXY_DIR/proxy.log"
drp_log "ok: logged: $(grep -F 'registry "basic.test"' "$PROXY_DIR/proxy.log" | tail -n 1)"
code=$(pcurl -o /dev/null -w '%{http_code}' -H "Accept: $SCHEMA2" https://token.test/v2/private/small/manifests/v1 || true)
expect_eq "pull from token.test with a wrong proxy password" 403 "$code"
drp_wait "the token service's refusal in the log" 5 grep -q "token service auth.test refused the credentials of user '${PROXYUSER%%:*}'" "$PROXY_DIR/proxy.log"
drp_log "ok: logged: $(grep -F 'token service auth.test refused' "$PROXY_DIR/proxy.log" | tail -n 1)"
# Again: still 403, still alive.
code=$(pcurl -o /dev/null -w '%{http_code}' -H "Accept: $SCHEMA2" https://basic.test/v2/test/small/manifests/v1 || true)
expect_eq "second pull from basic.test" 403 "$code"
drp_alive "$PROXY_PID" || drp_fail "the proxy with wrong credentials died"
auth_no_secret_in "$PROXY_DIR/access.log" "$PROXY_DIR/proxy.log" "$WORK/logs/proxy-$PROXY_NAME.err"

# A client's own login through the proxy: the proxy's realm checks the
# password with the upstream before handing out a handle.
drp_require_tools skopeo
for reg in basic.test token.test; do
	if [ $reg = basic.test ]; then u=$BASIC_USER p=$BASIC_PASS; else u=${ALICE%%:*} p=${ALICE#*:}; fi
	if pskopeo login --authfile "$SCEN/auth-$reg.json" -u "$u" -p wrong-password "$reg" >"$SCEN/login.out" 2>&1; then
		drp_fail "skopeo login to $reg with a wrong password succeeded through the proxy"
	fi
	drp_log "ok: wrong password for $reg refused: $(tail -n 1 "$SCEN/login.out")"
	pskopeo login --authfile "$SCEN/auth-$reg.json" -u "$u" -p "$p" "$reg" >"$SCEN/login.out" 2>&1 ||
		drp_fail "skopeo login to $reg failed through the proxy: $(cat "$SCEN/login.out")"
	drp_log "ok: right password for $reg accepted"
done
drp_alive "$PROXY_PID" || drp_fail "the proxy died"
