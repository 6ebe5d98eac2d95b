# SPDX-License-Identifier: MIT
# drp-plugin.m4 -- autoconf support for docker-registry-proxy auth plugins
#
# DRP_PLUGIN_INIT([MIN-VERSION])
#
#   Finds the installed plugin ABI (<drp/plugin.h>) through pkg-config
#   (module drp-plugin, optionally at least MIN-VERSION) and sets, with
#   AC_SUBST:
#
#   DRP_PLUGIN_CFLAGS   where <drp/plugin.h> is, plus -fvisibility=hidden
#                       (everything but the descriptor stays private)
#   DRP_PLUGIN_LDFLAGS  libtool flags for a loadable module that exports
#                       only the descriptor:
#                       -module -avoid-version -shared
#                       -export-symbols-regex '^drp_plugin$'
#   drpplugindir        the directory where the daemon finds plugins by
#                       name, re-rooted under ${libdir} so that --prefix
#                       and `make distcheck` are honoured
#   DRP_PLUGIN_CHECK    a command for `make check` that fails unless a
#                       built module exports exactly the symbol drp_plugin:
#                           $(DRP_PLUGIN_CHECK) .libs/myreg.so
#
#   Typical Makefile.am:
#       drpplugin_LTLIBRARIES = myreg.la
#       myreg_la_SOURCES = myreg.c
#       myreg_la_CFLAGS = $(DRP_PLUGIN_CFLAGS)
#       myreg_la_LDFLAGS = -module $(DRP_PLUGIN_LDFLAGS)
#   (automake accepts a library name without "lib" only when it sees
#   -module written in the Makefile.am itself.)
#       check-local: myreg.la
#               $(DRP_PLUGIN_CHECK) .libs/myreg.so
#
#   The daemon also loads a module by path (plugin = /path/myreg.so), so
#   installing into drpplugindir is optional.

AC_DEFUN([DRP_PLUGIN_INIT], [
	AC_REQUIRE([PKG_PROG_PKG_CONFIG])
	PKG_CHECK_MODULES([DRP_PLUGIN],
		[drp-plugin m4_ifval([$1], [>= $1])])
	DRP_PLUGIN_CFLAGS="$DRP_PLUGIN_CFLAGS -fvisibility=hidden"
	DRP_PLUGIN_LDFLAGS="-module -avoid-version -shared -export-symbols-regex '^drp_plugin\$\$'"

	AC_MSG_CHECKING([for the drp plugin directory])
	_drp_dir=`$PKG_CONFIG --variable=plugindir drp-plugin`
	_drp_libdir=`$PKG_CONFIG --variable=libdir drp-plugin`
	_drp_rest=`echo "$_drp_dir" | sed "s|^$_drp_libdir/|/|"`
	AS_IF([test "x$_drp_rest" != "x$_drp_dir"],
		[drpplugindir="\${libdir}$_drp_rest"],
		[drpplugindir=$_drp_dir])
	AC_MSG_RESULT([$drpplugindir])

	dnl @S|@ is a literal dollar sign: a plain one before 0 would name this macro.
	AC_CHECK_TOOL([NM], [nm])
	DRP_PLUGIN_CHECK='$(SHELL) -c '\''s=`$(NM) -D --defined-only "@S|@@S|@0" | sed "s/.* //" | sort -u | xargs`; test "x@S|@@S|@s" = xdrp_plugin || { echo "@S|@@S|@0 exports: @S|@@S|@s (want only drp_plugin)" >&2; exit 1; }'\'

	AC_SUBST([DRP_PLUGIN_CFLAGS])
	AC_SUBST([DRP_PLUGIN_LDFLAGS])
	AC_SUBST([drpplugindir])
	AC_SUBST([DRP_PLUGIN_CHECK])
])
