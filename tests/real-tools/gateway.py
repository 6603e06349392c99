#!/usr/bin/env python3
"""istiod deploying an ambient east-west Gateway, while install.sh waits for its address.

Called by stubs/kubectl for `kubectl wait gateway/NAME --for=jsonpath='{.status.addresses[0]...}'`
on a cluster where MetalLB's real controller runs. The generated install applied istiod's
Deployment, but nothing runs its pods here, so this runs istiod (pilot-discovery, configured by the
Deployment's env, the `istio` ConfigMap and the `cacerts` Secret, as check 5 does: istiod.py) for
as long as the wait lasts. What follows is Istio's and MetalLB's own work:
  - istiod's gateway deployment controller renders the Gateway with its `waypoint` template
    (class istio-east-west) and applies its ServiceAccount, Deployment and LoadBalancer Service;
  - MetalLB's controller gives that Service the address it asks for, or refuses it with a Warning
    event;
  - istiod's gateway status controller writes the Service's load-balancer address into the
    Gateway's status.addresses, which is what the install waits for.
Made by hand, as a scheduler, kubelet and endpointslice controller would: one Ready Pod of the
gateway's Deployment (the last address of the cluster's pod range) and the EndpointSlice of its
Service (istiod reports a Gateway's address only once its Service has endpoints:
pilot/pkg/config/kube/gatewaycommon/context.go ResolveGatewayInstances).

Exits 0 once the Gateway's status holds the Service's load-balancer address; 1 otherwise, naming
the Service and MetalLB's reason when the Service got no address. Usage: gateway.py --help.
"""

import argparse
import os
import signal
import sys
import time
import types

import istiod
from istiod import Failure, kubectl_json

GATEWAY_NAME_LABEL = "gateway.networking.k8s.io/gateway-name"


def owned(context, kind, namespace, gateway):
    items = kubectl_json(context, "-n", namespace, "get", kind, "-l", f"{GATEWAY_NAME_LABEL}={gateway}")["items"]
    return items[0] if items else None


def load_balancer_ips(service):
    return [i["ip"] for i in (service.get("status", {}).get("loadBalancer", {}).get("ingress") or []) if i.get("ip")]


def metallb_refusal(context, service):
    """MetalLB's Warning events on SERVICE, if it wrote any: it refused the Service."""
    meta = service["metadata"]
    events = kubectl_json(
        context, "-n", meta["namespace"], "get", "events",
        "--field-selector", f"involvedObject.kind=Service,involvedObject.name={meta['name']}",
    )["items"]
    warnings = [
        f"{e.get('reason')}: {e.get('message')}" for e in events
        if e.get("type") == "Warning" and ((e.get("source") or {}).get("component") or e.get("reportingComponent")) == "metallb-controller"
    ]
    return "; ".join(dict.fromkeys(warnings))


# From istiod's start to the Gateway's status; it takes 10-30 s on a busy 2-core machine.
DEADLINE_SECONDS = 90


def wait_for(what, attempt, process, log, deadline):
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise Failure(f"pilot-discovery exited with {process.returncode} while waiting for {what}; end of its log:\n{istiod.tail(log)}")
        found = attempt()
        if found:
            return found
        time.sleep(1)
    raise Failure(f"{what}: not there after {DEADLINE_SECONDS} s; end of istiod's log:\n{istiod.tail(log)}")


def deploy(args, stub_log):
    clusters, _ = istiod.read_plan(args.plan)
    cluster = next((c for c in clusters if c.context == args.context), None)
    if cluster is None:
        raise Failure(f"no cluster of {args.plan} has the context {args.context!r}")
    work = os.path.join(args.work, f"gateway-{cluster.name}")
    os.makedirs(work, exist_ok=True)
    process, log = istiod.start_istiod(cluster, types.SimpleNamespace(work=work, pilot_discovery=args.pilot_discovery), args.ports)
    ctx, ns, name = args.context, args.namespace, args.gateway
    try:
        deadline = time.monotonic() + DEADLINE_SECONDS
        deployment = wait_for(f"the Deployment istiod makes for Gateway {ns}/{name}", lambda: owned(ctx, "deployments", ns, name), process, log, deadline)
        service = wait_for(f"the Service istiod makes for Gateway {ns}/{name}", lambda: owned(ctx, "services", ns, name), process, log, deadline)
        svc_name = f"{ns}/{service['metadata']['name']}"
        pod = istiod.run_pod(cluster, deployment, cluster.pod_cidr[-2], istiod.sample_node(cluster), True)
        istiod.publish_endpoints(cluster, service, [pod])
        stub_log.write(f"stub: istiod ran for {cluster.name} while install.sh waited for Gateway {ns}/{name}; the Pod of its Deployment and its EndpointSlice made by hand (no kubelet)\n")

        def assigned():
            live = kubectl_json(ctx, "-n", ns, "get", "service", service["metadata"]["name"])
            if load_balancer_ips(live):
                return load_balancer_ips(live)
            refusal = metallb_refusal(ctx, live)
            if refusal:
                raise Failure(f"Service {svc_name} (istiod's, for Gateway {ns}/{name}) has no load-balancer address; MetalLB: {refusal}")
            return None

        ips = wait_for(f"a load-balancer address on Service {svc_name}", assigned, process, log, deadline)

        def reported():
            gw = kubectl_json(ctx, "-n", ns, "get", "gateway", name)
            addresses = [a.get("value") for a in gw.get("status", {}).get("addresses") or []]
            return addresses if addresses and addresses[0] in ips else None

        addresses = wait_for(f"istiod writing {ips} into Gateway {ns}/{name}'s status", reported, process, log, deadline)
        print(f"gateway.py: istiod deployed Service {svc_name}, MetalLB assigned {ips[0]}, istiod reported {addresses} on Gateway {ns}/{name}")
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--plan", required=True)
    parser.add_argument("--context", required=True)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--gateway", required=True)
    parser.add_argument("--pilot-discovery", required=True)
    parser.add_argument("--ports", required=True, type=lambda s: [int(p) for p in s.split(",")], help="5 free loopback ports")
    parser.add_argument("--work", required=True)
    parser.add_argument("--stub-log", required=True)
    args = parser.parse_args()
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda number, _frame: sys.exit(128 + number))
    try:
        with open(args.stub_log, "a") as stub_log:
            deploy(args, stub_log)
    except Failure as failure:
        print(f"gateway.py: {failure}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
