# SPDX-License-Identifier: MIT
# shellcheck shell=bash
# shellcheck disable=SC2034 # variables set here are used by the sourcing scripts
#
# Integration-test library: real upstream registries (Debian's
# docker-registry), an nginx CDN and tunnel origin, deterministic test
# images, the proxy under test, and assertions. Sourced by run.sh,
# selftest.sh and every scenarios/*.sh.
#
# Network layout (loopback only; names reach the proxy via [resolve] and
# direct clients via a private /etc/hosts in their own mount namespace):
#   registry.test  127.0.0.11:443  open registry
#   basic.test     127.0.0.12:443  htpasswd Basic auth ($BASIC_USER/$BASIC_PASS)
#   redirect.test  127.0.0.13:443  blob GET/HEAD answer 307 to https://cdn.test/...
#   cdn.test       127.0.0.14:443  nginx serving redirect.test's storage directory
#   tunnel.test    127.0.0.15:443  nginx serving $WORK/tunnel-root (file: /file)
#   bad.test       127.0.0.16:443  fakeupstream.py (wrong, short, slow blobs), when
#                                  a scenario starts it
#   stale.test     127.0.0.17:443  a registry a scenario starts and stops
#   token.test     127.0.0.18:443  registry with token auth (realm on auth.test)
#   auth.test      127.0.0.19:443  tokenserver.py: accounts in its header;
#                                  images public/small, private/small,
#                                  private/secret (the push image's blobs)
#
# Every process started with drp_bg is killed by the EXIT trap of the shell
# that started it; every wait is bounded.

DRP_IT_DIR=${DRP_IT_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}
export DRP_IT_DIR

# The integration run holds these addresses exclusively; concurrent runs
# (two build dirs, two developers) wait for each other on this lock.
DRP_IT_LOCK=${DRP_IT_LOCK:-/tmp/drp-integration.lock}

BASIC_USER=drpuser
BASIC_PASS='s3cret-Pass'

declare -A DRP_IP=([registry.test]=127.0.0.11 [basic.test]=127.0.0.12
	[redirect.test]=127.0.0.13 [cdn.test]=127.0.0.14 [tunnel.test]=127.0.0.15
	[bad.test]=127.0.0.16 [stale.test]=127.0.0.17
	[token.test]=127.0.0.18 [auth.test]=127.0.0.19)
TOKEN_ISSUER=drp-test-issuer
ALICE=alice:alice-pw
PROXYUSER=proxyuser:proxy-pw

# ---------------------------------------------------------------- output

drp_log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# drp_log_first N PREFIX: logs the first N lines of stdin, each after
# PREFIX, and reads the rest too: a writer still writing when `head`
# would have quit gets SIGPIPE, which pipefail makes the scenario's
# failure.
drp_log_first()
{
	local n=$1 i=0 l
	while IFS= read -r l; do
		i=$((i + 1))
		if [ "$i" -le "$n" ]; then drp_log "$2$l"; fi
	done
}

# Fails the current script (a scenario, or the set-up) with a message.
drp_fail()
{
	printf 'FAIL: %s\n' "$*" >&2
	# run.sh sets this while it sets up, so that even then the last line
	# is the summary.
	[ -n "${DRP_FAIL_SUMMARY:-}" ] && echo "$DRP_FAIL_SUMMARY"
	exit 1
}

# ---------------------------------------------------------------- assertions

# expect_eq WHAT EXPECTED ACTUAL
expect_eq()
{
	if [ "$2" != "$3" ]; then
		drp_fail "$1: expected '$2', got '$3'"
	fi
	drp_log "ok: $1 = $2"
}

# expect_match WHAT EXTENDED-REGEX STRING
# (grep reads a process substitution, not a pipe: under pipefail, a
# grep -q that matches and exits early could fail the writer with
# SIGPIPE and so the pipeline.)
expect_match()
{
	if ! grep -Eq -- "$2" < <(printf '%s' "$3"); then
		drp_fail "$1: '$3' does not match /$2/"
	fi
	drp_log "ok: $1 matches /$2/"
}

# expect_no_match WHAT EXTENDED-REGEX STRING
expect_no_match()
{
	if grep -Eq -- "$2" < <(printf '%s' "$3"); then
		drp_fail "$1: unexpectedly matches /$2/: $(printf '%s' "$3" | grep -E -- "$2" | head -3)"
	fi
	drp_log "ok: $1 does not match /$2/"
}

# hdr NAME < HEADERS: the value of response header NAME (case-insensitive;
# the last one when curl -L printed several responses).
hdr()
{
	tr -d '\r' | awk -v n="$1" 'BEGIN { n = tolower(n) }
		{ i = index($0, ":"); if (i && tolower(substr($0, 1, i - 1)) == n) { v = substr($0, i + 1); sub(/^[ \t]+/, "", v) } }
		END { print v }'
}

# status_codes < HEADERS: every status code in order, space-separated
# (one per response curl saw, 1xx and proxy CONNECT answers included).
status_codes() { tr -d '\r' | awk '/^HTTP\/[0-9.]+ [0-9][0-9][0-9]/ { printf "%s%s", sep, $2; sep = " " } END { print "" }'; }

# expect_file_digest WHAT FILE sha256:HEX
expect_file_digest()
{
	[ -f "$2" ] || drp_fail "$1: file $2 missing"
	expect_eq "$1" "$3" "sha256:$(sha256sum <"$2" | cut -c1-64)"
}

# expect_ge WHAT MIN ACTUAL / expect_le WHAT MAX ACTUAL (integers)
expect_ge()
{
	[ "$3" -ge "$2" ] || drp_fail "$1: expected >= $2, got $3"
	drp_log "ok: $1 = $3 (>= $2)"
}
expect_le()
{
	[ "$3" -le "$2" ] || drp_fail "$1: expected <= $2, got $3"
	drp_log "ok: $1 = $3 (<= $2)"
}

# ---------------------------------------------------------------- tools

# DRP_STRICT=1 (.ci/run sets it): nothing may skip. A scenario or tool
# that would skip (exit 77) fails instead, and so does a run without
# root. Not CI=true: other CI systems and package builds set that too,
# where skipping what cannot run there is right.
drp_strict() { [ "${DRP_STRICT:-}" = 1 ]; }

# drp_skip MESSAGE: skip the current script (77), or fail it under
# DRP_STRICT=1.
drp_skip()
{
	drp_strict && drp_fail "$* (DRP_STRICT=1: skipping is a failure)"
	echo "SKIP: $*" >&2
	exit 77
}

# drp_require_tools TOOL...: a missing tool skips (77) on a developer
# machine but fails under DRP_STRICT=1, where every tool must be installed.
drp_require_tools()
{
	local t missing=
	for t in "$@"; do
		command -v "$t" >/dev/null 2>&1 || missing="$missing $t"
	done
	[ -z "$missing" ] && return 0
	drp_skip "required tools missing:$missing"
}

# drp_require_python_module MODULE: like drp_require_tools, for python3.
drp_require_python_module()
{
	python3 -c "import $1" 2>/dev/null && return 0
	drp_skip "python3 module $1 missing"
}

# The tools the shared set-up needs (scenarios check their own extras).
# shellcheck disable=SC2034
DRP_BASE_TOOLS="docker-registry nginx skopeo curl openssl htpasswd python3 sha256sum unshare jq timeout flock"

# ---------------------------------------------------------------- processes

DRP_PIDS=()
DRP_PID_NAMES=()
DRP_CLEANUP_HOOKS=()
DRP_WORK_OWNED=

# drp_bg NAME CMD...: start CMD in the background, stdout/stderr to
# $WORK/logs/NAME.out/.err; killed by the EXIT trap.
drp_bg()
{
	local name=$1
	shift
	mkdir -p "$WORK/logs"
	# (fd 8: run.sh's report to make check's output, see run.sh)
	"$@" >"$WORK/logs/$name.out" 2>"$WORK/logs/$name.err" </dev/null 8>&- &
	DRP_PIDS+=($!)
	DRP_PID_NAMES+=("$name")
	DRP_LAST_PID=$!
}

# drp_tree PID: PID and all its descendants, parents first.
drp_tree()
{
	local c
	echo "$1"
	for c in $(ps -o pid= --ppid "$1" 2>/dev/null); do
		drp_tree "$c"
	done
}

# drp_alive PID: the process exists and is not a zombie.
drp_alive()
{
	local st
	st=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
	[ -n "$st" ] && [ "${st:0:1}" != Z ]
}

# drp_stop PID [SECONDS]: SIGTERM to PID and every descendant (a process
# started through a wrapper or a namespace helper is a child of what drp_bg
# recorded), wait up to SECONDS (default 10) for all of them, then SIGKILL
# what is left. Returns 0 if everything exited after SIGTERM, 1 if
# something needed SIGKILL; DRP_STOP_STATUS is PID's exit status.
drp_stop()
{
	local pid=$1 t=$((${2:-10} * 10)) i=0 p left pids
	pids=$(drp_tree "$pid")
	# shellcheck disable=SC2086
	kill -TERM $pids 2>/dev/null || true
	while [ $i -lt $t ]; do
		left=
		for p in $pids; do drp_alive "$p" && left="$left $p"; done
		[ -z "$left" ] && break
		sleep 0.1
		i=$((i + 1))
	done
	if [ -n "$left" ]; then
		# shellcheck disable=SC2086
		kill -KILL $left 2>/dev/null || true
		DRP_STOP_STATUS=0
		wait "$pid" 2>/dev/null || DRP_STOP_STATUS=$?
		return 1
	fi
	DRP_STOP_STATUS=0
	wait "$pid" 2>/dev/null || DRP_STOP_STATUS=$?
	return 0
}

drp_at_exit() { DRP_CLEANUP_HOOKS+=("$1"); }

drp_cleanup()
{
	local rc=$? i m p
	trap - EXIT INT TERM
	if [ $rc = 0 ]; then
		for p in "${DRP_WATCHED_PROXIES[@]}"; do
			drp_check_proxy "${p%%:*}" "${p#*:}" >&2 || rc=1
		done
	fi
	for ((i = ${#DRP_CLEANUP_HOOKS[@]} - 1; i >= 0; i--)); do
		eval "${DRP_CLEANUP_HOOKS[$i]}" || true
	done
	for ((i = ${#DRP_PIDS[@]} - 1; i >= 0; i--)); do
		drp_stop "${DRP_PIDS[$i]}" 5 || true
	done
	if [ -n "$DRP_WORK_OWNED" ] && [ -d "$WORK" ]; then
		# Nothing should be mounted under WORK, but never rm through a mount.
		for m in $(findmnt -rn -o TARGET | grep "^$WORK" | sort -r); do
			umount -l "$m" 2>/dev/null || true
		done
		if [ "${DRP_IT_KEEP:-0}" = 1 ] || { [ $rc -ne 0 ] && [ "${DRP_IT_KEEP:-0}" = failed ]; }; then
			echo "work dir kept: $WORK" >&2
		else
			rm -rf "$WORK"
		fi
	fi
	exit $rc
}

drp_install_trap()
{
	trap drp_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
}

# drp_wait WHAT SECONDS CMD...: poll CMD every 0.2 s until it succeeds.
drp_wait()
{
	local what=$1 t=$(($2 * 5)) i=0
	shift 2
	until "$@" >/dev/null 2>&1; do
		i=$((i + 1))
		[ $i -ge $t ] && drp_fail "timed out after $((t / 5)) s waiting for $what"
		sleep 0.2
	done
}

drp_port_open() { timeout 1 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null; }

# drp_wait_started NAME PID SECONDS CMD...: like drp_wait, but gives up at
# once (showing the process's stderr) if the process died.
drp_wait_started()
{
	local name=$1 pid=$2 t=$(($3 * 5)) i=0
	shift 3
	until "$@" >/dev/null 2>&1; do
		if ! drp_alive "$pid"; then
			tail -n 30 "$WORK/logs/$name.err" "$WORK/logs/$name.out" >&2 2>/dev/null
			drp_fail "$name exited during start-up"
		fi
		i=$((i + 1))
		if [ $i -ge $t ]; then
			tail -n 30 "$WORK/logs/$name.err" >&2 2>/dev/null
			drp_fail "$name not ready after $((t / 5)) s"
		fi
		sleep 0.2
	done
}

# ---------------------------------------------------------------- work dir

# drp_setup_work: a fresh WORK dir under /tmp, removed on exit.
drp_setup_work()
{
	WORK=$(mktemp -d /tmp/drp-it.XXXXXX)
	chmod 755 "$WORK"
	DRP_WORK_OWNED=1
	export WORK
	mkdir -p "$WORK/logs" "$WORK/empty-certs"
	drp_install_trap
	# Client tools must not see the invoking user's registry logins.
	export REGISTRY_AUTH_FILE=$WORK/auth.json DOCKER_CONFIG=$WORK/docker-config
	echo '{}' >"$REGISTRY_AUTH_FILE"
	mkdir -p "$DOCKER_CONFIG"
	unset HTTPS_PROXY https_proxy HTTP_PROXY http_proxy NO_PROXY no_proxy ALL_PROXY all_proxy
}

# ---------------------------------------------------------------- sanitizers

# drp_san_setup: from here on, the reports of AddressSanitizer,
# LeakSanitizer and UBSan of every process built with them (the proxy and
# the tree's helpers, however started: a proxy of a scenario's own, one
# killed on purpose, a daemon that forked, a command whose stderr a
# scenario throws away or whose failure it expects) go to files
# $DRP_SAN_DIR/{asan,ubsan}.PID instead of stderr. run.sh fails the
# scenario during which such a file appears or grows, whatever the exit
# status of the process that wrote it (a leak found at exit, say, by a
# process whose exit status nothing checks). Processes built without
# sanitizers ignore the variables.
drp_san_setup()
{
	DRP_SAN_DIR=$WORK/sanitizer
	mkdir -p "$DRP_SAN_DIR"
	# Proxies that drop privileges report too.
	chmod 1777 "$DRP_SAN_DIR"
	export DRP_SAN_DIR
	export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}log_path=$DRP_SAN_DIR/asan"
	export UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}log_path=$DRP_SAN_DIR/ubsan"
}

# drp_san_state: one line per report file and its size (compare two).
drp_san_state()
{
	[ -n "${DRP_SAN_DIR:-}" ] || return 0
	find "$DRP_SAN_DIR" -type f -printf '%f %s\n' 2>/dev/null | sort
}

# drp_san_new BEFORE: the report files new or grown since the state
# BEFORE (drp_san_state), with their last lines; fails if there are any.
drp_san_new()
{
	local f rc=0
	for f in $(comm -13 <(printf '%s\n' "$1") <(drp_san_state) | awk '{ print $1 }'); do
		echo "FAIL: sanitizer report $DRP_SAN_DIR/$f"
		tail -n 60 "$DRP_SAN_DIR/$f"
		rc=1
	done
	return $rc
}

# drp_grep_existing ERE FILE...: the lines matching ERE in those of the
# files that exist; true if there is one (grep alone fails when a file is
# missing, even after a match).
drp_grep_existing()
{
	local re=$1 f hit=1
	shift
	for f in "$@"; do
		[ -f "$f" ] && grep -HE "$re" "$f" && hit=0
	done
	return $hit
}

# drp_env_i CMD...: `env -i CMD...` that keeps the sanitizer options, so
# that what CMD reports still lands in $DRP_SAN_DIR.
drp_env_i()
{
	env -i ${ASAN_OPTIONS:+ASAN_OPTIONS="$ASAN_OPTIONS"} \
		${UBSAN_OPTIONS:+UBSAN_OPTIONS="$UBSAN_OPTIONS"} "$@"
}

# drp_lock: serialise integration runs on this machine (bounded wait).
drp_lock()
{
	exec 9>"$DRP_IT_LOCK"
	flock -w "${DRP_IT_LOCK_WAIT:-900}" 9 || drp_fail "another integration run holds $DRP_IT_LOCK"
}

# ---------------------------------------------------------------- certificates

# drp_gen_pki: test CA ($TEST_CA) and a server certificate per test host
# ($WORK/pki/HOST.crt/.key, SAN = the name and its loopback address).
drp_gen_pki()
{
	local d=$WORK/pki h
	mkdir -p "$d"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$d/ca.key" -out "$d/ca.crt" -days 3 -subj "/CN=drp integration test CA" \
		-addext basicConstraints=critical,CA:TRUE \
		-addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null ||
		drp_fail "test CA generation failed"
	for h in "${!DRP_IP[@]}"; do
		openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
			-keyout "$d/$h.key" -out "$d/$h.csr" -subj "/CN=$h" 2>/dev/null &&
			printf 'subjectAltName=DNS:%s,IP:%s\nextendedKeyUsage=serverAuth\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n' \
				"$h" "${DRP_IP[$h]}" >"$d/$h.ext" &&
			openssl x509 -req -in "$d/$h.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" \
				-set_serial "0x$(openssl rand -hex 16)" -days 3 \
				-extfile "$d/$h.ext" -out "$d/$h.crt" 2>/dev/null ||
			drp_fail "certificate for $h failed"
	done
	TEST_CA=$d/ca.crt
	export TEST_CA
}

# drp_hosts_file: the /etc/hosts that direct (proxy-less) clients see, and
# the one proxied clients see, where no test name resolves: a client that
# bypassed the proxy fails at once instead of reaching the registry. (It
# also keeps dockerd from treating the registries as local, hence
# insecure.) And the resolv.conf of both: a dead local nameserver.
drp_hosts_file()
{
	local h
	{
		echo "127.0.0.1 localhost"
		for h in "${!DRP_IP[@]}"; do echo "${DRP_IP[$h]} $h"; done
	} >"$WORK/hosts"
	echo "127.0.0.1 localhost" >"$WORK/hosts-proxied"
	printf 'nameserver 127.0.0.254\noptions timeout:1 attempts:1\n' >"$WORK/resolv.conf"
}

# drp_ns HOSTS ENV-ASSIGNMENT... -- CMD...: run CMD with the environment
# changes in a private mount namespace where /etc/hosts is HOSTS, DNS
# goes to an address where nothing answers (no query ever leaves the
# machine, a name not in HOSTS fails at once), and containers/image's
# blob-info cache (/var/lib/containers/cache for root, which remembers
# where blobs were seen, across runs, and would turn a push into a
# cross-repository mount) is a fresh empty directory. CMD may be a
# function exported with export -f; a program is exec'd, so its pid is
# the namespace's first.
drp_ns()
{
	local hosts=$1 bic envs=()
	shift
	while [ "$1" != -- ]; do
		envs+=("$1")
		shift
	done
	shift
	bic=$(mktemp -d "$WORK/bic.XXXXXX")
	mkdir -p /var/lib/containers/cache
	env -u HTTPS_PROXY -u https_proxy -u HTTP_PROXY -u http_proxy "${envs[@]}" \
		unshare -m -- bash -c 'mount --bind "$0" /etc/hosts &&
		mount --bind "$1" /etc/resolv.conf &&
		mount --bind "$2" /var/lib/containers/cache || exit 125
		shift 2
		if declare -F "$1" >/dev/null; then "$@"; else exec "$@"; fi' \
		"$hosts" "$WORK/resolv.conf" "$bic" "$@"
}

# direct CMD...: run CMD without any proxy, trusting only the test CA, with
# the test host names resolving to the test servers.
direct()
{
	drp_ns "$WORK/hosts" SSL_CERT_FILE="$TEST_CA" SSL_CERT_DIR="$WORK/empty-certs" -- "$@"
}

# dcurl ARGS...: curl straight to the test servers (test CA, test names).
dcurl() { direct curl -sS --max-time 60 --cacert "$TEST_CA" --capath "$WORK/empty-certs" "$@"; }

# ---------------------------------------------------------------- upstream servers

# drp_start_registry NAME HOST [basic|redirect|token]: REG_PID[NAME] is its pid.
# shellcheck disable=SC2034
declare -A REG_PID=()
drp_start_registry()
{
	local name=$1 host=$2 kind=${3:-open} ip=${DRP_IP[$2]} conf=$WORK/reg-$1.yml
	mkdir -p "$WORK/storage/$name"
	cat >"$conf" <<-EOF
		version: 0.1
		log:
		  level: info
		  formatter: text
		  accesslog:
		    disabled: false
		storage:
		  filesystem:
		    rootdirectory: $WORK/storage/$name
		  delete:
		    enabled: true
		  maintenance:
		    uploadpurging:
		      enabled: false
		http:
		  addr: $ip:443
		  secret: drp-integration-$name
		  tls:
		    certificate: $WORK/pki/$host.crt
		    key: $WORK/pki/$host.key
		health:
		  storagedriver:
		    enabled: false
	EOF
	case $kind in
	basic)
		htpasswd -Bbn "$BASIC_USER" "$BASIC_PASS" >"$WORK/htpasswd" 2>/dev/null
		cat >>"$conf" <<-EOF
			auth:
			  htpasswd:
			    realm: drp-basic-realm
			    path: $WORK/htpasswd
		EOF
		;;
	token)
		cat >>"$conf" <<-EOF
			auth:
			  token:
			    realm: https://auth.test/token
			    service: token.test
			    issuer: $TOKEN_ISSUER
			    rootcertbundle: $WORK/pki/token-signer.crt
		EOF
		;;
	redirect)
		# The middleware answers blob GET/HEAD with 307 to baseurl + the
		# storage driver's path of the blob's data file, i.e.
		# https://cdn.test/docker/registry/v2/blobs/sha256/xx/HEX/data,
		# which the CDN serves from this registry's rootdirectory.
		cat >>"$conf" <<-EOF
			middleware:
			  storage:
			    - name: redirect
			      options:
			        baseurl: https://cdn.test
		EOF
		;;
	esac
	# The registry writes its access log (combined format) to stdout. It
	# reads REGISTRY_* variables as configuration overrides, so our
	# REGISTRY_AUTH_FILE (for skopeo and podman) must not reach it.
	drp_bg "reg-$name" env -u REGISTRY_AUTH_FILE docker-registry serve "$conf"
	# shellcheck disable=SC2034
	REG_PID[$name]=$DRP_LAST_PID
	drp_wait_started "reg-$name" "$DRP_LAST_PID" 30 \
		curl -s -o /dev/null --cacert "$TEST_CA" --resolve "$host:443:$ip" "https://$host/v2/"
}

# drp_start_nginx: cdn.test and tunnel.test in one nginx.
drp_start_nginx()
{
	local d=$WORK/nginx
	mkdir -p "$d/tmp" "$WORK/tunnel-root"
	# A known file for the tunnel test: 64 KiB of keystream plus a line.
	python3 -c 'import random,sys; sys.stdout.buffer.write(random.Random("drp-tunnel").randbytes(65536) + b"\ntunnel ok\n")' \
		>"$WORK/tunnel-root/file"
	TUNNEL_FILE_DIGEST="sha256:$(sha256sum <"$WORK/tunnel-root/file" | cut -c1-64)"
	export TUNNEL_FILE_DIGEST
	cat >"$d/nginx.conf" <<-EOF
		user root;
		worker_processes 1;
		daemon off;
		pid $d/nginx.pid;
		error_log $WORK/logs/nginx-error.log info;
		events { worker_connections 512; }
		http {
		    default_type application/octet-stream;
		    sendfile on;
		    client_body_temp_path $d/tmp/body;
		    proxy_temp_path $d/tmp/proxy;
		    fastcgi_temp_path $d/tmp/fastcgi;
		    uwsgi_temp_path $d/tmp/uwsgi;
		    scgi_temp_path $d/tmp/scgi;
		    log_format drp '\$remote_addr "\$request" \$status \$body_bytes_sent "\$http_range" "\$http_authorization"';
		    server {
		        listen ${DRP_IP[cdn.test]}:443 ssl;
		        server_name cdn.test;
		        ssl_certificate $WORK/pki/cdn.test.crt;
		        ssl_certificate_key $WORK/pki/cdn.test.key;
		        access_log $WORK/logs/cdn-access.log drp;
		        root $WORK/storage/redirect;
		        location / { limit_except GET { deny all; } }
		    }
		    server {
		        listen ${DRP_IP[tunnel.test]}:443 ssl http2;
		        server_name tunnel.test;
		        ssl_certificate $WORK/pki/tunnel.test.crt;
		        ssl_certificate_key $WORK/pki/tunnel.test.key;
		        access_log $WORK/logs/tunnel-access.log drp;
		        root $WORK/tunnel-root;
		    }
		}
	EOF
	drp_bg nginx nginx -e "$WORK/logs/nginx-error.log" -p "$d" -c "$d/nginx.conf"
	NGINX_PID=$DRP_LAST_PID
	drp_wait_started nginx "$NGINX_PID" 20 \
		curl -sf -o /dev/null --cacert "$TEST_CA" --resolve "tunnel.test:443:${DRP_IP[tunnel.test]}" https://tunnel.test/file
	drp_wait_started nginx "$NGINX_PID" 20 drp_port_open "${DRP_IP[cdn.test]}" 443
}

# drp_start_tokens: the token service on auth.test (signing key and its
# certificate for the registry's rootcertbundle); log $WORK/logs/token.out.
drp_start_tokens()
{
	local d=$WORK/pki
	openssl req -x509 -newkey rsa:2048 -nodes -keyout "$d/token-signer.key" \
		-out "$d/token-signer.crt" -days 3 -subj "/CN=drp test token signer" 2>/dev/null ||
		drp_fail "token signing key failed"
	drp_bg token python3 "$DRP_IT_DIR/tokenserver.py" "${DRP_IP[auth.test]}" \
		"$d/auth.test.crt" "$d/auth.test.key" "$d/token-signer.key" "$TOKEN_ISSUER" \
		"${DRP_IT_TOKEN_TTL:-300}"
	TOKEN_PID=$DRP_LAST_PID
	drp_wait_started token "$TOKEN_PID" 20 \
		curl -sf -o /dev/null --cacert "$TEST_CA" --resolve "auth.test:443:${DRP_IP[auth.test]}" \
		"https://auth.test/token?service=token.test&scope=repository:public/x:pull"
}

# drp_start_upstreams: PKI, hosts file, registries, token service, nginx.
drp_start_upstreams()
{
	drp_gen_pki
	drp_hosts_file
	drp_start_registry open registry.test
	drp_start_registry basic basic.test basic
	drp_start_registry redirect redirect.test redirect
	drp_start_tokens
	drp_start_registry token token.test token
	drp_start_nginx
}

# Registry access logs: one combined-format line per request.
reg_log() { echo "$WORK/logs/reg-$1.out"; }
CDN_LOG() { echo "$WORK/logs/cdn-access.log"; }

# req_pat METHOD PATH: the fixed string that starts a request in an access
# log line (registry combined format and our nginx format), any protocol.
req_pat() { printf '"%s %s HTTP/' "$1" "$2"; }

# log_mark FILE: the current end of FILE, for log_since.
log_mark() { stat -c %s "$1" 2>/dev/null || echo 0; }
# log_since FILE MARK: what FILE gained after MARK.
log_since() { tail -c +"$(($2 + 1))" "$1" 2>/dev/null; }
# count_since FILE MARK FIXED-STRING: lines added after MARK that contain it.
count_since() { log_since "$1" "$2" | grep -cF -- "$3" || true; }

# wait_log FILE MARK FIXED-STRING N SECONDS: the registry and nginx write a
# log line after the response is complete, so a client can be done before
# the line exists; wait (bounded) for N matching lines.
wait_log()
{
	local i=0 t=$(($5 * 5))
	while [ "$(count_since "$1" "$2" "$3")" -lt "$4" ] && [ $i -lt $t ]; do
		sleep 0.2
		i=$((i + 1))
	done
}

# settle_upstream HOST LOG: a request of the test's own straight to HOST
# (no proxy), waited for in HOST's access LOG. HOST logs a request when it
# has answered it, so once this one is there, so is every request HOST
# answered before it: a count of requests that must NOT have reached HOST
# is then final (instead of sleeping and hoping).
settle_upstream()
{
	local tag mark
	tag="drp-settle-$$-$RANDOM$RANDOM"
	mark=$(log_mark "$2")
	dcurl -o /dev/null "https://$1/v2/?$tag" 2>/dev/null || true
	wait_log "$2" "$mark" "$tag" 1 10
	[ "$(count_since "$2" "$mark" "$tag")" -ge 1 ] || drp_fail "settle_upstream: $1 did not log $tag"
}

# ---------------------------------------------------------------- images

# drp_build_images: deterministic OCI layouts in $WORK/images/NAME and their
# digests in $WORK/images.env (SMALL_DIGEST, SMALL_BLOBS, ...).
drp_build_images()
{
	python3 "$DRP_IT_DIR/mkimage.py" "$WORK/images" "${DRP_IT_LARGE_MB:-100}" >"$WORK/images.env" ||
		drp_fail "building test images failed"
	# shellcheck disable=SC1091
	. "$WORK/images.env"
}

# drp_push_direct NAME REF [SKOPEO-ARGS...]: push image NAME straight to
# the registry (no proxy), byte for byte.
drp_push_direct()
{
	local name=$1 ref=$2
	shift 2
	direct skopeo copy --quiet --all --preserve-digests --retry-times 0 "$@" \
		"oci:$WORK/images/$name" "docker://$ref" ||
		drp_fail "direct push of $name to $ref failed"
}

# drp_push_all: every image to every registry (push stays local only).
drp_push_all()
{
	local img reg creds
	for reg in registry.test basic.test redirect.test; do
		creds=()
		[ $reg = basic.test ] && creds=(--dest-creds "$BASIC_USER:$BASIC_PASS")
		for img in small large multi; do
			drp_push_direct $img "$reg/test/$img:v1" "${creds[@]}"
		done
	done
	drp_push_direct small token.test/public/small:v1 --dest-creds "$ALICE"
	drp_push_direct small token.test/private/small:v1 --dest-creds "$ALICE"
	drp_push_direct push token.test/private/secret:v1 --dest-creds "$ALICE"
}

# check_dir_image DIR MANIFEST-DIGEST BLOB-DIGEST...: a skopeo dir: copy
# holds the manifest byte for byte and every blob with its digest.
check_dir_image()
{
	local dir=$1 want=$2 b
	shift 2
	expect_file_digest "manifest in $dir" "$dir/manifest.json" "$want"
	for b in "$@"; do
		expect_file_digest "blob ${b:7:12}" "$dir/${b#sha256:}" "$b"
	done
}

# check_pulled NAME DIR: DIR (a skopeo dir: copy, --all for multi) holds
# test image NAME (small, large or multi) byte for byte.
check_pulled()
{
	local b
	# shellcheck disable=SC2086 # the digest lists are word lists
	case $1 in
	small) check_dir_image "$2" "$SMALL_DIGEST" $SMALL_BLOBS ;;
	large) check_dir_image "$2" "$LARGE_DIGEST" $LARGE_BLOBS ;;
	multi)
		expect_file_digest "multi index in $2" "$2/manifest.json" "$MULTI_DIGEST"
		expect_file_digest "amd64 manifest" "$2/${MULTI_AMD64_DIGEST#sha256:}.manifest.json" "$MULTI_AMD64_DIGEST"
		expect_file_digest "arm64 manifest" "$2/${MULTI_ARM64_DIGEST#sha256:}.manifest.json" "$MULTI_ARM64_DIGEST"
		for b in $MULTI_AMD64_BLOBS $MULTI_ARM64_BLOBS; do
			expect_file_digest "multi blob ${b:7:12}" "$2/${b#sha256:}" "$b"
		done
		;;
	*) drp_fail "check_pulled: no image $1" ;;
	esac
}

# ---------------------------------------------------------------- the proxy

# drp_trace_start URL: strace the running proxy ($PROXY_PID) for its
# mmap, pread64 and munmap calls into $SCEN/trace, returning once strace
# sees it (a one-byte ranged GET of URL, through pcurl, shows up as a
# pread64); what is traced from then on is read by drp_trace_stop.
drp_trace_start()
{
	local url=$1
	strace -f -qq -o "$SCEN/trace" -p "$PROXY_PID" -e trace=mmap,pread64,munmap &
	DRP_TRACER=$!
	drp_at_exit "kill $DRP_TRACER 2>/dev/null"
	drp_trace_seen_() {
		pcurl -o /dev/null -r 0-0 "$1"
		grep -q pread64 "$SCEN/trace" 2>/dev/null
	}
	drp_wait "strace to see the proxy" 10 drp_trace_seen_ "$url"
	DRP_TRACE_FROM=$(wc -l <"$SCEN/trace")
}

# drp_trace_stop: stop the tracer; the calls traced since drp_trace_start
# returned go to $SCEN/run.
drp_trace_stop()
{
	kill -INT "$DRP_TRACER"
	wait "$DRP_TRACER" || true
	tail -n +"$((DRP_TRACE_FROM + 1))" "$SCEN/trace" >"$SCEN/run"
}

# drp_find_proxy: $DRP_PROXY, else $top_builddir/docker-registry-proxy.
drp_find_proxy()
{
	DRP_PROXY=${DRP_PROXY:-${top_builddir:-.}/docker-registry-proxy}
	[ -x "$DRP_PROXY" ] || drp_fail "proxy binary $DRP_PROXY not found (set DRP_PROXY or top_builddir)"
	export DRP_PROXY
}

# (A port the kernel hands out is free again at once: two calls before
# the first port is bound may give the same one. Every port given in
# this run is kept in a list and never given twice.)
drp_free_port()
{
	local p used=${WORK:+$WORK/.drp-ports-given}
	while :; do
		p=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
		if [ -z "$used" ]; then
			echo "$p"
			return 0
		fi
		if ! grep -qx "$p" "$used" 2>/dev/null; then
			echo "$p" >>"$used"
			echo "$p"
			return 0
		fi
	done
}

# drp_proxy_conf NAME PORT [EXTRA-PROXY-LINES [EXTRA-CACHE-LINES]]: write
# $WORK/NAME/proxy.ini; DRP_IT_REGISTRIES overrides the intercepted hosts.
drp_proxy_conf()
{
	local name=$1 port=$2 extra=${3:-} cextra=${4:-} d=$WORK/$1 h
	mkdir -p "$d"
	{
		cat <<-EOF
			; integration test proxy "$name"
			[proxy]
			listen = 127.0.0.1:$port
			workers = 2
			registries = ${DRP_IT_REGISTRIES:-registry.test basic.test redirect.test token.test auth.test}
			allow = ${DRP_IT_ALLOW:-127.0.0.1/32}
			tunnel_ports = 443
			ca_dir = $d/ca
			upstream_ca_file = $TEST_CA
			access_log = $d/access.log
			error_log = $d/proxy.log
		EOF
		if [ -n "$extra" ]; then printf '%s\n' "$extra"; fi
		echo "[resolve]"
		for h in $(printf '%s\n' "${!DRP_IP[@]}" | sort); do
			echo "$h = ${DRP_IP[$h]}:443"
		done
		cat <<-EOF
			[cache]
			dir = $d/cache
		EOF
		if [ -n "$cextra" ]; then printf '%s\n' "$cextra"; fi
	} >"$d/proxy.ini"
}

# drp_start_proxy NAME: start the proxy of $WORK/NAME/proxy.ini (written by
# drp_proxy_conf) in the foreground, wait until it serves /ca.crt, and set
# PROXY_PID, PROXY_PORT, PROXY_URL, PROXY_CA, PROXY_DIR, PROXY_NAME. At
# exit, a script that otherwise passed fails if the proxy died, reported a
# memory error, or did not exit with 0 on SIGTERM (drp_check_proxy).
drp_start_proxy()
{
	local name=$1 d=$WORK/$1
	PROXY_PORT=$(sed -n 's/^listen = \(127\.0\.0\.1\|\[::\]\):\([0-9]*\)$/\2/p' "$d/proxy.ini")
	# In a build tree the auth plugins are in plugins/ beside the binary.
	if [ -z "${DRP_PLUGIN_DIR:-}" ] && [ -d "$(dirname "$DRP_PROXY")/plugins" ]; then
		DRP_PLUGIN_DIR=$(cd "$(dirname "$DRP_PROXY")/plugins" && pwd)
		export DRP_PLUGIN_DIR
	fi
	drp_bg "proxy-$name" ${DRP_PROXY_WRAPPER:-} "$DRP_PROXY" -c "$d/proxy.ini"
	PROXY_PID=$DRP_LAST_PID
	drp_wait_started "proxy-$name" "$PROXY_PID" "${DRP_IT_PROXY_START_WAIT:-30}" \
		curl -sf --max-time 2 -o "$d/ca-fetched.crt" "http://127.0.0.1:$PROXY_PORT/ca.crt"
	PROXY_URL=http://127.0.0.1:$PROXY_PORT
	PROXY_CA=$d/ca/ca.crt
	PROXY_DIR=$d
	PROXY_NAME=$name
	[ -s "$PROXY_CA" ] || drp_fail "proxy did not create $PROXY_CA"
	export PROXY_PID PROXY_PORT PROXY_URL PROXY_CA PROXY_DIR PROXY_NAME
	DRP_WATCHED_PROXIES+=("$PROXY_PID:$name")
}
DRP_WATCHED_PROXIES=()

# drp_unwatch_proxies: forget the proxies started so far (one about to be
# killed on purpose); later ones are watched again.
drp_unwatch_proxies() { DRP_WATCHED_PROXIES=(); }

# drp_own_proxy [EXTRA-PROXY-LINES [EXTRA-CACHE-LINES]]: a proxy of the
# scenario's own, with an empty cache, for scenarios whose assertions are
# about what reaches the upstream (what other scenarios fetched through
# the shared proxy is in its cache).
drp_own_proxy()
{
	drp_proxy_conf "own-$SCEN_NAME" "$(drp_free_port)" "$@"
	drp_start_proxy "own-$SCEN_NAME"
}

# drp_check_proxy PID NAME: the proxy is alive, reported no memory error,
# and exits with 0 within 15 s of SIGTERM (it drains). Prints why not.
drp_check_proxy()
{
	local pid=$1 err=$WORK/logs/proxy-$2.err
	local san='ERROR: AddressSanitizer|runtime error:|ERROR: LeakSanitizer|Invalid (read|write)|uninitialised'
	# Its sanitizer reports, when they go to files (drp_san_setup).
	local reports="$err ${DRP_SAN_DIR:+$DRP_SAN_DIR/asan.$pid $DRP_SAN_DIR/ubsan.$pid}"
	if ! drp_alive "$pid"; then
		echo "FAIL: proxy $2 died"
		# shellcheck disable=SC2086
		tail -n 30 $reports 2>/dev/null
		return 1
	fi
	# shellcheck disable=SC2086
	if drp_grep_existing "$san" $reports; then
		echo "FAIL: sanitizer or valgrind report of proxy $2"
		return 1
	fi
	if ! drp_stop "$pid" 15; then
		echo "FAIL: proxy $2 did not exit within 15 s of SIGTERM"
		return 1
	fi
	if [ "$DRP_STOP_STATUS" != 0 ]; then
		# valgrind --error-exitcode and LeakSanitizer end up here too.
		echo "FAIL: proxy $2 exited with status $DRP_STOP_STATUS after SIGTERM"
		tail -n 30 "$err"
		return 1
	fi
	# A report at exit fails it even when the exit status is 0 (a
	# sanitizer run with exitcode=0, a wrapper without an error exit code).
	# shellcheck disable=SC2086
	if drp_grep_existing "$san" $reports; then
		echo "FAIL: sanitizer report at the exit of proxy $2"
		return 1
	fi
	return 0
}

# via_proxy CMD...: run CMD with the proxy variables set and trusting only
# the proxy CA; the test host names resolve to a dead address for it.
via_proxy()
{
	drp_ns "$WORK/hosts-proxied" HTTPS_PROXY="$PROXY_URL" https_proxy="$PROXY_URL" \
		HTTP_PROXY="$PROXY_URL" http_proxy="$PROXY_URL" NO_PROXY= no_proxy= \
		SSL_CERT_FILE="$PROXY_CA" SSL_CERT_DIR="$WORK/empty-certs" -- "$@"
}

# pcurl ARGS...: curl through the proxy trusting only the proxy CA.
pcurl()
{
	curl -sS --max-time "${PCURL_TIMEOUT:-60}" --proxy "$PROXY_URL" --noproxy '' \
		--cacert "$PROXY_CA" --capath "$WORK/empty-certs" "$@"
}

# pskopeo ARGS...: skopeo through the proxy, no retries (a retry would
# hide a failed transfer).
pskopeo() { via_proxy skopeo "$@"; }

# The current proxy's access log (docker-registry-proxy(8), ACCESS LOG):
#   1 time  2 client  3 host:port  4 method  5 path  6 status  7 bytes_in
#   8 bytes_out  9 duration  10 upstream  11 result
# The proxy writes a line when a request ends, which can be just after the
# client has its last byte: take a mark before the request, then wait
# (bounded) for the line after it.
amark() { log_mark "$PROXY_DIR/access.log"; }

# alog_since MARK HOST:PORT METHOD PATH: lines for that request after MARK.
alog_since()
{
	log_since "$PROXY_DIR/access.log" "$1" |
		awk -v h="$2" -v m="$3" -v p="$4" '$3 == h && $4 == m && $5 == p'
}

# anext FIELDS MARK HOST:PORT METHOD PATH: the given fields (awk, e.g.
# '$6, $11') of the first such line after MARK, waiting up to 5 s for it.
anext()
{
	local f=$1 i=0 line
	shift
	while :; do
		line=$(alog_since "$@" | head -n 1)
		if [ -n "$line" ] || [ $i -ge 25 ]; then break; fi
		sleep 0.2
		i=$((i + 1))
	done
	printf '%s\n' "$line" | awk "{ print $f }"
}

# anext_n N MARK HOST:PORT METHOD PATH: wait (bounded) until N such lines
# follow MARK, then print them all.
anext_n()
{
	local n=$1 i=0
	shift
	while [ "$(alog_since "$@" | wc -l)" -lt "$n" ] && [ $i -lt 25 ]; do
		sleep 0.2
		i=$((i + 1))
	done
	alog_since "$@"
}

# ---------------------------------------------------------------- scenarios

# drp_scenario_init: called at the top of every scenarios/*.sh. The shared
# state (WORK, PROXY_*, image digests) comes from $DRP_IT_ENV written by
# run.sh; SCEN is a private directory for the scenario.
drp_scenario_init()
{
	[ -n "${DRP_IT_ENV:-}" ] && [ -f "$DRP_IT_ENV" ] ||
		drp_fail "DRP_IT_ENV not set: run scenarios through run.sh"
	# shellcheck disable=SC1090
	. "$DRP_IT_ENV"
	# The shared proxy is run.sh's to watch.
	drp_unwatch_proxies
	SCEN_NAME=$(basename "$0" .sh)
	SCEN=$WORK/scen-$SCEN_NAME
	rm -rf "$SCEN"
	mkdir -p "$SCEN"
	trap drp_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
}

# drp_write_env FILE: everything a scenario needs, as shell assignments.
drp_write_env()
{
	{
		declare -p WORK TEST_CA PROXY_PID PROXY_PORT PROXY_URL PROXY_CA PROXY_DIR PROXY_NAME DRP_PROXY \
			TUNNEL_FILE_DIGEST REGISTRY_AUTH_FILE DOCKER_CONFIG DRP_IT_DIR |
			sed 's/^declare -[a-z-]* /export /'
		echo "BASIC_USER='$BASIC_USER' BASIC_PASS='$BASIC_PASS' ALICE='$ALICE' PROXYUSER='$PROXYUSER'"
		echo "DRP_IT_LARGE_MB=${DRP_IT_LARGE_MB:-100}"
		cat "$WORK/images.env"
	} >"$1"
}

# ---------------------------------------------------------------- cache tests

# drp_start_fakeupstream RATE: fakeupstream.py as bad.test, serving every
# test image's blobs (wrong, short, slow at RATE bytes/s, or right);
# requests logged to $WORK/logs/fake.out.
drp_start_fakeupstream()
{
	local img f
	mkdir -p "$WORK/allblobs"
	for img in "$WORK"/images/*/blobs/sha256/*; do
		f=$WORK/allblobs/$(basename "$img")
		[ -e "$f" ] || ln "$img" "$f"
	done
	drp_bg fake python3 "$DRP_IT_DIR/fakeupstream.py" "${DRP_IP[bad.test]}" \
		"$WORK/pki/bad.test.crt" "$WORK/pki/bad.test.key" "$WORK/allblobs" "$1"
	FAKE_PID=$DRP_LAST_PID
	drp_wait_started fake "$FAKE_PID" 20 \
		curl -sf -o /dev/null --cacert "$TEST_CA" --resolve "bad.test:443:${DRP_IP[bad.test]}" https://bad.test/v2/
}

# cache_has_content FILE: some file under the proxy's cache dir has exactly
# FILE's content (the object layout is the backend's business).
cache_has_content()
{
	local want f
	want=$(sha256sum <"$1" | cut -c1-64)
	while IFS= read -r -d '' f; do
		[ "$(stat -c %s "$f")" = "$(stat -c %s "$1")" ] || continue
		[ "$(sha256sum <"$f" | cut -c1-64)" = "$want" ] && return 0
	done < <(find "$(dirname "$PROXY_CA")/../cache" -type f -print0 2>/dev/null)
	return 1
}

# ---------------------------------------------------------------- auth plugin tests

# drp_secret NAME VALUE: a password file (0600) under $WORK/secrets.
drp_secret()
{
	mkdir -p "$WORK/secrets"
	(umask 077 && printf '%s\n' "$2" >"$WORK/secrets/$1")
	echo "$WORK/secrets/$1"
}

# ---------------------------------------------------------------- podman, containerd

# drp_podman DIR ARGS...: podman as root with all state under DIR (vfs,
# cgroupfs, no events); DIR must be short (runroot path < ~50 chars).
drp_podman()
{
	local d=$1
	shift
	mkdir -p "$d/root" "$d/run" "$d/tmp"
	podman --root "$d/root" --runroot "$d/run" --tmpdir "$d/tmp" \
		--storage-driver vfs --cgroup-manager cgroupfs --events-backend none "$@"
}

export -f drp_podman

# drp_podman_reset DIR: remove podman's state under DIR.
drp_podman_reset()
{
	[ -d "$1/root" ] && drp_podman "$1" system reset --force >/dev/null 2>&1
	rm -rf "$1"
}

# drp_start_containerd DIR: a private containerd (own root, state, socket;
# CRI off). Sets CTR_SOCK; killed by the EXIT trap of the calling shell.
drp_start_containerd()
{
	local d=$1
	mkdir -p "$d/root" "$d/state"
	cat >"$d/config.toml" <<-EOF
		version = 2
		root = "$d/root"
		state = "$d/state"
		disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs",
		  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.aufs",
		  "io.containerd.snapshotter.v1.devmapper", "io.containerd.internal.v1.opt",
		  "io.containerd.tracing.processor.v1.otlp"]
		[grpc]
		  address = "$d/c.sock"
		[ttrpc]
		  address = "$d/c.sock.ttrpc"
		[debug]
		  address = ""
		[metrics]
		  address = ""
	EOF
	drp_bg "containerd-$(basename "$d")" containerd --config "$d/config.toml"
	CTR_PID=$DRP_LAST_PID
	CTR_SOCK=$d/c.sock
	export CTR_SOCK
	drp_wait_started "containerd-$(basename "$d")" "$CTR_PID" 30 ctr -a "$CTR_SOCK" version
}

# dctr ARGS...: ctr against the private containerd.
dctr() { ctr -a "$CTR_SOCK" "$@"; }
export -f dctr

# ctr_image_digest REF: the target digest containerd recorded for REF.
ctr_image_digest() { dctr images ls | awk -v r="$1" '$1 == r { print $3 }'; }

# drp_start_dockerd DIR direct|proxy|mirror: a private dockerd (own
# data-root, exec-root, socket; vfs; no iptables, no bridge) whose pulls go
# straight to the test registries, through the proxy (the daemon pulls,
# so the proxy variables and the CA are in its environment), or to the
# proxy as its registry mirror ("registry-mirrors" in daemon.json, no
# proxy variables, Docker Hub's names unresolvable). Sets DOCKER_HOST.
drp_start_dockerd()
{
	local d=$1 mode=$2 ns mirrors=
	mkdir -p "$d/data" "$d/exec"
	[ "$mode" = mirror ] && mirrors=", \"registry-mirrors\": [\"$PROXY_URL\"]"
	# Without deprecated-key-path dockerd 20.10 writes /etc/docker/key.json.
	printf '{ "deprecated-key-path": "%s/key.json"%s }\n' "$d" "$mirrors" >"$d/daemon.json"
	if [ "$mode" = direct ]; then
		ns=("$WORK/hosts" SSL_CERT_FILE="$TEST_CA")
	elif [ "$mode" = mirror ]; then
		ns=("$WORK/hosts-proxied" SSL_CERT_FILE="$PROXY_CA")
	else
		ns=("$WORK/hosts-proxied" HTTPS_PROXY="$PROXY_URL" https_proxy="$PROXY_URL"
			HTTP_PROXY="$PROXY_URL" http_proxy="$PROXY_URL" NO_PROXY= no_proxy=
			SSL_CERT_FILE="$PROXY_CA")
	fi
	drp_bg "dockerd-$(basename "$d")" drp_ns "${ns[@]}" SSL_CERT_DIR="$WORK/empty-certs" -- \
		dockerd --config-file "$d/daemon.json" --data-root "$d/data" --exec-root "$d/exec" \
		--pidfile "$d/docker.pid" -H "unix://$d/docker.sock" --storage-driver vfs \
		--iptables=false --ip6tables=false --ip-masq=false --bridge=none
	DOCKERD_PID=$DRP_LAST_PID
	DOCKER_HOST=unix://$d/docker.sock
	export DOCKER_HOST
	drp_wait_started "dockerd-$(basename "$d")" "$DOCKERD_PID" 60 docker version
}

# docker_repo_digest REF: the manifest digest docker recorded for REF.
docker_repo_digest()
{
	docker image inspect --format '{{range .RepoDigests}}{{println .}}{{end}}' "$1" |
		sed -n "s|^${1%:*}@||p" | head -n 1
}
