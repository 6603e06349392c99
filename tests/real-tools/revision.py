#!/usr/bin/env python3
"""Check 7 of run.sh, for plans with `[mesh.istio] revision`: the revisioned control plane and the
default revision tag, as the install procedure left them on the API servers.

The install procedure ran `istioctl tag set default --revision R` on every cluster with the real
istioctl against the real API server (no stub). The expectations are read from the plan itself
(tomllib), not from meshplan's output. For revision R it fails unless:
  - on a primary: Deployment istiod-R (label istio.io/rev=R, env REVISION=R, which pilot-discovery
    reads as its revision), its Service istiod-R selecting istio.io/rev=R, its mesh config
    ConfigMap istio-R, and its injection webhook istio-sidecar-injector-R calling Service
    istiod-R;
  - on a remote: no istiod Deployment; Service istiod-R without a selector (ports 15012 and 443 to
    15017) and EndpointSlice istiod-R holding the primary's planned istiod address (its lb.istiod,
    else its lb.eastwest) on 15012 and 15017: the revisioned remote Service of istio/istio#34867
    and #35682; its webhook istio-sidecar-injector-R calling Service istiod-R at the remote's
    injection path /inject/cluster/<name>/net/<network>;
  - on every cluster: the default tag's webhook istio-revision-tag-default (labels istio.io/rev=R,
    istio.io/tag=default) calls Service istiod-R (at the injection path on a remote), serves the
    namespaces labelled istio-injection=enabled, and is the only webhook that does; and the
    cluster-wide validator istiod-default-validator calls istiod-R.
With --before (the canary check, run.sh's check 8): the same plan without its revision was
installed first and the revision's control plane beside it, and the tag is not set yet. Then the
revision's objects must be there as above, and the old, unrevisioned control plane must still
serve every namespace labelled istio-injection=enabled: its webhook istio-sidecar-injector alone,
calling Service istiod (on a remote, the unrevisioned remote Service istiod, at the injection
path), with no istio-revision-tag-default yet.
With --removed (run.sh's check 10, after upgrade.sh's remove-old): as without it, and the old,
unrevisioned control plane is gone: no Deployment istiod on a primary, no Service istiod on a
remote, no MutatingWebhookConfiguration istio-sidecar-injector.
With --in-place (check 10 on an ambient plan, which names no revision): every istiod Deployment and
the istio-cni-node and ztunnel DaemonSets run images of the plan's [mesh.istio] version.
Usage: revision.py --plan PLAN.toml [--before | --removed | --in-place] (kubectl on PATH,
KUBECONFIG with each cluster's context).
"""

import argparse
import sys
import tomllib

import kube


class Failure(Exception):
    pass


# Over HTTPS from this process (kube.py), not a kubectl run each; the kubectl forms are kept.
def kubectl_json(context, *args):
    """`kubectl --context CONTEXT ARGS -o json`."""
    try:
        return kube.get_json(context, *args)
    except kube.Error as e:
        raise Failure(str(e)) from e


def kubectl_get(context, *args):
    """The object, or None when it does not exist."""
    try:
        return kube.get_or_none(context, *args)
    except kube.Error as e:
        raise Failure(str(e)) from e


def serves_istio_injection(webhook):
    """Whether a mutating webhook's namespaceSelector takes namespaces labelled istio-injection=enabled."""
    selector = webhook.get("namespaceSelector") or {}
    if selector.get("matchLabels", {}).get("istio-injection") == "enabled":
        return True
    for expression in selector.get("matchExpressions", []):
        if expression.get("key") == "istio-injection" and expression.get("operator") == "In" and "enabled" in expression.get("values", []):
            return True
    return False


def injector_webhooks(config):
    return [w for w in config.get("webhooks", []) if w["name"].endswith("sidecar-injector.istio.io")]


def check_calls(found, what, config, service, path=None):
    """Every injector webhook of CONFIG calls Service istio-system/SERVICE (at PATH, if given)."""
    hooks = injector_webhooks(config) if config["kind"] == "MutatingWebhookConfiguration" else config.get("webhooks", [])
    if not hooks:
        found.append(f"{what} has no webhooks")
    for hook in hooks:
        client = hook.get("clientConfig", {})
        target = client.get("service")
        if not target:
            found.append(f"{what}: webhook {hook['name']} calls {client.get('url')}, not Service {service}")
            continue
        if (target.get("namespace"), target.get("name")) != ("istio-system", service):
            found.append(f"{what}: webhook {hook['name']} calls Service {target.get('namespace')}/{target.get('name')}, not istio-system/{service}")
        if path is not None and target.get("path") != path:
            found.append(f"{what}: webhook {hook['name']} calls path {target.get('path')}, not {path}")
    return hooks


def check_old_serves(context, path):
    """Before the tag moves: the unrevisioned injector alone serves istio-injection=enabled."""
    found = []
    if kubectl_get(context, "get", "mutatingwebhookconfiguration", "istio-revision-tag-default") is not None:
        found.append("istio-revision-tag-default exists before the tag was set")
    old = kubectl_get(context, "get", "mutatingwebhookconfiguration", "istio-sidecar-injector")
    if old is None:
        found.append("no MutatingWebhookConfiguration istio-sidecar-injector (the unrevisioned control plane's)")
    else:
        hooks = check_calls(found, "istio-sidecar-injector", old, "istiod", path)
        if not any(serves_istio_injection(h) for h in hooks):
            found.append("istio-sidecar-injector serves no namespace labelled istio-injection=enabled")
    return found


def check_removed(context, remote):
    """After remove-old: nothing of the unrevisioned control plane is left."""
    found = []
    if not remote and kubectl_get(context, "-n", "istio-system", "get", "deployment", "istiod") is not None:
        found.append("Deployment istiod (the old revision's) is still there")
    if remote and kubectl_get(context, "-n", "istio-system", "get", "service", "istiod") is not None:
        found.append("Service istiod (the old revision's remote Service) is still there")
    if kubectl_get(context, "get", "mutatingwebhookconfiguration", "istio-sidecar-injector") is not None:
        found.append("MutatingWebhookConfiguration istio-sidecar-injector (the old revision's) is still there")
    return found


def check_in_place(cluster, version):
    """An in-place upgrade: istiod, istio-cni and ztunnel run images tagged with VERSION."""
    found, shown = [], []
    context = cluster.get("context", cluster["name"])
    workloads = [("deployment", d) for d in kubectl_json(context, "-n", "istio-system", "get", "deployments", "-l", "app=istiod")["items"]]
    for name in ("istio-cni-node", "ztunnel"):
        daemonset = kubectl_get(context, "-n", "istio-system", "get", "daemonset", name)
        if daemonset is None:
            found.append(f"no DaemonSet {name}")
        else:
            workloads.append(("daemonset", daemonset))
    if cluster["role"] == "primary" and not any(kind == "deployment" for kind, _ in workloads):
        found.append("no istiod Deployment")
    for kind, workload in workloads:
        images = [c["image"] for c in workload["spec"]["template"]["spec"]["containers"]]
        stale = [i for i in images if not i.split(":")[-1].startswith(version)]
        name = workload["metadata"]["name"]
        if stale:
            found.append(f"{kind} {name} runs {stale}, not release {version}")
        else:
            shown.append(f"{kind} {name}: {version}")
    return found, shown


def check_cluster(plan, cluster, revision, before=False, removed=False):
    found, shown = [], []
    context = cluster.get("context", cluster["name"])
    istiod = f"istiod-{revision}"
    remote = cluster["role"] == "remote"
    path = f"/inject/cluster/{cluster['name']}/net/{cluster['network']}" if remote else None
    deployments = kubectl_json(context, "-n", "istio-system", "get", "deployments", "-l", "app=istiod")["items"]
    if remote:
        if deployments:
            found.append(f"a remote runs istiod: {[d['metadata']['name'] for d in deployments]}")
        primaries = [c for c in plan["cluster"] if c["role"] == "primary"]
        primary = next((c for c in primaries if c["name"] == cluster.get("primary")), primaries[0] if len(primaries) == 1 else None)
        lb = (primary or {}).get("lb", {})
        address = lb.get("istiod") or lb.get("eastwest")
        service = kubectl_get(context, "-n", "istio-system", "get", "service", istiod)
        if service is None:
            found.append(f"no Service {istiod} (the revisioned remote Service)")
        else:
            spec = service["spec"]
            if spec.get("selector"):
                found.append(f"Service {istiod} selects {spec['selector']}: a remote's points at its primary, with no selector")
            ports = {(p["port"], p.get("targetPort", p["port"])) for p in spec.get("ports", [])}
            if {(15012, 15012), (443, 15017)} - ports:
                found.append(f"Service {istiod} has ports {sorted(ports)}, not 15012 and 443 to 15017")
        slice_ = kubectl_get(context, "-n", "istio-system", "get", "endpointslice", istiod)
        if slice_ is None:
            found.append(f"no EndpointSlice {istiod}")
        else:
            if slice_["metadata"].get("labels", {}).get("kubernetes.io/service-name") != istiod:
                found.append(f"EndpointSlice {istiod} is not labelled kubernetes.io/service-name={istiod}")
            addresses = sorted(a for e in slice_.get("endpoints", []) for a in e.get("addresses", []))
            if addresses != [address]:
                found.append(f"EndpointSlice {istiod} holds {addresses}, the plan's istiod address is {address}")
            ports = sorted(p["port"] for p in slice_.get("ports", []))
            if ports != [15012, 15017]:
                found.append(f"EndpointSlice {istiod} has ports {ports}, not 15012 and 15017")
            shown.append(f"Service and EndpointSlice {istiod} -> {address}:15012,15017")
    else:
        names = [d["metadata"]["name"] for d in deployments]
        deployment = next((d for d in deployments if d["metadata"]["name"] == istiod), None)
        if deployment is None:
            found.append(f"no Deployment {istiod} (istiod Deployments: {names})")
        else:
            if deployment["metadata"].get("labels", {}).get("istio.io/rev") != revision:
                found.append(f"Deployment {istiod} is not labelled istio.io/rev={revision}")
            containers = deployment["spec"]["template"]["spec"]["containers"]
            env = {e["name"]: e.get("value") for c in containers if c["name"] == "discovery" for e in c.get("env", [])}
            if env.get("REVISION") != revision:
                found.append(f"Deployment {istiod}'s discovery container has REVISION={env.get('REVISION')}, not {revision}")
        service = kubectl_get(context, "-n", "istio-system", "get", "service", istiod)
        if service is None:
            found.append(f"no Service {istiod}")
        elif service["spec"].get("selector", {}).get("istio.io/rev") != revision:
            found.append(f"Service {istiod} selects {service['spec'].get('selector')}, not istio.io/rev={revision}")
        if kubectl_get(context, "-n", "istio-system", "get", "configmap", f"istio-{revision}") is None:
            found.append(f"no ConfigMap istio-{revision} (the revision's mesh config)")
        shown.append(f"Deployment, Service {istiod} and ConfigMap istio-{revision}")
    injector = kubectl_get(context, "get", "mutatingwebhookconfiguration", f"istio-sidecar-injector-{revision}")
    if injector is None:
        found.append(f"no MutatingWebhookConfiguration istio-sidecar-injector-{revision}")
    else:
        check_calls(found, f"istio-sidecar-injector-{revision}", injector, istiod, path)
    if before:
        found.extend(check_old_serves(context, path))
        shown.append(f"istio-sidecar-injector -> Service istiod{' at ' + path if path else ''}, serving istio-injection=enabled")
        serving = sorted(
            config["metadata"]["name"]
            for config in kubectl_json(context, "get", "mutatingwebhookconfigurations")["items"]
            if any(serves_istio_injection(h) for h in config.get("webhooks", []))
        )
        if serving != ["istio-sidecar-injector"]:
            found.append(f"before the tag moves, the webhooks serving istio-injection=enabled are {serving}, not istio-sidecar-injector alone")
        return found, shown
    if removed:
        found.extend(check_removed(context, remote))
        shown.append("the old revision removed")
    tag = kubectl_get(context, "get", "mutatingwebhookconfiguration", "istio-revision-tag-default")
    if tag is None:
        found.append("no MutatingWebhookConfiguration istio-revision-tag-default: the default revision tag was not set")
    else:
        labels = tag["metadata"].get("labels", {})
        if (labels.get("istio.io/rev"), labels.get("istio.io/tag")) != (revision, "default"):
            found.append(f"istio-revision-tag-default is labelled istio.io/rev={labels.get('istio.io/rev')}, istio.io/tag={labels.get('istio.io/tag')}")
        hooks = check_calls(found, "istio-revision-tag-default", tag, istiod, path)
        if not any(serves_istio_injection(h) for h in hooks):
            found.append("istio-revision-tag-default serves no namespace labelled istio-injection=enabled")
        shown.append(f"istio-revision-tag-default -> Service {istiod}{' at ' + path if path else ''}")
    serving = sorted(
        {
            config["metadata"]["name"]
            for config in kubectl_json(context, "get", "mutatingwebhookconfigurations")["items"]
            if any(serves_istio_injection(h) for h in config.get("webhooks", []))
        }
    )
    if serving != ["istio-revision-tag-default"]:
        found.append(f"the webhooks serving istio-injection=enabled namespaces are {serving}, not istio-revision-tag-default alone")
    validator = kubectl_get(context, "get", "validatingwebhookconfiguration", "istiod-default-validator")
    if validator is None:
        found.append("no ValidatingWebhookConfiguration istiod-default-validator")
    else:
        check_calls(found, "istiod-default-validator", validator, istiod)
    return found, shown


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--plan", required=True)
    parser.add_argument("--before", action="store_true", help="the old control plane still serves injection (no tag yet)")
    parser.add_argument("--removed", action="store_true", help="the old control plane was removed")
    parser.add_argument("--in-place", action="store_true", help="an in-place upgrade to the plan's version")
    args = parser.parse_args()
    with open(args.plan, "rb") as f:
        plan = tomllib.load(f)
    if args.in_place:
        return report(plan, lambda cluster: check_in_place(cluster, plan["mesh"]["istio"]["version"]))
    revision = plan["mesh"]["istio"].get("revision")
    if not revision:
        print("revision.py: the plan has no [mesh.istio] revision", file=sys.stderr)
        return 2
    return report(plan, lambda cluster: check_cluster(plan, cluster, revision, args.before, args.removed))


def report(plan, check):
    """Runs CHECK on every cluster of the plan: findings on stderr, what holds on stdout."""
    failed = False
    for cluster in plan["cluster"]:
        try:
            found, shown = check(cluster)
        except Failure as failure:
            found, shown = [str(failure)], []
        for line in found:
            print(f"revision: {cluster['name']}: {line}", file=sys.stderr)
        failed = failed or bool(found)
        if not found:
            print(f"    {cluster['name']} ({cluster['role']}): {'; '.join(shown)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
