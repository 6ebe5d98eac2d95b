# SPDX-License-Identifier: MIT
# shellcheck shell=bash
# shellcheck disable=SC2034 # variables set here are used by the sourcing scripts
#
# Real engines for the shared-cache tests, on top of lib.sh: a one-node
# Ceph cluster from Debian's packages (monitor, manager, one OSD on
# memstore, radosgw with its beast frontend) and redis-server, all plain
# processes (no systemd, no disk: memstore keeps objects in RAM). A
# scenario sources this after lib.sh and calls ceph_start / redis_start;
# both register their own stop with drp_at_exit, which the EXIT trap runs
# before it kills what drp_bg started.
#
# Addresses (loopback, like the registries of lib.sh):
#   s3.test     127.0.0.61  radosgw: plain HTTP on :7480, HTTPS on :443
#                           (test CA; s3.test and *.s3.test, so that
#                           virtual-hosted buckets BUCKET.s3.test work);
#                           the monitor on :3300 (msgr2), manager and OSD
#                           on ports of their own choosing, same address
#   (Redis)     127.0.0.62  redis-server on :6379
#
# Measured here (2 cores, idle): the S3 endpoint answers ~1.5-3 s after
# ceph_start begins; ceph_stop takes ~6 s (each daemon needs ~2 s after
# SIGTERM). Redis is up in ~0.1 s.

CEPH_IP=127.0.0.61
REDIS_IP=127.0.0.62
REDIS_PORT=6379
S3_REGION=us-east-1
S3_HTTP=http://$CEPH_IP:7480
S3_HTTPS=https://s3.test
# The proxy reaches s3.test through [resolve] (drp_proxy_conf lists DRP_IP).
DRP_IP["s3.test"]=$CEPH_IP

DRP_CEPH_TOOLS="ceph-mon ceph-mgr ceph-osd radosgw radosgw-admin ceph monmaptool"
DRP_REDIS_TOOLS="redis-server redis-cli"

# ---------------------------------------------------------------- Ceph

# ceph_cli ARGS...: the ceph command against this cluster, bounded (a
# client whose monitor is gone retries for minutes otherwise).
ceph_cli() { timeout 20 ceph -c "$CEPH_CONF" --connect-timeout 10 "$@"; }

# ceph_admin ARGS...: radosgw-admin against this cluster, bounded.
ceph_admin() { timeout 30 radosgw-admin -c "$CEPH_CONF" -n client.admin "$@"; }

# ceph_tls_cert DIR: a certificate from the test CA for s3.test,
# *.s3.test and the address: DIR/s3.crt, DIR/s3.key.
ceph_tls_cert()
{
	local d=$1
	printf 'subjectAltName=DNS:s3.test,DNS:*.s3.test,IP:%s\nextendedKeyUsage=serverAuth\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n' \
		"$CEPH_IP" >"$d/s3.ext"
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$d/s3.key" -out "$d/s3.csr" -subj "/CN=s3.test" 2>/dev/null &&
		openssl x509 -req -in "$d/s3.csr" -CA "$WORK/pki/ca.crt" -CAkey "$WORK/pki/ca.key" \
			-set_serial "0x$(openssl rand -hex 16)" -days 3 \
			-extfile "$d/s3.ext" -out "$d/s3.crt" 2>/dev/null ||
		drp_fail "certificate for s3.test failed"
}

# ceph_conf DIR FSID: the cluster's ceph.conf. Every path is under DIR;
# the daemons log to stderr, which drp_bg keeps in $WORK/logs/ceph-*.err.
ceph_conf()
{
	local d=$1 fsid=$2
	cat <<-EOF
		[global]
		fsid = $fsid
		mon host = v2:$CEPH_IP:3300
		mon initial members = a
		public addr = $CEPH_IP
		; No cephx: a test cluster on loopback. Clients (radosgw, the
		; CLI) must then ask for crc mode, or they loop on
		; "get_initial_auth_request returned -13".
		auth cluster required = none
		auth service required = none
		auth client required = none
		ms mon client mode = crc
		run dir = $d/run
		admin socket = $d/run/\$name.asok
		pid file = $d/run/\$name.pid
		log file = ""
		log to stderr = true
		err to stderr = true
		mon cluster log to stderr = false
		; One OSD: pools of size 1, few placement groups, no autoscaler.
		osd pool default size = 1
		osd pool default min size = 1
		osd pool default pg num = 8
		osd pool default pgp num = 8
		osd pool default pg autoscale mode = off
		mon allow pool size one = true
		mon warn on pool no redundancy = false
		osd objectstore = memstore
		memstore device bytes = ${DRP_CEPH_MEM_BYTES:-4294967296}
		[mon]
		mon data = $d/\$name
		; Paxos proposes every 0.01 s instead of every 1 s: start-up
		; (pool creation, OSD boot, radosgw set-up) takes ~2 s, not ~11.
		paxos propose interval = 0.01
		[mgr]
		mgr data = $d/\$name
		[osd]
		osd data = $d/\$name
		[client]
		ms mon client mode = crc
		rgw data = $d/\$name
		rgw frontends = beast endpoint=$CEPH_IP:7480 ssl_endpoint=$CEPH_IP:443 ssl_certificate=$d/s3.crt ssl_private_key=$d/s3.key
		rgw dns name = s3.test
		; memstore keeps deleted objects in RAM until the garbage
		; collector runs.
		rgw gc obj min wait = 10
		rgw gc processor period = 10
	EOF
}

# ceph_start [DIR]: a one-node cluster under DIR (default $SCEN/ceph) and
# an S3 user. Sets CEPH_DIR, CEPH_CONF, CEPH_PIDS (rgw osd mgr mon),
# CEPH_RGW_PID, S3_ACCESS_KEY, S3_SECRET_KEY, CEPH_START_SECONDS; stops at
# exit (ceph_stop). Every wait is bounded: a daemon that dies or does not
# come up fails the script with its last log lines.
ceph_start()
{
	local d=${1:-$SCEN/ceph} fsid osd_uuid osd_id t0=$SECONDS t0ms
	# shellcheck disable=SC2086
	drp_require_tools $DRP_CEPH_TOOLS openssl curl
	t0ms=$(date +%s%N)
	mkdir -p "$d/run"
	CEPH_DIR=$d
	CEPH_CONF=$d/ceph.conf
	fsid=$(cat /proc/sys/kernel/random/uuid)
	ceph_tls_cert "$d"
	ceph_conf "$d" "$fsid" >"$CEPH_CONF"
	CEPH_PIDS=()
	drp_at_exit ceph_stop

	monmaptool --create --clobber --fsid "$fsid" --addv a "[v2:$CEPH_IP:3300]" \
		"$d/monmap" >/dev/null || drp_fail "monmaptool failed"
	ceph-mon -c "$CEPH_CONF" -i a --mkfs --monmap "$d/monmap" \
		>"$WORK/logs/ceph-mon-mkfs.err" 2>&1 || {
		tail -n 20 "$WORK/logs/ceph-mon-mkfs.err" >&2
		drp_fail "ceph-mon --mkfs failed"
	}
	drp_bg ceph-mon ceph-mon -c "$CEPH_CONF" -i a -f
	CEPH_MON_PID=$DRP_LAST_PID
	drp_wait_started ceph-mon "$CEPH_MON_PID" 30 ceph_cli mon stat

	# The manager and the OSD start together: nothing waits for the
	# manager.
	drp_bg ceph-mgr ceph-mgr -c "$CEPH_CONF" -i x -f
	CEPH_MGR_PID=$DRP_LAST_PID
	osd_uuid=$(cat /proc/sys/kernel/random/uuid)
	osd_id=$(ceph_cli osd new "$osd_uuid") || drp_fail "ceph osd new failed"
	mkdir -p "$d/osd.$osd_id"
	ceph-osd -c "$CEPH_CONF" -i "$osd_id" --mkfs --osd-uuid "$osd_uuid" \
		>"$WORK/logs/ceph-osd-mkfs.err" 2>&1 || {
		tail -n 20 "$WORK/logs/ceph-osd-mkfs.err" >&2
		drp_fail "ceph-osd --mkfs failed"
	}
	drp_bg ceph-osd ceph-osd -c "$CEPH_CONF" -i "$osd_id" -f
	CEPH_OSD_PID=$DRP_LAST_PID

	# radosgw waits by itself until the OSD is up and its pools exist.
	drp_bg ceph-rgw radosgw -c "$CEPH_CONF" -n client.rgw -f
	CEPH_RGW_PID=$DRP_LAST_PID
	CEPH_PIDS=("$CEPH_RGW_PID" "$CEPH_OSD_PID" "$CEPH_MGR_PID" "$CEPH_MON_PID")
	drp_wait_started ceph-rgw "$CEPH_RGW_PID" 90 \
		curl -sf --max-time 2 -o /dev/null "$S3_HTTP/"
	drp_alive "$CEPH_OSD_PID" || drp_fail "ceph-osd died"
	drp_alive "$CEPH_MGR_PID" || drp_fail "ceph-mgr died"

	ceph_user drp
	CEPH_START_SECONDS=$((($(date +%s%N) - t0ms) / 1000000))
	CEPH_START_SECONDS=$((CEPH_START_SECONDS / 1000)).$(printf '%03d' $((CEPH_START_SECONDS % 1000)))
	drp_log "ceph: S3 at $S3_HTTP and $S3_HTTPS after $CEPH_START_SECONDS s ($((SECONDS - t0)) s)"
}

# ceph_user UID: an S3 user with fresh keys; sets S3_ACCESS_KEY and
# S3_SECRET_KEY (the secret also in $CEPH_DIR/UID.secret, mode 0600).
ceph_user()
{
	local uid=$1
	S3_ACCESS_KEY=DRP$(openssl rand -hex 8 | tr a-f A-F)
	S3_SECRET_KEY=$(openssl rand -base64 30 | tr -d '\n')
	ceph_admin user create --uid="$uid" --display-name="$uid" \
		--access-key="$S3_ACCESS_KEY" --secret-key="$S3_SECRET_KEY" \
		>"$CEPH_DIR/user-$uid.json" 2>"$WORK/logs/ceph-user-$uid.err" || {
		tail -n 20 "$WORK/logs/ceph-user-$uid.err" >&2
		drp_fail "radosgw-admin user create $uid failed"
	}
	(umask 077 && printf '%s\n' "$S3_SECRET_KEY" >"$CEPH_DIR/$uid.secret")
}

# ceph_stop: radosgw first (it writes through the OSD), then the OSD and
# the manager, the monitor last (the others would wait on it); SIGTERM,
# and SIGKILL after 15 s. Idempotent.
ceph_stop()
{
	local p
	[ -n "${CEPH_RGW_PID:-}" ] || return 0
	drp_stop "$CEPH_RGW_PID" 15 || drp_log "ceph: radosgw needed SIGKILL"
	for p in "$CEPH_OSD_PID" "$CEPH_MGR_PID"; do
		kill -TERM "$p" 2>/dev/null || true
	done
	drp_stop "$CEPH_OSD_PID" 15 || drp_log "ceph: ceph-osd needed SIGKILL"
	drp_stop "$CEPH_MGR_PID" 15 || drp_log "ceph: ceph-mgr needed SIGKILL"
	drp_stop "$CEPH_MON_PID" 15 || drp_log "ceph: ceph-mon needed SIGKILL"
	CEPH_RGW_PID=
}

# rgw_log: radosgw's own log (one "beast: ... "METHOD PATH HTTP/1.1" STATUS"
# line per request, for counting what reached the store).
rgw_log() { echo "$WORK/logs/ceph-rgw.out"; }

# s3curl ARGS...: curl signing with AWS Signature V4 as the S3 user
# (curl 7.88's --aws-sigv4; the payload is sent unsigned, which S3 allows
# and curl needs the header for). Bounded. For a query without a value
# write "?uploads=": curl 7.88 signs the query as written, and SigV4's
# canonical form of a bare key is "key=".
s3curl()
{
	curl -sS --max-time 60 --aws-sigv4 "aws:amz:$S3_REGION:s3" \
		--user "$S3_ACCESS_KEY:$S3_SECRET_KEY" \
		-H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' "$@"
}

# s3_mkbucket NAME: create bucket NAME (path-style, plain HTTP).
s3_mkbucket()
{
	local code
	code=$(s3curl -o "$CEPH_DIR/mkbucket-$1.out" -w '%{http_code}' -X PUT "$S3_HTTP/$1") ||
		drp_fail "creating bucket $1: curl failed"
	[ "$code" = 200 ] || drp_fail "creating bucket $1: HTTP $code: $(cat "$CEPH_DIR/mkbucket-$1.out")"
}

# ---------------------------------------------------------------- Redis

# rcli ARGS...: redis-cli against the test Redis, bounded.
rcli() { timeout 10 redis-cli -h "$REDIS_IP" -p "$REDIS_PORT" "$@"; }

# redis_start: redis-server on $REDIS_IP:$REDIS_PORT, in memory only (no
# snapshots, no append-only file). Sets REDIS_PID; stops at exit.
redis_start()
{
	local d=${SCEN:-$WORK}/redis
	# shellcheck disable=SC2086
	drp_require_tools $DRP_REDIS_TOOLS
	mkdir -p "$d"
	drp_bg redis redis-server --bind "$REDIS_IP" --port "$REDIS_PORT" \
		--save '' --appendonly no --dir "$d" --daemonize no --logfile ''
	REDIS_PID=$DRP_LAST_PID
	drp_at_exit redis_stop
	drp_wait_started redis "$REDIS_PID" 20 rcli ping
}

# redis_stop: SIGTERM (SIGKILL after 10 s). Idempotent.
redis_stop()
{
	[ -n "${REDIS_PID:-}" ] || return 0
	drp_stop "$REDIS_PID" 10 || drp_log "redis: needed SIGKILL"
	REDIS_PID=
}
