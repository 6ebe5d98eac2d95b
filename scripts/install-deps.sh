#!/bin/sh
# SPDX-License-Identifier: MIT
# Installs what docker-registry-proxy needs to build, and what its test
# suite needs to run (real registries and clients), on Debian 12. .ci/run
# uses this same list.
set -eu
SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
# Installing must not start the packages' system services (a registry on
# :5000, nginx on :80, containerd, dockerd, redis, ceph): the tests start
# private instances. policy-rc.d tells invoke-rc.d so; ours only if none exists.
policy_created=
if [ ! -e /usr/sbin/policy-rc.d ]; then
	printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
	$SUDO chmod 755 /usr/sbin/policy-rc.d
	policy_created=1
fi
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends \
	build-essential autoconf automake libtool libltdl-dev pkg-config git \
	ca-certificates libev-dev libgnutls28-dev nettle-dev libc-ares-dev \
	libjansson-dev libpcre2-dev \
	libcrypt-dev \
	check gnutls-bin openssl curl jq python3 python3-cryptography \
	apache2-utils util-linux procps netcat-openbsd strace iproute2 \
	docker-registry skopeo podman containerd runc crun nginx docker.io \
	golang-github-containers-common mmdebstrap systemd python3-yaml \
	ceph-mon ceph-mgr ceph-osd radosgw ceph-common redis-server libhiredis-dev \
	squid haproxy
if [ -n "$policy_created" ]; then
	$SUDO rm -f /usr/sbin/policy-rc.d
fi
