#!/bin/bash
# SPDX-License-Identifier: MIT
# SIGHUP with auth plugins (issue 4): a reload that breaks a section's
# password takes effect at the next request (403, logged), a reload with
# an unknown plugin is refused and the running configuration keeps
# working, and a reload back to the right password works again; handles
# of the proxy's realm survive reloads. The proxy stays up throughout.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
. "$DRP_IT_DIR/auth_lib.sh"
drp_scenario_init
SCHEMA2=application/vnd.docker.distribution.manifest.v2+json
drp_own_proxy "" "tag_ttl = 0s
$(auth_sections)"
ini=$PROXY_DIR/proxy.ini
cp "$ini" "$SCEN/good.ini"

manifest() { pcurl -o /dev/null -w '%{http_code}' -H "Accept: $SCHEMA2" "$@" https://basic.test/v2/test/small/manifests/v1 || true; }
# reload LOG-REGEX: SIGHUP, then wait for the line that ends it.
reload()
{
	local mark
	mark=$(log_mark "$PROXY_DIR/proxy.log")
	kill -HUP "$PROXY_PID"
	drp_wait "reload: $1" 10 bash -c "tail -c +$((mark + 1)) '$PROXY_DIR/proxy.log' | grep -Eq '$1'"
}

expect_eq "pull before any reload" 200 "$(manifest)"
ph=$(pcurl "https://basic.test/_drp/token?service=basic.test" | jq -r .token)
expect_eq "pull with the proxy's handle" 200 "$(manifest -H "Authorization: Bearer $ph")"

# The password breaks: the next pull is refused and logged.
sed "s|^password_file = .*basic.pw$|password_file = $(drp_secret reload-wrong.pw not-the-password)|" \
	"$SCEN/good.ini" >"$ini"
reload 'configuration reloaded'
expect_eq "pull with the broken password" 403 "$(manifest)"
drp_wait "the refusal in the log" 5 grep -q "refused (HTTP 401) the credentials of \[registry \"basic.test\"\]" "$PROXY_DIR/proxy.log"

# An unknown plugin: the reload is refused, the broken one stays.
sed 's|^plugin = basic$|plugin = no-such-plugin|' "$SCEN/good.ini" >"$ini"
reload 'reload failed'
expect_eq "pull after the refused reload" 403 "$(manifest)"

# Back to the right password; the handle from before still works.
cp "$SCEN/good.ini" "$ini"
reload 'configuration reloaded'
expect_eq "pull after the repair" 200 "$(manifest)"
expect_eq "the handle survived three reloads" 200 "$(manifest -H "Authorization: Bearer $ph")"
drp_alive "$PROXY_PID" || drp_fail "the proxy died"
auth_no_secret_in "$PROXY_DIR/access.log" "$PROXY_DIR/proxy.log" "$WORK/logs/proxy-$PROXY_NAME.err"
