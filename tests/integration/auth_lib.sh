# SPDX-License-Identifier: MIT
# shellcheck shell=bash
# shellcheck disable=SC2034 # variables set here are used by the sourcing scripts
#
# Helpers for the auth scenarios (scenarios/auth_*.sh), on top of lib.sh:
# the proxy's [registry] sections for the test registries, and checks
# that no credential leaked.

# auth_sections [BASIC-PW [TOKEN-PW]]: [registry] sections giving the
# proxy an account at basic.test (htpasswd, plugin basic) and at
# token.test (token service auth.test, plugin basic: Basic credentials
# for the token realm). Passwords go to files, never inline.
auth_sections()
{
	local bpw=${1:-$BASIC_PASS} tpw=${2:-${PROXYUSER#*:}}
	cat <<-EOF
		[registry "basic.test"]
		plugin = basic
		username = $BASIC_USER
		password_file = $(drp_secret "$SCEN_NAME-basic.pw" "$bpw")
		[registry "token.test"]
		plugin = basic
		username = ${PROXYUSER%%:*}
		password_file = $(drp_secret "$SCEN_NAME-token.pw" "$tpw")
	EOF
}

# auth_no_secret_in FILE...: none of the test passwords (nor the proxy's
# Basic credentials in base64) appears in any FILE.
auth_no_secret_in()
{
	local f b1 b2
	b1=$(printf '%s' "$PROXYUSER" | base64 -w0)
	b2=$(printf '%s:%s' "$BASIC_USER" "$BASIC_PASS" | base64 -w0)
	for f in "$@"; do
		[ -f "$f" ] || continue
		if grep -qF -e "${PROXYUSER#*:}" -e "$BASIC_PASS" -e "$b1" -e "$b2" "$f"; then
			drp_fail "a proxy credential in $f"
		fi
	done
	drp_log "ok: no proxy credential in $*"
}
