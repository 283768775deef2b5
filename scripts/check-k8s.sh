#!/usr/bin/env bash
#
# scripts/check-k8s.sh — validates deploy/kubernetes/ (deploy/kubernetes/README.md).
#
#   scripts/check-k8s.sh
#
# Manifests are every *.yaml / *.yml under deploy/kubernetes/ except helm/ (chart values) and
# validate/ (the tools and their self-test inputs). Checks:
#   1. generated ConfigMaps match their sources     scripts/lib/k8s_gen.py --check
#   2. API schemas + secret handling + replica ids  kubernetes-models (npm), validate.mjs
#   3. API schemas, unknown fields rejected         kubernetes-validate --strict (PyPI)
#   4. policy scan, zero failed checks              checkov (PyPI)
#   5. Helm values parse; rendering them needs the charts, so each gets a NOT VALIDATED line
#   6. self-test: each broken input in validate/broken/ must fail the check it targets
# Tools are pinned (validate/package-lock.json, validate/requirements.txt) and installed under
# target/ on first use. Exits non-zero if any check failed.

set -euo pipefail

repo_root=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
cd -- "$repo_root"

k8s=deploy/kubernetes
tools=$k8s/validate
node_dir=target/k8s-validate
venv=target/k8s-venv
# The oldest Kubernetes the manifests are meant for (README.md).
kube_version=1.30.0

results=()
failed=0
record() { # record NAME RESULT
    results+=("$(printf '%-44s %s' "$1" "$2")")
    [[ $2 == ok* || $2 == "NOT VALIDATED"* ]] || failed=1
}
say() { printf '==> %s\n' "$*" >&2; }

# ------------------------------------------------------------------ tools
install_node_tools() {
    # npm ci into target/, from copies of the committed manifest and lockfile; a changed
    # lockfile reinstalls.
    if ! cmp -s "$tools/package-lock.json" "$node_dir/package-lock.json" || [[ ! -d $node_dir/node_modules ]]; then
        say "installing kubernetes-models (npm ci) into $node_dir"
        mkdir -p "$node_dir"
        cp "$tools/package.json" "$tools/package-lock.json" "$node_dir/"
        (cd "$node_dir" && npm ci --no-audit --no-fund --loglevel=error)
    fi
    cp "$tools/validate.mjs" "$node_dir/"
}
install_python_tools() {
    if ! cmp -s "$tools/requirements.txt" "$venv/requirements.txt"; then
        say "installing checkov and kubernetes-validate into $venv"
        rm -rf "$venv"
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$tools/requirements.txt"
        cp "$tools/requirements.txt" "$venv/requirements.txt"
    fi
}
command -v node >/dev/null || { say "ERROR: node not found (apt-get install nodejs npm)"; exit 1; }
install_node_tools
install_python_tools

# --------------------------------------------------------------- the checks
# Each takes the manifest files as arguments and returns non-zero on failure.
check_schemas() {
    local abs=()
    for f in "$@"; do abs+=("$repo_root/$f"); done
    (cd "$node_dir" && node validate.mjs --readme "$repo_root/$k8s/README.md" "${abs[@]}")
}
check_strict() {
    local out rc=0
    out=$("$venv/bin/kubernetes-validate" --strict --quiet -k "$kube_version" "$@" 2>&1) || rc=$?
    [[ -z $out ]] || printf '%s\n' "$out"
    printf 'kubernetes-validate --strict (Kubernetes %s): %d files, exit %d\n' "$kube_version" "$#" "$rc"
    return "$rc"
}
checkov_summary=""
check_policy() {
    local args=() rc=0
    for f in "$@"; do args+=(-f "$f"); done
    checkov_summary=$("$venv/bin/checkov" --compact --framework kubernetes -o json "${args[@]}" 2>/dev/null |
        python3 "$tools/checkov_report.py") || rc=$?
    printf 'checkov: %s\n' "${checkov_summary:-no report}"
    return "$rc"
}

mapfile -t manifests < <(find "$k8s" \( -path "$k8s/helm" -o -path "$k8s/validate" \) -prune -o \
    -type f \( -name '*.yaml' -o -name '*.yml' \) -print | LC_ALL=C sort)
mapfile -t values < <(find "$k8s/helm" -type f -name '*.values.yaml' | LC_ALL=C sort)
say "${#manifests[@]} manifest files, ${#values[@]} Helm values files"
((${#manifests[@]})) || { say "ERROR: no manifests under $k8s"; exit 1; }

say "generated ConfigMaps"
if python3 scripts/lib/k8s_gen.py --check; then record "generated ConfigMaps (k8s_gen.py --check)" ok; else
    record "generated ConfigMaps (k8s_gen.py --check)" FAIL; fi

say "kubernetes-models schemas and secret handling"
if check_schemas "${manifests[@]}"; then record "schemas + secrets (kubernetes-models)" ok; else
    record "schemas + secrets (kubernetes-models)" FAIL; fi

say "kubernetes-validate --strict"
if check_strict "${manifests[@]}"; then record "schemas, no unknown fields (kubernetes-validate)" ok; else
    record "schemas, no unknown fields (kubernetes-validate)" FAIL; fi

say "checkov"
if check_policy "${manifests[@]}"; then record "checkov" "ok ($checkov_summary)"; else
    record "checkov" "FAIL (${checkov_summary:-see above})"; fi

say "Helm values"
for v in "${values[@]}"; do
    if python3 -c 'import sys, yaml; yaml.safe_load(open(sys.argv[1]))' "$v"; then
        # The first comment line of each file names the chart and the version it was written for.
        cmd=$(grep -m1 -o 'helm upgrade --install [a-z-]* [a-z/-]* --version [0-9.]*' "$v" || true)
        [[ -n $cmd ]] || { record "$v" "FAIL (no helm command in its header)"; continue; }
        printf 'NOT VALIDATED: %s renders with its chart -- %s\n' "$v" \
            "${cmd/upgrade --install/template} -n vidscope -f $v | kubeconform -strict -summary" >&2
        record "$v" "NOT VALIDATED (YAML parses; chart not here)"
    else
        record "$v" "FAIL (YAML)"
    fi
done

# A check that cannot fail proves nothing: broken copies of app/api.yaml (validate/break.py)
# must each fail the check that looks at what was broken, with the expected message.
say "self-test on broken copies of $k8s/app/api.yaml"
broken=target/k8s-broken
rm -rf "$broken"
python3 "$tools/break.py" "$k8s/app/api.yaml" "$broken"
selftest() { # selftest FILE CHECK PATTERN [OTHER FILES...]
    local file=$1 check=$2 pattern=$3 out name
    shift 3
    name="self-test: $(basename "$file") fails $check"
    if out=$("$check" "$file" "$@" 2>&1); then
        record "$name" "FAIL (it passed)"
    elif ! grep -Eq -- "$pattern" <<<"$out"; then
        printf '%s\n' "$out" >&2
        record "$name" "FAIL (failed without /$pattern/)"
    else
        record "$name" "ok ($(grep -Eo -m1 -- "$pattern" <<<"$out"))"
    fi
}
selftest "$broken/wrong-type.yaml" check_schemas 'replicas must be integer'
selftest "$broken/wrong-type.yaml" check_strict "'two' is not of type 'integer'"
selftest "$broken/unknown-field.yaml" check_strict "'imagePullPolicyy' was unexpected"
selftest "$broken/inline-secret.yaml" check_schemas 'env DATABASE_URL has an inline value'
selftest "$broken/secret-with-data.yaml" check_schemas 'a Secret with data is committed'
selftest "$broken/no-security-context.yaml" check_policy 'CKV_K8S_(20|23|28|30|37|40)' "$k8s/app/network-policy.yaml"

printf '\n==> check-k8s summary\n' >&2
printf '    %s\n' "${results[@]}" >&2
if ((failed)); then
    printf '==> check-k8s FAILED\n' >&2
    exit 1
fi
printf '==> check-k8s passed\n' >&2
