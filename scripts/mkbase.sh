#!/bin/sh
# SPDX-License-Identifier: MIT
# Makes a debian:bookworm-slim base image from Debian's packages, for hosts
# that cannot pull images (the image test runs on such machines):
#   scripts/mkbase.sh OUT.tar              # mmdebstrap minbase tarball
#   docker import OUT.tar debian:bookworm-slim
# The host's apt sources (sources.list and sources.list.d) and its Acquire
# options for proxies and release-file dates (e.g. Check-Valid-Until false
# on a snapshot mirror) are used, and stay in the image's apt configuration
# so that the Dockerfile's apt-get works the same way. Needs mmdebstrap
# (root, or unshare mode with subuids).
set -eu
out=${1:?usage: mkbase.sh OUT.tar}
suite=${DRP_BASE_SUITE:-bookworm}
set --
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
	[ -f "$f" ] && grep -qE '^[[:space:]]*(deb|Types:)' "$f" && set -- "$@" "$f"
done
[ $# -gt 0 ] || set -- http://deb.debian.org/debian
aptopts=$(mktemp)
trap 'rm -f "$aptopts"' EXIT
apt-config dump | grep -E '^Acquire::(Check-Valid-Until|Check-Date|https?::Proxy|Retries) ' >"$aptopts" || true
tmp=$out.tmp.$$
mmdebstrap --quiet --variant=minbase --format=tar --aptopt="$aptopts" \
	--dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
	--dpkgopt='path-include=/usr/share/doc/*/copyright' \
	--dpkgopt='path-exclude=/usr/share/locale/*' \
	--customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin' \
	"$suite" "$tmp" "$@"
mv "$tmp" "$out"
