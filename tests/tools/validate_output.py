#!/usr/bin/env python3
"""Validate meshplan output trees against the real schemas.

Usage: validate_output.py --part custom|core|all SCHEMAS_DIR TREE...

`--part custom` checks what needs only jsonschema and PyYAML (CRD kinds, IstioOperator, Helm
values); `--part core` the Kubernetes core kinds, which need kubernetes-validate; `--part all`
both. A built tree validates offline, with no cluster:
`python3 tests/tools/validate_output.py --part all tests/data/schemas DIR`.

- Kubernetes core kinds (Namespace, Service, ServiceAccount, Deployment): kubernetes-validate,
  strict (unknown fields are errors), for Kubernetes 1.31.
- Istio networking kinds (Gateway, VirtualService) and MetalLB kinds: the openAPIV3Schema of
  their CRD version in SCHEMAS_DIR, plus a strict pass that rejects fields the schema does not
  declare (the API server would silently prune them).
- IstioOperator: the spec's top-level and component keys, and every `values.*` key path
  against the istiod chart's values (a key meshplan writes must exist in the chart).
- Helm values files: key paths against the chart's values.yaml; the gateway chart also against
  its values.schema.json.

Prints one line per failure (tree, file, kind/name, field, message) and exits 1 on any;
exits 3 when a Python module it needs is missing (the caller reports a skip).
"""
import json
import os
import sys

try:
    import jsonschema
    import yaml
except ImportError as missing:  # pragma: no cover - reported as a skip by the caller
    print(f"missing Python module: {missing.name}", file=sys.stderr)
    sys.exit(3)

PART = sys.argv[2] if len(sys.argv) > 2 and sys.argv[1] == "--part" else None
if PART in ("core", "all"):
    try:
        import kubernetes_validate
    except ImportError as missing:  # pragma: no cover - reported as a skip by the caller
        print(f"missing Python module: {missing.name}", file=sys.stderr)
        sys.exit(3)

K8S_VERSION = "1.31.0"
CORE_KINDS = {"Namespace", "Service", "ServiceAccount", "Deployment"}
# GitOps objects and kustomizations have no schema in tests/data/schemas.
UNCHECKED_GROUPS = ("argoproj.io/", "source.toolkit.fluxcd.io/", "kustomize.toolkit.fluxcd.io/",
                    "kustomize.config.k8s.io/")
# IstioOperatorSpec (operator/pkg/apis/types.go), the parts meshplan may write.
IOP_SPEC_KEYS = {"profile", "hub", "tag", "revision", "namespace", "meshConfig", "components", "values",
                 "installPackagePath", "resourceSuffix", "compatibilityVersion", "unvalidatedValues"}
IOP_COMPONENTS = {"base", "pilot", "cni", "ztunnel", "istiodRemote", "ingressGateways", "egressGateways"}
IOP_GATEWAY_KEYS = {"name", "namespace", "label", "enabled", "k8s"}
IOP_K8S_KEYS = {"env", "service", "serviceAnnotations", "podAnnotations", "affinity", "nodeSelector",
                "replicaCount", "resources", "tolerations", "hpaSpec", "podDisruptionBudget",
                "securityContext", "strategy", "imagePullPolicy", "priorityClassName", "readinessProbe",
                "overlays", "volumes", "volumeMounts"}
# Verbatim output of Istio's gen-eastwest-gateway.sh; its chart (gateways/istio-ingress) is not
# in tests/data/schemas.
IOP_VALUES_OUTSIDE_ISTIOD = {("gateways", "istio-ingressgateway", "injectionTemplate")}
# Chart keys that pass a whole Istio API object through (MeshConfig): their sub-keys are that
# API's fields, not chart defaults.
PASSTHROUGH = {"meshConfig"}
# Read by the charts' profile templates (manifests/helm-profiles/*.yaml), not a values.yaml key.
HELM_PROFILE_KEY = "profile"

failures = []
counts = {"crd": 0, "kubernetes": 0, "istiooperator": 0, "values": 0, "unchecked": 0}


def fail(tree, path, what, field, message):
    failures.append(f"{tree}: {path}: {what}: {field}: {message}")


def load_yaml_docs(path):
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def chart_defaults(path):
    docs = load_yaml_docs(path)
    values = docs[0] if docs else {}
    return values.get("_internal_defaults_do_not_set", values)


class Schemas:
    def __init__(self, root):
        self.root = root
        self.crds = {}
        for rel in ("istio/crd-all.gen.yaml", "istio/v1.28.10/crd-all.gen.yaml",
                    "istio/gateway-api-crd.yaml"):
            self._load_crds(rel)
        for name in sorted(os.listdir(os.path.join(root, "metallb", "v0.15.3"))):
            self._load_crds(os.path.join("metallb", "v0.15.3", name))
        self.istiod = {v: chart_defaults(os.path.join(root, "istio", d, "istiod-values.yaml"))
                       for v, d in (("1.30", ""), ("1.28", "v1.28.10"))}
        self.base = chart_defaults(os.path.join(root, "istio", "base-values.yaml"))
        self.gateway = chart_defaults(os.path.join(root, "istio", "gateway-values.yaml"))
        # The ambient node charts (ambient meshes with installer = "helm").
        self.node_charts = {name: chart_defaults(os.path.join(root, "istio", f"{name}-values.yaml"))
                            for name in ("cni", "ztunnel")}
        with open(os.path.join(root, "istio", "gateway-values.schema.json"), encoding="utf-8") as f:
            self.gateway_schema = json.load(f)

    def _load_crds(self, rel):
        for doc in load_yaml_docs(os.path.join(self.root, rel)):
            if doc.get("kind") != "CustomResourceDefinition":
                continue
            group, kind = doc["spec"]["group"], doc["spec"]["names"]["kind"]
            for version in doc["spec"]["versions"]:
                key = (f"{group}/{version['name']}", kind)
                # The first file read (newest release) wins.
                self.crds.setdefault(key, version["schema"]["openAPIV3Schema"])


# Every object has these at its root whether or not a CRD's schema lists them.
OBJECT_ROOT = {"apiVersion", "kind", "metadata"}


def undeclared_fields(instance, schema, path=""):
    """Fields the structural schema does not declare (the API server would drop them)."""
    if not isinstance(schema, dict) or schema.get("x-kubernetes-preserve-unknown-fields"):
        return []
    found = []
    if isinstance(instance, dict):
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        for key, value in instance.items():
            if not path and key in OBJECT_ROOT:
                continue
            sub = f"{path}.{key}" if path else key
            if props is not None and key in props:
                found += undeclared_fields(value, props[key], sub)
            elif isinstance(extra, dict):
                found += undeclared_fields(value, extra, sub)
            elif props is not None and extra is not True:
                found.append(sub)
    elif isinstance(instance, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(instance):
            found += undeclared_fields(item, schema["items"], f"{path}[{i}]")
    return found


def check_crd(tree, path, doc, schema):
    counts["crd"] += 1
    what = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
    for error in jsonschema.Draft7Validator(schema).iter_errors(doc):
        field = ".".join(str(p) for p in error.absolute_path) or "(document)"
        fail(tree, path, what, field, error.message)
    for field in undeclared_fields(doc, schema):
        fail(tree, path, what, field, "not declared by the CRD schema")


def check_core(tree, path, doc):
    counts["kubernetes"] += 1
    what = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
    try:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        field = ".".join(str(p) for p in error.path) or "(document)"
        fail(tree, path, what, field, error.message)


def missing_key_paths(values, defaults, prefix=""):
    """Key paths of `values` that the chart's defaults do not have. A default that is an empty
    map (env, labels, annotations, meshNetworks) or a non-map accepts any sub-keys."""
    missing = []
    for key, value in values.items():
        sub = f"{prefix}.{key}" if prefix else key
        if not isinstance(defaults, dict) or key not in defaults:
            missing.append(sub)
            continue
        known = defaults[key]
        if not prefix and key in PASSTHROUGH:
            continue
        if isinstance(value, dict) and isinstance(known, dict) and known:
            missing += missing_key_paths(value, known, sub)
    return missing


def istiod_defaults_for(schemas, tag):
    parts = str(tag).split(".")
    minor = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 30
    return schemas.istiod["1.28" if minor <= 28 else "1.30"], minor


def check_istio_values(tree, path, values, schemas, tag, what):
    """IstioOperator `values` or istiod Helm values, against the istiod chart."""
    counts["values"] += 1
    defaults, minor = istiod_defaults_for(schemas, tag)
    values = dict(values)
    values.pop(HELM_PROFILE_KEY, None)
    if minor < 24 and isinstance(values.get("pilot"), dict):
        # Before 1.24 the istiod chart's root values lived under `pilot:`.
        values.update(values.pop("pilot"))
    for field in missing_key_paths(values, defaults):
        parts = tuple(field.split("."))
        if any(known[: len(parts)] == parts for known in IOP_VALUES_OUTSIDE_ISTIOD):
            continue
        fail(tree, path, what, f"values.{field}", "not a key of the istiod chart's values")


def check_iop(tree, path, doc, schemas):
    counts["istiooperator"] += 1
    what = f"IstioOperator/{doc.get('metadata', {}).get('name')}"
    spec = doc.get("spec") or {}
    for key in spec:
        if key not in IOP_SPEC_KEYS:
            fail(tree, path, what, f"spec.{key}", "not an IstioOperator spec field")
    for name, component in (spec.get("components") or {}).items():
        if name not in IOP_COMPONENTS:
            fail(tree, path, what, f"spec.components.{name}", "not an IstioOperator component")
        gateways = component if isinstance(component, list) else []
        for i, gateway in enumerate(gateways):
            for key in gateway:
                if key not in IOP_GATEWAY_KEYS:
                    fail(tree, path, what, f"spec.components.{name}[{i}].{key}", "not a gateway component field")
            for key in gateway.get("k8s") or {}:
                if key not in IOP_K8S_KEYS:
                    fail(tree, path, what, f"spec.components.{name}[{i}].k8s.{key}", "not a KubernetesResources field")
    check_istio_values(tree, path, spec.get("values") or {}, schemas, spec.get("tag", "1.30.0"), what)


def check_helm(tree, path, doc, schemas, tag):
    name = os.path.basename(path)
    if name == "istiod.yaml":
        check_istio_values(tree, path, doc, schemas, tag, "istiod values")
    elif name in ("cni.yaml", "ztunnel.yaml"):
        chart = name[:-len(".yaml")]
        counts["values"] += 1
        values = {k: v for k, v in doc.items() if k != HELM_PROFILE_KEY}
        for field in missing_key_paths(values, schemas.node_charts[chart]):
            fail(tree, path, f"{chart} values", field, f"not a key of the {chart} chart's values")
    elif name == "base.yaml":
        counts["values"] += 1
        values = {k: v for k, v in doc.items() if k != HELM_PROFILE_KEY}
        for field in missing_key_paths(values, schemas.base):
            fail(tree, path, "base values", field, "not a key of the base chart's values")
    else:
        counts["values"] += 1
        for field in missing_key_paths(doc, schemas.gateway):
            fail(tree, path, "gateway values", field, "not a key of the gateway chart's values")
        for error in jsonschema.Draft7Validator(schemas.gateway_schema).iter_errors(doc):
            field = ".".join(str(p) for p in error.absolute_path) or "(document)"
            fail(tree, path, "gateway values", field, error.message)


def helm_tag(cluster_dir):
    istiod = os.path.join(cluster_dir, "helm", "istiod.yaml")
    if os.path.exists(istiod):
        docs = load_yaml_docs(istiod)
        return str(((docs[0] if docs else {}).get("global") or {}).get("tag", "1.30.0"))
    return "1.30.0"


def check_tree(tree, schemas):
    for dirpath, _, files in os.walk(tree):
        for name in sorted(files):
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, tree)
            if not name.endswith(".yaml") or rel.startswith("platform/") or "/platform/" in rel:
                continue
            label = os.path.basename(tree)
            for doc in load_yaml_docs(full):
                api, kind = doc.get("apiVersion", ""), doc.get("kind", "")
                is_core = "/helm/" not in f"/{rel}" and kind in CORE_KINDS and api in ("v1", "apps/v1")
                if PART != "all" and is_core != (PART == "core"):
                    continue
                if "/helm/" in f"/{rel}":
                    check_helm(label, rel, doc, schemas, helm_tag(os.path.dirname(os.path.dirname(full))))
                    continue
                if api.startswith(UNCHECKED_GROUPS):
                    counts["unchecked"] += 1
                elif kind == "IstioOperator":
                    check_iop(label, rel, doc, schemas)
                elif (api, kind) in schemas.crds:
                    check_crd(label, rel, doc, schemas.crds[(api, kind)])
                elif kind in CORE_KINDS and api in ("v1", "apps/v1"):
                    check_core(label, rel, doc)
                else:
                    fail(label, rel, f"{kind}", "apiVersion", f"no schema known for {api} {kind}")


def main():
    if PART not in ("custom", "core", "all") or len(sys.argv) < 5:
        print(__doc__, file=sys.stderr)
        return 2
    schemas = Schemas(sys.argv[3])
    for tree in sys.argv[4:]:
        if not os.path.isdir(tree):
            fail(tree, ".", "tree", "path", "not a directory")
            continue
        check_tree(tree, schemas)
    for line in failures:
        print(line)
    summary = ", ".join(f"{n} {k}" for k, n in counts.items())
    print(f"validated documents: {summary}; {len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
