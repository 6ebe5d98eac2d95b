/* SPDX-License-Identifier: MIT */
#include "ctl/cmd.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "cache/inventory.h"
#include "ctl/warm.h"
#include "http/uri.h"
#include "plugin/select.h"
#include "util/mem.h"

const char drp_ctl_usage[] =
	"usage: docker-registry-proxy [-c FILE] cache list [--json]\n"
	"       docker-registry-proxy [-c FILE] cache purge REF|DIGEST...\n"
	"       docker-registry-proxy [-c FILE] cache verify\n"
	"       docker-registry-proxy [-c FILE] warm [--platform OS/ARCH]... "
	"REF...\n"
	"  REF is [HOST[:PORT]/]NAME[:TAG|@sha256:HEX] (Docker Hub when no "
	"HOST);\n"
	"  with the daemon running the commands go through its admin "
	"socket,\n"
	"  else they open the cache directory themselves.\n";

static void add(char ***v, size_t *n, const char *s)
{
	*v = drp_realloc(*v, (*n + 1) * sizeof(**v));
	(*v)[(*n)++] = drp_strdup(s);
}

void drp_ctl_cmd_free(drp_ctl_cmd_t *cmd)
{
	for (size_t i = 0; i < cmd->n_args; i++)
		free(cmd->args[i]);
	for (size_t i = 0; i < cmd->n_platforms; i++)
		free(cmd->platforms[i]);
	free(cmd->args);
	free(cmd->platforms);
	memset(cmd, 0, sizeof(*cmd));
}

static int usage(FILE *err, const char *why, const char *what)
{
	fprintf(err, "docker-registry-proxy: %s%s%s\n%s", why, what ? ": " : "",
		what ? what : "", drp_ctl_usage);
	return DRP_CTL_USAGE;
}

int drp_ctl_cmd_parse(int argc, char **argv, drp_ctl_cmd_t *cmd, FILE *err)
{
	memset(cmd, 0, sizeof(*cmd));
	int i = 1;
	if (argc < 1)
		return usage(err, "no command", NULL);
	if (strcmp(argv[0], "cache") == 0) {
		if (argc < 2)
			return usage(err, "cache: list, purge or verify?",
				     NULL);
		if (strcmp(argv[1], "list") == 0)
			cmd->op = DRP_CTL_LIST;
		else if (strcmp(argv[1], "purge") == 0)
			cmd->op = DRP_CTL_PURGE;
		else if (strcmp(argv[1], "verify") == 0)
			cmd->op = DRP_CTL_VERIFY;
		else
			return usage(err, "unknown cache command", argv[1]);
		i = 2;
	} else if (strcmp(argv[0], "warm") == 0) {
		cmd->op = DRP_CTL_WARM;
	} else {
		return usage(err, "unknown command", argv[0]);
	}
	bool options = true;
	for (; i < argc; i++) {
		const char *a = argv[i];
		if (options && strcmp(a, "--") == 0) {
			options = false;
		} else if (options && cmd->op == DRP_CTL_LIST &&
			   strcmp(a, "--json") == 0) {
			cmd->json = true;
		} else if (options && cmd->op == DRP_CTL_WARM &&
			   (strcmp(a, "--platform") == 0 ||
			    strncmp(a, "--platform=", 11) == 0)) {
			const char *v = a[10] == '=' ? a + 11 : NULL;
			if (v == NULL && i + 1 < argc)
				v = argv[++i];
			if (v == NULL || *v == '\0') {
				drp_ctl_cmd_free(cmd);
				return usage(err, "--platform needs OS/ARCH",
					     NULL);
			}
			/* "linux/amd64,linux/arm64" as docker buildx has it */
			char *copy = drp_strdup(v), *save = NULL;
			for (char *p = strtok_r(copy, ",", &save); p;
			     p = strtok_r(NULL, ",", &save))
				add(&cmd->platforms, &cmd->n_platforms, p);
			free(copy);
		} else if (options && a[0] == '-' && a[1] != '\0') {
			drp_ctl_cmd_free(cmd);
			return usage(err, "unknown option", a);
		} else {
			add(&cmd->args, &cmd->n_args, a);
		}
	}
	bool wants_args = cmd->op == DRP_CTL_PURGE || cmd->op == DRP_CTL_WARM;
	if (wants_args && cmd->n_args == 0) {
		drp_ctl_cmd_free(cmd);
		return usage(err, "which images?", NULL);
	}
	if (!wants_args && cmd->n_args > 0) {
		int r = usage(err, "unexpected argument", cmd->args[0]);
		drp_ctl_cmd_free(cmd);
		return r;
	}
	return 0;
}

static const char *const op_names[] = {"list", "purge", "verify", "warm"};

char *drp_ctl_cmd_encode(const drp_ctl_cmd_t *cmd)
{
	json_t *args = json_array(), *plats = json_array();
	for (size_t i = 0; i < cmd->n_args; i++)
		json_array_append_new(args, json_string(cmd->args[i]));
	for (size_t i = 0; i < cmd->n_platforms; i++)
		json_array_append_new(plats, json_string(cmd->platforms[i]));
	json_t *o = json_pack("{s:i, s:s, s:b, s:o, s:o}", "v", 1, "op",
			      op_names[cmd->op], "json", cmd->json, "args",
			      args, "platforms", plats);
	char *s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	drp_require(s != NULL);
	return s;
}

static int strings_of(json_t *arr, char ***v, size_t *n)
{
	size_t i;
	json_t *e;
	if (arr == NULL)
		return 0;
	if (!json_is_array(arr) || json_array_size(arr) > 1000)
		return -EINVAL;
	json_array_foreach(arr, i, e)
	{
		const char *s = json_string_value(e);
		if (s == NULL || strlen(s) > 1000)
			return -EINVAL;
		add(v, n, s);
	}
	return 0;
}

int drp_ctl_cmd_decode(const char *line, size_t len, drp_ctl_cmd_t *cmd)
{
	memset(cmd, 0, sizeof(*cmd));
	json_t *o = json_loadb(line, len, JSON_REJECT_DUPLICATES, NULL);
	int rc = -EINVAL;
	const char *op = json_string_value(json_object_get(o, "op"));
	if (json_is_object(o) &&
	    json_integer_value(json_object_get(o, "v")) == 1 && op) {
		for (size_t i = 0; i < DRP_ARRAY_SIZE(op_names); i++)
			if (strcmp(op, op_names[i]) == 0) {
				cmd->op = (enum drp_ctl_op)i;
				rc = 0;
			}
	}
	if (rc == 0) {
		cmd->json = json_is_true(json_object_get(o, "json"));
		if (strings_of(json_object_get(o, "args"), &cmd->args,
			       &cmd->n_args) < 0 ||
		    strings_of(json_object_get(o, "platforms"), &cmd->platforms,
			       &cmd->n_platforms) < 0)
			rc = -EINVAL;
	}
	json_decref(o);
	if (rc < 0)
		drp_ctl_cmd_free(cmd);
	return rc;
}

/* ---- cache commands ---- */

/* Does tag record t name the registry, repository and tag of r? Compared
 * as the proxy selects [registry] sections: Docker Hub's aliases, its
 * library/ names. */
static bool tag_matches(const drp_inv_tag_t *t, const drp_warm_ref_t *r)
{
	char host[DRP_HOST_MAX + 1];
	uint16_t port = 443;
	if (strcmp(t->tag, r->tag) != 0 ||
	    drp_uri_parse_host_header(t->host, strlen(t->host), host, &port) <
		    0)
		return false;
	char *a = drp_select_canonical_registry(host, port);
	char *b = drp_select_canonical_registry(r->host, r->port);
	char *repo = drp_select_canonical_repo(a, t->repo);
	bool same = strcmp(a, b) == 0 && strcmp(repo, r->repo) == 0;
	free(a);
	free(b);
	free(repo);
	return same;
}

static int purge(const drp_ctl_cmd_t *cmd, const drp_cache_api_t *api,
		 drp_cache_t *db, drp_cache_stats_t *stats, drp_inv_t *inv,
		 FILE *out, FILE *err)
{
	bool *sel = drp_calloc(inv->n_tags + 1, sizeof(bool));
	const char **digests = drp_calloc(cmd->n_args + 1, sizeof(char *));
	size_t nd = 0;
	int status = DRP_CTL_OK;
	for (size_t i = 0; i < cmd->n_args; i++) {
		const char *a = cmd->args[i];
		bool sha = false;
		if (strncmp(a, "sha256:", 7) == 0) {
			if (!drp_digest_valid(a, strlen(a), &sha) || !sha) {
				fprintf(err, "not a sha256 digest: %s\n", a);
				status = DRP_CTL_FAIL;
				continue;
			}
			digests[nd++] = a;
			continue;
		}
		drp_warm_ref_t r;
		if (drp_warm_parse_ref(a, &r) < 0) {
			fprintf(err,
				"not an image reference: %s "
				"([HOST[:PORT]/]NAME[:TAG|@sha256:HEX])\n",
				a);
			status = DRP_CTL_FAIL;
			continue;
		}
		if (r.digest[0]) {
			digests[nd++] = a + strlen(a) - strlen(r.digest);
			continue;
		}
		bool found = false;
		for (size_t t = 0; t < inv->n_tags; t++) {
			if (tag_matches(&inv->tags[t], &r)) {
				sel[t] = true;
				found = true;
			}
		}
		if (!found) {
			fprintf(err, "no cached tag %s (%s/%s:%s)\n", a, r.host,
				r.repo, r.tag);
			status = DRP_CTL_FAIL;
		}
	}
	int removed = drp_inv_purge(api, db, stats, inv, sel, digests, nd, out);
	if (removed < 0) {
		fprintf(err, "purge: %s\n", strerror(-removed));
		status = DRP_CTL_FAIL;
	}
	free(sel);
	free(digests);
	return status;
}

int drp_ctl_cache_run(const drp_ctl_cmd_t *cmd, const drp_cache_api_t *api,
		      drp_cache_t *db, drp_cache_stats_t *stats,
		      const atomic_bool *stop, FILE *out, FILE *err)
{
	int status = DRP_CTL_OK;
	if (cmd->op == DRP_CTL_VERIFY) {
		drp_inv_verified_t res;
		int rc = drp_inv_verify(api, db, stats, stop, out, &res);
		char sz[32];
		drp_inv_size(res.bytes, sz, sizeof(sz));
		if (rc < 0)
			fprintf(err, "verify %s after %" PRIu64 " objects\n",
				rc == -ECANCELED ? "stopped" : strerror(-rc),
				res.objects);
		fprintf(out,
			"verified %" PRIu64 " object(s), %s: %" PRIu64
			" bad, removed\n",
			res.objects, sz, res.bad);
		return rc < 0 || res.bad > 0 ? DRP_CTL_FAIL : DRP_CTL_OK;
	}
	if (cmd->op != DRP_CTL_LIST && cmd->op != DRP_CTL_PURGE) {
		fprintf(err, "not a cache command\n");
		return DRP_CTL_USAGE;
	}
	drp_inv_t inv;
	int rc = drp_inv_load(api, db, stats, &inv);
	if (rc < 0) {
		fprintf(err, "cannot read the cache: %s\n", strerror(-rc));
		drp_inv_free(&inv);
		return DRP_CTL_FAIL;
	}
	if (cmd->op == DRP_CTL_LIST) {
		drp_cache_stats_t g = {0};
		api->stats(db, &g);
		json_t *l = drp_inv_list_json(&inv, &g, api->name);
		if (cmd->json) {
			char *s = json_dumps(l, JSON_COMPACT);
			if (s)
				fprintf(out, "%s\n", s);
			free(s);
		} else {
			drp_inv_list_text(l, out);
		}
		json_decref(l);
	} else {
		if (!inv.records)
			fprintf(err,
				"the %s backend cannot list its tags: "
				"only digests can be purged\n",
				api->name);
		status = purge(cmd, api, db, stats, &inv, out, err);
	}
	drp_inv_free(&inv);
	return status;
}
