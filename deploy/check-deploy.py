#!/usr/bin/python3
# SPDX-License-Identifier: MIT
# make check: every YAML file of deploy/ and docker-compose.yml parses, the
# Kubernetes objects are the ones deploy/README.md describes (one replica,
# Recreate, readiness on /readyz and liveness on /healthz, non-root,
# drain_timeout below the grace period), and the ConfigMap's INI passes the daemon's own -t with the
# Secret's files where the Deployment mounts them. Skips (77) without
# python3-yaml.
import os
import re
import subprocess
import sys
import tempfile

try:
    import yaml
except ImportError:
    print("SKIP: python3-yaml missing")
    sys.exit(77)

src = os.environ.get("top_srcdir", ".")
build = os.environ.get("top_builddir", ".")
fails = []


def check(cond, what):
    if not cond:
        fails.append(what)
        print("FAIL: " + what)


objs = {}
for name in sorted(os.listdir(os.path.join(src, "deploy"))):
    if not name.endswith((".yaml", ".yml")):
        continue
    with open(os.path.join(src, "deploy", name)) as f:
        for doc in yaml.safe_load_all(f):
            check(isinstance(doc, dict) and "kind" in doc, name + ": not a Kubernetes object")
            objs[doc["kind"]] = doc
            check(doc["metadata"].get("namespace", "docker-registry-proxy") == "docker-registry-proxy"
                  or doc["kind"] == "Namespace", name + ": namespace")
for kind in ("Namespace", "ConfigMap", "Secret", "PersistentVolumeClaim", "Deployment", "Service"):
    check(kind in objs, "no " + kind)

with open(os.path.join(src, "docker-compose.yml")) as f:
    compose = yaml.safe_load(f)
svc = compose["services"]["docker-registry-proxy"]
check("3128:3128" in svc["ports"], "compose: port 3128")
check(any(v.endswith(":/ca") for v in svc["volumes"]), "compose: /ca volume")
check(any(v.endswith(":/docker_mirror_cache") for v in svc["volumes"]), "compose: cache volume")

dep = objs["Deployment"]["spec"]
pod = dep["template"]["spec"]
c = pod["containers"][0]
check(dep["replicas"] == 1, "Deployment: one replica")
check(dep["strategy"]["type"] == "Recreate", "Deployment: Recreate")
check(pod["securityContext"]["runAsNonRoot"] is True, "Deployment: non-root")
check(c["readinessProbe"]["httpGet"]["path"] == "/readyz", "Deployment: readiness probe")
check(c["livenessProbe"]["httpGet"]["path"] == "/healthz", "Deployment: liveness probe")
ini = objs["ConfigMap"]["data"]["docker-registry-proxy.ini"]
m = re.search(r"^drain_timeout\s*=\s*(\d+)s$", ini, re.M)
check(m is not None and int(m.group(1)) < pod["terminationGracePeriodSeconds"],
      "drain_timeout below terminationGracePeriodSeconds")
mounts = {v["name"]: v["mountPath"] for v in c["volumeMounts"]}
check(re.search(r"^ca_dir = " + re.escape(mounts["data"]) + "/", ini, re.M) is not None,
      "ca_dir on the persistent volume")

# The daemon's -t on the ConfigMap's INI, with the Secret's files in a
# temporary directory standing for their mount path.
with tempfile.TemporaryDirectory() as tmp:
    sec = os.path.join(tmp, "secrets")
    os.mkdir(sec)
    for k, v in objs["Secret"]["stringData"].items():
        with open(os.path.join(sec, k), "w") as f:
            f.write(v + "\n")
    conf = os.path.join(tmp, "proxy.ini")
    with open(conf, "w") as f:
        f.write(ini.replace(mounts["secrets"], sec))
    env = dict(os.environ)
    plugins = os.path.join(build, "plugins")
    if os.path.isdir(os.path.join(plugins, ".libs")):
        env.setdefault("DRP_PLUGIN_DIR", os.path.abspath(plugins))
    p = subprocess.run([os.path.join(build, "docker-registry-proxy"), "-t", "-c", conf],
                       capture_output=True, text=True, env=env)
    check(p.returncode == 0, "the ConfigMap's INI fails -t: " + p.stdout + p.stderr)

if not fails:
    print("PASS: %d Kubernetes objects and docker-compose.yml" % len(objs))
sys.exit(1 if fails else 0)
