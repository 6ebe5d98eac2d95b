#!/bin/bash
# SPDX-License-Identifier: MIT
# Per-registry settings apply through the same selection as the plugins
# (field fixes, item 4): aliases (docker.io = registry-1.docker.io),
# wildcards, the longest repository prefix, and inheritance of tag_ttl
# and push (not of allow or credentials) from the next shorter matching
# section. [cache] tag_ttl is 0 here, so a tag served from the cache
# without asking the upstream proves a [registry] tag_ttl applied; the
# upstream's own access log counts the manifest requests.
#   registry-1.docker.io (127.0.0.51): docker-registry with htpasswd,
#   reached by its real name, configured as [registry "docker.io"].
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
. "$DRP_IT_DIR/auth_lib.sh"
drp_scenario_init
drp_require_tools skopeo htpasswd
SCHEMA2=application/vnd.docker.distribution.manifest.v2+json
HUB=registry-1.docker.io

emu_host $HUB 127.0.0.51
cp "$SCEN/pki/$HUB.crt" "$SCEN/pki/$HUB.key" "$WORK/pki/"
drp_start_registry regsel-hub $HUB basic
hub=$(reg_log regsel-hub)
reg=$(reg_log open)
red=$(reg_log redirect)
hpush() {
	edirect skopeo copy --quiet --all --preserve-digests --retry-times 0 \
		--dest-creds "$BASIC_USER:$BASIC_PASS" "oci:$WORK/images/small" "docker://$HUB/$1" ||
		drp_fail "direct push to $HUB/$1 failed"
}
hpush acme/app:v1
hpush other/app:v1
drp_push_direct small registry.test/ctl/small:v1
htpasswd -cbB -C 4 "$SCEN/users" pat pat-Pw1 2>/dev/null

# Sections in an order where "the last section naming the host wins"
# would give the wrong answer for every case below.
DRP_IT_ALLOW=127.0.0.0/8 drp_own_proxy "users_file = $SCEN/users
[registry \"*.test\"]
tag_ttl = 1h
plugin = basic
username = $BASIC_USER
password_file = $(drp_secret regsel-basic.pw "$BASIC_PASS")
allow = 127.0.0.1/32
users = pat
push = deny
[registry \"registry.test/test\"]
tag_ttl = 1h
[registry \"registry.test/test/small\"]
push = client
[registry \"registry.test\"]
tag_ttl = 0s
[registry \"docker.io\"]
plugin = basic
username = $BASIC_USER
password_file = $(drp_secret regsel-hub.pw "$BASIC_PASS")
allow = 127.0.0.1/32
users = pat
tag_ttl = 1h
push = deny
[registry \"docker.io/acme\"]
plugin = basic
username = $BASIC_USER
password_file = $WORK/secrets/regsel-hub.pw" "tag_ttl = 0s"
ocurl() { pcurl --interface 127.0.0.5 "$@"; }
mdigest() { "$@" -o /dev/null -D - -H "Accept: $SCHEMA2" | hdr Docker-Content-Digest; }

# settle LOG HOST: a request straight to HOST, then wait for its line in
# LOG: whatever the proxy sent HOST before is logged by then.
settle()
{
	local p=/v2/drp-settle-$RANDOM$RANDOM/manifests/x m
	m=$(log_mark "$1")
	edirect curl -s -o /dev/null --max-time 10 --cacert "$TEST_CA" "https://$2$p" || true
	wait_log "$1" "$m" "$p" 1 5
}

# twice HOST REPO LOG: GET the tag v1 through the proxy twice; both give
# the small image; prints the upstream's manifest requests for the
# second.
twice()
{
	local url=https://$1/v2/$2/manifests/v1 m
	expect_eq "$1/$2:v1, first GET" "$SMALL_DIGEST" \
		"$(pcurl -o /dev/null -D - -H "Accept: $SCHEMA2" "$url" | hdr Docker-Content-Digest)"
	settle "$3" "$1"
	m=$(log_mark "$3")
	expect_eq "$1/$2:v1, second GET" "$SMALL_DIGEST" \
		"$(pcurl -o /dev/null -D - -H "Accept: $SCHEMA2" "$url" | hdr Docker-Content-Digest)"
	settle "$3" "$1"
	count_since "$3" "$m" "/v2/$2/manifests/"
}

# The counter sees a revalidation: registry.test's own section says 0s
# (an exact host beats the *.test wildcard).
expect_eq "upstream manifest requests, registry.test/ctl/small (tag_ttl 0s)" 1 \
	"$(twice registry.test ctl/small "$reg")"

# tag_ttl of [registry "docker.io"], for requests to registry-1.docker.io.
expect_eq "upstream manifest requests, $HUB/other/app (docker.io tag_ttl 1h)" 0 \
	"$(twice $HUB other/app "$hub")"
# docker.io/acme sets no tag_ttl: it inherits docker.io's.
expect_eq "upstream manifest requests, $HUB/acme/app (inherited from docker.io)" 0 \
	"$(twice $HUB acme/app "$hub")"
# A wildcard section.
expect_eq "upstream manifest requests, redirect.test/test/small (*.test tag_ttl 1h)" 0 \
	"$(twice redirect.test test/small "$red")"
# registry.test/test/small sets no tag_ttl: the next shorter matching
# section, registry.test/test, gives it, not registry.test.
expect_eq "upstream manifest requests, registry.test/test/small (inherited from registry.test/test)" 0 \
	"$(twice registry.test test/small "$reg")"

# push = deny of [registry "docker.io"] for registry-1.docker.io, and
# inherited by docker.io/acme; nothing reaches the upstream.
for repo in other/app acme/app; do
	m=$(log_mark "$hub")
	code=$(pcurl -o "$SCEN/push.body" -w '%{http_code}' -u "$BASIC_USER:$BASIC_PASS" \
		-X POST "https://$HUB/v2/$repo/blobs/uploads/" || true)
	expect_eq "upload to $HUB/$repo (push = deny)" 403 "$code"
	settle "$hub" $HUB
	expect_eq "upload requests at the upstream for $repo" 0 \
		"$(count_since "$hub" "$m" "/v2/$repo/blobs/uploads/")"
done
# push = deny of the wildcard section.
code=$(pcurl -o /dev/null -w '%{http_code}' -X POST "https://redirect.test/v2/test/small/blobs/uploads/" || true)
expect_eq "upload to redirect.test/test/small (*.test push = deny)" 403 "$code"
# registry.test/test/small says push = client: uploads pass (the open
# registry starts one).
code=$(pcurl -o /dev/null -w '%{http_code}' -X POST "https://registry.test/v2/test/small/blobs/uploads/" || true)
expect_eq "upload to registry.test/test/small (push = client)" 202 "$code"

# allow of [registry "docker.io"] for registry-1.docker.io: a client
# outside it does not get what the proxy's credentials fetch...
code=$(ocurl -o /dev/null -w '%{http_code}' -H "Accept: $SCHEMA2" "https://$HUB/v2/other/app/manifests/v1" || true)
expect_match "outsider, $HUB/other/app (allow of docker.io)" '^40[13]$' "$code"
# ... unless it is a proxy user the section names.
expect_eq "127.0.0.5 as pat, $HUB/other/app (users of docker.io)" "$SMALL_DIGEST" \
	"$(mdigest ocurl --proxy-user pat:pat-Pw1 "https://$HUB/v2/other/app/manifests/v1")"
# The same through the wildcard section, for basic.test (whose account
# only the proxy has).
expect_eq "127.0.0.1, basic.test/test/small (*.test credentials)" "$SMALL_DIGEST" \
	"$(mdigest pcurl https://basic.test/v2/test/small/manifests/v1)"
code=$(ocurl -o /dev/null -w '%{http_code}' -H "Accept: $SCHEMA2" https://basic.test/v2/test/small/manifests/v1 || true)
expect_match "outsider, basic.test/test/small (allow of *.test)" '^40[13]$' "$code"
expect_eq "127.0.0.5 as pat, basic.test/test/small (users of *.test)" "$SMALL_DIGEST" \
	"$(mdigest ocurl --proxy-user pat:pat-Pw1 https://basic.test/v2/test/small/manifests/v1)"
# docker.io/acme, without an allow or users of its own, does not inherit
# them: what [proxy] allow admits gets it.
expect_eq "127.0.0.5, $HUB/acme/app (docker.io/acme has no allow)" "$SMALL_DIGEST" \
	"$(ocurl -o /dev/null -D - -H "Accept: $SCHEMA2" "https://$HUB/v2/acme/app/manifests/v1" | hdr Docker-Content-Digest)"
drp_log "ok: tag_ttl, push and allow through alias, wildcard and prefix sections"
