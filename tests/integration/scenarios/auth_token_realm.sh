#!/bin/bash
# SPDX-License-Identifier: MIT
# Credentials for a token realm's host (issue 11): the nginx-based image's
# AUTH_REGISTRIES may name the host of a registry's token service rather
# than the registry (GitLab: gitlab.com for registry.gitlab.com); the old
# image added them to every request for that host. --env-config turns
# such an entry into a [registry "HOST"] section with token_realm = yes,
# which this proxy is configured with: a client with no credentials pulls
# a private image of token.test (no section of its own; its challenges
# name the realm https://auth.test/token), the proxy fetches the token
# from auth.test with the entry's account (counted in the token service's
# own log), and nothing secret reaches the client or the logs.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
. "$DRP_IT_DIR/auth_lib.sh"
drp_scenario_init
drp_require_tools skopeo
tlog=$WORK/logs/token.out

mkdir -p "$SCEN/state"
drp_env_i STATE_DIRECTORY="$SCEN/state" REGISTRIES="token.test auth.test" \
	AUTH_REGISTRIES="auth.test:$PROXYUSER" \
	"$DRP_PROXY" --env-config --print-config >"$SCEN/env.ini"
sections=$(sed -n '/^\[registry /,$p' "$SCEN/env.ini")
drp_log "--env-config made: $(printf '%s' "$sections" | tr '\n' '|')"
drp_own_proxy "log_level = info
$sections"
emu_no_client_creds

mark=$(log_mark "$tlog")
pskopeo copy --quiet --retry-times 0 docker://token.test/private/secret:v1 "dir:$SCEN/secret" ||
	drp_fail "a client without credentials could not pull token.test/private/secret"
check_dir_image "$SCEN/secret" "$PUSH_DIGEST" $PUSH_BLOBS
expect_ge "tokens for private/secret fetched with the realm host's account" 1 \
	"$(count_since "$tlog" "$mark" 'user=proxyuser scope=repository:private/secret:pull status=200')"
expect_eq "token requests of anyone else for private/secret" 0 \
	"$(log_since "$tlog" "$mark" | grep -F 'scope=repository:private/secret:pull' | grep -vcF 'user=proxyuser' || true)"
grep -q 'token realm auth.test: the credentials of \[registry "auth.test"\]' "$PROXY_DIR/proxy.log" ||
	drp_fail "no log line names the token realm section"
emu_check_no_client_creds
auth_no_secret_in "$PROXY_DIR/access.log" "$PROXY_DIR/proxy.log" "$WORK/logs/proxy-$PROXY_NAME.err" \
	"$SCEN/env.ini"
