/* SPDX-License-Identifier: MIT */
#include "util/base64.h"

#include <errno.h>
#include <nettle/base64.h>
#include <stdint.h>

ssize_t drp_base64_encode(const void *in, size_t n, char *out, size_t outlen)
{
	size_t need = BASE64_ENCODE_RAW_LENGTH(n);
	if (n > (SIZE_MAX - 3) / 4 * 3 || outlen < need + 1)
		return -ENOBUFS;
	base64_encode_raw(out, n, in);
	out[need] = '\0';
	return (ssize_t)need;
}

ssize_t drp_base64url_encode(const void *in, size_t n, char *out, size_t outlen)
{
	size_t need = n / 3 * 4 + (n % 3 == 0 ? 0 : n % 3 + 1);
	if (n > (SIZE_MAX - 3) / 4 * 3 || outlen < need + 1)
		return -ENOBUFS;
	struct base64_encode_ctx ctx;
	base64url_encode_init(&ctx);
	size_t o = base64_encode_update(&ctx, out, n, in);
	/* The final group's characters, then its padding, which a URL
	 * form leaves out. */
	char tail[BASE64_ENCODE_FINAL_LENGTH];
	size_t t = base64_encode_final(&ctx, tail);
	for (size_t i = 0; i < t && tail[i] != '='; i++)
		out[o++] = tail[i];
	out[o] = '\0';
	return (ssize_t)o;
}

ssize_t drp_base64_decode(const char *in, size_t len, void *out, size_t outlen)
{
	/* Padding is handled here and never reaches nettle: nettle requires
	 * it (base64_decode_final) and rejects a non-canonical last
	 * character when it is present, while clients omit it and the
	 * decoders this replaced accepted both. */
	size_t pad = 0;
	while (pad < 2 && pad < len && in[len - 1 - pad] == '=')
		pad++;
	size_t data = len - pad;
	if (data % 4 == 1 || (pad > 0 && len % 4 != 0))
		return -EINVAL;
	/* nettle skips white space inside the data; a token does not have
	 * any, and '=' before the end is padding in the middle. */
	for (size_t i = 0; i < data; i++) {
		char c = in[i];
		if (c == '=' || c == ' ' || (c >= '\t' && c <= '\r'))
			return -EINVAL;
	}
	size_t want = data / 4 * 3 + (data % 4 == 0 ? 0 : data % 4 - 1);
	if (want > outlen)
		return -ENOBUFS;
	struct base64_decode_ctx ctx;
	base64_decode_init(&ctx);
	size_t got = 0;
	/* Every character yields 6 bits: exactly want bytes come out, which
	 * out has room for. */
	if (!base64_decode_update(&ctx, &got, out, data, in) || got != want)
		return -EINVAL;
	return (ssize_t)got;
}
