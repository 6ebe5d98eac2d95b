/* SPDX-License-Identifier: MIT */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "registry/s3tier.h"
#include "upstream/s3.h"

Suite *s3_suite(void);

/* The tags S3 answers with: found in order, entities decoded, bounded. */
START_TEST(xml_next)
{
	const char *x = "<R><UploadId>2~a&amp;b</UploadId><Key>k&lt;1&gt;"
			"</Key><Key>two</Key><Empty></Empty></R>";
	size_t len = strlen(x), pos = 0;
	char out[32];
	ck_assert_int_eq(
		drp_s3_xml_next(x, len, &pos, "UploadId", out, sizeof(out)), 0);
	ck_assert_str_eq(out, "2~a&b");
	ck_assert_int_eq(drp_s3_xml_next(x, len, &pos, "Key", out, sizeof(out)),
			 0);
	ck_assert_str_eq(out, "k<1>");
	ck_assert_int_eq(drp_s3_xml_next(x, len, &pos, "Key", out, sizeof(out)),
			 0);
	ck_assert_str_eq(out, "two");
	/* no third Key after the second */
	ck_assert_int_eq(drp_s3_xml_next(x, len, &pos, "Key", out, sizeof(out)),
			 -ENOENT);
	pos = 0;
	ck_assert_int_eq(
		drp_s3_xml_next(x, len, &pos, "Empty", out, sizeof(out)), 0);
	ck_assert_str_eq(out, "");
	/* too small a buffer */
	pos = 0;
	ck_assert_int_eq(drp_s3_xml_next(x, len, &pos, "UploadId", out, 4),
			 -ERANGE);
	/* an unclosed tag, and a tag cut by the length */
	pos = 0;
	ck_assert_int_eq(drp_s3_xml_next("<Code>Oops", 10, &pos, "Code", out,
					 sizeof(out)),
			 -ENOENT);
	pos = 0;
	ck_assert_int_eq(
		drp_s3_xml_next(x, 20, &pos, "UploadId", out, sizeof(out)),
		-ENOENT);
}
END_TEST

/* Listing times and HTTP dates, the two clocks of the sweep (both the
 * store's). */
START_TEST(parse_time)
{
	ck_assert_int_eq(drp_s3_parse_time("2024-05-01T10:20:30.000Z"),
			 1714558830);
	ck_assert_int_eq(drp_s3_parse_time("2024-05-01T10:20:30Z"), 1714558830);
	ck_assert_int_eq(drp_s3_parse_time("Wed, 01 May 2024 10:20:30 GMT"),
			 1714558830);
	ck_assert_int_eq(drp_s3_parse_time("2024-05-01T10:20:30+02:00"), -1);
	ck_assert_int_eq(drp_s3_parse_time("yesterday"), -1);
	ck_assert_int_eq(drp_s3_parse_time(""), -1);
}
END_TEST

/* Endpoints and buckets are checked when the client is made. */
START_TEST(new_checks)
{
	char err[256];
	drp_s3_conf_t c = {.endpoint = "https://s3.test:443/",
			   .bucket = "drp-cache",
			   .access_key = "AK",
			   .secret_key = "SK"};
	drp_s3_t *s3 = drp_s3_new(&c, err, sizeof(err));
	ck_assert_ptr_nonnull(s3);
	/* the default port is dropped: S3 signs the Host header sent */
	ck_assert_str_eq(drp_s3_describe(s3), "https://s3.test/drp-cache");
	drp_s3_free(s3);
	c.addressing = DRP_S3_VIRTUAL;
	c.endpoint = "http://127.0.0.61:7480";
	s3 = drp_s3_new(&c, err, sizeof(err));
	ck_assert_ptr_nonnull(s3);
	ck_assert_str_eq(drp_s3_describe(s3),
			 "http://drp-cache.127.0.0.61:7480/");
	drp_s3_free(s3);

	static const struct {
		const char *endpoint, *bucket, *secret;
		drp_s3_addressing_t how;
		const char *err;
	} bad[] = {
		{"s3.test", "b-b-b", "x", DRP_S3_PATH, "must start with"},
		{"https://s3.test/path", "b-b-b", "x", DRP_S3_PATH, "no path"},
		{"https://u@s3.test", "b-b-b", "x", DRP_S3_PATH, "no user"},
		{"https://s3.test:0", "b-b-b", "x", DRP_S3_PATH, "bad port"},
		{"https://s3.test:99999", "b-b-b", "x", DRP_S3_PATH,
		 "bad port"},
		{"https://s3.test", "B", "x", DRP_S3_PATH, "bucket"},
		{"https://s3.test", "a.b.c", "x", DRP_S3_VIRTUAL, "no '.'"},
		{"https://s3.test", "b-b-b", "", DRP_S3_PATH, "secret key"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		drp_s3_conf_t b = {.endpoint = bad[i].endpoint,
				   .bucket = bad[i].bucket,
				   .access_key = "AK",
				   .secret_key = bad[i].secret,
				   .addressing = bad[i].how};
		err[0] = '\0';
		ck_assert_ptr_null(drp_s3_new(&b, err, sizeof(err)));
		ck_assert_msg(strstr(err, bad[i].err) != NULL,
			      "case %zu: '%s' lacks '%s'", i, err, bad[i].err);
	}
}
END_TEST

#define D64                                                                    \
	"sha256:"                                                              \
	"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define MT  "application/vnd.oci.image.manifest.v1+json"
#define ACC "application/vnd.oci.image.index.v1+json," MT

/* Tag records of the bucket: keyed per Accept set, one strict line. */
START_TEST(tag_key)
{
	char k[2048];
	ck_assert_int_gt(drp_s3tier_tag_key(k, sizeof(k), "registry.test",
					    "test/large", "v1", ACC),
			 0);
	ck_assert_str_eq(k, "tags/registry.test/test/large/v1/"
			    "71f2ae3b4c63d7ce0d5df9fc9c418758");
	char k2[2048];
	drp_s3tier_tag_key(k2, sizeof(k2), "registry.test", "test/large", "v1",
			   MT);
	ck_assert_str_ne(k, k2); /* another Accept set, another record */
	ck_assert_int_eq(drp_s3tier_tag_key(k, sizeof(k), "h", "r", "a/b", "-"),
			 -EINVAL);
	ck_assert_int_eq(drp_s3tier_tag_key(k, sizeof(k), "h", "r r", "t", "-"),
			 -EINVAL);
	ck_assert_int_eq(drp_s3tier_tag_key(k, sizeof(k), "", "r", "t", "-"),
			 -EINVAL);
	ck_assert_int_eq(
		drp_s3tier_tag_key(k, sizeof(k), "h", "r\x01", "t", "-"),
		-EINVAL);
	ck_assert_int_eq(drp_s3tier_tag_key(k, 20, "h", "r", "t", "-"),
			 -ENAMETOOLONG);
}
END_TEST

START_TEST(tag_record)
{
	char b[1100];
	int n = drp_s3tier_tag_format(b, sizeof(b), D64, MT, ACC);
	ck_assert_int_eq(n, (int)strlen(D64 " " MT " " ACC "\n"));
	ck_assert_str_eq(b, D64 " " MT " " ACC "\n");
	drp_cache_tag_t t;
	ck_assert_int_eq(drp_s3tier_tag_parse(b, (size_t)n, ACC, &t), 0);
	ck_assert_str_eq(t.digest, D64);
	ck_assert_str_eq(t.media_type, MT);
	ck_assert_int_eq(drp_s3tier_tag_parse(b, (size_t)n, MT, &t), -ESTALE);
	/* Not written: what a header or a line could not carry. */
	ck_assert_int_eq(
		drp_s3tier_tag_format(b, sizeof(b), D64, "a/b; q=1", ACC),
		-EINVAL);
	ck_assert_int_eq(drp_s3tier_tag_format(b, sizeof(b), D64, "", ACC),
			 -EINVAL);
	ck_assert_int_eq(
		drp_s3tier_tag_format(b, sizeof(b), "sha512:00", MT, ACC),
		-EINVAL);
	/* Read back: anything off is refused, never half-taken. */
	static const char *const bad[] = {
		"",
		"\n",
		D64 " " MT " " ACC,		   /* no newline */
		D64 " " MT " " ACC "\n\n",	   /* two lines */
		D64 " " MT "\n",		   /* two fields */
		D64 "  " MT " " ACC "\n",	   /* an empty field */
		D64 " " MT " " ACC " x\n",	   /* four fields */
		D64 " a/b\r\nX-Evil: 1 " ACC "\n", /* header injection */
		D64 " a/\x7f " ACC "\n",
		D64 " a/\xc3\xa9 " ACC "\n",
		"sha256:0123 " MT " " ACC "\n",
		"sha256:0123456789ABCDEF0123456789abcdef0123456789abcdef"
		"0123456789abcdef " MT " " ACC "\n", /* upper case */
		"sha256:nothex application/x\r\nX-Evil: 1 -\n",
		"md5:0123456789abcdef0123456789abcdef " MT " " ACC "\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(drp_s3tier_tag_parse(bad[i], strlen(bad[i]), ACC,
						   &t) == -EBADMSG,
			      "bad record %zu taken", i);
	char big[300];
	memset(big, 'a', sizeof(big));
	memcpy(big, "a/", 2);
	big[299] = '\0'; /* a media type of 298 bytes: too long */
	snprintf(b, sizeof(b), D64 " %s -\n", big);
	ck_assert_int_eq(drp_s3tier_tag_parse(b, strlen(b), "-", &t), -EBADMSG);
	char huge[2000];
	memset(huge, 'a', sizeof(huge));
	ck_assert_int_eq(drp_s3tier_tag_parse(huge, sizeof(huge), "-", &t),
			 -EFBIG);
}
END_TEST

/* A record's age by the store's clock only. */
START_TEST(record_age)
{
	ck_assert_int_eq(drp_s3tier_record_age("Sun, 06 Dec 2026 16:40:10 GMT",
					       "Sun, 06 Dec 2026 16:40:00 GMT"),
			 10);
	ck_assert_int_eq(drp_s3tier_record_age("Sun, 06 Dec 2026 16:40:00 GMT",
					       "Sun, 06 Dec 2026 16:40:00 GMT"),
			 0);
	ck_assert_int_eq(drp_s3tier_record_age("Sun, 06 Dec 2026 16:40:00 GMT",
					       "Sun, 06 Dec 2026 16:40:01 GMT"),
			 -1);
	ck_assert_int_eq(
		drp_s3tier_record_age("", "Sun, 06 Dec 2026 16:40:00 GMT"), -1);
	ck_assert_int_eq(drp_s3tier_record_age("Sun, 06 Dec 2026 16:40:00 GMT",
					       "yesterday"),
			 -1);
}
END_TEST

Suite *s3_suite(void)
{
	Suite *s = suite_create("s3");
	TCase *tc = tcase_create("s3");
	tcase_add_test(tc, xml_next);
	tcase_add_test(tc, parse_time);
	tcase_add_test(tc, new_checks);
	tcase_add_test(tc, tag_key);
	tcase_add_test(tc, tag_record);
	tcase_add_test(tc, record_age);
	suite_add_tcase(s, tc);
	return s;
}
