#!/bin/bash
# SPDX-License-Identifier: MIT
# Private content through the registry mirror (issue 12): the policy is
# the intercepting mode's, and a mirror client proves who it is with the
# proxy's own Bearer realm on the mirror. token.test's private image
# needs the proxy's account ([registry "token.test"], plugin basic,
# allow 127.0.0.1, users mirroruser):
#  - containerd on 127.0.0.1 (inside allow), with hosts.toml and no
#    credentials at all, pulls it: the proxy's account fetched it;
#  - a client on 127.0.0.5 (outside allow) is challenged with the
#    mirror's realm, gets an anonymous handle there, and is refused
#    (403, a log line), also for a layer the cache holds;
#  - the same client as proxy user mirroruser (Basic at the realm) gets
#    a handle and the image; a wrong password: 401 at the realm and a
#    log line, no password in any log;
#  - with require_users (reloaded), a client without a proxy user gets
#    401 for everything, the API probe included.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
. "$DRP_IT_DIR/auth_lib.sh"
. "$DRP_IT_DIR/mirror_lib.sh"
drp_scenario_init
drp_require_tools containerd ctr htpasswd
users=$SCEN/users
MUSER=mirroruser MPW='Mirror-Pw9'
htpasswd -cbB -C 10 "$users" "$MUSER" "$MPW" 2>/dev/null
sections="$(auth_sections)
allow = 127.0.0.1/32
users = $MUSER"
DRP_IT_ALLOW=127.0.0.0/8 drp_own_proxy "users_file = $users" "$sections"
tok=$(reg_log token)
layer=${SMALL_LAYERS%% *}

# containerd inside allow: the private image with the proxy's account.
drp_start_containerd "$SCEN/c1"
mirror_hosts_dir "$SCEN/certs.d" "$PROXY_URL" - token.test
m=$(log_mark "$tok")
mirror_client ctr -a "$CTR_SOCK" images pull --hosts-dir "$SCEN/certs.d" --snapshotter native \
	token.test/private/small:v1 >"$SCEN/pull.out" 2>&1 ||
	drp_fail "ctr pull of the private image: $(tail -n 3 "$SCEN/pull.out")"
expect_eq "ctr, token.test/private/small:v1" "$SMALL_DIGEST" "$(ctr_image_digest token.test/private/small:v1)"
settle_upstream token.test "$tok" # its log is complete up to here
expect_ge "upstream blob GETs" 3 "$(mirror_count "$tok" "$m" GET /v2/private/small/blobs/)"

# Outside allow: challenged with the mirror's realm.
ocurl() { curl -sS --max-time 30 --interface 127.0.0.5 "$@"; }
base="$PROXY_URL/v2/private/small"
code=$(ocurl -o /dev/null -D "$SCEN/h" -w '%{http_code}' "$base/manifests/v1?ns=token.test")
expect_eq "outsider without credentials" 401 "$code"
expect_eq "the mirror's challenge" \
	"Bearer realm=\"$PROXY_URL/_drp/token?ns=token.test\",service=\"token.test\"" \
	"$(hdr WWW-Authenticate <"$SCEN/h")"
anon=$(ocurl "$PROXY_URL/_drp/token?ns=token.test&service=token.test&scope=repository:private/small:pull" | jq -r .token)
expect_match "an anonymous handle" '^drp1\.' "$anon"
am=$(amark)
for p in "manifests/v1" "blobs/$layer"; do
	code=$(ocurl -o "$SCEN/body" -w '%{http_code}' -H "Authorization: Bearer $anon" "$base/$p?ns=token.test")
	expect_eq "outsider, anonymous handle: $p" 403 "$code"
done
expect_match "the refusal's log line" 'private/small.*(refused|private)' "$(cat "$PROXY_DIR/proxy.log")"
expect_eq "2xx for the outsider" "" "$(log_since "$PROXY_DIR/access.log" "$am" | awk '$2 == "127.0.0.5" && $6 ~ /^2/')"

# The proxy user at the realm: a handle of its own, and the image.
h=$(ocurl -u "$MUSER:$MPW" "$PROXY_URL/_drp/token?ns=token.test&service=token.test&scope=repository:private/small:pull" | jq -r .token)
expect_match "mirroruser's handle" '^drp1\.' "$h"
ocurl -o "$SCEN/m" -H "Authorization: Bearer $h" \
	-H 'Accept: application/vnd.docker.distribution.manifest.v2+json' "$base/manifests/v1?ns=token.test"
expect_file_digest "mirroruser: the private manifest" "$SCEN/m" "$SMALL_DIGEST"
ocurl -o "$SCEN/l" -H "Authorization: Bearer $h" "$base/blobs/$layer?ns=token.test"
expect_file_digest "mirroruser: the private layer" "$SCEN/l" "$layer"
code=$(ocurl -o /dev/null -w '%{http_code}' -u "$MUSER:wrong" \
	"$PROXY_URL/_drp/token?ns=token.test&service=token.test")
expect_eq "a wrong proxy password at the realm" 401 "$code"
drp_wait "the refusal's log line" 10 grep -q "proxy user '$MUSER': wrong password" "$PROXY_DIR/proxy.log"
for f in "$PROXY_DIR/access.log" "$PROXY_DIR/proxy.log" "$WORK/logs/proxy-$PROXY_NAME.err"; do
	if grep -qF -e "$MPW" -e "$(printf '%s:%s' "$MUSER" "$MPW" | base64 -w0)" -e "$h" "$f"; then
		drp_fail "a secret of mirroruser in $f"
	fi
done
auth_no_secret_in "$PROXY_DIR/access.log" "$PROXY_DIR/proxy.log" "$WORK/logs/proxy-$PROXY_NAME.err"

# require_users: nothing without a proxy user.
sed -i "s|^users_file = .*|&\nrequire_users = yes|" "$PROXY_DIR/proxy.ini"
pm=$(log_mark "$PROXY_DIR/proxy.log")
kill -HUP "$PROXY_PID"
drp_wait "the reload" 10 bash -c "tail -c +$((pm + 1)) '$PROXY_DIR/proxy.log' | grep -q 'configuration reloaded'"
for u in "/v2/" "/v2/?ns=token.test" "/v2/private/small/manifests/v1?ns=token.test"; do
	expect_eq "require_users, no user: $u" 401 "$(curl -sS -o /dev/null -w '%{http_code}' "$PROXY_URL$u")"
done
expect_eq "require_users, the realm without a user" 401 \
	"$(curl -sS -o /dev/null -w '%{http_code}' "$PROXY_URL/_drp/token?ns=token.test")"
h=$(curl -sS -u "$MUSER:$MPW" "$PROXY_URL/_drp/token?ns=token.test" | jq -r .token)
expect_eq "require_users, mirroruser's handle: the probe" 200 \
	"$(curl -sS -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $h" "$PROXY_URL/v2/?ns=token.test")"
