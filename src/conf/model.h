/* SPDX-License-Identifier: MIT */
/*
 * The configuration's data model: what a loaded configuration is, as
 * the rest of the daemon reads it (internal to src/conf/; everyone else
 * includes conf/conf.h). Types only: conf.c makes, loads and frees a
 * drp_conf_t, schema.c fills it from the file, error.c reports on it.
 *
 * Thread: built on the main thread; afterwards read-only and shared by all
 * workers (reload builds a new one and swaps pointers).
 */
#ifndef DRP_CONF_MODEL_H
#define DRP_CONF_MODEL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "util/addr.h"

/* One "key = value" as written, with where it was written. */
typedef struct drp_conf_item {
	char *key;
	char *value;
	const char *file; /* owned by the conf */
	unsigned line;
} drp_conf_item_t;

/* [resolve] host = addr[:port] */
typedef struct drp_conf_resolve {
	char *host;		      /* lower-case */
	struct sockaddr_storage addr; /* port 0 = "the requested port" */
	unsigned addrlen;
} drp_conf_resolve_t;

/* push = (enum values are append-only). */
enum drp_conf_push {
	DRP_CONF_PUSH_UNSET = 0,  /* not in the section: inherited */
	DRP_CONF_PUSH_CLIENT = 1, /* uploads with the client's credentials */
	DRP_CONF_PUSH_PROXY = 2,  /* the proxy's credentials may be used */
	DRP_CONF_PUSH_DENY = 3,	  /* no uploads through the proxy */
};

/*
 * tag_ttl_match = DURATION REGEX ([cache] and [registry], repeatable): a
 * tag whose manifest path, /v2/<repository>/manifests/<tag> as the client
 * asked for it (the subject of the nginx-based image's MANIFEST_CACHE_*
 * tiers), the expression matches is fresh for ttl seconds. PCRE2 syntax,
 * searched (anchored only where the expression says so), case-sensitive.
 */
typedef struct drp_conf_ttl_rule {
	double ttl;
	char *regex;   /* as written */
	void *code;    /* its pcre2_code (8-bit), compiled at load; owned */
	unsigned line; /* where it was written */
} drp_conf_ttl_rule_t;

/* [registry "name"]: every item kept as written. The core's keys
 * (drp_schema_registry_key) are validated at load, those the core applies
 * per request parsed once, here, into typed fields (nothing re-reads
 * their text per request); the plugin's keys are checked against its
 * table when its instance is made (drp_schema_check_plugin). */
typedef struct drp_conf_registry {
	char *name; /* as written in the header, lower-cased host part */
	const char *file;
	unsigned line;
	drp_conf_item_t *items;
	unsigned n_items;
	/* tag_ttl = (seconds); meaningful only if has_tag_ttl. */
	bool has_tag_ttl;
	double tag_ttl;
	/* tag_ttl_match = lines, in file order. */
	drp_conf_ttl_rule_t *tag_ttl_rules;
	unsigned n_tag_ttl_rules;
	enum drp_conf_push push; /* DRP_CONF_PUSH_UNSET if not set */
	/* token_realm = yes: the section's credentials also answer the
	 * Bearer challenges naming a realm on its host, for the registries
	 * the configuration names that have none of their own
	 * (drp_conf_token_realm_find). */
	bool token_realm;
	/* allow = CIDR list; has_allow also for an empty list (nobody). */
	bool has_allow;
	drp_cidr_t *allow;
	unsigned n_allow;
	/* users = NAME... (lower-case as written) or * (any_user); has_users
	 * if the key is set. */
	bool has_users;
	bool any_user;
	char **users;
	unsigned n_users;
} drp_conf_registry_t;

/*
 * The per-registry settings that govern one request, resolved once when
 * it arrives (drp_conf_regset_resolve) from the chain of [registry]
 * sections matching it, most specific first, as the plugin selection
 * ranks them (plugin/select.h: drp_select_chain).
 *  - sec: the first of the chain, the selected section: its plugin,
 *    credentials, allow and users apply, never another section's.
 *  - tag_ttl, push: from the first section of the chain that sets them
 *    (a "docker.io/acme" section without tag_ttl inherits the one of
 *    "docker.io"), else [cache] tag_ttl and [proxy] push.
 *  - tag_ttl_match: the expressions of the sections of the chain up to
 *    and including the one that set tag_ttl, most specific first, then,
 *    if no section set tag_ttl, [cache]'s; the tag decides, so the
 *    lifetime of one tag is drp_conf_tag_ttl's.
 * valid is false until resolved (e.g. a plain, non-intercepted request):
 * then nothing of it applies.
 */
#define DRP_CONF_CHAIN_MAX 16
typedef struct drp_conf_regset {
	bool valid;
	int sec;	/* index into drp_conf_t.registry, -1: none matches */
	double tag_ttl; /* seconds, for a tag no tag_ttl_match matches */
	enum drp_conf_push push; /* never DRP_CONF_PUSH_UNSET */
	int tag_ttl_sec;	 /* section that set it, -1: [cache] */
	int push_sec;		 /* section that set it, -1: [proxy] */
	/* The sections whose tag_ttl_match lines apply, in order. */
	unsigned rule_secs[DRP_CONF_CHAIN_MAX];
	unsigned n_rule_secs;
} drp_conf_regset_t;

typedef struct drp_conf_listen {
	struct sockaddr_storage addr;
	unsigned addrlen;
	char *text; /* as written */
} drp_conf_listen_t;

/* access_log_format = (enum values are append-only). */
enum drp_conf_log_format {
	DRP_CONF_LOG_TEXT = 0, /* one space-separated line (the default) */
	DRP_CONF_LOG_JSON = 1, /* one JSON object per line */
};

typedef struct drp_conf {
	char *path; /* NULL for the embedded defaults */

	/* [proxy] */
	drp_conf_listen_t *listen; /* listen = (space/comma separated) */
	unsigned n_listen;
	unsigned workers; /* 0 = auto (CPU count) */
	/* tcp_congestion = TCP congestion control of client connections
	 * (listen, mirror_tls_listen); NULL: the system's */
	char *tcp_congestion;
	char **registries; /* registries = hosts to intercept (lower-case,
			      "host" or "host:port") */
	unsigned n_registries;
	drp_cidr_t *allow; /* allow = CIDR list */
	unsigned n_allow;
	/* proxy_protocol_from = CIDR list: peers that must open with a PROXY
	 * protocol header (v1 or v2), whose address then stands for the
	 * client's; empty (the default): nobody's header is read. */
	drp_cidr_t *proxy_protocol_from;
	unsigned n_proxy_protocol_from;
	uint16_t *tunnel_ports; /* tunnel_ports = 443 ... */
	unsigned n_tunnel_ports;
	char *ca_key_passphrase;      /* decrypts an encrypted ca.key; NULL */
	char *ca_key_passphrase_file; /* the same from a file; NULL */
	char *ca_dir;		/* ca_dir = (default "./ca" for embedded) */
	char *upstream_ca_file; /* NULL if empty */
	bool verify_upstream;	/* default yes */
	char *access_log;	/* "-" = stderr */
	enum drp_conf_log_format access_log_format; /* default text */
	char *error_log;    /* error_log = "-" (stderr) or path */
	int log_level;	    /* log_level = notice (enum drp_log_level) */
	char *users_file;   /* users_file = (htpasswd), NULL if unset */
	bool require_users; /* require_users = no: 407 without one */
	char **tunnel_only; /* tunnel_only = hosts never intercepted on the
			       proxy's own initiative ("host", "host:port",
			       "*.domain"; lower-case) */
	unsigned n_tunnel_only;
	unsigned max_connections;   /* default 4096 */
	unsigned max_header_size;   /* default 65536 bytes (431 above) */
	double header_timeout;	    /* s, default 30 */
	double idle_timeout;	    /* keep-alive idle, default 60 */
	double connect_timeout;	    /* upstream TCP connect, default 10 */
	double handshake_timeout;   /* TLS handshake, default 15 */
	double body_timeout;	    /* body stall (no progress), default 120 */
	double tunnel_idle_timeout; /* default 600 */
	double drain_timeout;	    /* SIGTERM: transfers get this long to
				       finish, default 8 (docker stop's
				       grace is 10) */
	/* push = client: uploads to a registry whose [registry] sections
	 * do not set push (never DRP_CONF_PUSH_UNSET). */
	enum drp_conf_push push;

	/* Registry-mirror mode: origin-form /v2/ requests on the listen
	 * ports (mirror = yes), and on TLS listeners of their own. */
	bool mirror;
	drp_conf_listen_t *mirror_tls_listen; /* none by default */
	unsigned n_mirror_tls_listen;
	char *mirror_tls_cert; /* PEM files, NULL if unset */
	char *mirror_tls_key;
	char **mirror_names; /* names for a certificate by the proxy's CA */
	unsigned n_mirror_names;

	/* A parent proxy for every upstream connection (upstream_proxy =
	 * http://[user@]host:port), NULL if unset. */
	char *upstream_proxy_host; /* lower-case, IPv6 without brackets */
	uint16_t upstream_proxy_port;
	char *upstream_proxy_user;	    /* NULL: no Proxy-Authorization */
	char *upstream_proxy_password_file; /* NULL if unset */
	/* no_upstream_proxy: names ("host"), suffixes (".domain"), and
	 * CIDRs for IP literals; these go direct. */
	char **no_upstream_proxy; /* lower-case names and suffixes */
	unsigned n_no_upstream_proxy;
	drp_cidr_t *no_upstream_proxy_cidr;
	unsigned n_no_upstream_proxy_cidr;
	char *admin_socket; /* admin_socket = path of the admin socket;
			       NULL: admin.sock beside ca_dir; "": off */
	/* admin_listen = addresses of the admin listener (/metrics,
	 * /healthz, /readyz); none by default: they are answered on the
	 * client port. */
	drp_conf_listen_t *admin_listen;
	unsigned n_admin_listen;
	drp_cidr_t *admin_allow; /* admin_allow = CIDR list */
	unsigned n_admin_allow;

	/* [resolve] */
	drp_conf_resolve_t *resolve;
	unsigned n_resolve;

	/* [cache] */
	char *cache_backend;	 /* backend = fs */
	char *cache_dir;	 /* dir = (default "./cache" for embedded) */
	uint64_t cache_max_size; /* max_size = 32G (K/M/G/T suffixes) */
	double tag_ttl;		 /* tag_ttl = 5m (s/m/h/d suffixes) */
	drp_conf_ttl_rule_t *tag_ttl_rules; /* tag_ttl_match = lines */
	unsigned n_tag_ttl_rules;
	/* The match limits of every tag_ttl_match (a pcre2_match_context),
	 * made with the first expression; NULL if there is none. */
	void *tag_ttl_mctx;
	double cache_max_age; /* max_age = 0 (never): objects unused
				 this long are removed */
	/* keep_mapped = 0 (off): bytes of large stored objects' windows
	 * kept mapped between requests (fs backend; the reload applies
	 * it) */
	uint64_t cache_keep_mapped;
	/* backend = s3: the fs cache is the local tier, an S3 bucket the
	 * shared one (registry/s3tier.c). The local tier is in local_dir
	 * and holds local_max_size; without them in dir and max_size (once
	 * the file is read, cache_dir and cache_max_size hold the tier's). */
	bool cache_s3;
	char *cache_local_dir;	       /* local_dir = (NULL: dir) */
	uint64_t cache_local_max_size; /* local_max_size = (0: max_size) */
	char *s3_endpoint;	       /* http(s)://host[:port] */
	char *s3_bucket;
	char *s3_region; /* NULL: us-east-1 */
	char *s3_access_key;
	char *s3_secret_key_file;  /* the secret's only place */
	bool s3_virtual;	   /* s3_addressing = virtual */
	double s3_abandoned_after; /* unfinished uploads older: swept */

	/* [fleet] */
	char *fleet_redis;	/* redis = IP:PORT ("" or NULL: none) */
	double fleet_lease_ttl; /* lease_ttl = 15s */
	double fleet_wait;	/* wait = 5m: for another proxy's fill */

	/* [registry "name"] sections in file order */
	drp_conf_registry_t *registry;
	unsigned n_registry;
} drp_conf_t;

#endif
