/* SPDX-License-Identifier: MIT */
#include "config.h"

const char *drp_version(void);
const char *drp_version(void)
{
	return PACKAGE_VERSION;
}
