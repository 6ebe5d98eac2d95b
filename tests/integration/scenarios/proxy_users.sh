#!/bin/bash
# SPDX-License-Identifier: MIT
# Proxy users (issue 4, private content): [proxy] users_file (htpasswd)
# checked against Proxy-Authorization on CONNECT and absolute-form
# requests, and [registry] users = ... as a way into a section's private
# content. A proxy user listed in the section gets the private image
# (curl, skopeo through HTTPS_PROXY=http://USER:PASS@...), a valid user
# not listed gets 403, a wrong password 407 (logged with the user's name,
# never the password), no credentials 407 where require_users = yes. The
# user name is in the access log (also when the client leaves out the
# base64 padding); the file is checked by -t, re-read on SIGHUP (a bad one
# keeps the old users); a flood of wrong passwords (bcrypt) does not stall
# the proxy.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
drp_scenario_init
drp_require_tools skopeo htpasswd
SCHEMA2=application/vnd.docker.distribution.manifest.v2+json
secret_layer=${PUSH_BLOBS##* }

# pat: bcrypt at cost 10 (tens of ms a check); quinn: apr1; sam: {SHA};
# a plaintext entry is skipped with a warning.
users=$SCEN/users
htpasswd -cbB -C 10 "$users" pat pat-Pw1 2>/dev/null
htpasswd -bm "$users" quinn quinn-Pw2 2>/dev/null
htpasswd -bs "$users" sam sam-Pw3 2>/dev/null
echo 'plain:cleartext-Pw4' >>"$users"

# The section's private content goes to pat and quinn only, not by
# network (users without allow): 127.0.0.1 itself is no insider here.
sections="[registry \"token.test\"]
plugin = basic
username = ${PROXYUSER%%:*}
password_file = $(drp_secret proxy_users.pw "${PROXYUSER#*:}")
users = pat, quinn"

# -t checks the file (with file:line), and reports the skipped entry.
drp_proxy_conf users-t "$(drp_free_port)" "users_file = $users" "$sections"
out=$("$DRP_PROXY" -t -c "$WORK/users-t/proxy.ini" 2>&1)
expect_match "-t accepts the users file" 'configuration OK' "$out"
expect_match "-t warns about the plaintext entry" "$users:4: user 'plain' skipped: plaintext" "$out"
expect_no_match "-t never shows the plaintext password" 'cleartext-Pw4' "$out"
printf 'pat:$2y$10$short\n' >"$SCEN/bad-users"
drp_proxy_conf users-bad "$(drp_free_port)" "users_file = $SCEN/bad-users"
if out=$("$DRP_PROXY" -t -c "$WORK/users-bad/proxy.ini" 2>&1); then
	drp_fail "-t accepted a malformed users file"
fi
expect_match "-t names file:line of a bad entry" "$SCEN/bad-users:1: user 'pat': malformed bcrypt hash" "$out"

DRP_IT_ALLOW=127.0.0.0/8 drp_own_proxy "users_file = $users" "$sections"
base_url=$PROXY_URL
port=$PROXY_PORT
as() { PROXY_URL="http://$1@127.0.0.1:$port"; }

# pat (listed): the private image, with curl and with skopeo.
as pat:pat-Pw1
amk=$(amark)
code=$(pcurl -o "$SCEN/blob" -w '%{http_code}' "https://token.test/v2/private/secret/blobs/$secret_layer")
expect_eq "pat: private blob" 200 "$code"
expect_file_digest "pat: the blob's bytes" "$SCEN/blob" "$secret_layer"
expect_eq "access log: status and user" "200 pat" \
	"$(anext '$6, $12' "$amk" token.test:443 GET "/v2/private/secret/blobs/$secret_layer")"
pskopeo copy --quiet --retry-times 0 docker://token.test/private/secret:v1 "dir:$SCEN/secret"
check_dir_image "$SCEN/secret" "$PUSH_DIGEST" $PUSH_BLOBS
drp_log "ok: skopeo as pat pulled token.test/private/secret:v1"

# pat again, the base64 of the credentials without its padding (some HTTP
# clients leave it out; RFC 4648 lets a decoder take it): the same user.
unpadded=$(printf '%s' pat:pat-Pw1 | base64 -w0 | tr -d =)
[ $((${#unpadded} % 4)) -ne 0 ] || drp_fail "pat:pat-Pw1 needs no padding"
PROXY_URL=$base_url
amk=$(amark)
code=$(pcurl -o "$SCEN/blob-unpadded" -w '%{http_code}' \
	--proxy-header "Proxy-Authorization: Basic $unpadded" \
	"https://token.test/v2/private/secret/blobs/$secret_layer" || true)
expect_eq "pat, unpadded Proxy-Authorization: private blob" 200 "$code"
expect_file_digest "pat, unpadded: the blob's bytes" "$SCEN/blob-unpadded" "$secret_layer"
expect_eq "pat, unpadded: access log status and user" "200 pat" \
	"$(anext '$6, $12' "$amk" token.test:443 GET "/v2/private/secret/blobs/$secret_layer")"

# quinn (listed, apr1): served from the cache now.
as quinn:quinn-Pw2
code=$(pcurl -o "$SCEN/manifest" -w '%{http_code}' -H "Accept: $SCHEMA2" https://token.test/v2/private/secret/manifests/v1)
expect_eq "quinn: private manifest" 200 "$code"
expect_file_digest "quinn: the manifest's bytes" "$SCEN/manifest" "$PUSH_DIGEST"

# sam: a valid proxy user, not listed: 403 for the private content, by
# curl and by skopeo; public content is his.
as sam:sam-Pw3
code=$(pcurl -o "$SCEN/body" -w '%{http_code}' "https://token.test/v2/private/secret/blobs/$secret_layer" || true)
expect_eq "sam: private blob" 403 "$code"
expect_match "sam: the refusal says why" 'private' "$(cat "$SCEN/body")"
if pskopeo copy --quiet --retry-times 0 docker://token.test/private/secret:v1 "dir:$SCEN/sam" 2>"$SCEN/sam.err"; then
	drp_fail "skopeo as sam pulled the private image"
fi
expect_match "skopeo as sam: refused" 'denied|403|private' "$(cat "$SCEN/sam.err")"
code=$(pcurl -o "$SCEN/pub" -w '%{http_code}' -H "Accept: $SCHEMA2" https://token.test/v2/public/small/manifests/v1)
expect_eq "sam: public manifest" 200 "$code"

# Nobody (require_users = no): through the proxy, but not to private
# content.
PROXY_URL=$base_url
amk=$(amark)
code=$(pcurl -o /dev/null -w '%{http_code}' "https://token.test/v2/private/secret/blobs/$secret_layer" || true)
expect_eq "anonymous: private blob" 403 "$code"
expect_eq "anonymous: access-log user" "-" \
	"$(anext '$12' "$amk" token.test:443 GET "/v2/private/secret/blobs/$secret_layer")"

# A wrong password: 407 with the proxy's challenge, for curl and for
# skopeo; the log names the user, never the password.
pmk=$(log_mark "$PROXY_DIR/proxy.log")
as pat:wrong-Pw9
code=$(pcurl -o /dev/null -w '%{http_connect}' "https://token.test/v2/" || true)
expect_eq "wrong password: CONNECT status" 407 "$code"
curl -s --max-time 10 -o /dev/null -D "$SCEN/407.hdr" --proxy "$PROXY_URL" http://registry.test/ || true
expect_eq "wrong password, absolute-form: status" 407 "$(status_codes <"$SCEN/407.hdr")"
expect_eq "the challenge" 'Basic realm="docker-registry-proxy"' "$(hdr Proxy-Authenticate <"$SCEN/407.hdr")"
if pskopeo copy --quiet --retry-times 0 docker://token.test/public/small:v1 "dir:$SCEN/wrong" 2>"$SCEN/wrong.err"; then
	drp_fail "skopeo with a wrong proxy password pulled"
fi
expect_match "skopeo: 407" '407|Proxy Authentication Required' "$(cat "$SCEN/wrong.err")"
drp_wait "the refusal in the log" 5 grep -q "proxy user 'pat' refused: wrong password" "$PROXY_DIR/proxy.log"
expect_ge "refusals logged" 2 "$(count_since "$PROXY_DIR/proxy.log" "$pmk" "proxy user 'pat' refused: wrong password")"
as nobody:x
expect_eq "unknown user: CONNECT status" 407 "$(pcurl -o /dev/null -w '%{http_connect}' https://token.test/v2/ || true)"
drp_wait "an unknown user in the log" 5 grep -q "proxy user 'nobody' refused: no such user" "$PROXY_DIR/proxy.log"
expect_no_match "no proxy password in the logs" 'wrong-Pw9|pat-Pw1|quinn-Pw2|sam-Pw3' \
	"$(cat "$PROXY_DIR/proxy.log" "$PROXY_DIR/access.log")"

# A flood of distinct wrong bcrypt passwords is verified off the event
# loops: the proxy keeps answering meanwhile. Shown by order, not by
# time: /healthz and a cached proxy user are answered while most of the
# flood's checks are still pending (had the loop verified them itself,
# all 40 refusals would be logged before either answer).
fmk=$(log_mark "$PROXY_DIR/proxy.log")
pids=()
for i in $(seq 1 40); do
	curl -s --max-time 60 -o /dev/null --proxy "http://pat:flood-$i@127.0.0.1:$port" \
		http://registry.test/ &
	pids+=($!)
done
wait_log "$PROXY_DIR/proxy.log" "$fmk" "proxy user 'pat' refused: wrong password" 1 30
code=$(curl -s --max-time 30 -o /dev/null -w '%{http_code}' "$base_url/healthz")
refused=$(count_since "$PROXY_DIR/proxy.log" "$fmk" "proxy user 'pat' refused: wrong password")
expect_eq "healthz during the flood" 200 "$code"
expect_le "flood checks done when healthz answered" 39 "$refused"
as quinn:quinn-Pw2
code=$(pcurl -o /dev/null -w '%{http_code}' -H "Accept: $SCHEMA2" https://token.test/v2/public/small/manifests/v1)
refused=$(count_since "$PROXY_DIR/proxy.log" "$fmk" "proxy user 'pat' refused: wrong password")
expect_eq "a cached proxy user during the flood" 200 "$code"
expect_le "flood checks done when the cached user was answered" 39 "$refused"
wait "${pids[@]}" || true
drp_log "ok: flood of 40 wrong bcrypt passwords done"

# SIGHUP re-reads the file: quinn goes, sam comes into the section; a
# broken file keeps the users before it.
htpasswd -D "$users" quinn 2>/dev/null
sed -i 's/^users = pat, quinn$/users = pat, sam/' "$PROXY_DIR/proxy.ini"
pmk=$(log_mark "$PROXY_DIR/proxy.log")
kill -HUP "$PROXY_PID"
wait_log "$PROXY_DIR/proxy.log" "$pmk" 'configuration reloaded' 1 10
as quinn:quinn-Pw2
expect_eq "quinn after the reload" 407 "$(pcurl -o /dev/null -w '%{http_connect}' https://token.test/v2/ || true)"
as sam:sam-Pw3
expect_eq "sam after the reload: private blob" 200 \
	"$(pcurl -o /dev/null -w '%{http_code}' "https://token.test/v2/private/secret/blobs/$secret_layer")"
cp "$users" "$SCEN/users.good"
echo 'broken line without a colon' >>"$users"
pmk=$(log_mark "$PROXY_DIR/proxy.log")
kill -HUP "$PROXY_PID"
wait_log "$PROXY_DIR/proxy.log" "$pmk" 'reload failed' 1 10
expect_match "the reload error names file:line" "$users:[0-9]+: expected USER:HASH" "$(log_since "$PROXY_DIR/proxy.log" "$pmk")"
expect_eq "sam after the failed reload" 200 \
	"$(pcurl -o /dev/null -w '%{http_code}' "https://token.test/v2/private/secret/blobs/$secret_layer")"
cp "$SCEN/users.good" "$users"

# require_users = yes: no credentials, no proxy (407), for CONNECT and
# absolute-form alike; /ca.crt stays open for setting clients up.
drp_proxy_conf users-req "$(drp_free_port)" "users_file = $users
require_users = yes"
drp_start_proxy users-req
code=$(pcurl -o /dev/null -w '%{http_connect}' https://token.test/v2/ || true)
expect_eq "require_users, no credentials: CONNECT" 407 "$code"
curl -s --max-time 10 -o /dev/null -D "$SCEN/req.hdr" --proxy "$PROXY_URL" http://registry.test/ || true
expect_eq "require_users, no credentials: absolute-form" 407 "$(status_codes <"$SCEN/req.hdr")"
if pskopeo copy --quiet --retry-times 0 docker://token.test/public/small:v1 "dir:$SCEN/nocreds" 2>"$SCEN/nocreds.err"; then
	drp_fail "skopeo without proxy credentials pulled through require_users = yes"
fi
expect_match "skopeo without credentials: 407" '407|Proxy Authentication Required' "$(cat "$SCEN/nocreds.err")"
expect_eq "require_users: /ca.crt" 200 "$(curl -s -o /dev/null -w '%{http_code}' "$PROXY_URL/ca.crt")"
req_port=$PROXY_PORT
PROXY_URL="http://sam:sam-Pw3@127.0.0.1:$req_port"
pskopeo copy --quiet --retry-times 0 docker://token.test/public/small:v1 "dir:$SCEN/withcreds"
drp_log "ok: skopeo as sam pulled through require_users = yes"
