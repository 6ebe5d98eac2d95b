#!/bin/bash
# SPDX-License-Identifier: MIT
# The container image (Dockerfile), built here with Debian's docker 20.10
# and the classic builder on a debian:bookworm-slim made by
# scripts/mkbase.sh (no registry image can be pulled here), run by a
# private dockerd with host networking (it has no bridge): a client pulls
# through it twice (the second pull fetches no blob upstream), the daemon
# runs as a non-root user, the image's HEALTHCHECK passes, and docker stop
# ends with exit status 0 within its 10 s grace although a client holds a
# request open (the entry point execs the daemon, which drains for
# drain_timeout = 8 s). Then the image runs as deploy/'s Deployment runs
# it, on the ConfigMap's INI, and once more on the old image's variables
# alone.
#
# The base tarball and dockerd's data root (the builder's layer cache) are
# kept in DRP_IT_CACHE (default /var/cache/drp-tests): the base is made
# once (about a minute), later runs of the build reuse its apt layers.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
drp_scenario_init
drp_require_tools mmdebstrap dockerd skopeo
DOCKER=/usr/bin/docker # Debian's; another docker CLI may be first on PATH
[ -x "$DOCKER" ] || drp_skip "Debian's docker CLI ($DOCKER) missing"
export DOCKER_BUILDKIT=0
src=${top_srcdir:-$(cd "$DRP_IT_DIR/../.." && pwd)}
[ -f "$src/Dockerfile" ] || drp_fail "no Dockerfile in $src"
cache=${DRP_IT_CACHE:-/var/cache/drp-tests}
mkdir -p "$cache"
t_start=$SECONDS

# The entry point's choice (its exec turned into an echo): the daemon on
# its file, or on --env-config when any variable of the old image is set
# (each of them, not only some), or the command given.
ep=$SCEN/entrypoint-echo.sh
sed 's/^exec "\$@"$/echo "$@"/' "$src/docker/entrypoint.sh" >"$ep"
grep -q '^echo "\$@"$' "$ep" || drp_fail "the entry point no longer ends in exec \"\$@\""
expect_eq "entry point, no variables" /usr/sbin/docker-registry-proxy "$(env -i sh "$ep")"
for v in REGISTRIES=quay.io KEEPALIVE_TIMEOUT=5m PROXY_CONNECT_SEND_TIMEOUT=1m \
	MANIFEST_CACHE_PRIMARY_TIME=10m ENABLE_MANIFEST_CACHE=true ALLOW_PUSH=true DISABLE_IPV6=true; do
	expect_eq "entry point, $v" "/usr/sbin/docker-registry-proxy --env-config" "$(env -i "$v" sh "$ep")"
done
expect_eq "entry point, an unrelated variable" /usr/sbin/docker-registry-proxy "$(env -i NO_PROXY_TIMEOUT=1 sh "$ep")"
expect_eq "entry point, options" "/usr/sbin/docker-registry-proxy -t" "$(env -i REGISTRIES=x sh "$ep" -t)"
expect_eq "entry point, a command" "sh -c true" "$(env -i sh "$ep" sh -c true)"

# The base image, made once a week.
base=$cache/bookworm-minbase.tar
if [ ! -s "$base" ] || [ -n "$(find "$base" -mtime +7)" ]; then
	drp_log "making $base with mmdebstrap"
	sh "$src/scripts/mkbase.sh" "$base" >"$SCEN/mkbase.log" 2>&1 ||
		drp_fail "mkbase.sh failed: $(tail -n 20 "$SCEN/mkbase.log")"
fi
t_base=$SECONDS

# A private dockerd: data root in the cache (the layers), the rest here.
dk=$cache/dockerd
mkdir -p "$dk" "$SCEN/exec"
printf '{ "deprecated-key-path": "%s/key.json" }\n' "$dk" >"$SCEN/daemon.json"
drp_bg dockerd-image dockerd --config-file "$SCEN/daemon.json" --data-root "$dk" \
	--exec-root "$SCEN/exec" --pidfile "$SCEN/docker.pid" -H "unix://$SCEN/docker.sock" \
	--storage-driver overlay2 --iptables=false --ip6tables=false --ip-masq=false --bridge=none
dockerd_pid=$DRP_LAST_PID
export DOCKER_HOST=unix://$SCEN/docker.sock
drp_wait_started dockerd-image "$dockerd_pid" 60 "$DOCKER" version
dk() { "$DOCKER" "$@"; }
name=drp-it-image
cleanup_image()
{
	# Their logs stay with the scenario's (DRP_IT_KEEP=failed).
	dk logs "$name" >"$SCEN/container.log" 2>&1 || true
	dk logs "$name-env" >"$SCEN/container-env.log" 2>&1 || true
	dk logs "$name-k8s" >"$SCEN/container-k8s.log" 2>&1 || true
	dk rm -f "$name" "$name-env" "$name-k8s" >/dev/null 2>&1 || true
	dk volume rm -f "$name-ca" "$name-cache" "$name-cache2" >/dev/null 2>&1 || true
}
cleanup_image
drp_at_exit cleanup_image

if [ "$(dk image inspect -f '{{.Comment}}' debian:bookworm-slim 2>/dev/null)" != "$(stat -c %Y "$base")" ]; then
	dk import -m "$(stat -c %Y "$base")" "$base" debian:bookworm-slim >/dev/null
fi
dk build --network host -q -t drp-it:latest "$src" >"$SCEN/build.log" 2>&1 ||
	drp_fail "docker build failed: $(tail -n 30 "$SCEN/build.log")"
t_build=$SECONDS
drp_log "image built ($((t_build - t_base)) s; base $((t_base - t_start)) s)"
expect_eq "image user" drp:drp "$(dk image inspect -f '{{.Config.User}}' drp-it:latest)"

# The test's configuration: the test registries, the test CA, the
# image's paths.
port=$(drp_free_port)
drp_proxy_conf img "$port"
sed -e "s|^ca_dir = .*|ca_dir = /ca|" -e "s|^upstream_ca_file = .*|upstream_ca_file = /test-ca.pem|" \
	-e "s|^access_log = .*|access_log = -|" -e "s|^error_log = .*|error_log = -|" \
	-e "s|^dir = .*|dir = /docker_mirror_cache|" "$WORK/img/proxy.ini" >"$SCEN/proxy.ini"
dk run -d --name "$name" --network host \
	-v "$SCEN/proxy.ini:/etc/docker-registry-proxy/docker-registry-proxy.ini:ro" \
	-v "$TEST_CA:/test-ca.pem:ro" -v "$name-ca:/ca" -v "$name-cache:/docker_mirror_cache" \
	drp-it:latest >/dev/null
running() { [ "$(dk inspect -f '{{.State.Running}}' "$name")" = true ]; }
i=0
until curl -sf --max-time 2 -o "$SCEN/ca.crt" "http://127.0.0.1:$port/ca.crt"; do
	running || drp_fail "the container exited: $(dk logs "$name" 2>&1 | tail -n 20)"
	i=$((i + 1))
	[ $i -lt 100 ] || drp_fail "the container's proxy not up after 20 s"
	sleep 0.2
done
PROXY_URL=http://127.0.0.1:$port PROXY_CA=$SCEN/ca.crt

# Non-root: the daemon (PID 1 of the container, thanks to exec) runs as
# the image's user.
pid=$(dk inspect -f '{{.State.Pid}}' "$name")
expect_eq "daemon's uid" 3128 "$(ps -o uid= -p "$pid" | tr -d ' ')"
expect_eq "daemon is the container's PID 1" docker-registry "$(ps -o comm= -p "$pid" | cut -c1-15)"
expect_eq "id inside" "uid=3128(drp) gid=3128(drp) groups=3128(drp)" "$(dk exec "$name" id)"

# The image's HEALTHCHECK command, run now (its first interval is 30 s).
hc=$(dk image inspect -f '{{index .Config.Healthcheck.Test 1}}' drp-it:latest)
dk exec "$name" "$hc" || drp_fail "the HEALTHCHECK command failed"
# ... and it can fail: nothing listens on the port of a wrong config.
printf '[proxy]\nlisten = 127.0.0.1:%s\n' "$(drp_free_port)" >"$SCEN/wrong.ini"
dk cp "$SCEN/wrong.ini" "$name:/tmp/wrong.ini"
if dk exec -e DRP_CONF=/tmp/wrong.ini "$name" "$hc" >/dev/null 2>&1; then
	drp_fail "the HEALTHCHECK command passed with nothing listening"
fi
expect_eq "GET / of the image" 200 "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/")"

# Two pulls through the image: the first fetches every blob upstream, the
# second none (counted in the registry's own log).
pull()
{
	local out=$1 mark
	mark=$(log_mark "$(reg_log open)")
	rm -rf "$out"
	pskopeo copy -q docker://registry.test/test/small:v1 "dir:$out" ||
		drp_fail "skopeo pull through the image failed"
	check_dir_image "$out" "$SMALL_DIGEST" $SMALL_BLOBS
	local n=0 b
	for b in $SMALL_BLOBS; do
		n=$((n + $(count_since "$(reg_log open)" "$mark" "$(req_pat GET "/v2/test/small/blobs/$b")")))
	done
	echo "$n"
}
nblobs=$(echo $SMALL_BLOBS | wc -w)
first=$(pull "$SCEN/pull1")
expect_eq "upstream blob GETs, first pull" "$nblobs" "$first"
second=$(pull "$SCEN/pull2")
expect_eq "upstream blob GETs, second pull" 0 "$second"
dk logs "$name" 2>&1 | grep -E ' (MISS|HIT) ' | awk '{ print $4, $5, $11 }' >"$SCEN/results.txt" || true
drp_log "access log of the image: $(grep -c ' MISS$' "$SCEN/results.txt") MISS, $(grep -c ' HIT$' "$SCEN/results.txt") HIT"

# docker stop with a request head pending: the drain lasts drain_timeout
# (8 s), the daemon exits 0 before docker's SIGKILL at 10 s.
exec 5<>"/dev/tcp/127.0.0.1/$port"
printf 'GET /healthz HTTP/1.1\r\nHost: x\r\n' >&5
t0=$(date +%s%N)
dk stop "$name" >/dev/null
t1=$(date +%s%N)
exec 5>&-
ms=$(((t1 - t0) / 1000000))
expect_le "docker stop (ms)" 9900 "$ms"
expect_eq "exit status after docker stop" 0 "$(dk inspect -f '{{.State.ExitCode}}' "$name")"
# (Logs to a file first: grep -q would end the pipe early, and pipefail
# would turn docker logs' SIGPIPE into a failure.)
dk logs "$name" >"$SCEN/container.log" 2>&1
grep -q 'notice main: stopped' "$SCEN/container.log" || drp_fail "no 'stopped' line: the daemon did not drain"
# The Kubernetes manifests (deploy/): the ConfigMap's INI, run as the
# Deployment runs it: its args, user and group, a read-only root file
# system with an empty /tmp, no capabilities, the Secret's files (mode
# 0440, group fsGroup) and a data volume writable through fsGroup where
# the Deployment mounts them. The INI is the ConfigMap's with the test
# registry added to its registries and the test's [resolve] and CA
# appended; its port is the manifests' 3128.
k8s=$SCEN/k8s
mkdir -p "$k8s/secrets" "$k8s/data"
python3 - "$src/deploy" "$k8s" <<'PY' || drp_fail "reading deploy/ failed"
import os, shlex, sys, yaml
d, out = sys.argv[1], sys.argv[2]
objs = {}
for n in sorted(os.listdir(d)):
    if n.endswith(".yaml"):
        with open(os.path.join(d, n)) as f:
            for doc in yaml.safe_load_all(f):
                objs[doc["kind"]] = doc
with open(out + "/proxy.ini", "w") as f:
    f.write(objs["ConfigMap"]["data"]["docker-registry-proxy.ini"])
for k, v in objs["Secret"]["stringData"].items():
    with open(out + "/secrets/" + k, "w") as f:
        f.write(v + "\n")
pod = objs["Deployment"]["spec"]["template"]["spec"]
sc, c = pod["securityContext"], pod["containers"][0]
m = {v["name"]: v["mountPath"] for v in c["volumeMounts"]}
probe = c["readinessProbe"]["httpGet"]["path"]
with open(out + "/run.env", "w") as f:
    for k, v in (("args", " ".join(c["args"])), ("user", sc["runAsUser"]),
                 ("group", sc["runAsGroup"]), ("fsgroup", sc["fsGroup"]),
                 ("config", m["config"]), ("secrets", m["secrets"]),
                 ("data", m["data"]), ("tmp", m["tmp"]),
                 ("port", c["ports"][0]["containerPort"]), ("probe", probe),
                 ("grace", pod["terminationGracePeriodSeconds"]),
                 ("readonly", str(c["securityContext"]["readOnlyRootFilesystem"]).lower())):
        f.write("k8s_%s=%s\n" % (k, shlex.quote(str(v))))
PY
# shellcheck disable=SC1091
. "$k8s/run.env"
[ "$k8s_readonly" = true ] || drp_fail "the Deployment's root file system is no longer read-only"
sed -n '/^\[resolve\]/,/^\[cache\]/p' "$SCEN/proxy.ini" | sed '$d' >"$SCEN/resolve.ini"
sed -i 's/^registries = \(.*\)$/registries = \1 registry.test/' "$k8s/proxy.ini"
grep -q '^registries = .* registry.test$' "$k8s/proxy.ini" || drp_fail "the ConfigMap's INI has no registries line"
{
	printf '\n; added by the test\n[proxy]\nupstream_ca_file = /test-ca.pem\n'
	cat "$SCEN/resolve.ini"
} >>"$k8s/proxy.ini"
chgrp -R "$k8s_fsgroup" "$k8s/secrets" "$k8s/data"
chmod 0440 "$k8s/secrets"/*
chmod 2770 "$k8s/data"
drp_port_open 127.0.0.1 "$k8s_port" && drp_fail "port $k8s_port is in use: the ConfigMap's run needs it"
# shellcheck disable=SC2086 # the Deployment's args, split as Kubernetes does
dk run -d --name "$name-k8s" --network host --user "$k8s_user:$k8s_group" \
	--group-add "$k8s_fsgroup" --read-only --tmpfs "$k8s_tmp" --cap-drop ALL \
	--security-opt no-new-privileges \
	-v "$k8s/proxy.ini:$k8s_config:ro" -v "$k8s/secrets:$k8s_secrets:ro" \
	-v "$k8s/data:$k8s_data" -v "$TEST_CA:/test-ca.pem:ro" \
	drp-it:latest $k8s_args >/dev/null
i=0
until [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$k8s_port$k8s_probe")" = 200 ]; do
	[ "$(dk inspect -f '{{.State.Running}}' "$name-k8s")" = true ] ||
		drp_fail "the ConfigMap's container exited: $(dk logs "$name-k8s" 2>&1 | tail -n 20)"
	i=$((i + 1))
	[ $i -lt 100 ] || drp_fail "the ConfigMap's container not ready after 20 s"
	sleep 0.2
done
drp_log "the ConfigMap's container answers its readiness probe $k8s_probe"
expect_eq "the ConfigMap's daemon: uid" "$k8s_user" \
	"$(ps -o uid= -p "$(dk inspect -f '{{.State.Pid}}' "$name-k8s")" | tr -d ' ')"
PROXY_URL=http://127.0.0.1:$k8s_port PROXY_CA=$k8s/data/ca/ca.crt
[ -s "$PROXY_CA" ] || drp_fail "no CA on the data volume ($PROXY_CA)"
first=$(pull "$SCEN/pull-k8s1")
expect_eq "the ConfigMap's INI: upstream blob GETs, first pull" "$nblobs" "$first"
second=$(pull "$SCEN/pull-k8s2")
expect_eq "the ConfigMap's INI: upstream blob GETs, second pull" 0 "$second"
[ -n "$(find "$k8s/data/cache" -type f -size +0 | head -n 1)" ] || drp_fail "nothing cached on the data volume"
dk stop -t "$k8s_grace" "$name-k8s" >/dev/null
expect_eq "the ConfigMap's container: exit status after stop" 0 \
	"$(dk inspect -f '{{.State.ExitCode}}' "$name-k8s")"

# The same image driven only by the nginx-based image's variables
# (--env-config) and that image's kind of CA: ca.key encrypted with
# foobar, in a read-only /ca. Its port is the old fixed 3128; the test CA
# is the container's system store.
drp_port_open 127.0.0.1 3128 && drp_fail "port 3128 is in use: the --env-config run needs it"
old=$SCEN/oldca
mkdir -p "$old"
openssl genrsa -des3 -passout pass:foobar -out "$old/ca.key" 2048 2>/dev/null
openssl req -x509 -new -key "$old/ca.key" -passin pass:foobar -days 365 -subj "/CN=old proxy CA" \
	-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign -out "$old/ca.crt"
chown -R 3128:3128 "$old"
chmod 0400 "$old/ca.key"
chmod 0555 "$old"
# The test registries are on loopback addresses, which the proxy reaches
# only when [resolve] names them: that one section comes from -c (the
# rest is the environment's).
dk run -d --name "$name-env" --network host \
	-e "REGISTRIES=registry.test" -e "AUTH_REGISTRIES=basic.test:$BASIC_USER:$BASIC_PASS" \
	-e ALLOW_PUSH=true -e CACHE_MAX_SIZE=1g -e DISABLE_IPV6=true \
	-v "$old:/ca:ro" -v "$SCEN/resolve.ini:/etc/drp-resolve.ini:ro" \
	-v "$TEST_CA:/etc/ssl/certs/ca-certificates.crt:ro" -v "$name-cache2:/docker_mirror_cache" \
	drp-it:latest --env-config -c /etc/drp-resolve.ini >/dev/null
i=0
until curl -sf --max-time 2 -o "$SCEN/env-ca.crt" "http://127.0.0.1:3128/ca.crt"; do
	[ "$(dk inspect -f '{{.State.Running}}' "$name-env")" = true ] ||
		drp_fail "the --env-config container exited: $(dk logs "$name-env" 2>&1 | tail -n 20)"
	i=$((i + 1))
	[ $i -lt 100 ] || drp_fail "the --env-config container not up after 20 s"
	sleep 0.2
done
expect_eq "the old CA is served" "$(openssl x509 -in "$old/ca.crt" -noout -fingerprint -sha256)" \
	"$(openssl x509 -in "$SCEN/env-ca.crt" -noout -fingerprint -sha256)"
PROXY_URL=http://127.0.0.1:3128 PROXY_CA=$old/ca.crt
first=$(pull "$SCEN/pull3")
expect_eq "env-config: upstream blob GETs, first pull" "$nblobs" "$first"
second=$(pull "$SCEN/pull4")
expect_eq "env-config: upstream blob GETs, second pull" 0 "$second"
# AUTH_REGISTRIES: the proxy logs in to basic.test itself.
pskopeo copy -q docker://basic.test/test/small:v1 "dir:$SCEN/pull5" ||
	drp_fail "pull from basic.test with the proxy's credentials failed"
check_dir_image "$SCEN/pull5" "$SMALL_DIGEST" $SMALL_BLOBS
dk logs "$name-env" >"$SCEN/container-env.log" 2>&1
# Only what this proxy cannot do is reported (ALLOW_PUSH is [proxy] push).
expect_eq "env-config: reported as unsupported" "DISABLE_IPV6" \
	"$(sed -n 's/.*env-config: not supported, ignored: //p' "$SCEN/container-env.log")"
grep -qF -- "$BASIC_PASS" "$SCEN/container-env.log" && drp_fail "the password is in the log"
dk stop "$name-env" >/dev/null
expect_eq "env-config: exit status after docker stop" 0 "$(dk inspect -f '{{.State.ExitCode}}' "$name-env")"
drp_log "image scenario: base $((t_base - t_start)) s, build $((t_build - t_base)) s, total $((SECONDS - t_start)) s"
