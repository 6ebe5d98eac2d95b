/* SPDX-License-Identifier: MIT */
/* The keys of every section, how each value is checked, and where it
 * lands in drp_conf_t (see schema.h). */
#include "conf/schema.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <drp/plugin.h>

#include "conf/ini.h"
#include "util/log.h"
#include "util/mem.h"

/* Keys already seen in one kind of section, for duplicate detection.
 * [proxy], [resolve] and [cache] may be split over several blocks that
 * merge, so this lives per kind, not per block. */
struct seen {
	const char **key;
	unsigned *line;
	unsigned n;
};

struct ld {
	drp_conf_t *c;
	drp_conf_errors_t *errs;
	unsigned n_errs;
	const char *label; /* section of the item being applied */
	struct seen proxy, resolve, cache, fleet;
	drp_conf_registry_t *reg; /* the [registry] section being applied */
};

struct key;
typedef void (*set_fn)(struct ld *ld, const drp_conf_item_t *it,
		       const struct key *k);

/*
 * A key of the core's: described as plugins describe theirs (first, so
 * that one lookup serves both kinds of table), with how it is checked
 * and where it lands.
 */
struct key {
	drp_plugin_key_t spec; /* key, type, min/max, flags, help */
	set_fn set;	       /* NULL: any text */
	size_t off;	       /* field in drp_conf_t, for the scalar setters */
	bool repeat;	       /* may be given more than once (a list) */
};

/*
 * The one lookup in a key table: n entries (or up to the one whose key
 * is NULL) of size stride, each starting with its drp_plugin_key_t.
 */
static const drp_plugin_key_t *spec_find(const void *table, size_t n,
					 size_t stride, const char *key)
{
	for (size_t i = 0; table != NULL && i < n; i++) {
		const drp_plugin_key_t *k =
			(const void *)((const char *)table + i * stride);
		if (k->key == NULL)
			break;
		if (strcmp(k->key, key) == 0)
			return k;
	}
	return NULL;
}

/* In a table of struct key. */
#define CORE_KEY(keys, n, name)                                                \
	((const struct key *)(const void *)spec_find(                          \
		(keys), (n), sizeof(struct key), (name)))

#define err(ld, it, ...)                                                       \
	do {                                                                   \
		drp_conf_error_item((ld)->errs, (ld)->label, (it),             \
				    __VA_ARGS__);                              \
		(ld)->n_errs++;                                                \
	} while (0)

#define err_at(ld, line, section, ...)                                         \
	do {                                                                   \
		drp_conf_error((ld)->errs, (ld)->c->path, (line), (section),   \
			       NULL, __VA_ARGS__);                             \
		(ld)->n_errs++;                                                \
	} while (0)

#define FIELD(ld, k, type) ((type *)(void *)((char *)(ld)->c + (k)->off))

/* Values can be of any length: messages show at most 80 characters. */
struct clip {
	char s[84];
};
static const char *clip(const char *v, struct clip *b)
{
	size_t n = strlen(v);

	if (n <= 80)
		return v;
	memcpy(b->s, v, 77);
	memcpy(b->s + 77, "...", 4);
	return b->s;
}
#define CLIP(v) clip((v), &(struct clip){{0}})

static bool seen_check(struct ld *ld, struct seen *s, const drp_conf_item_t *it,
		       bool nocase, const char *what)
{
	for (unsigned i = 0; i < s->n; i++) {
		if (nocase ? strcasecmp(s->key[i], it->key) == 0
			   : strcmp(s->key[i], it->key) == 0) {
			err(ld, it, "duplicate %s (first at line %u)", what,
			    s->line[i]);
			return false;
		}
	}
	s->key = drp_realloc(s->key, (s->n + 1) * sizeof(*s->key));
	s->line = drp_realloc(s->line, (s->n + 1) * sizeof(*s->line));
	s->key[s->n] = it->key;
	s->line[s->n] = it->line;
	s->n++;
	return true;
}

static void seen_free(struct seen *s)
{
	free(s->key);
	free(s->line);
}

/* ---- value syntax ---- */

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

int drp_conf_parse_size(const char *s, uint64_t *out)
{
	uint64_t v = 0;
	const char *p = s;
	unsigned shift = 0;
	bool overflow = false;

	if (!is_digit(*p))
		return -EINVAL;
	for (; is_digit(*p); p++) {
		unsigned d = (unsigned)(*p - '0');
		if (v > (UINT64_MAX - d) / 10)
			overflow = true;
		else
			v = v * 10 + d;
	}
	switch (*p) {
	case '\0':
		break;
	case 'K':
	case 'k':
		shift = 10;
		break;
	case 'M':
	case 'm':
		shift = 20;
		break;
	case 'G':
	case 'g':
		shift = 30;
		break;
	case 'T':
	case 't':
		shift = 40;
		break;
	default:
		return -EINVAL;
	}
	/* The syntax is checked first: "99999999999999999999X" is a typo
	 * before it is an overflow. */
	if (shift && p[1] != '\0')
		return -EINVAL;
	if (overflow || v > (UINT64_MAX >> shift))
		return -ERANGE;
	*out = v << shift;
	return 0;
}

/* Longer than any timeout or TTL makes sense for, short enough that
 * adding it to a timestamp cannot overflow anything. */
#define DURATION_MAX 1e9

int drp_conf_parse_duration(const char *s, double *out)
{
	const char *p = s;
	double v = 0, scale = 1;

	if (!is_digit(*p))
		return -EINVAL;
	for (; is_digit(*p); p++)
		v = v * 10 + (*p - '0');
	if (*p == '.') {
		p++;
		if (!is_digit(*p))
			return -EINVAL;
		for (; is_digit(*p); p++) {
			scale /= 10;
			v += (*p - '0') * scale;
		}
	}
	double mult = 1;
	switch (*p) {
	case '\0':
		break;
	case 's':
		break;
	case 'm':
		mult = 60;
		break;
	case 'h':
		mult = 3600;
		break;
	case 'd':
		mult = 86400;
		break;
	default:
		return -EINVAL;
	}
	if (*p && p[1] != '\0')
		return -EINVAL;
	v *= mult;
	if (v > DURATION_MAX)
		return -ERANGE;
	*out = v;
	return 0;
}

int drp_conf_parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = {"yes", "true", "on", "1"};
	static const char *const no[] = {"no", "false", "off", "0"};

	for (size_t i = 0; i < DRP_ARRAY_SIZE(yes); i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return -EINVAL;
}

/* ---- lexical helpers ---- */

static bool is_alnum_lower(char c)
{
	return (c >= 'a' && c <= 'z') || is_digit(c);
}

static char lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* Strict decimal in [min, max]: -EINVAL if not a number, -ERANGE if out
 * of range. */
static int parse_uint(const char *s, size_t n, unsigned min, unsigned max,
		      unsigned *out)
{
	unsigned long long v = 0;

	if (n == 0)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (!is_digit(s[i]))
			return -EINVAL;
		if (v <= 0xffffffffULL)
			v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v < min || v > max)
		return -ERANGE;
	*out = (unsigned)v;
	return 0;
}

/* Splits on blanks and commas. Returns the number of tokens. */
static unsigned split_list(const char *v, char ***out)
{
	char **tok = NULL;
	unsigned n = 0;
	const char *p = v;

	for (;;) {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		if (*p == '\0')
			break;
		const char *s = p;
		while (*p && *p != ' ' && *p != '\t' && *p != ',')
			p++;
		tok = drp_realloc(tok, (n + 1) * sizeof(*tok));
		tok[n++] = drp_strndup(s, (size_t)(p - s));
	}
	*out = tok;
	return n;
}

static void free_list(char **tok, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		free(tok[i]);
	free(tok);
}

/*
 * A host name per RFC 1123 (labels of letters, digits and '-', not at a
 * label's ends, 1..63 each, 253 in all), or an IPv4 literal. A name whose
 * last label is all digits must be an IPv4 literal: "10.1.2" is a typo,
 * not a name.
 */
static bool valid_host(const char *s, size_t n)
{
	if (n == 0 || n > 253)
		return false;

	size_t start = 0;
	bool numeric = false;
	for (size_t i = 0; i <= n; i++) {
		if (i < n && s[i] != '.')
			continue;
		size_t len = i - start;
		if (len == 0 || len > 63 || s[start] == '-' || s[i - 1] == '-')
			return false;
		numeric = true;
		for (size_t j = start; j < i; j++) {
			char c = lower(s[j]);
			if (!is_alnum_lower(c) && c != '-')
				return false;
			if (!is_digit(c))
				numeric = false;
		}
		start = i + 1;
	}
	if (numeric) {
		char buf[16];
		struct in_addr a;
		if (n >= sizeof(buf))
			return false;
		memcpy(buf, s, n);
		buf[n] = '\0';
		return inet_pton(AF_INET, buf, &a) == 1;
	}
	return true;
}

static bool last_label_numeric(const char *s, size_t n)
{
	size_t i = n;

	while (i > 0 && s[i - 1] != '.') {
		if (!is_digit(s[i - 1]))
			return false;
		i--;
	}
	return i < n;
}

static char *lower_dup(const char *s, size_t n)
{
	char *out = drp_strndup(s, n);
	for (char *p = out; *p; p++)
		*p = lower(*p);
	return out;
}

/*
 * "host", "host:port", "[v6]" or "[v6]:port" -> lower-case normal form
 * (port without leading zeros), or NULL. wildcard admits "*.domain".
 */
static char *norm_host_port(const char *s, size_t n, bool wildcard)
{
	size_t hn = n;
	const char *port = NULL;

	if (n > 0 && s[0] == '[') {
		const char *close = memchr(s, ']', n);
		char buf[INET6_ADDRSTRLEN + 1];
		struct in6_addr a;
		if (close == NULL)
			return NULL;
		hn = (size_t)(close - s) + 1;
		if (hn - 2 == 0 || hn - 2 >= sizeof(buf))
			return NULL;
		memcpy(buf, s + 1, hn - 2);
		buf[hn - 2] = '\0';
		if (inet_pton(AF_INET6, buf, &a) != 1)
			return NULL;
		if (hn < n) {
			if (s[hn] != ':')
				return NULL;
			port = s + hn + 1;
		}
	} else {
		const char *colon = memchr(s, ':', n);
		if (colon) {
			hn = (size_t)(colon - s);
			port = colon + 1;
		}
		const char *h = s;
		size_t len = hn;
		if (wildcard && len > 2 && h[0] == '*' && h[1] == '.') {
			h += 2;
			len -= 2;
		}
		if (!valid_host(h, len))
			return NULL;
		/* A wildcard over an IPv4 literal ("*.10.0.0.1") would
		 * match nothing. */
		if (h != s && last_label_numeric(h, len))
			return NULL;
	}

	unsigned pv = 0;
	if (port && parse_uint(port, n - (size_t)(port - s), 1, 65535, &pv) < 0)
		return NULL;
	char *host = lower_dup(s, hn);
	if (!port)
		return host;
	size_t outn = hn + 8;
	char *out = drp_malloc(outn);
	snprintf(out, outn, "%s:%u", host, pv);
	free(host);
	return out;
}

/* One path component of an image reference:
 * [a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )* */
static bool valid_component(const char *s, size_t n)
{
	size_t i = 0;

	if (n == 0 || !is_alnum_lower(s[0]) || !is_alnum_lower(s[n - 1]))
		return false;
	while (i < n) {
		if (is_alnum_lower(s[i])) {
			i++;
			continue;
		}
		size_t j = i;
		while (j < n && !is_alnum_lower(s[j]))
			j++;
		size_t sep = j - i;
		bool ok = (sep == 1 && (s[i] == '.' || s[i] == '_')) ||
			  (sep == 2 && s[i] == '_' && s[i + 1] == '_');
		if (!ok) {
			ok = true;
			for (size_t k = i; k < j; k++)
				ok = ok && s[k] == '-';
		}
		if (!ok)
			return false;
		i = j;
	}
	return true;
}

static bool valid_repo_prefix(const char *s)
{
	const char *p = s;

	for (;;) {
		const char *slash = strchr(p, '/');
		size_t n = slash ? (size_t)(slash - p) : strlen(p);
		if (!valid_component(p, n))
			return false;
		if (!slash)
			return true;
		p = slash + 1;
	}
}

/* ---- value parsers with their messages ---- */

static bool get_duration(struct ld *ld, const drp_conf_item_t *it,
			 bool positive, double *out)
{
	int r = drp_conf_parse_duration(it->value, out);

	if (r == -ERANGE) {
		err(ld, it, "duration '%s' is too large", CLIP(it->value));
		return false;
	}
	if (r < 0) {
		err(ld, it,
		    "invalid duration '%s' (expected e.g. 30, 0.5, 30s, 5m, "
		    "2h, 1d)",
		    CLIP(it->value));
		return false;
	}
	if (positive && *out <= 0) {
		err(ld, it, "duration must be greater than 0");
		return false;
	}
	return true;
}

static bool get_size(struct ld *ld, const drp_conf_item_t *it, uint64_t *out)
{
	int r = drp_conf_parse_size(it->value, out);

	if (r == -ERANGE) {
		err(ld, it, "size '%s' is too large", CLIP(it->value));
		return false;
	}
	if (r < 0) {
		err(ld, it,
		    "invalid size '%s' (expected e.g. 1024, 10K, 32G, 1T)",
		    CLIP(it->value));
		return false;
	}
	return true;
}

static bool get_nonempty(struct ld *ld, const drp_conf_item_t *it)
{
	if (it->value[0] != '\0')
		return true;
	err(ld, it, "value must not be empty");
	return false;
}

/*
 * A CIDR list; out NULL only validates (the [registry] allow, kept raw
 * for the plugin layer). Returns false after reporting every bad entry.
 */
static bool get_cidrs(struct ld *ld, const drp_conf_item_t *it,
		      drp_cidr_t **out, unsigned *n_out)
{
	char **tok;
	unsigned n = split_list(it->value, &tok);
	drp_cidr_t *list = drp_calloc(n, sizeof(*list));
	bool ok = true;

	for (unsigned i = 0; i < n; i++) {
		int r = drp_cidr_parse_masked(tok[i], &list[i]);
		if (r < 0) {
			err(ld, it,
			    "invalid CIDR '%s' (expected ADDRESS or "
			    "ADDRESS/PREFIX)",
			    CLIP(tok[i]));
			ok = false;
		} else if (r > 0) {
			char net[64];
			err(ld, it,
			    "'%s' has host bits set (the network is %s)",
			    CLIP(tok[i]),
			    drp_cidr_str(&list[i], net, sizeof(net)));
			ok = false;
		}
	}
	free_list(tok, n);
	if (ok && out) {
		free(*out);
		*out = list;
		*n_out = n;
	} else {
		free(list);
	}
	return ok;
}

/* push = client | proxy | deny ([proxy] and [registry]). */
static void get_push(struct ld *ld, const drp_conf_item_t *it,
		     enum drp_conf_push *out)
{
	if (strcmp(it->value, "client") == 0)
		*out = DRP_CONF_PUSH_CLIENT;
	else if (strcmp(it->value, "proxy") == 0)
		*out = DRP_CONF_PUSH_PROXY;
	else if (strcmp(it->value, "deny") == 0)
		*out = DRP_CONF_PUSH_DENY;
	else
		err(ld, it,
		    "invalid value '%s' (expected client, proxy or deny)",
		    CLIP(it->value));
}

/* ---- tag_ttl_match ---- */

/* A tag's path is short; an expression that backtracks for longer than
 * this on one is cut off (no match) rather than holding a worker. */
#define TTL_MATCH_LIMIT 100000

/*
 * tag_ttl_match = DURATION REGEX: appended to *rules. The expression is
 * everything after the blanks that follow the duration, compiled now so
 * that a bad one is a load error and matching costs no compilation.
 */
static void add_ttl_rule(struct ld *ld, const drp_conf_item_t *it,
			 drp_conf_ttl_rule_t **rules, unsigned *n)
{
	const char *v = it->value;
	size_t dl = strcspn(v, " \t");
	const char *re = v + dl + strspn(v + dl, " \t");

	if (dl == 0 || *re == '\0') {
		err(ld, it,
		    "expected DURATION REGEX (e.g. 10m "
		    "/manifests/(stable|nightly)$)");
		return;
	}
	char *d = drp_strndup(v, dl);
	drp_conf_item_t dur = *it;
	dur.value = d;
	double ttl;
	bool ok = get_duration(ld, &dur, false, &ttl);
	free(d);
	if (!ok)
		return;
	int code;
	PCRE2_SIZE off;
	pcre2_code *re_code = pcre2_compile(
		(PCRE2_SPTR)re, PCRE2_ZERO_TERMINATED, 0, &code, &off, NULL);
	if (re_code == NULL) {
		PCRE2_UCHAR msg[256];
		if (pcre2_get_error_message(code, msg, sizeof(msg)) < 0)
			snprintf((char *)msg, sizeof(msg), "error %d", code);
		err(ld, it, "invalid regular expression '%s' at offset %zu: %s",
		    CLIP(re), (size_t)off, (const char *)msg);
		return;
	}
	/* No JIT: one match per tag request costs microseconds in the
	 * interpreter, and the JIT needs memory that is writable and then
	 * executable, which the unit forbids (MemoryDenyWriteExecute=). */
	if (ld->c->tag_ttl_mctx == NULL) {
		pcre2_match_context *m = pcre2_match_context_create(NULL);
		drp_require(m != NULL);
		pcre2_set_match_limit(m, TTL_MATCH_LIMIT);
		ld->c->tag_ttl_mctx = m;
	}
	*rules = drp_realloc(*rules, (*n + 1) * sizeof(**rules));
	(*rules)[(*n)++] = (drp_conf_ttl_rule_t){
		.ttl = ttl,
		.regex = drp_strdup(re),
		.code = re_code,
		.line = it->line,
	};
}

void drp_conf_ttl_rules_free(drp_conf_ttl_rule_t *rules, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		pcre2_code_free(rules[i].code);
		free(rules[i].regex);
	}
	free(rules);
}

int drp_conf_ttl_rules_match(const drp_conf_t *c,
			     const drp_conf_ttl_rule_t *rules, unsigned n,
			     const char *subject, double *ttl)
{
	if (n == 0)
		return 0;
	pcre2_match_data *md = pcre2_match_data_create(1, NULL);
	drp_require(md != NULL);
	int found = 0;
	for (unsigned i = 0; i < n && !found; i++) {
		int r = pcre2_match(rules[i].code, (PCRE2_SPTR)subject,
				    PCRE2_ZERO_TERMINATED, 0, 0, md,
				    c->tag_ttl_mctx);
		if (r >= 0) {
			*ttl = rules[i].ttl;
			found = 1;
		} else if (r != PCRE2_ERROR_NOMATCH) {
			/* The match limit, typically: no match, said once
			 * per request that hits it. */
			PCRE2_UCHAR msg[128] = "";
			pcre2_get_error_message(r, msg, sizeof(msg));
			drp_log_info(DRP_LOG_CONF,
				     "%s:%u: tag_ttl_match '%s' on %s: %s "
				     "(taken as no match)",
				     c->path ? c->path : "-", rules[i].line,
				     rules[i].regex, subject,
				     (const char *)msg);
		}
	}
	pcre2_match_data_free(md);
	return found;
}

/* ---- [proxy] ---- */

/* A list of listen addresses into *out (replacing it); empty only if
 * may_be_empty. */
static void get_listen(struct ld *ld, const drp_conf_item_t *it,
		       drp_conf_listen_t **out, unsigned *n_out,
		       bool may_be_empty)
{
	char **tok;
	unsigned n = split_list(it->value, &tok), ok = 0;
	drp_conf_listen_t *l = drp_calloc(n, sizeof(*l));
	bool bad = false;

	if (n == 0 && !may_be_empty) {
		err(ld, it, "at least one address is required");
		bad = true;
	}
	for (unsigned i = 0; i < n; i++) {
		drp_conf_listen_t *x = &l[ok];
		if (drp_sockaddr_parse(tok[i], &x->addr, &x->addrlen) < 0) {
			err(ld, it,
			    "invalid address '%s' (expected IPV4:PORT, "
			    "[IPV6]:PORT or *:PORT)",
			    CLIP(tok[i]));
			bad = true;
			continue;
		}
		bool dup = false;
		for (unsigned j = 0; j < ok && !dup; j++)
			dup = l[j].addrlen == x->addrlen &&
			      memcmp(&l[j].addr, &x->addr, x->addrlen) == 0;
		if (dup) {
			err(ld, it, "duplicate address '%s'", CLIP(tok[i]));
			bad = true;
			continue;
		}
		x->text = tok[i];
		tok[i] = NULL;
		ok++;
	}
	free_list(tok, n);
	if (bad) {
		for (unsigned i = 0; i < ok; i++)
			free(l[i].text);
		free(l);
		return;
	}
	for (unsigned i = 0; i < *n_out; i++)
		free((*out)[i].text);
	free(*out);
	*out = l;
	*n_out = n;
}

static void set_listen(struct ld *ld, const drp_conf_item_t *it,
		       const struct key *k)
{
	get_listen(ld, it, &ld->c->listen, &ld->c->n_listen, false);
}

/* The kernel's TCP_CA_NAME_MAX: a name's length with its NUL. */
#define CC_NAME_MAX 16

/* A name the kernel could know; whether it does is found out when the
 * listeners are made. */
static void set_tcp_congestion(struct ld *ld, const drp_conf_item_t *it,
			       const struct key *k)
{
	const char *v = it->value;
	size_t n = strlen(v);
	bool ok = n < CC_NAME_MAX;
	for (size_t i = 0; ok && i < n; i++)
		ok = isalnum((unsigned char)v[i]) || v[i] == '_' || v[i] == '-';
	if (!ok) {
		err(ld, it,
		    "invalid name '%s' (expected one from "
		    "/proc/sys/net/ipv4/tcp_available_congestion_control, "
		    "such as cubic, or nothing for the system's)",
		    CLIP(v));
		return;
	}
	free(ld->c->tcp_congestion);
	ld->c->tcp_congestion = n > 0 ? drp_strdup(v) : NULL;
}

static void set_mirror_tls_listen(struct ld *ld, const drp_conf_item_t *it,
				  const struct key *k)
{
	get_listen(ld, it, &ld->c->mirror_tls_listen,
		   &ld->c->n_mirror_tls_listen, true);
}

/* Host names or IP literals for the mirror's certificate. */
static void set_mirror_names(struct ld *ld, const drp_conf_item_t *it,
			     const struct key *k)
{
	drp_conf_t *c = ld->c;
	char **tok;
	unsigned n = split_list(it->value, &tok);
	bool bad = false;

	for (unsigned i = 0; i < n; i++) {
		struct in6_addr a6;
		size_t len = strlen(tok[i]);
		if (inet_pton(AF_INET6, tok[i], &a6) == 1 ||
		    valid_host(tok[i], len)) {
			char *l = lower_dup(tok[i], len);
			free(tok[i]);
			tok[i] = l;
			continue;
		}
		err(ld, it,
		    "invalid name '%s' (expected a host name or an IP "
		    "address)",
		    CLIP(tok[i]));
		bad = true;
	}
	if (bad) {
		free_list(tok, n);
		return;
	}
	free_list(c->mirror_names, c->n_mirror_names);
	c->mirror_names = tok;
	c->n_mirror_names = n;
}

/* upstream_proxy = http://[user@]host:port (empty: none). */
static void set_upstream_proxy(struct ld *ld, const drp_conf_item_t *it,
			       const struct key *k)
{
	drp_conf_t *c = ld->c;
	const char *v = it->value;
	char *user = NULL, *host = NULL;
	unsigned port = 0;

	if (v[0] == '\0')
		goto set;
	if (strncasecmp(v, "http://", 7) != 0) {
		err(ld, it,
		    "'%s': expected http://[USER@]HOST:PORT (the parent is "
		    "spoken to in plain HTTP)",
		    CLIP(v));
		return;
	}
	const char *a = v + 7;
	size_t alen = strlen(a);
	if (alen > 0 && a[alen - 1] == '/')
		alen--;
	const char *at = memchr(a, '@', alen);
	if (at != NULL) {
		if (at == a || memchr(a, ':', (size_t)(at - a)) != NULL) {
			err(ld, it,
			    "'%s': the user name must not be empty, and the "
			    "password goes into upstream_proxy_password_file, "
			    "never into the URL",
			    CLIP(v));
			return;
		}
		user = drp_strndup(a, (size_t)(at - a));
		alen -= (size_t)(at - a) + 1;
		a = at + 1;
	}
	char *hp = norm_host_port(a, alen, false);
	const char *colon = hp ? strrchr(hp, ':') : NULL;
	if (hp == NULL || colon == NULL ||
	    (hp[0] == '[' && colon < strchr(hp, ']'))) {
		err(ld, it, "'%s': expected http://[USER@]HOST:PORT", CLIP(v));
		free(hp);
		free(user);
		return;
	}
	port = (unsigned)strtoul(colon + 1, NULL, 10);
	if (hp[0] == '[')
		host = drp_strndup(hp + 1, (size_t)(colon - hp) - 2);
	else
		host = drp_strndup(hp, (size_t)(colon - hp));
	free(hp);
set:
	free(c->upstream_proxy_host);
	free(c->upstream_proxy_user);
	c->upstream_proxy_host = host;
	c->upstream_proxy_user = user;
	c->upstream_proxy_port = (uint16_t)port;
}

/* Names ("host"), suffixes (".domain") and CIDRs that go direct. */
static void set_no_upstream_proxy(struct ld *ld, const drp_conf_item_t *it,
				  const struct key *k)
{
	drp_conf_t *c = ld->c;
	char **tok;
	unsigned n = split_list(it->value, &tok), nn = 0, nc = 0;
	char **names = drp_calloc(n, sizeof(*names));
	drp_cidr_t *cidrs = drp_calloc(n, sizeof(*cidrs));
	bool bad = false;

	for (unsigned i = 0; i < n; i++) {
		const char *t = tok[i];
		size_t len = strlen(t);
		bool suffix = t[0] == '.';
		if (strchr(t, '/') != NULL || strchr(t, ':') != NULL ||
		    (!suffix && last_label_numeric(t, len))) {
			int r = drp_cidr_parse_masked(t, &cidrs[nc]);
			if (r == 0) {
				nc++;
				continue;
			}
		} else if (valid_host(t + suffix, len - suffix) &&
			   (!suffix || !last_label_numeric(t + 1, len - 1))) {
			names[nn++] = lower_dup(t, len);
			continue;
		}
		err(ld, it,
		    "invalid entry '%s' (expected HOST, .DOMAIN or a CIDR)",
		    CLIP(t));
		bad = true;
	}
	free_list(tok, n);
	if (bad) {
		free_list(names, nn);
		free(cidrs);
		return;
	}
	free_list(c->no_upstream_proxy, c->n_no_upstream_proxy);
	free(c->no_upstream_proxy_cidr);
	c->no_upstream_proxy = names;
	c->n_no_upstream_proxy = nn;
	c->no_upstream_proxy_cidr = cidrs;
	c->n_no_upstream_proxy_cidr = nc;
}

static void set_admin_listen(struct ld *ld, const drp_conf_item_t *it,
			     const struct key *k)
{
	get_listen(ld, it, &ld->c->admin_listen, &ld->c->n_admin_listen, true);
}

static void set_admin_allow(struct ld *ld, const drp_conf_item_t *it,
			    const struct key *k)
{
	get_cidrs(ld, it, &ld->c->admin_allow, &ld->c->n_admin_allow);
}

static void set_log_format(struct ld *ld, const drp_conf_item_t *it,
			   const struct key *k)
{
	if (strcmp(it->value, "text") == 0)
		ld->c->access_log_format = DRP_CONF_LOG_TEXT;
	else if (strcmp(it->value, "json") == 0)
		ld->c->access_log_format = DRP_CONF_LOG_JSON;
	else
		err(ld, it, "invalid format '%s' (expected text or json)",
		    CLIP(it->value));
}

static void set_workers(struct ld *ld, const drp_conf_item_t *it,
			const struct key *k)
{
	unsigned v;

	if (strcmp(it->value, "auto") == 0) {
		ld->c->workers = 0;
		return;
	}
	if (parse_uint(it->value, strlen(it->value), 1, 256, &v) < 0) {
		err(ld, it, "invalid value '%s' (expected auto or 1..256)",
		    CLIP(it->value));
		return;
	}
	ld->c->workers = v;
}

/* A list of HOST or HOST:PORT (and *.DOMAIN if wildcard), normalised,
 * into *out (replacing it); nothing changes after reporting every bad
 * entry. */
static void get_hosts(struct ld *ld, const drp_conf_item_t *it, bool wildcard,
		      char ***out, unsigned *n_out)
{
	char **tok;
	unsigned n = split_list(it->value, &tok);
	char **list = drp_calloc(n, sizeof(*list));
	bool bad = false;

	for (unsigned i = 0; i < n; i++) {
		list[i] = norm_host_port(tok[i], strlen(tok[i]), wildcard);
		if (list[i] == NULL) {
			err(ld, it, "invalid host '%s' (expected %s)",
			    CLIP(tok[i]),
			    wildcard ? "HOST, HOST:PORT or *.DOMAIN"
				     : "HOST or HOST:PORT");
			bad = true;
		}
	}
	free_list(tok, n);
	if (bad) {
		free_list(list, n);
		return;
	}
	free_list(*out, *n_out);
	*out = list;
	*n_out = n;
}

static void set_registries(struct ld *ld, const drp_conf_item_t *it,
			   const struct key *k)
{
	get_hosts(ld, it, false, &ld->c->registries, &ld->c->n_registries);
}

/* Like registries, plus "*.domain": hosts the proxy never intercepts
 * on its own initiative. */
static void set_tunnel_only(struct ld *ld, const drp_conf_item_t *it,
			    const struct key *k)
{
	get_hosts(ld, it, true, &ld->c->tunnel_only, &ld->c->n_tunnel_only);
}

static void set_allow(struct ld *ld, const drp_conf_item_t *it,
		      const struct key *k)
{
	get_cidrs(ld, it, &ld->c->allow, &ld->c->n_allow);
}

static void set_proxy_protocol_from(struct ld *ld, const drp_conf_item_t *it,
				    const struct key *k)
{
	get_cidrs(ld, it, &ld->c->proxy_protocol_from,
		  &ld->c->n_proxy_protocol_from);
}

static void set_ports(struct ld *ld, const drp_conf_item_t *it,
		      const struct key *k)
{
	drp_conf_t *c = ld->c;
	char **tok;
	unsigned n = split_list(it->value, &tok);
	uint16_t *ports = drp_calloc(n, sizeof(*ports));
	bool bad = false;

	for (unsigned i = 0; i < n; i++) {
		unsigned v = 0;
		if (parse_uint(tok[i], strlen(tok[i]), 1, 65535, &v) < 0) {
			err(ld, it, "invalid port '%s' (expected 1..65535)",
			    CLIP(tok[i]));
			bad = true;
		}
		ports[i] = (uint16_t)v;
	}
	free_list(tok, n);
	if (bad) {
		free(ports);
		return;
	}
	free(c->tunnel_ports);
	c->tunnel_ports = ports;
	c->n_tunnel_ports = n;
}

static void set_string(struct ld *ld, const drp_conf_item_t *it,
		       const struct key *k)
{
	char **f = FIELD(ld, k, char *);

	if (!get_nonempty(ld, it))
		return;
	free(*f);
	*f = drp_strdup(it->value);
}

/* Empty = unset (NULL). */
static void set_string_opt(struct ld *ld, const drp_conf_item_t *it,
			   const struct key *k)
{
	char **f = FIELD(ld, k, char *);

	free(*f);
	*f = it->value[0] ? drp_strdup(it->value) : NULL;
}

static void set_bool(struct ld *ld, const drp_conf_item_t *it,
		     const struct key *k)
{
	if (drp_conf_parse_bool(it->value, FIELD(ld, k, bool)) < 0)
		err(ld, it, "invalid boolean '%s' (expected yes or no)",
		    CLIP(it->value));
}

static void set_log_level(struct ld *ld, const drp_conf_item_t *it,
			  const struct key *k)
{
	int v = drp_log_level_parse(it->value);

	if (v < 0) {
		err(ld, it,
		    "invalid log level '%s' (expected err, warning, notice, "
		    "info or debug)",
		    CLIP(it->value));
		return;
	}
	ld->c->log_level = v;
}

static void set_uint(struct ld *ld, const drp_conf_item_t *it,
		     const struct key *k)
{
	unsigned v;
	unsigned min = (unsigned)k->spec.min, max = (unsigned)k->spec.max;
	int r = parse_uint(it->value, strlen(it->value), min, max, &v);

	if (r == -EINVAL)
		err(ld, it, "invalid number '%s'", CLIP(it->value));
	else if (r < 0)
		err(ld, it, "value '%s' out of range %u..%u", CLIP(it->value),
		    min, max);
	else
		*FIELD(ld, k, unsigned) = v;
}

static void set_size_uint(struct ld *ld, const drp_conf_item_t *it,
			  const struct key *k)
{
	unsigned min = (unsigned)k->spec.min, max = (unsigned)k->spec.max;
	uint64_t v;

	if (!get_size(ld, it, &v))
		return;
	if (v < min || v > max) {
		err(ld, it, "value '%s' out of range %u..%u", CLIP(it->value),
		    min, max);
		return;
	}
	*FIELD(ld, k, unsigned) = (unsigned)v;
}

static void set_timeout(struct ld *ld, const drp_conf_item_t *it,
			const struct key *k)
{
	double v;

	if (get_duration(ld, it, true, &v))
		*FIELD(ld, k, double) = v;
}

static void set_push(struct ld *ld, const drp_conf_item_t *it,
		     const struct key *k)
{
	get_push(ld, it, &ld->c->push);
}

/* Empty: the default place (NULL); off: none (""). */
static void set_admin_socket(struct ld *ld, const drp_conf_item_t *it,
			     const struct key *k)
{
	free(ld->c->admin_socket);
	ld->c->admin_socket = NULL;
	if (strcmp(it->value, "off") == 0)
		ld->c->admin_socket = drp_strdup("");
	else if (it->value[0] != '\0')
		ld->c->admin_socket = drp_strdup(it->value);
}

#define F(field) offsetof(drp_conf_t, field)

/* A key with its type (min and max for a number). */
#define KEY(name, ty) .spec = {.key = (name), .type = DRP_KEY_##ty}
#define KEY_RANGE(name, ty, lo, hi)                                            \
	.spec = {.key = (name), .type = DRP_KEY_##ty, .min = (lo), .max = (hi)}

static const struct key proxy_keys[] = {
	{KEY("listen", STRING), .set = set_listen},
	{KEY("workers", STRING), .set = set_workers},
	{KEY("tcp_congestion", STRING), .set = set_tcp_congestion},
	{KEY("registries", STRING), .set = set_registries},
	{KEY("allow", STRING), .set = set_allow},
	{KEY("proxy_protocol_from", STRING), .set = set_proxy_protocol_from},
	{KEY("tunnel_ports", STRING), .set = set_ports},
	{KEY("ca_dir", PATH), .set = set_string, .off = F(ca_dir)},
	{.spec = {.key = "ca_key_passphrase",
		  .type = DRP_KEY_STRING,
		  .flags = DRP_KEY_SECRET},
	 .set = set_string_opt,
	 .off = F(ca_key_passphrase)},
	{KEY("ca_key_passphrase_file", PATH), .set = set_string_opt,
	 .off = F(ca_key_passphrase_file)},
	{KEY("upstream_ca_file", PATH), .set = set_string_opt,
	 .off = F(upstream_ca_file)},
	{KEY("verify_upstream", BOOL), .set = set_bool,
	 .off = F(verify_upstream)},
	{KEY("access_log", PATH), .set = set_string, .off = F(access_log)},
	{KEY("access_log_format", STRING), .set = set_log_format},
	{KEY("error_log", PATH), .set = set_string, .off = F(error_log)},
	{KEY("log_level", STRING), .set = set_log_level},
	{KEY("users_file", PATH), .set = set_string_opt, .off = F(users_file)},
	{KEY("require_users", BOOL), .set = set_bool, .off = F(require_users)},
	{KEY("tunnel_only", STRING), .set = set_tunnel_only},
	{KEY_RANGE("max_connections", INT, 1, 1000000), .set = set_uint,
	 .off = F(max_connections)},
	{KEY_RANGE("max_header_size", INT, 1024, 1048576), .set = set_size_uint,
	 .off = F(max_header_size)},
	{KEY("header_timeout", DURATION), .set = set_timeout,
	 .off = F(header_timeout)},
	{KEY("idle_timeout", DURATION), .set = set_timeout,
	 .off = F(idle_timeout)},
	{KEY("connect_timeout", DURATION), .set = set_timeout,
	 .off = F(connect_timeout)},
	{KEY("handshake_timeout", DURATION), .set = set_timeout,
	 .off = F(handshake_timeout)},
	{KEY("body_timeout", DURATION), .set = set_timeout,
	 .off = F(body_timeout)},
	{KEY("tunnel_idle_timeout", DURATION), .set = set_timeout,
	 .off = F(tunnel_idle_timeout)},
	{KEY("drain_timeout", DURATION), .set = set_timeout,
	 .off = F(drain_timeout)},
	{KEY("push", STRING), .set = set_push},
	{KEY("mirror", BOOL), .set = set_bool, .off = F(mirror)},
	{KEY("mirror_tls_listen", STRING), .set = set_mirror_tls_listen},
	{KEY("mirror_tls_cert", PATH), .set = set_string_opt,
	 .off = F(mirror_tls_cert)},
	{KEY("mirror_tls_key", PATH), .set = set_string_opt,
	 .off = F(mirror_tls_key)},
	{KEY("mirror_names", STRING), .set = set_mirror_names},
	{KEY("upstream_proxy", STRING), .set = set_upstream_proxy},
	{KEY("upstream_proxy_password_file", PATH), .set = set_string_opt,
	 .off = F(upstream_proxy_password_file)},
	{KEY("no_upstream_proxy", STRING), .set = set_no_upstream_proxy},
	{KEY("admin_socket", PATH), .set = set_admin_socket},
	{KEY("admin_listen", STRING), .set = set_admin_listen},
	{KEY("admin_allow", STRING), .set = set_admin_allow},
};

/* ---- [cache] ---- */

static void set_backend(struct ld *ld, const drp_conf_item_t *it,
			const struct key *k)
{
	if (strcmp(it->value, "fs") != 0 && strcmp(it->value, "memory") != 0 &&
	    strcmp(it->value, "s3") != 0) {
		err(ld, it, "unknown backend '%s' (expected fs, memory or s3)",
		    CLIP(it->value));
		return;
	}
	/* s3: the fs cache stays, as the local tier in front. */
	ld->c->cache_s3 = strcmp(it->value, "s3") == 0;
	free(ld->c->cache_backend);
	ld->c->cache_backend = drp_strdup(ld->c->cache_s3 ? "fs" : it->value);
}

/* A size, 0 included (keep_mapped). */
static void set_size_u64(struct ld *ld, const drp_conf_item_t *it,
			 const struct key *k)
{
	uint64_t v;

	if (get_size(ld, it, &v))
		*FIELD(ld, k, uint64_t) = v;
}

/* A size greater than 0 (max_size, local_max_size). */
static void set_size_nonzero(struct ld *ld, const drp_conf_item_t *it,
			     const struct key *k)
{
	uint64_t v;

	if (!get_size(ld, it, &v))
		return;
	if (v == 0) {
		err(ld, it, "size must be greater than 0");
		return;
	}
	*FIELD(ld, k, uint64_t) = v;
}

static void set_tag_ttl(struct ld *ld, const drp_conf_item_t *it,
			const struct key *k)
{
	double v;

	if (get_duration(ld, it, false, &v))
		ld->c->tag_ttl = v;
}

static void set_tag_ttl_match(struct ld *ld, const drp_conf_item_t *it,
			      const struct key *k)
{
	add_ttl_rule(ld, it, &ld->c->tag_ttl_rules, &ld->c->n_tag_ttl_rules);
}

static void set_max_age(struct ld *ld, const drp_conf_item_t *it,
			const struct key *k)
{
	double v;

	if (get_duration(ld, it, false, &v))
		ld->c->cache_max_age = v;
}

static void set_s3_addressing(struct ld *ld, const drp_conf_item_t *it,
			      const struct key *k)
{
	if (strcmp(it->value, "path") == 0)
		ld->c->s3_virtual = false;
	else if (strcmp(it->value, "virtual") == 0)
		ld->c->s3_virtual = true;
	else
		err(ld, it, "invalid value '%s' (expected path or virtual)",
		    CLIP(it->value));
}

static void set_s3_endpoint(struct ld *ld, const drp_conf_item_t *it,
			    const struct key *k)
{
	if (strncmp(it->value, "http://", 7) != 0 &&
	    strncmp(it->value, "https://", 8) != 0) {
		err(ld, it,
		    "invalid endpoint '%s' (expected http://HOST[:PORT] or "
		    "https://HOST[:PORT])",
		    CLIP(it->value));
		return;
	}
	set_string(ld, it, k);
}

static void set_s3_abandoned_after(struct ld *ld, const drp_conf_item_t *it,
				   const struct key *k)
{
	double v;
	if (!get_duration(ld, it, false, &v))
		return;
	if (v < 1) {
		err(ld, it, "must be at least 1s");
		return;
	}
	ld->c->s3_abandoned_after = v;
}

static const struct key cache_keys[] = {
	{KEY("backend", STRING), .set = set_backend},
	{KEY("dir", PATH), .set = set_string, .off = F(cache_dir)},
	{KEY("max_size", INT), .set = set_size_nonzero,
	 .off = F(cache_max_size)},
	{KEY("local_dir", PATH), .set = set_string, .off = F(cache_local_dir)},
	{KEY("local_max_size", INT), .set = set_size_nonzero,
	 .off = F(cache_local_max_size)},
	{KEY("tag_ttl", DURATION), .set = set_tag_ttl},
	{KEY("tag_ttl_match", STRING), .set = set_tag_ttl_match,
	 .repeat = true},
	{KEY("max_age", DURATION), .set = set_max_age},
	{KEY("keep_mapped", INT), .set = set_size_u64,
	 .off = F(cache_keep_mapped)},
	{KEY("s3_endpoint", STRING), .set = set_s3_endpoint,
	 .off = F(s3_endpoint)},
	{KEY("s3_bucket", STRING), .set = set_string, .off = F(s3_bucket)},
	{KEY("s3_region", STRING), .set = set_string_opt, .off = F(s3_region)},
	{KEY("s3_access_key", STRING), .set = set_string,
	 .off = F(s3_access_key)},
	{KEY("s3_secret_key_file", PATH), .set = set_string,
	 .off = F(s3_secret_key_file)},
	{KEY("s3_addressing", STRING), .set = set_s3_addressing},
	{KEY("s3_abandoned_after", DURATION), .set = set_s3_abandoned_after},
};

/* ---- [fleet] ---- */

/* NAME:PORT: a DNS name (letters, digits, '-', '.'; no leading '-' or
 * '.') and a port 1-65535. */
static bool host_port_ok(const char *v)
{
	const char *colon = strrchr(v, ':');
	if (colon == NULL || colon == v || v[0] == '-' || v[0] == '.')
		return false;
	for (const char *p = v; p < colon; p++)
		if (!isalnum((unsigned char)*p) && *p != '-' && *p != '.')
			return false;
	if (colon[1] == '\0' || strlen(colon + 1) > 5)
		return false;
	for (const char *p = colon + 1; *p; p++)
		if (!isdigit((unsigned char)*p))
			return false;
	long port = strtol(colon + 1, NULL, 10);
	return port >= 1 && port <= 65535;
}

static void set_fleet_redis(struct ld *ld, const drp_conf_item_t *it,
			    const struct key *k)
{
	struct sockaddr_storage ss;
	unsigned len;
	if (it->value[0] == '*' ||
	    (drp_sockaddr_parse(it->value, &ss, &len) < 0 &&
	     !host_port_ok(it->value))) {
		err(ld, it,
		    "invalid address '%s' (expected HOST:PORT, IP:PORT or "
		    "[IPv6]:PORT)",
		    CLIP(it->value));
		return;
	}
	free(ld->c->fleet_redis);
	ld->c->fleet_redis = drp_strdup(it->value);
}

static void set_fleet_duration(struct ld *ld, const drp_conf_item_t *it,
			       const struct key *k)
{
	double v;
	if (!get_duration(ld, it, false, &v))
		return;
	if (v < 1) {
		err(ld, it, "must be at least 1s");
		return;
	}
	*FIELD(ld, k, double) = v;
}

static const struct key fleet_keys[] = {
	{KEY("redis", STRING), .set = set_fleet_redis},
	{KEY("lease_ttl", DURATION), .set = set_fleet_duration,
	 .off = F(fleet_lease_ttl)},
	{KEY("wait", DURATION), .set = set_fleet_duration,
	 .off = F(fleet_wait)},
};

static void apply_keys(struct ld *ld, const drp_ini_section_t *s,
		       struct seen *seen, const struct key *keys, size_t n_keys)
{
	for (unsigned i = 0; i < s->n_items; i++) {
		const drp_ini_item_t *ii = &s->items[i];
		drp_conf_item_t it = {.key = ii->key,
				      .value = ii->value,
				      .file = ld->c->path,
				      .line = ii->line};
		const struct key *k = CORE_KEY(keys, n_keys, it.key);

		if (k == NULL) {
			err(ld, &it, "unknown key");
			continue;
		}
		if (k->repeat || seen_check(ld, seen, &it, false, "key"))
			k->set(ld, &it, k);
	}
}

/* ---- [resolve] ---- */

/* "1.2.3.4", "1.2.3.4:443", "[::1]", "[::1]:443" or a bare "::1". Port 0
 * when absent. */
static int parse_resolve_addr(const char *v, struct sockaddr_storage *ss,
			      unsigned *len)
{
	char buf[INET6_ADDRSTRLEN + 1];
	const char *host = v, *port = NULL;
	size_t hn = strlen(v);
	int fam;

	if (v[0] == '[') {
		const char *close = strchr(v, ']');
		if (close == NULL)
			return -EINVAL;
		host = v + 1;
		hn = (size_t)(close - host);
		if (close[1] == ':')
			port = close + 2;
		else if (close[1] != '\0')
			return -EINVAL;
		fam = AF_INET6;
	} else {
		const char *colon = strchr(v, ':');
		if (colon && strchr(colon + 1, ':') == NULL) {
			hn = (size_t)(colon - v);
			port = colon + 1;
			fam = AF_INET;
		} else {
			fam = colon ? AF_INET6 : AF_INET;
		}
	}
	if (hn == 0 || hn >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, host, hn);
	buf[hn] = '\0';

	unsigned pv = 0;
	if (port && parse_uint(port, strlen(port), 1, 65535, &pv) < 0)
		return -EINVAL;
	memset(ss, 0, sizeof(*ss));
	if (fam == AF_INET) {
		struct sockaddr_in *sin = (void *)ss;
		if (inet_pton(AF_INET, buf, &sin->sin_addr) != 1)
			return -EINVAL;
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)pv);
		*len = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (void *)ss;
		if (inet_pton(AF_INET6, buf, &sin6->sin6_addr) != 1)
			return -EINVAL;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)pv);
		*len = sizeof(*sin6);
	}
	return 0;
}

static void apply_resolve(struct ld *ld, const drp_ini_section_t *s)
{
	drp_conf_t *c = ld->c;

	for (unsigned i = 0; i < s->n_items; i++) {
		const drp_ini_item_t *ii = &s->items[i];
		drp_conf_item_t it = {.key = ii->key,
				      .value = ii->value,
				      .file = c->path,
				      .line = ii->line};
		struct sockaddr_storage ss;
		unsigned len;

		if (!valid_host(it.key, strlen(it.key))) {
			err(ld, &it, "invalid host name");
			continue;
		}
		if (!seen_check(ld, &ld->resolve, &it, true, "host"))
			continue;
		/* One address or several (tried in turn, both families
		 * alternately), one entry each. */
		char **tok;
		unsigned ntok = split_list(it.value, &tok), n = ntok;
		if (n == 0)
			err(ld, &it,
			    "invalid address '' (expected IPV4, IPV4:PORT, "
			    "IPV6 or [IPV6]:PORT)");
		if (n > 8) {
			err(ld, &it, "at most 8 addresses per host");
			n = 0;
		}
		for (unsigned j = 0; j < n; j++) {
			if (parse_resolve_addr(tok[j], &ss, &len) < 0) {
				err(ld, &it,
				    "invalid address '%s' (expected IPV4, "
				    "IPV4:PORT, IPV6 or [IPV6]:PORT)",
				    CLIP(tok[j]));
				continue;
			}
			c->resolve = drp_realloc(c->resolve,
						 (c->n_resolve + 1) *
							 sizeof(*c->resolve));
			drp_conf_resolve_t *r = &c->resolve[c->n_resolve++];
			r->host = lower_dup(it.key, strlen(it.key));
			r->addr = ss;
			r->addrlen = len;
		}
		free_list(tok, ntok);
	}
}

/* ---- [registry "NAME"] ---- */

const drp_conf_item_t *drp_conf_registry_get(const drp_conf_registry_t *r,
					     const char *key)
{
	for (unsigned i = 0; r != NULL && i < r->n_items; i++)
		if (strcmp(r->items[i].key, key) == 0)
			return &r->items[i];
	return NULL;
}

/*
 * One key table, the plugins' (drp_plugin_key_t, <drp/plugin.h>), for
 * the core's [registry] keys and every plugin's: NULL-terminated; keys
 * NULL is an empty table.
 */
const drp_plugin_key_t *drp_schema_key_find(const drp_plugin_key_t *keys,
					    const char *key)
{
	return spec_find(keys, SIZE_MAX, sizeof(*keys), key);
}

/* "password_file" -> the "password" of keys if it has DRP_KEY_FILE. */
static const drp_plugin_key_t *file_key_of(const drp_plugin_key_t *keys,
					   const char *key)
{
	size_t n = strlen(key);
	if (n <= 5 || strcmp(key + n - 5, "_file") != 0)
		return NULL;
	for (const drp_plugin_key_t *k = keys; k != NULL && k->key; k++)
		if ((k->flags & DRP_KEY_FILE) && strlen(k->key) == n - 5 &&
		    strncmp(k->key, key, n - 5) == 0)
			return k;
	return NULL;
}

/* users = NAME... (proxy users of [proxy] users_file) or "*" (any of
 * them). Names are what htpasswd accepts: no ':' and no control or blank
 * characters. */
static void set_reg_users(struct ld *ld, const drp_conf_item_t *it,
			  const struct key *k)
{
	drp_conf_registry_t *r = ld->reg;
	char **tok;
	unsigned n = split_list(it->value, &tok);

	if (n == 0)
		err(ld, it, "expected user names of users_file, or *");
	r->has_users = true;
	for (unsigned i = 0; i < n; i++) {
		if (strcmp(tok[i], "*") == 0) {
			if (n > 1) {
				err(ld, it,
				    "'*' (any proxy user) stands alone");
				break;
			}
			r->any_user = true;
			continue;
		}
		r->users = drp_realloc(r->users,
				       (r->n_users + 1) * sizeof(*r->users));
		r->users[r->n_users++] = drp_strdup(tok[i]);
		for (const unsigned char *p = (const unsigned char *)tok[i]; *p;
		     p++) {
			if (*p == ':' || *p < 0x20 || *p == 0x7f) {
				err(ld, it, "invalid user name '%s'",
				    CLIP(tok[i]));
				break;
			}
		}
	}
	free_list(tok, n);
}

static void set_reg_nonempty(struct ld *ld, const drp_conf_item_t *it,
			     const struct key *k)
{
	get_nonempty(ld, it);
}

static void set_reg_allow(struct ld *ld, const drp_conf_item_t *it,
			  const struct key *k)
{
	drp_conf_registry_t *r = ld->reg;

	r->has_allow = get_cidrs(ld, it, &r->allow, &r->n_allow);
}

static void set_reg_push(struct ld *ld, const drp_conf_item_t *it,
			 const struct key *k)
{
	get_push(ld, it, &ld->reg->push);
}

static void set_reg_tag_ttl(struct ld *ld, const drp_conf_item_t *it,
			    const struct key *k)
{
	drp_conf_registry_t *r = ld->reg;

	r->has_tag_ttl = get_duration(ld, it, false, &r->tag_ttl);
}

static void set_reg_token_realm(struct ld *ld, const drp_conf_item_t *it,
				const struct key *k)
{
	if (drp_conf_parse_bool(it->value, &ld->reg->token_realm) < 0)
		err(ld, it, "invalid boolean '%s' (expected yes or no)",
		    CLIP(it->value));
}

static void set_reg_tag_ttl_match(struct ld *ld, const drp_conf_item_t *it,
				  const struct key *k)
{
	drp_conf_registry_t *r = ld->reg;

	add_ttl_rule(ld, it, &r->tag_ttl_rules, &r->n_tag_ttl_rules);
}

/*
 * The keys every [registry] section may hold, whatever its plugin: the
 * core checks them at load and types those it applies per request into
 * drp_conf_registry_t. A plugin declaring one of them adds its flags
 * (e.g. REQUIRED); any other key of a section is its plugin's to
 * declare. The user-facing list: docker-registry-proxy.ini(5).
 */
static const struct key registry_keys[] = {
	{.spec = {.key = "plugin",
		  .type = DRP_KEY_STRING,
		  .help = "the auth plugin: a name, or a module's path"},
	 .set = set_reg_nonempty},
	{.spec = {.key = "username",
		  .type = DRP_KEY_STRING,
		  .help = "the proxy's user name at the registry"}},
	{.spec = {.key = "password",
		  .type = DRP_KEY_STRING,
		  .flags = DRP_KEY_SECRET | DRP_KEY_FILE,
		  .help = "the proxy's password at the registry"}},
	{.spec = {.key = "password_file",
		  .type = DRP_KEY_PATH,
		  .help = "a file holding that password"},
	 .set = set_reg_nonempty},
	{.spec = {.key = "allow",
		  .type = DRP_KEY_STRING,
		  .help = "client networks given the section's content"},
	 .set = set_reg_allow},
	{.spec = {.key = "users",
		  .type = DRP_KEY_STRING,
		  .help = "proxy users given the section's content, or *"},
	 .set = set_reg_users},
	{.spec = {.key = "push",
		  .type = DRP_KEY_STRING,
		  .help = "uploads: client, proxy or deny"},
	 .set = set_reg_push},
	{.spec = {.key = "tag_ttl",
		  .type = DRP_KEY_DURATION,
		  .help = "how long a cached tag is fresh"},
	 .set = set_reg_tag_ttl},
	{.spec = {.key = "tag_ttl_match",
		  .type = DRP_KEY_STRING,
		  .help = "DURATION REGEX: the lifetime of the tags whose "
			  "manifest path matches"},
	 .set = set_reg_tag_ttl_match,
	 .repeat = true},
	{.spec = {.key = "token_realm",
		  .type = DRP_KEY_BOOL,
		  .help = "the credentials also answer challenges naming a "
			  "realm on this host"},
	 .set = set_reg_token_realm},
};

const drp_plugin_key_t *drp_schema_registry_key(const char *key)
{
	const struct key *k =
		CORE_KEY(registry_keys, DRP_ARRAY_SIZE(registry_keys), key);
	return k != NULL ? &k->spec : NULL;
}

/* A plugin's key: the value as its declared type (the core's own keys
 * were checked at load). */
static void check_plugin_value(const drp_conf_registry_t *sec,
			       const drp_conf_item_t *it,
			       const drp_plugin_key_t *k,
			       drp_conf_errors_t *errs)
{
	const char *shown =
		(k->flags & DRP_KEY_SECRET) ? "(secret)" : it->value;
	bool any = k->min == 0 && k->max == 0;
	switch (k->type) {
	case DRP_KEY_INT: {
		char *end;
		errno = 0;
		long long v = strtoll(it->value, &end, 10);
		if (errno != 0 || end == it->value || *end != '\0')
			drp_conf_registry_error(errs, sec, it,
						"value '%s' is not an integer",
						shown);
		else if (!any && (v < k->min || v > k->max))
			drp_conf_registry_error(
				errs, sec, it,
				"value '%s' out of range %" PRId64 "..%" PRId64,
				shown, k->min, k->max);
		break;
	}
	case DRP_KEY_BOOL: {
		bool b;
		if (drp_conf_parse_bool(it->value, &b) < 0)
			drp_conf_registry_error(errs, sec, it,
						"value '%s' is not a boolean",
						shown);
		break;
	}
	case DRP_KEY_DURATION: {
		double d;
		if (drp_conf_parse_duration(it->value, &d) < 0)
			drp_conf_registry_error(errs, sec, it,
						"value '%s' is not a duration",
						shown);
		else if (!any && (d < (double)k->min || d > (double)k->max))
			drp_conf_registry_error(
				errs, sec, it,
				"value '%s' out of range %" PRId64 "..%" PRId64,
				shown, k->min, k->max);
		break;
	}
	case DRP_KEY_PATH:
		if (it->value[0] == '\0')
			drp_conf_registry_error(errs, sec, it,
						"empty file name");
		break;
	default:
		break;
	}
}

unsigned drp_schema_check_plugin(const drp_conf_registry_t *sec,
				 const char *plugin,
				 const drp_plugin_key_t *keys,
				 drp_conf_errors_t *errs)
{
	unsigned before = errs->n;
	for (unsigned i = 0; i < sec->n_items; i++) {
		const drp_conf_item_t *it = &sec->items[i];
		const drp_plugin_key_t *k = drp_schema_key_find(keys, it->key);
		const drp_plugin_key_t *fk = file_key_of(keys, it->key);
		bool core = drp_schema_registry_key(it->key) != NULL;
		if (k != NULL && !core)
			check_plugin_value(sec, it, k, errs);
		if (fk != NULL && drp_conf_registry_get(sec, fk->key) != NULL)
			drp_conf_registry_error(errs, sec, it,
						"conflicts with %s", fk->key);
		if (k == NULL && fk == NULL && !core) {
			if (plugin != NULL)
				drp_conf_registry_error(
					errs, sec, it,
					"unknown key for plugin '%s'", plugin);
			else
				drp_conf_registry_error(
					errs, sec, it,
					"unknown key (the section names no "
					"plugin)");
		}
	}
	for (const drp_plugin_key_t *k = keys; k != NULL && k->key; k++) {
		if (!(k->flags & DRP_KEY_REQUIRED) ||
		    drp_conf_registry_get(sec, k->key) != NULL)
			continue;
		char fkey[128];
		snprintf(fkey, sizeof(fkey), "%s_file", k->key);
		if ((k->flags & DRP_KEY_FILE) &&
		    drp_conf_registry_get(sec, fkey) != NULL)
			continue;
		drp_conf_registry_key_error(
			errs, sec, NULL, k->key, "required by plugin '%s'%s%s",
			plugin, (k->flags & DRP_KEY_FILE) ? " (or " : "",
			(k->flags & DRP_KEY_FILE) ? "the _file form)" : "");
	}
	return errs->n - before;
}

static void registry_free_typed(drp_conf_registry_t *r)
{
	drp_conf_ttl_rules_free(r->tag_ttl_rules, r->n_tag_ttl_rules);
	free(r->allow);
	for (unsigned i = 0; i < r->n_users; i++)
		free(r->users[i]);
	free(r->users);
}

/* NULL if the host part is invalid; *bad_path set if the repository
 * prefix is. */
static char *norm_registry_name(const char *name, bool *bad_path)
{
	const char *slash = strchr(name, '/');
	size_t hn = slash ? (size_t)(slash - name) : strlen(name);

	*bad_path = false;
	char *host = norm_host_port(name, hn, true);
	if (host == NULL || slash == NULL)
		return host;
	if (!valid_repo_prefix(slash + 1)) {
		*bad_path = true;
		free(host);
		return NULL;
	}
	size_t n = strlen(host) + strlen(slash) + 1;
	char *out = drp_malloc(n);
	snprintf(out, n, "%s%s", host, slash);
	free(host);
	return out;
}

static void registry_free_items(drp_conf_item_t *items, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		free(items[i].key);
		free(items[i].value);
	}
	free(items);
}

static void apply_registry(struct ld *ld, const drp_ini_section_t *s)
{
	drp_conf_t *c = ld->c;
	bool bad_path, ok = true;

	if (s->arg == NULL) {
		err_at(ld, s->line, s->label,
		       "missing name (expected [registry \"HOST\"])");
		return;
	}
	char *name = norm_registry_name(s->arg, &bad_path);
	if (name == NULL && bad_path) {
		err_at(ld, s->line, s->label,
		       "invalid repository prefix in registry name (lower-case "
		       "letters and digits, separated by '/', '.', '_', '__' "
		       "or '-')");
		ok = false;
	} else if (name == NULL) {
		err_at(ld, s->line, s->label,
		       "invalid registry name (expected HOST, HOST:PORT or "
		       "*.DOMAIN, optionally followed by /REPOSITORY/PREFIX)");
		ok = false;
	}
	for (unsigned i = 0; name && i < c->n_registry; i++) {
		if (strcmp(c->registry[i].name, name) == 0) {
			err_at(ld, s->line, s->label,
			       "duplicate section (first at line %u)",
			       c->registry[i].line);
			ok = false;
			break;
		}
	}

	bool has_plugin = false;
	for (unsigned i = 0; i < s->n_items; i++)
		has_plugin =
			has_plugin || strcmp(s->items[i].key, "plugin") == 0;

	struct seen seen = {0};
	drp_conf_registry_t typed = {0};
	ld->reg = &typed;
	drp_conf_item_t *items = drp_calloc(s->n_items, sizeof(*items));
	unsigned n = 0;
	for (unsigned i = 0; i < s->n_items; i++) {
		const drp_ini_item_t *ii = &s->items[i];
		drp_conf_item_t it = {.key = ii->key,
				      .value = ii->value,
				      .file = c->path,
				      .line = ii->line};

		const struct key *k = CORE_KEY(
			registry_keys, DRP_ARRAY_SIZE(registry_keys), it.key);
		if (k == NULL && !has_plugin) {
			err(ld, &it,
			    "unknown key (plugin-specific keys need 'plugin' "
			    "in the section)");
			continue;
		}
		if (!(k != NULL && k->repeat) &&
		    !seen_check(ld, &seen, &it, false, "key"))
			continue;
		if (k != NULL && k->set != NULL)
			k->set(ld, &it, k);
		items[n] = (drp_conf_item_t){
			.key = drp_strdup(it.key),
			.value = drp_strdup(it.value),
			.file = c->path,
			.line = it.line,
		};
		n++;
	}
	seen_free(&seen);
	ld->reg = NULL;
	/* A key that may be read from a file: the value or the file, not
	 * both (reported at the later one). */
	drp_conf_registry_t kept = {.items = items, .n_items = n};
	for (size_t i = 0; i < DRP_ARRAY_SIZE(registry_keys); i++) {
		const drp_plugin_key_t *k = &registry_keys[i].spec;
		char fkey[64];
		if (!(k->flags & DRP_KEY_FILE))
			continue;
		snprintf(fkey, sizeof(fkey), "%s_file", k->key);
		const drp_conf_item_t *v = drp_conf_registry_get(&kept, k->key);
		const drp_conf_item_t *f = drp_conf_registry_get(&kept, fkey);
		if (v && f)
			err(ld, v->line > f->line ? v : f,
			    "%s and %s are mutually exclusive", k->key, fkey);
	}

	const drp_conf_item_t *tr = drp_conf_registry_get(&kept, "token_realm");
	if (tr != NULL && typed.token_realm) {
		if (name != NULL && (strchr(name, '/') || name[0] == '*'))
			err(ld, tr,
			    "needs a section named by the realm's host alone "
			    "(no repository prefix, no wildcard)");
		else if (!has_plugin)
			err(ld, tr,
			    "needs a plugin (the credentials it answers with)");
		else if (typed.has_allow || typed.has_users)
			err(ld, tr,
			    "cannot be combined with allow or users (the "
			    "registries it answers for have no section to "
			    "apply them; give each its own section)");
	}
	if (!ok) {
		registry_free_items(items, n);
		registry_free_typed(&typed);
		free(name);
		return;
	}
	typed.name = name;
	typed.file = c->path;
	typed.line = s->line;
	typed.items = items;
	typed.n_items = n;
	c->registry = drp_realloc(c->registry,
				  (c->n_registry + 1) * sizeof(*c->registry));
	c->registry[c->n_registry++] = typed;
}

/* Where a [proxy] key was set (0 if it was not). */
static unsigned proxy_line(const struct ld *ld, const char *key)
{
	for (unsigned i = 0; i < ld->proxy.n; i++)
		if (strcmp(ld->proxy.key[i], key) == 0)
			return ld->proxy.line[i];
	return 0;
}

static unsigned cache_line(const struct ld *ld, const char *key)
{
	for (unsigned i = 0; i < ld->cache.n; i++)
		if (strcmp(ld->cache.key[i], key) == 0)
			return ld->cache.line[i];
	return 0;
}

/* Rules between keys, checked once the whole file is applied (the keys
 * may come in any order). */
static void check_cross(struct ld *ld)
{
	drp_conf_t *c = ld->c;
	unsigned l = proxy_line(ld, "require_users");

	static const char *const s3_needs[] = {"s3_endpoint", "s3_bucket",
					       "s3_access_key",
					       "s3_secret_key_file"};
	for (size_t i = 0; c->cache_s3 && i < DRP_ARRAY_SIZE(s3_needs); i++) {
		if (cache_line(ld, s3_needs[i]) != 0)
			continue;
		drp_conf_error(ld->errs, c->path, cache_line(ld, "backend"),
			       "cache", "backend", "s3 needs %s", s3_needs[i]);
		ld->n_errs++;
	}

	/* The local tier in front of S3: local_dir and local_max_size, else
	 * dir and max_size. They name nothing without a shared tier. */
	static const char *const local_keys[] = {"local_dir", "local_max_size"};
	for (size_t i = 0; !c->cache_s3 && i < DRP_ARRAY_SIZE(local_keys);
	     i++) {
		if (cache_line(ld, local_keys[i]) == 0)
			continue;
		drp_conf_error(ld->errs, c->path, cache_line(ld, local_keys[i]),
			       "cache", local_keys[i],
			       "only with backend = s3 (the local tier in "
			       "front of the bucket; use dir and max_size)");
		ld->n_errs++;
	}
	if (c->cache_s3 && c->cache_local_dir != NULL) {
		free(c->cache_dir);
		c->cache_dir = drp_strdup(c->cache_local_dir);
	}
	if (c->cache_s3 && c->cache_local_max_size != 0)
		c->cache_max_size = c->cache_local_max_size;

	if (c->require_users && c->users_file == NULL) {
		drp_conf_error(ld->errs, c->path, l, "proxy", "require_users",
			       "needs users_file (the proxy users)");
		ld->n_errs++;
	}
	for (unsigned i = 0; i < c->n_registry; i++) {
		const drp_conf_registry_t *r = &c->registry[i];
		const drp_conf_item_t *it = drp_conf_registry_get(r, "users");
		if (it != NULL && c->users_file == NULL) {
			drp_conf_registry_error(ld->errs, r, it,
						"needs [proxy] users_file (the "
						"proxy users)");
			ld->n_errs++;
		}
	}
	l = proxy_line(ld, "mirror_tls_listen");
	if (c->n_mirror_tls_listen > 0 && c->n_mirror_names == 0 &&
	    (c->mirror_tls_cert == NULL || c->mirror_tls_key == NULL)) {
		drp_conf_error(ld->errs, c->path, l, "proxy",
			       "mirror_tls_listen",
			       "needs mirror_tls_cert and mirror_tls_key, or "
			       "mirror_names (a certificate by the proxy's "
			       "CA)");
		ld->n_errs++;
	}
	if ((c->mirror_tls_cert == NULL) != (c->mirror_tls_key == NULL)) {
		const char *key = c->mirror_tls_cert ? "mirror_tls_cert"
						     : "mirror_tls_key";
		drp_conf_error(ld->errs, c->path, proxy_line(ld, key), "proxy",
			       key, "needs %s too",
			       c->mirror_tls_cert ? "mirror_tls_key"
						  : "mirror_tls_cert");
		ld->n_errs++;
	}
	if (c->upstream_proxy_user != NULL &&
	    c->upstream_proxy_password_file == NULL) {
		drp_conf_error(ld->errs, c->path,
			       proxy_line(ld, "upstream_proxy"), "proxy",
			       "upstream_proxy",
			       "a user name needs "
			       "upstream_proxy_password_file");
		ld->n_errs++;
	}
	if (c->upstream_proxy_password_file != NULL &&
	    c->upstream_proxy_user == NULL) {
		drp_conf_error(ld->errs, c->path,
			       proxy_line(ld, "upstream_proxy_password_file"),
			       "proxy", "upstream_proxy_password_file",
			       "needs a user name in upstream_proxy "
			       "(http://USER@HOST:PORT)");
		ld->n_errs++;
	}
	l = proxy_line(ld, "tunnel_only");
	for (unsigned i = 0; i < c->n_tunnel_only; i++) {
		const char *t = c->tunnel_only[i];
		for (unsigned j = 0; j < c->n_registries; j++) {
			if (strcmp(c->registries[j], t) != 0)
				continue;
			drp_conf_error(ld->errs, c->path, l, "proxy",
				       "tunnel_only",
				       "'%s' is also in registries "
				       "(intercepted)",
				       CLIP(t));
			ld->n_errs++;
		}
		for (unsigned j = 0; j < c->n_registry; j++) {
			const char *name = c->registry[j].name;
			size_t hl = strcspn(name, "/");
			if (strlen(t) != hl || strncmp(name, t, hl) != 0)
				continue;
			drp_conf_error(ld->errs, c->path, l, "proxy",
				       "tunnel_only",
				       "'%s' has a [registry \"%s\"] section "
				       "(line %u), which intercepts it",
				       CLIP(t), name, c->registry[j].line);
			ld->n_errs++;
		}
	}
	/* The admin listener answers no proxy request: it cannot share an
	 * address with the client listener. */
	l = proxy_line(ld, "admin_listen");
	for (unsigned i = 0; i < c->n_admin_listen; i++) {
		const drp_conf_listen_t *a = &c->admin_listen[i];
		for (unsigned j = 0; j < c->n_listen; j++) {
			if (c->listen[j].addrlen != a->addrlen ||
			    memcmp(&c->listen[j].addr, &a->addr, a->addrlen) !=
				    0)
				continue;
			drp_conf_error(ld->errs, c->path, l, "proxy",
				       "admin_listen",
				       "'%s' is also in listen (the client "
				       "port)",
				       CLIP(a->text));
			ld->n_errs++;
		}
	}
}

unsigned drp_schema_apply(drp_conf_t *c, const struct drp_ini *ini,
			  drp_conf_errors_t *errs)
{
	struct ld ld = {.c = c, .errs = errs};

	for (unsigned i = 0; i < ini->n_sec; i++) {
		const drp_ini_section_t *s = &ini->sec[i];
		if (s->bad)
			continue;
		bool plain = strcmp(s->name, "proxy") == 0 ||
			     strcmp(s->name, "resolve") == 0 ||
			     strcmp(s->name, "cache") == 0 ||
			     strcmp(s->name, "fleet") == 0;
		ld.label = s->label;
		if (plain && s->arg) {
			err_at(&ld, s->line, s->label,
			       "this section takes no name");
		} else if (strcmp(s->name, "proxy") == 0) {
			apply_keys(&ld, s, &ld.proxy, proxy_keys,
				   DRP_ARRAY_SIZE(proxy_keys));
		} else if (strcmp(s->name, "cache") == 0) {
			apply_keys(&ld, s, &ld.cache, cache_keys,
				   DRP_ARRAY_SIZE(cache_keys));
		} else if (strcmp(s->name, "fleet") == 0) {
			apply_keys(&ld, s, &ld.fleet, fleet_keys,
				   DRP_ARRAY_SIZE(fleet_keys));
		} else if (strcmp(s->name, "resolve") == 0) {
			apply_resolve(&ld, s);
		} else if (strcmp(s->name, "registry") == 0) {
			apply_registry(&ld, s);
		} else {
			err_at(&ld, s->line, s->label,
			       "unknown section (expected proxy, resolve, "
			       "cache, fleet or registry \"NAME\")");
		}
	}
	check_cross(&ld);
	seen_free(&ld.proxy);
	seen_free(&ld.resolve);
	seen_free(&ld.cache);
	seen_free(&ld.fleet);
	return ld.n_errs;
}
