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

# ---------------------------------------------------------------- emulated public registries
#
# The plugin scenarios (scenarios/plugin_*.sh) emulate Docker Hub, quay.io
# and gcr.io/pkg.dev under their real host names: Debian's docker-registry
# with token auth, tokenserver.py with the service's accounts and
# behaviour, and nginx where the service has its token endpoint on the
# registry's own host (quay.io/v2/auth, gcr.io/v2/token) or a CDN. The
# proxy reaches the names through [resolve] (emu_host adds them to DRP_IP
# before drp_own_proxy writes the configuration); direct clients through
# the scenario's own hosts file (edirect); proxied clients not at all.
# Everything started here belongs to the scenario and dies with it.

EMU_ADMIN=emu-admin:emu-admin-pw

# emu_host HOST IP: HOST is emulated at IP: a certificate from the test CA
# ($SCEN/pki/HOST.crt/.key), an entry in DRP_IP and in $SCEN/hosts.
emu_host()
{
	local h=$1 ip=$2 d=$SCEN/pki
	mkdir -p "$d"
	[ -f "$SCEN/hosts" ] || cp "$WORK/hosts" "$SCEN/hosts"
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$d/$h.key" -out "$d/$h.csr" -subj "/CN=$h" 2>/dev/null &&
		printf 'subjectAltName=DNS:%s,IP:%s\nextendedKeyUsage=serverAuth\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n' \
			"$h" "$ip" >"$d/$h.ext" &&
		openssl x509 -req -in "$d/$h.csr" -CA "$WORK/pki/ca.crt" -CAkey "$WORK/pki/ca.key" \
			-set_serial "0x$(openssl rand -hex 16)" -days 3 \
			-extfile "$d/$h.ext" -out "$d/$h.crt" 2>/dev/null ||
		drp_fail "certificate for $h failed"
	DRP_IP[$h]=$ip
	echo "$ip $h" >>"$SCEN/hosts"
}

# edirect CMD...: like direct, with the emulated hosts resolving too.
edirect()
{
	drp_ns "$SCEN/hosts" SSL_CERT_FILE="$TEST_CA" SSL_CERT_DIR="$WORK/empty-certs" -- "$@"
}

# emu_push IMAGE REF: push a test image straight to an emulated registry
# (no proxy), byte for byte, with the emulation's admin account.
emu_push()
{
	edirect skopeo copy --quiet --all --preserve-digests --retry-times 0 \
		--dest-creds "$EMU_ADMIN" "oci:$WORK/images/$1" "docker://$2" ||
		drp_fail "direct push of $1 to $2 failed"
}

# emu_registry NAME ADDR:PORT SERVICE REALM [tls=HOST] [redirect=BASEURL]
#   [host=URL]: docker-registry with token auth (tokens of the test
# signer, aud SERVICE), serving TLS with HOST's certificate or plain HTTP
# (behind nginx); redirect= adds the redirect middleware (blob GET/HEAD
# answer 307 to BASEURL + the blob's storage path, as Docker Hub's CDN
# does); host= the external URL for Location headers. Storage in
# $SCEN/storage/NAME, access log $(emu_reg_log NAME).
emu_registry()
{
	local name=$1 addr=$2 service=$3 realm=$4 opt conf=$SCEN/reg-$1.yml tls='' redirect='' ext=''
	shift 4
	for opt in "$@"; do
		case $opt in
		tls=*) tls=${opt#tls=} ;;
		redirect=*) redirect=${opt#redirect=} ;;
		host=*) ext=${opt#host=} ;;
		*) drp_fail "emu_registry: unknown option $opt" ;;
		esac
	done
	mkdir -p "$SCEN/storage/$name"
	{
		cat <<-EOF
			version: 0.1
			log:
			  level: info
			  formatter: text
			  accesslog:
			    disabled: false
			storage:
			  filesystem:
			    rootdirectory: $SCEN/storage/$name
			  maintenance:
			    uploadpurging:
			      enabled: false
			http:
			  addr: $addr
			  secret: drp-emu-$name
		EOF
		[ -n "$ext" ] && echo "  host: $ext"
		if [ -n "$tls" ]; then
			cat <<-EOF
				  tls:
				    certificate: $SCEN/pki/$tls.crt
				    key: $SCEN/pki/$tls.key
			EOF
		fi
		cat <<-EOF
			health:
			  storagedriver:
			    enabled: false
			auth:
			  token:
			    realm: $realm
			    service: $service
			    issuer: $TOKEN_ISSUER
			    rootcertbundle: $WORK/pki/token-signer.crt
		EOF
		if [ -n "$redirect" ]; then
			cat <<-EOF
				middleware:
				  storage:
				    - name: redirect
				      options:
				        baseurl: $redirect
			EOF
		fi
	} >"$conf"
	drp_bg "emu-reg-$name" env -u REGISTRY_AUTH_FILE docker-registry serve "$conf"
	drp_wait_started "emu-reg-$name" "$DRP_LAST_PID" 30 drp_port_open "${addr%:*}" "${addr##*:}"
}

emu_reg_log() { echo "$WORK/logs/emu-reg-$1.out"; }

# emu_tokens NAME CONFIG-JSON [TLS-HOST]: tokenserver.py with CONFIG
# (see its header), serving TLS with TLS-HOST's certificate at its DRP_IP
# address, or where CONFIG's "listen" says. Log: $(emu_token_log NAME).
emu_tokens()
{
	local name=$1 host=${3:-} ip=127.0.0.1 cert=- key=-
	printf '%s\n' "$2" >"$SCEN/tokens-$name.json"
	if [ -n "$host" ]; then
		ip=${DRP_IP[$host]} cert=$SCEN/pki/$host.crt key=$SCEN/pki/$host.key
	fi
	drp_bg "emu-token-$name" python3 "$DRP_IT_DIR/tokenserver.py" "$ip" "$cert" "$key" \
		"$WORK/pki/token-signer.key" "$TOKEN_ISSUER" 300 "$SCEN/tokens-$name.json"
	local listen
	listen=$(jq -r ".listen // \"$ip:443\"" "$SCEN/tokens-$name.json")
	drp_wait_started "emu-token-$name" "$DRP_LAST_PID" 20 drp_port_open "${listen%:*}" "${listen##*:}"
}

emu_token_log() { echo "$WORK/logs/emu-token-$1.out"; }

# emu_nginx BLOCK...: one nginx for the scenario with the given server
# blocks (emu_front, emu_static). Its access logs use the format "drp":
#   addr "request" status bytes "range" "authorization"
emu_nginx()
{
	local d=$SCEN/nginx
	mkdir -p "$d/tmp"
	{
		cat <<-EOF
			user root;
			worker_processes 1;
			daemon off;
			pid $d/nginx.pid;
			error_log $WORK/logs/emu-nginx-$SCEN_NAME.err info;
			events { worker_connections 512; }
			http {
			    default_type application/octet-stream;
			    client_body_temp_path $d/tmp/body;
			    proxy_temp_path $d/tmp/proxy;
			    fastcgi_temp_path $d/tmp/fastcgi;
			    uwsgi_temp_path $d/tmp/uwsgi;
			    scgi_temp_path $d/tmp/scgi;
			    log_format drp '\$remote_addr "\$request" \$status \$body_bytes_sent "\$http_range" "\$http_authorization"';
		EOF
		printf '%s\n' "$@"
		echo "}"
	} >"$d/nginx.conf"
	drp_bg "emu-nginx-$SCEN_NAME" nginx -e "$WORK/logs/emu-nginx-$SCEN_NAME.err" -p "$d" -c "$d/nginx.conf"
	EMU_NGINX_PID=$DRP_LAST_PID
}

# emu_nginx_wait HOST...: every HOST's server block answers.
emu_nginx_wait()
{
	local h
	for h in "$@"; do
		drp_wait_started "emu-nginx-$SCEN_NAME" "$EMU_NGINX_PID" 20 drp_port_open "${DRP_IP[$h]}" 443
	done
}

# emu_front HOST REGISTRY-PORT TOKEN-PATH|- TOKEN-PORT|- [DIRECTIVES
#   [REGISTRY-DIRECTIVES]]: a server block for HOST (TLS, its certificate)
# sending TOKEN-PATH to the token service and everything else to the
# registry, the way quay.io and gcr.io serve both on one host. DIRECTIVES
# go into the server block (e.g. a location), REGISTRY-DIRECTIVES into
# the registry's location (e.g. a proxy_redirect). Access log:
# $(emu_front_log HOST).
emu_front()
{
	local h=$1 rport=$2 tpath=$3 tport=$4 extra=${5:-} rextra=${6:-}
	cat <<-EOF
		server {
		    listen ${DRP_IP[$h]}:443 ssl;
		    server_name $h;
		    ssl_certificate $SCEN/pki/$h.crt;
		    ssl_certificate_key $SCEN/pki/$h.key;
		    access_log $WORK/logs/emu-front-$h.log drp;
		    client_max_body_size 0;
		    proxy_http_version 1.1;
		    proxy_buffering off;
		    proxy_request_buffering off;
		    proxy_set_header Host \$host;
		    proxy_set_header X-Forwarded-Proto https;
		    proxy_set_header X-Forwarded-For \$remote_addr;
		    $extra
	EOF
	[ "$tpath" = - ] || echo "    location = $tpath { proxy_pass http://127.0.0.1:$tport; }"
	cat <<-EOF
		    location / { proxy_pass http://127.0.0.1:$rport; $rextra }
		}
	EOF
}

emu_front_log() { echo "$WORK/logs/emu-front-$1.log"; }

# emu_signed_files PREFIX ROOT ARG VALUE: a location serving the files
# under ROOT at PREFIX/... (GET only), and only to URLs whose query has
# ARG=VALUE exactly as written, as CDNs and storage services serve the
# signed URLs registries redirect blob downloads to: the URL has to reach
# them unchanged.
emu_signed_files()
{
	cat <<-EOF
		location $1/ {
		    alias $2/;
		    limit_except GET { deny all; }
		    if (\$arg_$3 != "$4") { return 403; }
		}
	EOF
}

# emu_cdn HOST ROOT PREFIX ARG VALUE: a server block for HOST with just
# emu_signed_files PREFIX ROOT ARG VALUE, like Docker Hub's CDN or Google
# Cloud Storage. Access log: $(emu_front_log HOST).
emu_cdn()
{
	cat <<-EOF
		server {
		    listen ${DRP_IP[$1]}:443 ssl;
		    server_name $1;
		    ssl_certificate $SCEN/pki/$1.crt;
		    ssl_certificate_key $SCEN/pki/$1.key;
		    access_log $WORK/logs/emu-front-$1.log drp;
		    $(emu_signed_files "$3" "$2" "$4" "$5")
		    location / { return 404; }
		}
	EOF
}

# emu_no_client_creds: the clients of this scenario have no credentials
# at all: an empty HOME, auth file and docker config, no XDG runtime dir
# with a containers/auth.json, no credential-looking variables. Checked
# again by emu_check_no_client_creds after the pulls.
emu_no_client_creds()
{
	mkdir -p "$SCEN/home" "$SCEN/xdg" "$SCEN/docker-config"
	echo '{}' >"$SCEN/auth.json"
	export HOME=$SCEN/home XDG_RUNTIME_DIR=$SCEN/xdg REGISTRY_AUTH_FILE=$SCEN/auth.json \
		DOCKER_CONFIG=$SCEN/docker-config
	unset XDG_CONFIG_HOME DOCKER_AUTH_CONFIG REGISTRY_AUTH GOOGLE_APPLICATION_CREDENTIALS
	emu_check_no_client_creds
}

emu_check_no_client_creds()
{
	local e
	e=$(via_proxy env | grep -v '^REGISTRY_AUTH_FILE=')
	expect_no_match "a proxied client's environment" \
		'^[A-Za-z_]*(PASS|TOKEN|SECRET|CRED|KEY|_AUTH)[A-Za-z_]*=' "$e"
	expect_eq "REGISTRY_AUTH_FILE of the clients" "{}" "$(tr -d ' \n' <"$SCEN/auth.json")"
	expect_eq "files in DOCKER_CONFIG, HOME and XDG_RUNTIME_DIR of the clients" "" \
		"$(find "$SCEN/docker-config" "$SCEN/home" "$SCEN/xdg" -name '*.json' -o -name '.dockercfg' | head -3)"
	[ ! -e /run/containers/0/auth.json ] || drp_fail "/run/containers/0/auth.json exists"
}

# emu_token_counts LOG MARK: the token requests after MARK, one line per
# distinct request ("COUNT METHOD user=... scope=... status=... service=..."),
# in byte order.
emu_token_counts() { log_since "$1" "$2" | LC_ALL=C sort | uniq -c | sed 's/^ *//'; }
