/* SPDX-License-Identifier: MIT */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/s3sig.h"
#include "s3sig_vectors.h"

Suite *s3sig_suite(void);

/* AWS's generic test suite (s3sig_vectors.h): every step must match, not
 * only the signature, so that a failure says which step is wrong. */
START_TEST(suite_vector)
{
	const struct suite_vector *v = &suite_vectors[_i];
	drp_s3sig_creds_t c = {.access_key = SUITE_ACCESS_KEY,
			       .secret_key = SUITE_SECRET_KEY,
			       .region = "us-east-1",
			       .service = "service"};
	drp_s3sig_req_t r = {.method = v->method,
			     .host = v->host,
			     .path = v->path,
			     .query = v->query,
			     .nquery = v->nquery,
			     .headers = v->headers,
			     .nheaders = v->nheaders,
			     .payload_hash = v->payload_hash,
			     .now = SUITE_TIME,
			     .flags = v->flags};
	drp_s3sig_t s;
	ck_assert_msg(drp_s3sig_sign(&c, &r, &s) == 0, "%s: refused", v->name);
	ck_assert_msg(strcmp(s.canonical_request, v->creq) == 0,
		      "%s: canonical request\n%s\n-- expected --\n%s", v->name,
		      s.canonical_request, v->creq);
	ck_assert_msg(strcmp(s.string_to_sign, v->sts) == 0,
		      "%s: string to sign\n%s\n-- expected --\n%s", v->name,
		      s.string_to_sign, v->sts);
	ck_assert_msg(strcmp(s.authorization, v->authorization) == 0,
		      "%s: Authorization\n%s\n-- expected --\n%s", v->name,
		      s.authorization, v->authorization);
	ck_assert_str_eq(s.amz_date, "20150830T123600Z");
	drp_s3sig_free(&s);
}
END_TEST

/* The AWS documentation's signing-key example ("derive a signing key"):
 * secret wJalr...EXAMPLEKEY, 20120215, us-east-1, iam. */
START_TEST(signing_key)
{
	uint8_t k[32];
	char h[65];
	drp_s3sig_signing_key(SUITE_SECRET_KEY, "20120215", "us-east-1", "iam",
			      k);
	for (int i = 0; i < 32; i++)
		snprintf(h + 2 * i, 3, "%02x", k[i]);
	ck_assert_str_eq(h, "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a"
			    "9e090d414db404d");
}
END_TEST

/* The S3 API reference's examples ("Signature calculations for the
 * Authorization header: transferring payload in a single chunk"):
 * virtual-hosted examplebucket, 2013-05-24T00:00:00Z. */
#define DOC_HOST "examplebucket.s3.amazonaws.com"
#define DOC_TIME 1369353600 /* 2013-05-24T00:00:00Z */
static const drp_s3sig_creds_t doc_creds = {
	.access_key = "AKIAIOSFODNN7EXAMPLE",
	.secret_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
	.region = "us-east-1",
};

static void sign_ok(const drp_s3sig_creds_t *c, const drp_s3sig_req_t *r,
		    drp_s3sig_t *s)
{
	ck_assert_int_eq(drp_s3sig_sign(c, r, s), 0);
}

/* GET Object with a Range header, empty payload. */
START_TEST(doc_get_object)
{
	drp_s3sig_kv_t h[] = {{"Range", "bytes=0-9"}};
	drp_s3sig_req_t r = {.method = "GET",
			     .host = DOC_HOST,
			     .path = "/test.txt",
			     .headers = h,
			     .nheaders = 1,
			     .now = DOC_TIME};
	drp_s3sig_t s;
	sign_ok(&doc_creds, &r, &s);
	ck_assert_str_eq(s.canonical_request,
			 "GET\n/test.txt\n\n"
			 "host:examplebucket.s3.amazonaws.com\n"
			 "range:bytes=0-9\n"
			 "x-amz-content-sha256:" DRP_S3SIG_EMPTY_SHA256 "\n"
			 "x-amz-date:20130524T000000Z\n\n"
			 "host;range;x-amz-content-sha256;x-amz-"
			 "date\n" DRP_S3SIG_EMPTY_SHA256);
	ck_assert_str_eq(s.string_to_sign,
			 "AWS4-HMAC-SHA256\n20130524T000000Z\n"
			 "20130524/us-east-1/s3/aws4_request\n"
			 "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc"
			 "43964946972");
	ck_assert_str_eq(s.signature, "f0e8bdb87c964420e857bd35b5d6ed310bd44f0"
				      "170aba48dd91039c6036bdb41");
	ck_assert_str_eq(s.authorization,
			 "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/"
			 "20130524/us-east-1/s3/aws4_request, "
			 "SignedHeaders=host;range;x-amz-content-sha256;x-amz-"
			 "date, Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44"
			 "f0170aba48dd91039c6036bdb41");
	ck_assert_str_eq(s.content_sha256, DRP_S3SIG_EMPTY_SHA256);
	ck_assert_str_eq(s.target, "/test.txt");
	drp_s3sig_free(&s);
}
END_TEST

/* PUT Object: a key that needs encoding ('$'), a signed payload, and two
 * more headers. */
START_TEST(doc_put_object)
{
	const char body[] = "Welcome to Amazon S3.";
	char ph[65];
	drp_s3sig_sha256_hex(body, strlen(body), ph);
	ck_assert_str_eq(ph, "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e4"
			     "2034a8b803f8b072");
	drp_s3sig_kv_t h[] = {{"Date", "Fri, 24 May 2013 00:00:00 GMT"},
			      {"x-amz-storage-class", "REDUCED_REDUNDANCY"}};
	drp_s3sig_req_t r = {.method = "PUT",
			     .host = DOC_HOST,
			     .path = "/test$file.text",
			     .headers = h,
			     .nheaders = 2,
			     .payload_hash = ph,
			     .now = DOC_TIME};
	drp_s3sig_t s;
	sign_ok(&doc_creds, &r, &s);
	ck_assert_str_eq(s.target, "/test%24file.text");
	char creq_hash[65];
	drp_s3sig_sha256_hex(s.canonical_request, strlen(s.canonical_request),
			     creq_hash);
	ck_assert_str_eq(creq_hash, "9e0e90d9c76de8fa5b200d8c849cd5b8dc7a3be3"
				    "951ddb7f6a76b4158342019d");
	ck_assert_str_eq(s.signature, "98ad721746da40c64f1a55b78f14c238d841ea1"
				      "380cd77a1b5971af0ece108bd");
	ck_assert_str_eq(s.content_sha256, ph);
	drp_s3sig_free(&s);
}
END_TEST

/* GET Bucket lifecycle: a query parameter without a value. */
START_TEST(doc_get_lifecycle)
{
	drp_s3sig_kv_t q[] = {{"lifecycle", NULL}};
	drp_s3sig_req_t r = {.method = "GET",
			     .host = DOC_HOST,
			     .path = "/",
			     .query = q,
			     .nquery = 1,
			     .now = DOC_TIME};
	drp_s3sig_t s;
	sign_ok(&doc_creds, &r, &s);
	ck_assert_str_eq(s.target, "/?lifecycle=");
	ck_assert_str_eq(s.signature, "fea454ca298b7da1c68078a5d1bdbfbbe0d65c6"
				      "99e0f91ac7a200a0136783543");
	drp_s3sig_free(&s);
}
END_TEST

/* GET Bucket (list objects): parameters given out of order are sorted. */
START_TEST(doc_list_objects)
{
	drp_s3sig_kv_t q[] = {{"prefix", "J"}, {"max-keys", "2"}};
	drp_s3sig_req_t r = {.method = "GET",
			     .host = DOC_HOST,
			     .path = "/",
			     .query = q,
			     .nquery = 2,
			     .now = DOC_TIME};
	drp_s3sig_t s;
	sign_ok(&doc_creds, &r, &s);
	ck_assert_str_eq(s.target, "/?max-keys=2&prefix=J");
	ck_assert_str_eq(s.signature, "34b48302e7b5fa45bde8084f4b7868a86f0a534"
				      "bc59db6670ed5711ef69dc6f7");
	drp_s3sig_free(&s);
}
END_TEST

/* What the S3 backend sends: an unsigned payload is announced and signed
 * as UNSIGNED-PAYLOAD; the multipart parameters are sorted and encoded
 * and the request-target is exactly the signed URI and query. */
START_TEST(multipart_unsigned)
{
	drp_s3sig_kv_t q[] = {{"uploadId", "2~abc/d+e=f"}, {"partNumber", "7"}};
	drp_s3sig_req_t r = {.method = "PUT",
			     .host = "127.0.0.1:7480",
			     .path = "/bkt/blobs/sha256/ab cd",
			     .query = q,
			     .nquery = 2,
			     .payload_hash = DRP_S3SIG_UNSIGNED_PAYLOAD,
			     .now = DOC_TIME};
	drp_s3sig_t s;
	sign_ok(&doc_creds, &r, &s);
	ck_assert_str_eq(s.target, "/bkt/blobs/sha256/ab%20cd?partNumber=7&"
				   "uploadId=2~abc%2Fd%2Be%3Df");
	ck_assert_str_eq(s.content_sha256, "UNSIGNED-PAYLOAD");
	ck_assert_str_eq(s.canonical_request,
			 "PUT\n/bkt/blobs/sha256/ab%20cd\n"
			 "partNumber=7&uploadId=2~abc%2Fd%2Be%3Df\n"
			 "host:127.0.0.1:7480\n"
			 "x-amz-content-sha256:UNSIGNED-PAYLOAD\n"
			 "x-amz-date:20130524T000000Z\n\n"
			 "host;x-amz-content-sha256;x-amz-date\n"
			 "UNSIGNED-PAYLOAD");
	drp_s3sig_free(&s);

	/* Initiate: "?uploads" is signed and sent as "uploads=". */
	drp_s3sig_kv_t up[] = {{"uploads", NULL}};
	r = (drp_s3sig_req_t){.method = "POST",
			      .host = "bkt.s3.test",
			      .path = "/k",
			      .query = up,
			      .nquery = 1,
			      .now = DOC_TIME};
	sign_ok(&doc_creds, &r, &s);
	ck_assert_str_eq(s.target, "/k?uploads=");
	ck_assert_ptr_nonnull(strstr(s.canonical_request, "\n/k\nuploads=\n"));
	drp_s3sig_free(&s);
}
END_TEST

/* Equal names sort by value; encoding happens before sorting. */
START_TEST(query_sort_encoded)
{
	drp_s3sig_kv_t q[] = {{"b", "2"}, {"a", "z"}, {"a", "y"}, {"a b", ""}};
	drp_s3sig_req_t r = {.method = "GET",
			     .host = "s3.test",
			     .path = "/",
			     .query = q,
			     .nquery = 4,
			     .now = DOC_TIME};
	drp_s3sig_t s;
	sign_ok(&doc_creds, &r, &s);
	/* "a%20b" < "a" is false: '%' (0x25) sorts after nothing shorter,
	 * "a" is a prefix of "a%20b", so "a" comes first. */
	ck_assert_str_eq(s.target, "/?a=y&a=z&a%20b=&b=2");
	drp_s3sig_free(&s);
}
END_TEST

/* A signature depends on every signed part: changing one changes it. */
START_TEST(signature_covers_everything)
{
	drp_s3sig_kv_t h[] = {{"If-None-Match", "*"}};
	drp_s3sig_req_t base = {.method = "PUT",
				.host = "s3.test",
				.path = "/bkt/k",
				.headers = h,
				.nheaders = 1,
				.payload_hash = DRP_S3SIG_UNSIGNED_PAYLOAD,
				.now = DOC_TIME};
	drp_s3sig_t s0, s;
	sign_ok(&doc_creds, &base, &s0);
	ck_assert_ptr_nonnull(strstr(s0.authorization,
				     "SignedHeaders=host;if-none-match;"
				     "x-amz-content-sha256;x-amz-date,"));
	drp_s3sig_req_t r;
	drp_s3sig_kv_t h2[] = {{"If-None-Match", "\"x\""}};
	drp_s3sig_req_t variants[5];
	for (int i = 0; i < 5; i++)
		variants[i] = base;
	variants[0].method = "POST";
	variants[1].host = "s3.test:443";
	variants[2].path = "/bkt/K";
	variants[3].headers = h2;
	variants[4].now = DOC_TIME + 1;
	for (int i = 0; i < 5; i++) {
		r = variants[i];
		sign_ok(&doc_creds, &r, &s);
		ck_assert_msg(strcmp(s.signature, s0.signature) != 0,
			      "variant %d signs the same", i);
		drp_s3sig_free(&s);
	}
	drp_s3sig_creds_t other = doc_creds;
	other.secret_key = "another secret";
	sign_ok(&other, &base, &s);
	ck_assert_str_ne(s.signature, s0.signature);
	/* The secret appears in nothing the signer returns. */
	ck_assert_ptr_null(strstr(s.authorization, "another"));
	ck_assert_ptr_null(strstr(s.canonical_request, "another"));
	ck_assert_ptr_null(strstr(s.string_to_sign, "another"));
	drp_s3sig_free(&s);
	drp_s3sig_free(&s0);
	drp_s3sig_free(&s0); /* twice is harmless */
}
END_TEST

/* Bad input is refused with -EINVAL and leaves nothing to free. */
START_TEST(refused)
{
	drp_s3sig_kv_t crlf[] = {{"x-amz-meta-a", "b\r\nEvil: 1"}};
	drp_s3sig_kv_t own[] = {{"Host", "elsewhere"}};
	drp_s3sig_kv_t own2[] = {{"AUTHORIZATION", "x"}};
	drp_s3sig_kv_t badname[] = {{"bad name", "x"}};
	drp_s3sig_kv_t nullq[] = {{NULL, "x"}};
	const drp_s3sig_req_t ok = {.method = "GET",
				    .host = "s3.test",
				    .path = "/b/k",
				    .now = DOC_TIME};
	drp_s3sig_req_t bad[15];
	for (size_t i = 0; i < 15; i++)
		bad[i] = ok;
	bad[0].method = "G T";
	bad[1].method = NULL;
	bad[2].path = "b/k";
	bad[3].path = NULL;
	bad[4].host = "s3.test\r\nX: y";
	bad[5].host = "";
	bad[6].headers = crlf, bad[6].nheaders = 1;
	bad[7].headers = own, bad[7].nheaders = 1;
	bad[8].headers = own2, bad[8].nheaders = 1;
	bad[9].headers = badname, bad[9].nheaders = 1;
	bad[10].query = nullq, bad[10].nquery = 1;
	bad[11].payload_hash = "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B9"
			       "34CA495991B7852B855";
	bad[12].payload_hash = "abc";
	bad[13].now = (time_t)253402300800LL; /* year 10000 */
	bad[14].nheaders = 2;		      /* headers NULL */
	for (size_t i = 0; i < 15; i++) {
		drp_s3sig_t s;
		ck_assert_msg(drp_s3sig_sign(&doc_creds, &bad[i], &s) ==
				      -EINVAL,
			      "case %zu accepted", i);
		ck_assert_ptr_null(s.authorization);
		ck_assert_ptr_null(s.target);
		drp_s3sig_free(&s);
	}
	drp_s3sig_creds_t c = doc_creds;
	c.access_key = "AK\nX";
	drp_s3sig_t s;
	ck_assert_int_eq(drp_s3sig_sign(&c, &ok, &s), -EINVAL);
	c = doc_creds;
	c.secret_key = NULL;
	ck_assert_int_eq(drp_s3sig_sign(&c, &ok, &s), -EINVAL);
	ck_assert_int_eq(drp_s3sig_sign(NULL, &ok, &s), -EINVAL);
}
END_TEST

START_TEST(addressing)
{
	char *host, *path;
	ck_assert_int_eq(drp_s3_address(DRP_S3_PATH, "s3.test:7480",
					"drp-cache", "blobs/sha256/ab", &host,
					&path),
			 0);
	ck_assert_str_eq(host, "s3.test:7480");
	ck_assert_str_eq(path, "/drp-cache/blobs/sha256/ab");
	free(host);
	free(path);
	ck_assert_int_eq(drp_s3_address(DRP_S3_VIRTUAL, "s3.test", "drp-cache",
					"blobs/sha256/ab", &host, &path),
			 0);
	ck_assert_str_eq(host, "drp-cache.s3.test");
	ck_assert_str_eq(path, "/blobs/sha256/ab");
	free(host);
	free(path);
	/* The bucket itself (listing uploads). */
	ck_assert_int_eq(drp_s3_address(DRP_S3_PATH, "s3.test", "drp-cache", "",
					&host, &path),
			 0);
	ck_assert_str_eq(path, "/drp-cache");
	free(host);
	free(path);
	ck_assert_int_eq(drp_s3_address(DRP_S3_VIRTUAL, "s3.test", "drp-cache",
					"", &host, &path),
			 0);
	ck_assert_str_eq(path, "/");
	free(host);
	free(path);
	/* Dotted buckets work path-style only (a wildcard certificate
	 * covers one label). */
	ck_assert_int_eq(drp_s3_address(DRP_S3_PATH, "s3.test", "a.b.c", "k",
					&host, &path),
			 0);
	free(host);
	free(path);
	static const char *const badb[] = {
		"ab", "Upper", "-lead", "trail-", "under_score", "a/b", ""};
	for (size_t i = 0; i < sizeof(badb) / sizeof(badb[0]); i++)
		ck_assert_msg(drp_s3_address(DRP_S3_PATH, "s3.test", badb[i],
					     "k", &host, &path) == -EINVAL,
			      "bucket '%s' accepted", badb[i]);
	ck_assert_int_eq(drp_s3_address(DRP_S3_VIRTUAL, "s3.test", "a.b.c", "k",
					&host, &path),
			 -EINVAL);
	ck_assert_int_eq(
		drp_s3_address(DRP_S3_PATH, "", "bkt", "k", &host, &path),
		-EINVAL);
	ck_assert_int_eq(drp_s3_address(DRP_S3_PATH, "s3.test/x", "bkt", "k",
					&host, &path),
			 -EINVAL);
	ck_assert_ptr_null(host);
	ck_assert_ptr_null(path);
}
END_TEST

Suite *s3sig_suite(void)
{
	Suite *s = suite_create("s3sig");
	TCase *tc = tcase_create("sigv4");
	tcase_add_loop_test(
		tc, suite_vector, 0,
		(int)(sizeof(suite_vectors) / sizeof(suite_vectors[0])));
	tcase_add_test(tc, signing_key);
	tcase_add_test(tc, doc_get_object);
	tcase_add_test(tc, doc_put_object);
	tcase_add_test(tc, doc_get_lifecycle);
	tcase_add_test(tc, doc_list_objects);
	tcase_add_test(tc, multipart_unsigned);
	tcase_add_test(tc, query_sort_encoded);
	tcase_add_test(tc, signature_covers_everything);
	tcase_add_test(tc, refused);
	tcase_add_test(tc, addressing);
	suite_add_tcase(s, tc);
	return s;
}
