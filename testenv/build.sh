#!/usr/bin/env bash
# Builds the real Kubernetes components of verbund's test environment from the Go modules
# pinned in testenv/go.mod: etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
# kwok, kustomize, helm, Flux's source-, kustomize- and helm-controller, and sops (whose
# decryption proves verbund's sealed secrets); and extracts
# the CRDs of Flux, Argo CD, External Secrets and the Prometheus Operator's ServiceMonitor
# from their modules.
#
#   testenv/build.sh [OUT]    OUT defaults to target/testenv
#
# Everything comes from the Go module proxy. Go's module and build caches
# (GOMODCACHE, GOCACHE) keep what was fetched and compiled; OUT/stamp records the hash of
# go.mod, go.sum and this script, so a second run with nothing changed builds nothing.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here/../target/testenv}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"

stamp="$( (cat "$here/go.mod" "$here/go.sum" "$0"; go version) | sha256sum | cut -d' ' -f1)"
if [ -f "$out/stamp" ] && [ "$(cat "$out/stamp")" = "$stamp" ]; then
  echo "testenv: up to date in $out"
  exit 0
fi

cd "$here"
version_of() { go list -m -f '{{.Version}}' "$1"; }
k8s="$(version_of k8s.io/kubernetes)"
minor="$(echo "$k8s" | cut -d. -f2)"
# Without these the servers call themselves v0.0.0-master, and Helm's and verbund's
# Kubernetes version checks fail.
kver="-X k8s.io/component-base/version.gitVersion=$k8s -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean"
kver="$kver -X k8s.io/client-go/pkg/version.gitVersion=$k8s -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$minor"
helm="$(version_of helm.sh/helm/v4)"

export CGO_ENABLED=0
build() { # name, package, extra ldflags
  echo "testenv: building $1 ($2)"
  go build -trimpath -ldflags "-s -w $3" -o "$out/bin/$1" "$2"
}
mkdir -p "$out/bin"
build etcd go.etcd.io/etcd/server/v3 ""
build kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver "$kver"
build kube-controller-manager k8s.io/kubernetes/cmd/kube-controller-manager "$kver"
build kube-scheduler k8s.io/kubernetes/cmd/kube-scheduler "$kver"
build kwok sigs.k8s.io/kwok/cmd/kwok ""
build kustomize sigs.k8s.io/kustomize/kustomize/v5 ""
build helm helm.sh/helm/v4/cmd/helm "-X helm.sh/helm/v4/internal/version.version=$helm"
build source-controller github.com/fluxcd/source-controller ""
build kustomize-controller github.com/fluxcd/kustomize-controller ""
build helm-controller github.com/fluxcd/helm-controller ""
build sops github.com/getsops/sops/v3/cmd/sops ""

# CRDs, from the same modules (or, for Argo CD and External Secrets, downloaded as modules
# without building anything of them).
crds="$out/crds"
rm -rf "$crds" && mkdir -p "$crds"
module_dir() { go mod download -json "$1" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p'; }
for controller in source-controller kustomize-controller helm-controller; do
  dir="$(module_dir "github.com/fluxcd/$controller@$(version_of github.com/fluxcd/$controller)")"
  cp "$dir"/config/crd/bases/*.yaml "$crds/"
done
argocd="$(module_dir github.com/argoproj/argo-cd/v3@v3.5.7)"
cp "$argocd/manifests/crds/application-crd.yaml" "$argocd/manifests/crds/appproject-crd.yaml" "$crds/"
eso="$(module_dir github.com/external-secrets/external-secrets@v0.16.2)"
for kind in externalsecret clustersecretstore secretstore pushsecret; do
  cp "$eso/config/crds/bases/external-secrets.io_${kind}s.yaml" "$crds/"
done
cp "$eso/config/crds/bases/generators.external-secrets.io_passwords.yaml" "$crds/"
# The Prometheus Operator's ServiceMonitor, which verbund's own chart (deploy/verbund)
# renders when serviceMonitor.enabled.
prometheus="$(module_dir github.com/prometheus-operator/prometheus-operator@v0.85.0)"
cp "$prometheus/example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml" "$crds/"
chmod -R u+w "$crds"

echo "$stamp" > "$out/stamp"
echo "testenv: built into $out"
