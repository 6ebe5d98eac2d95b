# SPDX-License-Identifier: MIT
# shellcheck shell=bash
# shellcheck disable=SC2034 # variables set here are used by the sourcing scripts
#
# Helpers for the registry-mirror scenarios (scenarios/mirror_*.sh), on
# top of lib.sh and auth_lib.sh: Docker Hub emulated as an open registry
# under its real name, containerd's hosts.toml, and clients that know of
# no proxy at all (no HTTPS_PROXY, the registry names unresolvable).

# mirror_hub: an open docker-registry as registry-1.docker.io
# (127.0.0.141:443, a certificate of the test CA), holding the small test
# image as library/hello:v1. Access log: $(emu_reg_log hub).
mirror_hub()
{
	local conf=$SCEN/reg-hub.yml
	emu_host registry-1.docker.io 127.0.0.141
	mkdir -p "$SCEN/storage/hub"
	cat >"$conf" <<-EOF
		version: 0.1
		log:
		  level: info
		  formatter: text
		  accesslog:
		    disabled: false
		storage:
		  filesystem:
		    rootdirectory: $SCEN/storage/hub
		  maintenance:
		    uploadpurging:
		      enabled: false
		http:
		  addr: 127.0.0.141:443
		  secret: drp-emu-hub
		  tls:
		    certificate: $SCEN/pki/registry-1.docker.io.crt
		    key: $SCEN/pki/registry-1.docker.io.key
		health:
		  storagedriver:
		    enabled: false
	EOF
	drp_bg emu-reg-hub env -u REGISTRY_AUTH_FILE docker-registry serve "$conf"
	drp_wait_started emu-reg-hub "$DRP_LAST_PID" 30 drp_port_open 127.0.0.141 443
	edirect skopeo copy --quiet --all --preserve-digests --retry-times 0 \
		"oci:$WORK/images/small" docker://registry-1.docker.io/library/hello:v1 ||
		drp_fail "direct push to the emulated Docker Hub failed"
}

# mirror_client CMD...: CMD as a mirror's client: no proxy variables, the
# registry names resolve to nothing, only the proxy's CA is trusted.
mirror_client()
{
	drp_ns "$WORK/hosts-proxied" SSL_CERT_FILE="$PROXY_CA" SSL_CERT_DIR="$WORK/empty-certs" -- "$@"
}

# mirror_hosts_dir DIR MIRROR-URL [CA-FILE] REGISTRY...: containerd's
# hosts.toml for each REGISTRY (docker.io: the server is
# registry-1.docker.io), the mirror as its only pull/resolve host.
mirror_hosts_dir()
{
	local d=$1 url=$2 ca=$3 r server
	shift 3
	for r in "$@"; do
		server=https://$r
		[ "$r" = docker.io ] && server=https://registry-1.docker.io
		mkdir -p "$d/$r"
		{
			printf 'server = "%s"\n\n[host."%s"]\n  capabilities = ["pull", "resolve"]\n' "$server" "$url"
			[ "$ca" = - ] || printf '  ca = "%s"\n' "$ca"
		} >"$d/$r/hosts.toml"
	done
}

# mirror_count LOG MARK METHOD PATH-PREFIX: requests in a registry's
# access log after MARK whose path starts with PATH-PREFIX.
mirror_count()
{
	log_since "$1" "$2" | grep -cF -- "\"$3 $4" || true
}
