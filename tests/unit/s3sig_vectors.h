/* SPDX-License-Identifier: MIT */
/*
 * AWS's Signature Version 4 test suite (the "aws-sig-v4-test-suite" once
 * published in the AWS General Reference; the copy used here is the one
 * kept in aws-c-auth's tests/aws-signing-test-suite/v4), as data for
 * test_s3sig.c: each request, the canonical request, the string to sign
 * and the Authorization header AWS expects. Every case signs with
 * access key AKIDEXAMPLE, secret wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY,
 * region us-east-1, service "service", at 2015-08-30T12:36:00Z.
 *
 * Query parameters are given decoded (the signer encodes them). Cases
 * the S3 signer rightly does not reproduce are left out: the *-normalized
 * paths (S3 never normalises a path: the *-unnormalized twins are here),
 * get-header-value-multiline (obsolete line folding), and
 * post-sts-header-after (a token added after signing). The generic
 * service sends no x-amz-content-sha256 unless the case signs its body:
 * those cases carry DRP_S3SIG_NO_CONTENT_HEADER.
 */
#ifndef DRP_TEST_S3SIG_VECTORS_H
#define DRP_TEST_S3SIG_VECTORS_H

#include "cache/s3sig.h"

#define SUITE_ACCESS_KEY "AKIDEXAMPLE"
#define SUITE_SECRET_KEY "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define SUITE_TIME	 1440938160 /* 2015-08-30T12:36:00Z */

struct suite_vector {
	const char *name;
	const char *method;
	const char *host;
	const char *path;
	drp_s3sig_kv_t query[4];
	size_t nquery;
	drp_s3sig_kv_t headers[6];
	size_t nheaders;
	const char *payload_hash;
	unsigned flags;
	const char *creq;
	const char *sts;
	const char *authorization;
};

static const struct suite_vector suite_vectors[] = {
	/* get-header-key-duplicate */
	{
		.name = "get-header-key-duplicate",
		.method = "GET",
		.host = "example.amazonaws.com",
		.path = "/",
		.headers = {{"My-Header1", "value2"},
			    {"My-Header1", "value2"},
			    {"My-Header1", "value1"}},
		.nheaders = 3,
		.payload_hash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b93"
				"4ca495991b7852b855",
		.flags = DRP_S3SIG_NO_CONTENT_HEADER,
		.creq = "GET\n"
			"/\n"
			"\n"
			"host:example.amazonaws.com\n"
			"my-header1:value2,value2,value1\n"
			"x-amz-date:20150830T123600Z\n"
			"\n"
			"host;my-header1;x-amz-date\n"
			"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca49599"
			"1b7852b855",
		.sts = "AWS4-HMAC-SHA256\n"
		       "20150830T123600Z\n"
		       "20150830/us-east-1/service/aws4_request\n"
		       "dc7f04a3abfde8d472b0ab1a418b741b7c67174dad1551b4117b155"
		       "27fbe966c",
		.authorization = "AWS4-HMAC-SHA256 "
				 "Credential=AKIDEXAMPLE/20150830/us-east-1/"
				 "service/aws4_request, "
				 "SignedHeaders=host;my-header1;x-amz-date, "
				 "Signature="
				 "c9d5ea9f3f72853aea855b47ea873832890dbdd183b44"
				 "68f858259531a5138ea",
	},
	/* get-header-value-order */
	{
		.name = "get-header-value-order",
		.method = "GET",
		.host = "example.amazonaws.com",
		.path = "/",
		.headers = {{"My-Header1", "value4"},
			    {"My-Header1", "value1"},
			    {"My-Header1", "value3"},
			    {"My-Header1", "value2"}},
		.nheaders = 4,
		.payload_hash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b93"
				"4ca495991b7852b855",
		.flags = DRP_S3SIG_NO_CONTENT_HEADER,
		.creq = "GET\n"
			"/\n"
			"\n"
			"host:example.amazonaws.com\n"
			"my-header1:value4,value1,value3,value2\n"
			"x-amz-date:20150830T123600Z\n"
			"\n"
			"host;my-header1;x-amz-date\n"
			"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca49599"
			"1b7852b855",
		.sts = "AWS4-HMAC-SHA256\n"
		       "20150830T123600Z\n"
		       "20150830/us-east-1/service/aws4_request\n"
		       "31ce73cd3f3d9f66977ad3dd957dc47af14df92fcd8509f59b349e9"
		       "137c58b86",
		.authorization = "AWS4-HMAC-SHA256 "
				 "Credential=AKIDEXAMPLE/20150830/us-east-1/"
				 "service/aws4_request, "
				 "SignedHeaders=host;my-header1;x-amz-date, "
				 "Signature="
				 "08c7e5a9acfcfeb3ab6b2185e75ce8b1deb5e634ec476"
				 "01a50643f830c755c01",
	},
	/* get-header-value-trim */
	{
		.name = "get-header-value-trim",
		.method = "GET",
		.host = "example.amazonaws.com",
		.path = "/",
		.headers = {{"My-Header1", " value1"},
			    {"My-Header2", " \"a   b   c\""}},
		.nheaders = 2,
		.payload_hash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b93"
				"4ca495991b7852b855",
		.flags = DRP_S3SIG_NO_CONTENT_HEADER,
		.creq = "GET\n"
			"/\n"
			"\n"
			"host:example.amazonaws.com\n"
			"my-header1:value1\n"
			"my-header2:\"a b c\"\n"
			"x-amz-date:20150830T123600Z\n"
			"\n"
			"host;my-header1;my-header2;x-amz-date\n"
			"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca49599"
			"1b7852b855",
		.sts = "AWS4-HMAC-SHA256\n"
		       "20150830T123600Z\n"
		       "20150830/us-east-1/service/aws4_request\n"
		       "a726db9b0df21c14f559d0a978e563112acb1b9e05476f0a6a1c7d6"
		       "8f28605c7",
		.authorization =
			"AWS4-HMAC-SHA256 "
			"Credential=AKIDEXAMPLE/20150830/us-east-1/service/"
			"aws4_request, "
			"SignedHeaders=host;my-header1;my-header2;x-amz-date, "
			"Signature="
			"acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee35"
			"9757a9c736",
	},
	/* get-relative-relative-unnormalized */
	{
		.name = "get-relative-relative-unnormalized",
		.method = "GET",
		.host = "example.amazonaws.com",
		.path = "/example1/example2/../..",
		.payload_hash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b93"
				"4ca495991b7852b855",
		.flags = DRP_S3SIG_NO_CONTENT_HEADER,
		.creq = "GET\n"
			"/example1/example2/../..\n"
			"\n"
			"host:example.amazonaws.com\n"
			"x-amz-date:20150830T123600Z\n"
			"\n"
			"host;x-amz-date\n"
			"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca49599"
			"1b7852b855",
		.sts = "AWS4-HMAC-SHA256\n"
		       "20150830T123600Z\n"
		       "20150830/us-east-1/service/aws4_request\n"
		       "76115030c0f3ff06c20fdff5ceb6d5e0b835a1743e00b94fea7c7f3"
		       "81269437b",
		.authorization =
			"AWS4-HMAC-SHA256 "
			"Credential=AKIDEXAMPLE/20150830/us-east-1/service/"
			"aws4_request, SignedHeaders=host;x-amz-date, "
			"Signature="
			"dc33e0856fd4baca4d7aa2146c38958283844764f38c74252a333d"
			"f5e613003b",
	},
	/* get-relative-unnormalized */
	{
		.name = "get-relative-unnormalized",
		.method = "GET",
		.host = "example.amazonaws.com",
		.path = "/example/..",
		.payload_hash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b93"
				"4ca495991b7852b855",
		.flags = DRP_S3SIG_NO_CONTENT_HEADER,
		.creq = "GET\n"
			"/example/..\n"
			"\n"
			"host:example.amazonaws.com\n"
			"x-amz-date:20150830T123600Z\n"
			"\n"
			"host;x-amz-date\n"
			"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca49599"
			"1b7852b855",
		.sts = "AWS4-HMAC-SHA256\n"
		       "20150830T123600Z\n"
		       "20150830/us-east-1/service/aws4_request\n"
		       "0511f456aa502b456d135fcb9d749374a55228f9dbeedda1eacf659"
		       "e05b0615b",
		.authorization =
			"AWS4-HMAC-SHA256 "
			"Credential=AKIDEXAMPLE/20150830/us-east-1/service/"
			"aws4_request, SignedHeaders=host;x-amz-date, "
			"Signature="
			"eca7ead57bb5aa5c8e28007acd4ff04e1ff9a0ff3b237ec1554a18"
			"4887ff9282",
	},
	/* get-slash-dot-slash-unnormalized */
	{
		.name = "get-slash-dot-slash-unnormalized",
		.method = "GET",
		.host = "example.amazonaws.com",
		.path = "/./",
		.payload_hash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b93"
				"4ca495991b7852b855",
		.flags = DRP_S3SIG_NO_CONTENT_HEADER,
		.creq = "GET\n"
			"/./\n"
			"\n"
			"host:example.amazonaws.com\n"
			"x-amz-date:20150830T123600Z\n"
			"\n"
			"host;x-amz-date\n"
			"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca49599"
			"1b7852b855",
		.sts = "AWS4-HMAC-SHA256\n"
		       "20150830T123600Z\n"
		       "20150830/us-east-1/service/aws4_request\n"
		       "d67825e2268bd77a97c7688b8d72c31a3c1855b309808505ba0a974"
		       "7d2465aa7",
		.authorization =
			"AWS4-HMAC-SHA256 "
			"Credential=AKIDEXAMPLE/20150830/us-east-1/service/"
			"aws4_request, SignedHeaders=host;x-amz-date, "
			"Signature="
			"68714168e6557f8f2de0ef956fc24dc2593a4bd2961f8df51898d8"
			"a134695145",
	},
	/* get-slash-pointless-dot-unnormalized */
	{
		.name = "get-slash-pointless-dot-unnormalized",
		.method = "GET",
		.host = "example.amazonaws.com",
		.path = "/./example",
		.payload_hash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b93"
				"4ca495991b7852b855",
		.flags = DRP_S3SIG_NO_CONTENT_HEADER,
		.creq = "GET\n"
			"/./example\n"
			"\n"
			"host:example.amazonaws.com\n"
			"x-amz-date:20150830T123600Z\n"
			"\n"
			"host;x-amz-date\n"
			"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca49599"
			"1b7852b855",
		.sts = "AWS4-HMAC-SHA256\n"
		       "20150830T123600Z\n"
		       "20150830/us-east-1/service/aws4_request\n"
		       "73895e0e829507e28e39fd24669aedc2434a8e179e547e3c075b429"
		       "21f952cdb",
		.authorization =
			"AWS4-HMAC-SHA256 "
			"Credential=AKIDEXAMPLE/20150830/us-east-1/service/"
			"aws4_request, SignedHeaders=host;x-amz-date, "
			"Signature="
			"beb03f223f7deae4146464f06e29eebbee9c8afbe15c290cf07aa8"
			"b119e14cff",
	},
	/* get-slash-unnormalized */
	{
		.name = "get-slash-unnormalized",
		.method = "GET",
		.host = "example.amazonaws.com",
		.path = "//",
		.payload_hash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b93"
				"4ca495991b7852b855",
		.flags = DRP_S3SIG_NO_CONTENT_HEADER,
		.creq = "GET\n"
			"//\n"
			"\n"
			"host:example.amazonaws.com\n"
			"x-amz-date:20150830T123600Z\n"
			"\n"
			"host;x-amz-date\n"
			"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca49599"
			"1b7852b855",
		.sts = "AWS4-HMAC-SHA256\n"
		       "20150830T123600Z\n"
		       "20150830/us-east-1/service/aws4_request\n"
		       "80cb39203d058af815de2b79250ff56e1b73eb9b4718c86556cdc6f"
		       "150c5d209",
		.authorization =
			"AWS4-HMAC-SHA256 "
			"Credential=AKIDEXAMPLE/20150830/us-east-1/service/"
			"aws4_request, SignedHeaders=host;x-amz-date, "
			"Signature="
			"c88bcd3d312d75078c0cd961d6deae3f4c754924b01669efcfcb43"
			"9fd5e5b76e",
	},
	/* get-slashes-unnormalized */
	{
		.name = "get-slashes-unnormalized",
		.method = "GET",
		.host = "example.amazonaws.com",
		.path = "//example//",
		.payload_hash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b93"
				"4ca495991b7852b855",
		.flags = DRP_S3SIG_NO_CONTENT_HEADER,
		.creq = "GET\n"
			"//example//\n"
			"\n"
			"host:example.amazonaws.com\n"
			"x-amz-date:20150830T123600Z\n"
			"\n"
			"host;x-amz-date\n"
			"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca49599"
			"1b7852b855",
		.sts = "AWS4-HMAC-SHA256\n"
		       "20150830T123600Z\n"
		       "20150830/us-east-1/service/aws4_request\n"
		       "528ec3105ee1f34ab014bb0a1a45da0ed2742a4fea3555149e5b4d5"
		       "d201eb240",
		.authorization =
			"AWS4-HMAC-SHA256 "
			"Credential=AKIDEXAMPLE/20150830/us-east-1/service/"
			"aws4_request, SignedHeaders=host;x-amz-date, "
			"Signature="
			"87cca117541a147f6df867677d98a7d80dff226d2bfca9e4ffa899"
			"665623c7e5",
	},
	/* get-space-unnormalized */
	{
		.name = "get-space-unnormalized",
		.method = "GET",
		.host = "example.amazonaws.com",
		.path = "/example space/",
		.payload_hash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b93"
				"4ca495991b7852b855",
		.flags = DRP_S3SIG_NO_CONTENT_HEADER,
		.creq = "GET\n"
			"/example%20space/\n"
			"\n"
			"host:example.amazonaws.com\n"
			"x-amz-date:20150830T123600Z\n"
			"\n"
			"host;x-amz-date\n"
			"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca49599"
			"1b7852b855",
		.sts = "AWS4-HMAC-SHA256\n"
		       "20150830T123600Z\n"
		       "20150830/us-east-1/service/aws4_request\n"
		       "63ee75631ed7234ae61b5f736dfc7754cdccfedbff4b5128a915706"
		       "ee9390d86",
		.authorization =
			"AWS4-HMAC-SHA256 "
			"Credential=AKIDEXAMPLE/20150830/us-east-1/service/"
			"aws4_request, SignedHeaders=host;x-amz-date, "
			"Signature="
			"652487583200325589f1fba4c7e578f72c47cb61beeca81406b39d"
			"dec1366741",
	},
	/* get-unreserved */
	{
		.name = "get-unreserved",
		.method = "GET",
		.host = "example.amazonaws.com",
		.path = "/-._~"
			"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqr"
			"stuvwxyz",
		.payload_hash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b93"
				"4ca495991b7852b855",
		.flags = DRP_S3SIG_NO_CONTENT_HEADER,
		.creq = "GET\n"
			"/-._~"
			"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqr"
			"stuvwxyz\n"
			"\n"
			"host:example.amazonaws.com\n"
			"x-amz-date:20150830T123600Z\n"
			"\n"
			"host;x-amz-date\n"
			"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca49599"
			"1b7852b855",
		.sts = "AWS4-HMAC-SHA256\n"
		       "20150830T123600Z\n"
		       "20150830/us-east-1/service/aws4_request\n"
		       "6a968768eefaa713e2a6b16b589a8ea192661f098f37349f4e2c008"
		       "2757446f9",
		.authorization =
			"AWS4-HMAC-SHA256 "
			"Credential=AKIDEXAMPLE/20150830/us-east-1/service/"
			"aws4_request, SignedHeaders=host;x-amz-date, "
			"Signature="
			"07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a"
			"65bbf5f24f",
	},
	/* get-utf8 */
	{
		.name = "get-utf8",
		.method = "GET",
		.host = "example.amazonaws.com",
		.path = "/\xe1\x88\xb4",
		.payload_hash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b93"
				"4ca495991b7852b855",
		.flags = DRP_S3SIG_NO_CONTENT_HEADER,
		.creq = "GET\n"
			"/%E1%88%B4\n"
			"\n"
			"host:example.amazonaws.com\n"
			"x-amz-date:20150830T123600Z\n"
			"\n"
			"host;x-amz-date\n"
			"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca49599"
			"1b7852b855",
		.sts = "AWS4-HMAC-SHA256\n"
		       "20150830T123600Z\n"
		       "20150830/us-east-1/service/aws4_request\n"
		       "2a0a97d02205e45ce2e994789806b19270cfbbb0921b278ccf58f52"
		       "49ac42102",
		.authorization =
			"AWS4-HMAC-SHA256 "
			"Credential=AKIDEXAMPLE/20150830/us-east-1/service/"
			"aws4_request, SignedHeaders=host;x-amz-date, "
			"Signature="
			"8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd0"
			"3141be5d85",
	},
	/* get-vanilla */
	{
		.name = "get-vanilla",
		.method = "GET",
		.host = "example.amazonaws.com",
		.path = "/",
		.payload_hash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b93"
				"4ca495991b7852b855",
		.flags = DRP_S3SIG_NO_CONTENT_HEADER,
		.creq = "GET\n"
			"/\n"
			"\n"
			"host:example.amazonaws.com\n"
			"x-amz-date:20150830T123600Z\n"
			"\n"
			"host;x-amz-date\n"
			"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca49599"
			"1b7852b855",
		.sts = "AWS4-HMAC-SHA256\n"
		       "20150830T123600Z\n"
		       "20150830/us-east-1/service/aws4_request\n"
		       "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25"
		       "292927e63",
		.authorization =
			"AWS4-HMAC-SHA256 "
			"Credential=AKIDEXAMPLE/20150830/us-east-1/service/"
			"aws4_request, SignedHeaders=host;x-amz-date, "
			"Signature="
			"5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae"
			"1d763fbf31",
	},
	/* get-vanilla-empty-query-key */
	{
		.name = "get-vanilla-empty-query-key",
		.method = "GET",
		.host = "example.amazonaws.com",
		.path = "/",
		.query = {{"Param1", "value1"}},
		.nquery = 1,
		.payload_hash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b93"
				"4ca495991b7852b855",
		.flags = DRP_S3SIG_NO_CONTENT_HEADER,
		.creq = "GET\n"
			"/\n"
			"Param1=value1\n"
			"host:example.amazonaws.com\n"
			"x-amz-date:20150830T123600Z\n"
			"\n"
			"host;x-amz-date\n"
			"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca49599"
			"1b7852b855",
		.sts = "AWS4-HMAC-SHA256\n"
		       "20150830T123600Z\n"
		       "20150830/us-east-1/service/aws4_request\n"
		       "1e24db194ed7d0eec2de28d7369675a243488e08526e8c1c7357128"
		       "2f7c517ab",
		.authorization =
			"AWS4-HMAC-SHA256 "
			"Credential=AKIDEXAMPLE/20150830/us-east-1/service/"
			"aws4_request, SignedHeaders=host;x-amz-date, "
			"Signature="
			"a67d582fa61cc504c4bae71f336f98b97f1ea3c7a6bfe1b6e45aec"
			"72011b9aeb",
	},
	/* get-vanilla-query */
	{
		.name = "get-vanilla-query",
		.method = "GET",
		.host = "example.amazonaws.com",
		.path = "/",
		.payload_hash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b93"
				"4ca495991b7852b855",
		.flags = DRP_S3SIG_NO_CONTENT_HEADER,
		.creq = "GET\n"
			"/\n"
			"\n"
			"host:example.amazonaws.com\n"
			"x-amz-date:20150830T123600Z\n"
			"\n"
			"host;x-amz-date\n"
			"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca49599"
			"1b7852b855",
		.sts = "AWS4-HMAC-SHA256\n"
		       "20150830T123600Z\n"
		       "20150830/us-east-1/service/aws4_request\n"
		       "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25"
		       "292927e63",
		.authorization =
			"AWS4-HMAC-SHA256 "
			"Credential=AKIDEXAMPLE/20150830/us-east-1/service/"
			"aws4_request, SignedHeaders=host;x-amz-date, "
			"Signature="
			"5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae"
			"1d763fbf31",
	},
	/* get-vanilla-query-order-encoded */
	{
		.name = "get-vanilla-query-order-encoded",
		.method = "GET",
		.host = "example.amazonaws.com",
		.path = "/",
		.query = {{"Param-3", "Value3"},
			  {"Param", "Value2"},
			  {"\xe1\x88\xb4", "Value1"}},
		.nquery = 3,
		.payload_hash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b93"
				"4ca495991b7852b855",
		.flags = DRP_S3SIG_NO_CONTENT_HEADER,
		.creq = "GET\n"
			"/\n"
			"%E1%88%B4=Value1&Param=Value2&Param-3=Value3\n"
			"host:example.amazonaws.com\n"
			"x-amz-date:20150830T123600Z\n"
			"\n"
			"host;x-amz-date\n"
			"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca49599"
			"1b7852b855",
		.sts = "AWS4-HMAC-SHA256\n"
		       "20150830T123600Z\n"
		       "20150830/us-east-1/service/aws4_request\n"
		       "868294f5c38bd141c4972a373a76654f1418a8e4fc18b2e7903ae45"
		       "e8ae0ec71",
		.authorization =
			"AWS4-HMAC-SHA256 "
			"Credential=AKIDEXAMPLE/20150830/us-east-1/service/"
			"aws4_request, SignedHeaders=host;x-amz-date, "
			"Signature="
			"371d3713e185cc334048618a97f809c9ffe339c62934c032af5a0e"
			"595648fcac",
	},
	/* get-vanilla-query-order-key-case */
	{
		.name = "get-vanilla-query-order-key-case",
		.method = "GET",
		.host = "example.amazonaws.com",
		.path = "/",
		.query = {{"Param2", "value2"}, {"Param1", "value1"}},
		.nquery = 2,
		.payload_hash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b93"
				"4ca495991b7852b855",
		.flags = DRP_S3SIG_NO_CONTENT_HEADER,
		.creq = "GET\n"
			"/\n"
			"Param1=value1&Param2=value2\n"
			"host:example.amazonaws.com\n"
			"x-amz-date:20150830T123600Z\n"
			"\n"
			"host;x-amz-date\n"
			"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca49599"
			"1b7852b855",
		.sts = "AWS4-HMAC-SHA256\n"
		       "20150830T123600Z\n"
		       "20150830/us-east-1/service/aws4_request\n"
		       "816cd5b414d056048ba4f7c5386d6e0533120fb1fcfa93762cf0fc3"
		       "9e2cf19e0",
		.authorization =
			"AWS4-HMAC-SHA256 "
			"Credential=AKIDEXAMPLE/20150830/us-east-1/service/"
			"aws4_request, SignedHeaders=host;x-amz-date, "
			"Signature="
			"b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219e"
			"c94cdf2500",
	},
	/* get-vanilla-query-unreserved */
	{
		.name = "get-vanilla-query-unreserved",
		.method = "GET",
		.host = "example.amazonaws.com",
		.path = "/",
		.query = {{"-._~"
			   "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmno"
			   "pqrstuvwxyz",
			   "-._~"
			   "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmno"
			   "pqrstuvwxyz"}},
		.nquery = 1,
		.payload_hash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b93"
				"4ca495991b7852b855",
		.flags = DRP_S3SIG_NO_CONTENT_HEADER,
		.creq = "GET\n"
			"/\n"
			"-._~"
			"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqr"
			"stuvwxyz=-._~"
			"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqr"
			"stuvwxyz\n"
			"host:example.amazonaws.com\n"
			"x-amz-date:20150830T123600Z\n"
			"\n"
			"host;x-amz-date\n"
			"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca49599"
			"1b7852b855",
		.sts = "AWS4-HMAC-SHA256\n"
		       "20150830T123600Z\n"
		       "20150830/us-east-1/service/aws4_request\n"
		       "c30d4703d9f799439be92736156d47ccfb2d879ddf56f5befa6d1d6"
		       "aab979177",
		.authorization =
			"AWS4-HMAC-SHA256 "
			"Credential=AKIDEXAMPLE/20150830/us-east-1/service/"
			"aws4_request, SignedHeaders=host;x-amz-date, "
			"Signature="
			"9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21b"
			"b143a40197",
	},
	/* get-vanilla-utf8-query */
	{
		.name = "get-vanilla-utf8-query",
		.method = "GET",
		.host = "example.amazonaws.com",
		.path = "/",
		.query = {{"\xe1\x88\xb4", "bar"}},
		.nquery = 1,
		.payload_hash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b93"
				"4ca495991b7852b855",
		.flags = DRP_S3SIG_NO_CONTENT_HEADER,
		.creq = "GET\n"
			"/\n"
			"%E1%88%B4=bar\n"
			"host:example.amazonaws.com\n"
			"x-amz-date:20150830T123600Z\n"
			"\n"
			"host;x-amz-date\n"
			"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca49599"
			"1b7852b855",
		.sts = "AWS4-HMAC-SHA256\n"
		       "20150830T123600Z\n"
		       "20150830/us-east-1/service/aws4_request\n"
		       "eb30c5bed55734080471a834cc727ae56beb50e5f39d1bff6d0d38c"
		       "b192a7073",
		.authorization =
			"AWS4-HMAC-SHA256 "
			"Credential=AKIDEXAMPLE/20150830/us-east-1/service/"
			"aws4_request, SignedHeaders=host;x-amz-date, "
			"Signature="
			"2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9"
			"027818dd04",
	},
	/* get-vanilla-with-session-token */
	{
		.name = "get-vanilla-with-session-token",
		.method = "GET",
		.host = "example.amazonaws.com",
		.path = "/",
		.headers = {{"X-Amz-Security-Token",
			     "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31"
			     "553b73ebf194267"}},
		.nheaders = 1,
		.payload_hash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b93"
				"4ca495991b7852b855",
		.flags = DRP_S3SIG_NO_CONTENT_HEADER,
		.creq = "GET\n"
			"/\n"
			"\n"
			"host:example.amazonaws.com\n"
			"x-amz-date:20150830T123600Z\n"
			"x-amz-security-token:"
			"6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b7"
			"3ebf194267\n"
			"\n"
			"host;x-amz-date;x-amz-security-token\n"
			"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca49599"
			"1b7852b855",
		.sts = "AWS4-HMAC-SHA256\n"
		       "20150830T123600Z\n"
		       "20150830/us-east-1/service/aws4_request\n"
		       "067b36aa60031588cea4a4cde1f21215227a047690c72247f1d70b3"
		       "2fbbfad2b",
		.authorization =
			"AWS4-HMAC-SHA256 "
			"Credential=AKIDEXAMPLE/20150830/us-east-1/service/"
			"aws4_request, "
			"SignedHeaders=host;x-amz-date;x-amz-security-token, "
			"Signature="
			"07ec1639c89043aa0e3e2de82b96708f198cceab042d4a97044c66"
			"dd9f74e7f8",
	},
	/* post-header-key-case */
	{
		.name = "post-header-key-case",
		.method = "POST",
		.host = "example.amazonaws.com",
		.path = "/",
		.payload_hash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b93"
				"4ca495991b7852b855",
		.flags = DRP_S3SIG_NO_CONTENT_HEADER,
		.creq = "POST\n"
			"/\n"
			"\n"
			"host:example.amazonaws.com\n"
			"x-amz-date:20150830T123600Z\n"
			"\n"
			"host;x-amz-date\n"
			"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca49599"
			"1b7852b855",
		.sts = "AWS4-HMAC-SHA256\n"
		       "20150830T123600Z\n"
		       "20150830/us-east-1/service/aws4_request\n"
		       "553f88c9e4d10fc9e109e2aeb65f030801b70c2f6468faca261d401"
		       "ae622fc87",
		.authorization =
			"AWS4-HMAC-SHA256 "
			"Credential=AKIDEXAMPLE/20150830/us-east-1/service/"
			"aws4_request, SignedHeaders=host;x-amz-date, "
			"Signature="
			"5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e"
			"92efbe5d6b",
	},
	/* post-header-key-sort */
	{
		.name = "post-header-key-sort",
		.method = "POST",
		.host = "example.amazonaws.com",
		.path = "/",
		.headers = {{"My-Header1", "value1"}},
		.nheaders = 1,
		.payload_hash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b93"
				"4ca495991b7852b855",
		.flags = DRP_S3SIG_NO_CONTENT_HEADER,
		.creq = "POST\n"
			"/\n"
			"\n"
			"host:example.amazonaws.com\n"
			"my-header1:value1\n"
			"x-amz-date:20150830T123600Z\n"
			"\n"
			"host;my-header1;x-amz-date\n"
			"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca49599"
			"1b7852b855",
		.sts = "AWS4-HMAC-SHA256\n"
		       "20150830T123600Z\n"
		       "20150830/us-east-1/service/aws4_request\n"
		       "9368318c2967cf6de74404b30c65a91e8f6253e0a8659d6d5319f1a"
		       "812f87d65",
		.authorization = "AWS4-HMAC-SHA256 "
				 "Credential=AKIDEXAMPLE/20150830/us-east-1/"
				 "service/aws4_request, "
				 "SignedHeaders=host;my-header1;x-amz-date, "
				 "Signature="
				 "c5410059b04c1ee005303aed430f6e6645f61f4dc9e14"
				 "61ec8f8916fdf18852c",
	},
	/* post-header-value-case */
	{
		.name = "post-header-value-case",
		.method = "POST",
		.host = "example.amazonaws.com",
		.path = "/",
		.headers = {{"My-Header1", "VALUE1"}},
		.nheaders = 1,
		.payload_hash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b93"
				"4ca495991b7852b855",
		.flags = DRP_S3SIG_NO_CONTENT_HEADER,
		.creq = "POST\n"
			"/\n"
			"\n"
			"host:example.amazonaws.com\n"
			"my-header1:VALUE1\n"
			"x-amz-date:20150830T123600Z\n"
			"\n"
			"host;my-header1;x-amz-date\n"
			"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca49599"
			"1b7852b855",
		.sts = "AWS4-HMAC-SHA256\n"
		       "20150830T123600Z\n"
		       "20150830/us-east-1/service/aws4_request\n"
		       "d51ced243e649e3de6ef63afbbdcbca03131a21a7103a1583706a64"
		       "618606a93",
		.authorization = "AWS4-HMAC-SHA256 "
				 "Credential=AKIDEXAMPLE/20150830/us-east-1/"
				 "service/aws4_request, "
				 "SignedHeaders=host;my-header1;x-amz-date, "
				 "Signature="
				 "cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae6"
				 "7b53629efa58b974b7d",
	},
	/* post-sts-header-before */
	{
		.name = "post-sts-header-before",
		.method = "POST",
		.host = "example.amazonaws.com",
		.path = "/",
		.headers = {{"X-Amz-Security-Token",
			     "AQoDYXdzEPT//////////"
			     "wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWs"
			     "KWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSE"
			     "I/qkPpKPi/"
			     "kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPk"
			     "yQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAki"
			     "Y9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+"
			     "scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJa"
			     "bIQwj2ICCR/oLxBA=="}},
		.nheaders = 1,
		.payload_hash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b93"
				"4ca495991b7852b855",
		.flags = DRP_S3SIG_NO_CONTENT_HEADER,
		.creq = "POST\n"
			"/\n"
			"\n"
			"host:example.amazonaws.com\n"
			"x-amz-date:20150830T123600Z\n"
			"x-amz-security-token:AQoDYXdzEPT//////////"
			"wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGB"
			"uFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/"
			"kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYw"
			"T7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+"
			"xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+"
			"scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj"
			"2ICCR/oLxBA==\n"
			"\n"
			"host;x-amz-date;x-amz-security-token\n"
			"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca49599"
			"1b7852b855",
		.sts = "AWS4-HMAC-SHA256\n"
		       "20150830T123600Z\n"
		       "20150830/us-east-1/service/aws4_request\n"
		       "c237e1b440d4c63c32ca95b5b99481081cb7b13c7e40434868e7156"
		       "7c1a882f6",
		.authorization =
			"AWS4-HMAC-SHA256 "
			"Credential=AKIDEXAMPLE/20150830/us-east-1/service/"
			"aws4_request, "
			"SignedHeaders=host;x-amz-date;x-amz-security-token, "
			"Signature="
			"85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533"
			"a82be05ead",
	},
	/* post-vanilla */
	{
		.name = "post-vanilla",
		.method = "POST",
		.host = "example.amazonaws.com",
		.path = "/",
		.payload_hash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b93"
				"4ca495991b7852b855",
		.flags = DRP_S3SIG_NO_CONTENT_HEADER,
		.creq = "POST\n"
			"/\n"
			"\n"
			"host:example.amazonaws.com\n"
			"x-amz-date:20150830T123600Z\n"
			"\n"
			"host;x-amz-date\n"
			"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca49599"
			"1b7852b855",
		.sts = "AWS4-HMAC-SHA256\n"
		       "20150830T123600Z\n"
		       "20150830/us-east-1/service/aws4_request\n"
		       "553f88c9e4d10fc9e109e2aeb65f030801b70c2f6468faca261d401"
		       "ae622fc87",
		.authorization =
			"AWS4-HMAC-SHA256 "
			"Credential=AKIDEXAMPLE/20150830/us-east-1/service/"
			"aws4_request, SignedHeaders=host;x-amz-date, "
			"Signature="
			"5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e"
			"92efbe5d6b",
	},
	/* post-vanilla-empty-query-value */
	{
		.name = "post-vanilla-empty-query-value",
		.method = "POST",
		.host = "example.amazonaws.com",
		.path = "/",
		.query = {{"Param1", "value1"}},
		.nquery = 1,
		.payload_hash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b93"
				"4ca495991b7852b855",
		.flags = DRP_S3SIG_NO_CONTENT_HEADER,
		.creq = "POST\n"
			"/\n"
			"Param1=value1\n"
			"host:example.amazonaws.com\n"
			"x-amz-date:20150830T123600Z\n"
			"\n"
			"host;x-amz-date\n"
			"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca49599"
			"1b7852b855",
		.sts = "AWS4-HMAC-SHA256\n"
		       "20150830T123600Z\n"
		       "20150830/us-east-1/service/aws4_request\n"
		       "9d659678c1756bb3113e2ce898845a0a79dbbc57b740555917687f1"
		       "b3340fbbd",
		.authorization =
			"AWS4-HMAC-SHA256 "
			"Credential=AKIDEXAMPLE/20150830/us-east-1/service/"
			"aws4_request, SignedHeaders=host;x-amz-date, "
			"Signature="
			"28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420"
			"d138af7f11",
	},
	/* post-vanilla-query */
	{
		.name = "post-vanilla-query",
		.method = "POST",
		.host = "example.amazonaws.com",
		.path = "/",
		.query = {{"Param1", "value1"}},
		.nquery = 1,
		.payload_hash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b93"
				"4ca495991b7852b855",
		.flags = DRP_S3SIG_NO_CONTENT_HEADER,
		.creq = "POST\n"
			"/\n"
			"Param1=value1\n"
			"host:example.amazonaws.com\n"
			"x-amz-date:20150830T123600Z\n"
			"\n"
			"host;x-amz-date\n"
			"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca49599"
			"1b7852b855",
		.sts = "AWS4-HMAC-SHA256\n"
		       "20150830T123600Z\n"
		       "20150830/us-east-1/service/aws4_request\n"
		       "9d659678c1756bb3113e2ce898845a0a79dbbc57b740555917687f1"
		       "b3340fbbd",
		.authorization =
			"AWS4-HMAC-SHA256 "
			"Credential=AKIDEXAMPLE/20150830/us-east-1/service/"
			"aws4_request, SignedHeaders=host;x-amz-date, "
			"Signature="
			"28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420"
			"d138af7f11",
	},
	/* post-x-www-form-urlencoded */
	{
		.name = "post-x-www-form-urlencoded",
		.method = "POST",
		.host = "example.amazonaws.com",
		.path = "/",
		.headers = {{"Content-Type",
			     "application/x-www-form-urlencoded"},
			    {"Content-Length", "13"}},
		.nheaders = 2,
		.payload_hash = "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329"
				"106275f4c7b24d0b6e",
		.flags = 0,
		.creq = "POST\n"
			"/\n"
			"\n"
			"content-length:13\n"
			"content-type:application/x-www-form-urlencoded\n"
			"host:example.amazonaws.com\n"
			"x-amz-content-sha256:"
			"9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4"
			"c7b24d0b6e\n"
			"x-amz-date:20150830T123600Z\n"
			"\n"
			"content-length;content-type;host;x-amz-content-sha256;"
			"x-amz-date\n"
			"9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4"
			"c7b24d0b6e",
		.sts = "AWS4-HMAC-SHA256\n"
		       "20150830T123600Z\n"
		       "20150830/us-east-1/service/aws4_request\n"
		       "b1edd1d03544c25390e32085d55b57acc9a3961bb59415ff86c45c3"
		       "d89d16cfb",
		.authorization = "AWS4-HMAC-SHA256 "
				 "Credential=AKIDEXAMPLE/20150830/us-east-1/"
				 "service/aws4_request, "
				 "SignedHeaders=content-length;content-type;"
				 "host;x-amz-content-sha256;x-amz-date, "
				 "Signature="
				 "d3875051da38690788ef43de4db0d8f280229d82040bf"
				 "ac253562e56c3f20e0b",
	},
	/* post-x-www-form-urlencoded-parameters */
	{
		.name = "post-x-www-form-urlencoded-parameters",
		.method = "POST",
		.host = "example.amazonaws.com",
		.path = "/",
		.headers =
			{{"Content-Type",
			  "application/x-www-form-urlencoded; charset=utf-8"},
			 {"Content-Length", "13"}},
		.nheaders = 2,
		.payload_hash = "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329"
				"106275f4c7b24d0b6e",
		.flags = 0,
		.creq = "POST\n"
			"/\n"
			"\n"
			"content-length:13\n"
			"content-type:application/x-www-form-urlencoded; "
			"charset=utf-8\n"
			"host:example.amazonaws.com\n"
			"x-amz-content-sha256:"
			"9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4"
			"c7b24d0b6e\n"
			"x-amz-date:20150830T123600Z\n"
			"\n"
			"content-length;content-type;host;x-amz-content-sha256;"
			"x-amz-date\n"
			"9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4"
			"c7b24d0b6e",
		.sts = "AWS4-HMAC-SHA256\n"
		       "20150830T123600Z\n"
		       "20150830/us-east-1/service/aws4_request\n"
		       "a89f1a5b53e37702ee6363ce1da3ce8f54386f3c8f352ae652153c2"
		       "982a0bc4d",
		.authorization = "AWS4-HMAC-SHA256 "
				 "Credential=AKIDEXAMPLE/20150830/us-east-1/"
				 "service/aws4_request, "
				 "SignedHeaders=content-length;content-type;"
				 "host;x-amz-content-sha256;x-amz-date, "
				 "Signature="
				 "328d1b9eaadca9f5818ef05e8392801e091653bafec24"
				 "fcab71e7344e7f51422",
	},

};

#endif
