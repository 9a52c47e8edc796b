#!/usr/bin/env python3
"""Vendors the few Kubernetes JSON schemas the render tests validate against.

Usage: vendor.py <unpacked kubernetes-validate wheel> <version>...
e.g.   pip download --no-deps kubernetes-validate==1.37.0 && unzip kubernetes_validate-*.whl -d kv
       python3 vendor.py kv v1.30.0 v1.33.0 v1.37.0

Per version it copies the kind files verbatim and writes `_definitions.json` with only
the definitions those kinds reach (transitively), each definition unchanged.
"""
import json
import pathlib
import sys

KINDS = [
    "namespace-v1.json",
    "resourcequota-v1.json",
    "limitrange-v1.json",
    "networkpolicy-networking-v1.json",
    "rolebinding-rbac-v1.json",
    # The booking's deployer, and the ClusterRoles a Flux or Argo CD site's root.yaml holds.
    "serviceaccount-v1.json",
    "clusterrole-rbac-v1.json",
    "clusterrolebinding-rbac-v1.json",
    # What the test fixtures' plain-manifest package ships.
    "configmap-v1.json",
    "service-v1.json",
    "deployment-apps-v1.json",
    # The smoke-test Job of offerings that have one.
    "job-batch-v1.json",
    # The autoscaler of plain manifests whose plan autoscales.
    "horizontalpodautoscaler-autoscaling-v2.json",
]
PREFIXES = ("/api/_definitions.json#/$defs/", "#/$defs/")


def refs(node):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref" and isinstance(v, str) and v.startswith(PREFIXES):
                yield v.split("/$defs/", 1)[1]
            else:
                yield from refs(v)
    elif isinstance(node, list):
        for v in node:
            yield from refs(v)


def main():
    root = pathlib.Path(sys.argv[1]) / "kubernetes_validate" / "kubernetes-json-schema"
    here = pathlib.Path(__file__).parent
    for version in sys.argv[2:]:
        src = root / f"{version}-local-strict"
        dst = here / version
        dst.mkdir(exist_ok=True)
        defs = json.loads((src / "_definitions.json").read_text())
        todo = []
        for kind in KINDS:
            text = (src / kind).read_text()
            (dst / kind).write_text(text)
            todo.extend(refs(json.loads(text)))
        keep = {}
        while todo:
            name = todo.pop()
            if name in keep:
                continue
            keep[name] = defs["$defs"][name]
            todo.extend(refs(keep[name]))
        out = {k: v for k, v in defs.items() if k != "$defs"}
        out["$defs"] = dict(sorted(keep.items()))
        (dst / "_definitions.json").write_text(json.dumps(out, indent=2, sort_keys=True) + "\n")
        print(version, len(keep), "definitions")


main()
