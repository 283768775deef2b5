"""Writes broken copies of a manifest file for the self-test of scripts/check-k8s.sh.

  python3 break.py SOURCE OUTDIR

SOURCE must hold a Deployment (deploy/kubernetes/app/api.yaml). Each copy differs from it in
one way, so a check that passes SOURCE and fails the copy is shown to look at that one thing:
  wrong-type.yaml           spec.replicas is a string
  unknown-field.yaml        a container field with a typo (imagePullPolicyy)
  inline-secret.yaml        DATABASE_URL (with a password) as an inline env value
  secret-with-data.yaml     a Secret with data beside the Deployment
  no-security-context.yaml  neither the pod's nor the containers' securityContext
"""

import copy
import sys
from pathlib import Path

import yaml

source, outdir = Path(sys.argv[1]), Path(sys.argv[2])
docs = list(yaml.safe_load_all(source.read_text(encoding="utf-8")))
deployment_at = next(i for i, d in enumerate(docs) if d and d.get("kind") == "Deployment")


def write(name, mutate):
    broken = copy.deepcopy(docs)
    mutate(broken, broken[deployment_at])
    (outdir / name).write_text(yaml.safe_dump_all(broken, sort_keys=False), encoding="utf-8")


def containers(deployment):
    return deployment["spec"]["template"]["spec"]["containers"]


def wrong_type(docs, d):
    d["spec"]["replicas"] = "two"


def unknown_field(docs, d):
    containers(d)[0]["imagePullPolicyy"] = "Always"


def inline_secret(docs, d):
    containers(d)[0]["env"].append({"name": "DATABASE_URL", "value": "postgres://vidscope:not-a-password@db:5432/vidscope"})


def secret_with_data(docs, d):
    meta = {"name": "vidscope-secrets", "namespace": d["metadata"]["namespace"]}
    docs.append({"apiVersion": "v1", "kind": "Secret", "metadata": meta, "stringData": {"REDIS_URL": "redis://redis:6379"}})


def no_security_context(docs, d):
    d["spec"]["template"]["spec"].pop("securityContext")
    for c in containers(d):
        c.pop("securityContext")


outdir.mkdir(parents=True, exist_ok=True)
write("wrong-type.yaml", wrong_type)
write("unknown-field.yaml", unknown_field)
write("inline-secret.yaml", inline_secret)
write("secret-with-data.yaml", secret_with_data)
write("no-security-context.yaml", no_security_context)
