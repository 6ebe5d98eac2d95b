#!/bin/sh
# SPDX-License-Identifier: MIT
# `make check` entry for the integration tests: runs run.sh against the
# proxy just built. They bind 127.0.0.x:443 and start registries, so they
# need root. Without root, `make check` is a unit-only run: this test
# reports SKIP (77) and says so; under DRP_STRICT=1 (.ci/run) that is a
# failure instead.
#
# Makefile.am passes fd 8 (AM_TESTS_FD_REDIRECT = 8>&2): run.sh writes its
# one line per scenario there too, so they appear in make check's own
# output (the CI log), not only in this test's .log file.
report=
if { : >&8; } 2>/dev/null; then
	report=8
fi
say()
{
	echo "$*"
	[ -z "$report" ] || echo "integration: $*" >&8
}
# Package builds (debian/rules) run the unit tests only, even as root.
if [ -n "${DRP_IT_SKIP:-}" ] && [ "${DRP_STRICT:-}" != 1 ]; then
	say "SKIP: DRP_IT_SKIP is set: unit tests only"
	exit 77
fi
if [ "$(id -u)" != 0 ]; then
	if [ "${DRP_STRICT:-}" = 1 ]; then
		say "FAIL: integration tests need root (they bind 127.0.0.x:443); DRP_STRICT=1 forbids a unit-only run"
		exit 1
	fi
	say "SKIP: unit-only mode: not root, so the integration tests do not run (they bind 127.0.0.x:443)"
	exit 77
fi
: "${top_srcdir:?run through make check}" "${top_builddir:?run through make check}"
DRP_PROXY=${DRP_PROXY:-$top_builddir/docker-registry-proxy}
DRP_IT_REPORT_FD=$report
export DRP_PROXY DRP_IT_REPORT_FD
# DRP_IT_SCENARIOS="a b": only those (a quick `make check` by hand).
# shellcheck disable=SC2086
exec bash "$top_srcdir/tests/integration/run.sh" ${DRP_IT_SCENARIOS:-}
