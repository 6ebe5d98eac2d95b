#!/bin/bash
# SPDX-License-Identifier: MIT
# Clients without credentials pull private images through the proxy,
# which holds the credentials (issue 4): the basic plugin answers the
# htpasswd registry's Basic challenge and the token registry's Bearer
# challenge (a token from auth.test fetched with the proxy's account);
# skopeo, podman and docker.
# Ten pulls of one image cost one token request per scope, and every
# digest equals the one pushed.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
. "$DRP_IT_DIR/auth_lib.sh"
drp_scenario_init
drp_require_tools skopeo podman
tlog=$WORK/logs/token.out
drp_own_proxy "" "tag_ttl = 0s
$(auth_sections)"

# Basic registry: skopeo and podman, no credentials of their own.
pskopeo copy --quiet --retry-times 0 docker://basic.test/test/small:v1 "dir:$SCEN/basic"
check_dir_image "$SCEN/basic" "$SMALL_DIGEST" $SMALL_BLOBS
pd=$SCEN/p
drp_at_exit "drp_podman_reset '$pd'"
via_proxy drp_podman "$pd" pull -q docker://basic.test/test/multi:v1 >/dev/null
expect_eq "podman, no credentials, basic.test/test/multi" "$MULTI_DIGEST" \
	"$(drp_podman "$pd" inspect --format '{{.Digest}}' basic.test/test/multi:v1)"

# Token registry: 10 pulls of a private image (tag_ttl 0: every pull
# revalidates the tag upstream) cost one token request for its scope,
# made with the proxy's account.
mark=$(log_mark "$tlog")
for _ in $(seq 1 10); do
	rm -rf "$SCEN/secret"
	pskopeo copy --quiet --retry-times 0 docker://token.test/private/secret:v1 "dir:$SCEN/secret"
done
check_dir_image "$SCEN/secret" "$PUSH_DIGEST" $PUSH_BLOBS
expect_eq "token requests for private/secret:pull in 10 pulls" 1 \
	"$(count_since "$tlog" "$mark" 'scope=repository:private/secret:pull status=200')"
expect_eq "made by the proxy's account" 1 \
	"$(count_since "$tlog" "$mark" 'user=proxyuser scope=repository:private/secret:pull status=200')"
expect_eq "token requests by anyone else" 0 \
	"$(log_since "$tlog" "$mark" | grep -vc 'user=proxyuser' || true)"
via_proxy drp_podman "$pd" pull -q docker://token.test/private/small:v1 >/dev/null
expect_eq "podman, no credentials, token.test/private/small" "$SMALL_DIGEST" \
	"$(drp_podman "$pd" inspect --format '{{.Digest}}' token.test/private/small:v1)"
drp_log "token requests: $(log_since "$tlog" "$mark" | sort | uniq -c | tr -s ' ' | paste -sd';')"

# docker (the daemon pulls), no credentials, both registries.
if command -v dockerd >/dev/null 2>&1 && command -v docker >/dev/null 2>&1; then
	drp_start_dockerd "$SCEN/dk" proxy
	docker pull -q token.test/private/secret:v1 >"$SCEN/pull.out"
	expect_eq "docker, no credentials, token.test/private/secret" "$PUSH_DIGEST" \
		"$(docker_repo_digest token.test/private/secret:v1)"
	docker pull -q basic.test/test/multi:v1 >"$SCEN/pull.out"
	expect_eq "docker, no credentials, basic.test/test/multi" "$MULTI_DIGEST" \
		"$(docker_repo_digest basic.test/test/multi:v1)"
elif drp_strict; then
	drp_fail "dockerd missing under DRP_STRICT=1"
fi
drp_log "token requests: $(log_since "$tlog" "$mark" | sort | uniq -c | tr -s ' ' | paste -sd';')"

# Neither password reached the proxy's logs.
auth_no_secret_in "$PROXY_DIR/access.log" "$PROXY_DIR/proxy.log" "$WORK/logs/proxy-$PROXY_NAME.err"
