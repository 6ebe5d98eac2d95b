/* SPDX-License-Identifier: MIT */
/* Runner shared by every unit-test program: DRP_SUITE names the suite. */
#include <check.h>
#include <stdlib.h>

#include "util/log.h"

Suite *DRP_SUITE(void);

int main(void)
{
	drp_log_init(DRP_LOG_WARNING, NULL);
	SRunner *sr = srunner_create(DRP_SUITE());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
