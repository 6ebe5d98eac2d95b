#!/bin/sh
# SPDX-License-Identifier: MIT
# Installs what docker-registry-proxy needs to build, and what its test
# suite needs to run (real registries and clients), on Debian 12.
set -eu
SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends \
	build-essential autoconf automake libtool libltdl-dev pkg-config \
	libev-dev libgnutls28-dev libc-ares-dev libjansson-dev check \
	gnutls-bin openssl ca-certificates curl jq python3 iproute2 \
	docker-registry skopeo podman containerd apache2-utils nginx-light \
	netcat-openbsd procps psmisc >/dev/null
