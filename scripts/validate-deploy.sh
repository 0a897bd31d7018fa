#!/usr/bin/env bash
# Validates the deployment artefacts offline (no cluster, no helm):
#   1. renders the Helm chart (deploy/helm/sluice) with scripts/render-chart.py, with bundled
#      etcd/NATS and with external ones, and checks that deploy/kubernetes/sluice.yaml is the
#      rendering of the defaults (regenerate it with: scripts/validate-deploy.sh --write);
#   2. yamllint over the chart's Chart.yaml and values.yaml, the plain manifests and the
#      renderings;
#   3. kubernetes-validate --strict over the plain manifests and the renderings;
#   4. systemd-analyze verify over deploy/systemd/*.service where systemd is available.
# Installs kubernetes-validate and yamllint from PyPI if they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
k8s=${K8S_VERSION:-1.30.0}
if ! command -v kubernetes-validate >/dev/null || ! command -v yamllint >/dev/null; then
  echo "installing kubernetes-validate and yamllint (PyPI)"
  python3 -m pip install --quiet kubernetes-validate yamllint
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
chart=deploy/helm/sluice
python3 scripts/render-chart.py "$chart" > "$out/default.yaml"
python3 scripts/render-chart.py "$chart" --name prod --namespace gpu \
  --set etcd.bundled=false --set etcd.endpoints=http://etcd-0.etcd:2379,http://etcd-1.etcd:2379 \
  --set nats.bundled=false --set nats.url=nats://nats.messaging:4222 --set router.replicas=3 \
  > "$out/external.yaml"
if [ "${1:-}" = "--write" ]; then
  { echo "# Generated from deploy/helm/sluice with its default values by scripts/validate-deploy.sh --write."
    echo "# Apply with: kubectl create namespace sluice && kubectl -n sluice apply -f deploy/kubernetes/sluice.yaml"
    cat "$out/default.yaml"; } > deploy/kubernetes/sluice.yaml
  echo "wrote deploy/kubernetes/sluice.yaml"
fi
if ! diff -q <(grep -v '^# Generated\|^# Apply' deploy/kubernetes/sluice.yaml) "$out/default.yaml" >/dev/null; then
  echo "deploy/kubernetes/sluice.yaml is not the chart's rendering: run scripts/validate-deploy.sh --write" >&2
  exit 1
fi
echo "== yamllint"
yamllint -s -c deploy/.yamllint "$chart/Chart.yaml" "$chart/values.yaml" deploy/kubernetes/ "$out/default.yaml" "$out/external.yaml"
echo "== kubernetes-validate (Kubernetes $k8s, strict)"
kubernetes-validate --strict --quiet -k "$k8s" deploy/kubernetes/sluice.yaml "$out/default.yaml" "$out/external.yaml"
grep -q 'kind: StatefulSet' "$out/external.yaml" && { echo "external rendering still bundles etcd/NATS" >&2; exit 1; }
if command -v systemd-analyze >/dev/null && [ -d /run/systemd/system ]; then
  echo "== systemd-analyze verify"
  systemd-analyze verify deploy/systemd/*.service
fi
echo "deploy artefacts valid: chart (2 renderings), plain manifests, $(ls deploy/systemd/*.service | wc -l) systemd units"
