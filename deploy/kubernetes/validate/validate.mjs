// Schema and secret-handling checks of the Kubernetes manifests (scripts/check-k8s.sh runs it
// from target/k8s-validate, where npm installed the pinned packages of package-lock.json).
//
//   node validate.mjs --readme deploy/kubernetes/README.md FILE...
//
// 1. Every object against the Kubernetes API schema of its apiVersion/kind (kubernetes-models:
//    types, required fields, enums, formats). An apiVersion/kind it does not model fails.
//    kubernetes-models accepts unknown fields; check-k8s.sh rejects those with
//    kubernetes-validate --strict.
// 2. Secrets are referenced, never inlined: no Secret object carries data, no env value or
//    ConfigMap key has a secret-like name, no URL carries a password, and every Secret a
//    workload references is one that README.md tells how to create.
// 3. Every vidscope container identifies its replica in OTEL_RESOURCE_ATTRIBUTES from the
//    downward API (the three workloads repeat that block; this keeps them in agreement).
// Exits 1 on any failure.

import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";

const SECRET_NAME =
  /PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|ACCESS_KEY|PRIVATE_KEY|CREDENTIAL|DATABASE_URL|REDIS_URL|DSN|AUTHORIZATION|OTLP_HEADERS/i;
const URL_WITH_PASSWORD = /[a-z][a-z0-9+.-]*:\/\/[^/\s:@]+:[^/\s@]+@/i;
const DOWNWARD = { POD_NAME: "metadata.name", POD_NAMESPACE: "metadata.namespace", NODE_NAME: "spec.nodeName" };
const RESOURCE_ATTRIBUTES = [
  "service.instance.id=$(POD_NAME)",
  "k8s.pod.name=$(POD_NAME)",
  "k8s.namespace.name=$(POD_NAMESPACE)",
  "k8s.node.name=$(NODE_NAME)",
];

const args = process.argv.slice(2);
const readmeAt = args.indexOf("--readme");
if (readmeAt < 0 || !args[readmeAt + 1]) {
  console.error("usage: node validate.mjs --readme README.md FILE...");
  process.exit(2);
}
const readme = readFileSync(args[readmeAt + 1], "utf8");
const files = args.filter((_, i) => i !== readmeAt && i !== readmeAt + 1);
// Secrets the README creates: `kubectl ... create secret generic NAME`.
const documentedSecrets = new Set([...readme.matchAll(/create secret \w+ ([a-z0-9.-]+)/g)].map((m) => m[1]));

const failures = [];
let objects = 0;
const fail = (where, msg) => failures.push(`${where}: ${msg}`);

function podSpecOf(obj) {
  const spec = obj.spec ?? {};
  if (obj.kind === "Pod") return spec;
  if (obj.kind === "CronJob") return spec.jobTemplate?.spec?.template?.spec;
  return spec.template?.spec;
}

function checkContainers(where, obj) {
  const pod = podSpecOf(obj);
  if (!pod) return;
  for (const c of [...(pod.initContainers ?? []), ...(pod.containers ?? [])]) {
    const at = `${where} container ${c.name}`;
    const env = c.env ?? [];
    for (const e of env) {
      if (e.value !== undefined && SECRET_NAME.test(e.name)) {
        fail(at, `env ${e.name} has an inline value: take it from a Secret (valueFrom.secretKeyRef)`);
      }
      if (typeof e.value === "string" && URL_WITH_PASSWORD.test(e.value)) {
        fail(at, `env ${e.name} holds a URL with a password: take it from a Secret`);
      }
      const ref = e.valueFrom?.secretKeyRef?.name;
      if (ref && !documentedSecrets.has(ref)) fail(at, `Secret ${ref} is not created in README.md`);
    }
    for (const f of c.envFrom ?? []) {
      const ref = f.secretRef?.name;
      if (ref && !documentedSecrets.has(ref)) fail(at, `Secret ${ref} is not created in README.md`);
    }
    if (/(^|\/)vidscope-[a-z]+(:|@|$)/.test(c.image ?? "")) {
      for (const [name, path] of Object.entries(DOWNWARD)) {
        const e = env.find((x) => x.name === name);
        if (e?.valueFrom?.fieldRef?.fieldPath !== path) fail(at, `env ${name} must come from fieldRef ${path}`);
      }
      const attrs = env.find((x) => x.name === "OTEL_RESOURCE_ATTRIBUTES");
      const names = env.map((x) => x.name);
      const missing = RESOURCE_ATTRIBUTES.filter((a) => !(attrs?.value ?? "").split(",").includes(a));
      if (missing.length) fail(at, `OTEL_RESOURCE_ATTRIBUTES lacks ${missing.join(", ")}`);
      // $(VAR) expands only from variables defined earlier in the list.
      else if (Object.keys(DOWNWARD).some((n) => names.indexOf(n) > names.indexOf("OTEL_RESOURCE_ATTRIBUTES"))) {
        fail(at, "OTEL_RESOURCE_ATTRIBUTES must come after POD_NAME, POD_NAMESPACE and NODE_NAME");
      }
    }
  }
  for (const v of pod.volumes ?? []) {
    const ref = v.secret?.secretName;
    if (ref && !documentedSecrets.has(ref)) fail(`${where} volume ${v.name}`, `Secret ${ref} is not created in README.md`);
  }
}

function checkSecrets(where, obj) {
  if (obj.kind === "Secret" && (Object.keys(obj.data ?? {}).length || Object.keys(obj.stringData ?? {}).length)) {
    fail(where, "a Secret with data is committed: create it with kubectl (README.md) instead");
  }
  if (obj.kind === "ConfigMap") {
    for (const [key, value] of Object.entries(obj.data ?? {})) {
      if (SECRET_NAME.test(key)) fail(where, `ConfigMap key ${key} looks secret: put it in a Secret`);
      if (URL_WITH_PASSWORD.test(value)) fail(where, `ConfigMap key ${key} holds a URL with a password`);
    }
  }
}

async function checkSchema(where, obj) {
  const { apiVersion, kind } = obj;
  if (typeof apiVersion !== "string" || typeof kind !== "string") {
    fail(where, "apiVersion and kind must be strings");
    return;
  }
  let model;
  try {
    model = (await import(`kubernetes-models/${apiVersion}`))[kind];
  } catch {
    model = undefined;
  }
  if (typeof model !== "function") {
    fail(where, `no Kubernetes API schema for ${apiVersion} ${kind}`);
    return;
  }
  try {
    new model(obj).validate();
  } catch (e) {
    const errors = e.errors ?? [{ instancePath: "", message: e.message }];
    for (const err of errors) fail(where, `schema: ${err.instancePath || "/"} ${err.message}`);
  }
}

for (const file of files) {
  const docs = parseAllDocuments(readFileSync(file, "utf8"));
  for (const [i, doc] of docs.entries()) {
    const where = `${file}#${i + 1}`;
    if (doc.errors.length) {
      for (const e of doc.errors) fail(where, `YAML: ${e.message}`);
      continue;
    }
    const obj = doc.toJS({ maxAliasCount: -1 });
    if (obj === null || obj === undefined) continue;
    objects++;
    const label = `${where} ${obj.kind ?? "?"}/${obj.metadata?.name ?? "?"}`;
    await checkSchema(label, obj);
    checkSecrets(label, obj);
    checkContainers(label, obj);
  }
}

for (const f of failures) console.log(`FAIL ${f}`);
console.log(
  `kubernetes-models schemas + secret/resource-attribute policy: ${files.length} files, ${objects} objects, ${failures.length} failures`,
);
process.exit(failures.length ? 1 : 0);
