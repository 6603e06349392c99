#!/usr/bin/env python3
"""MetalLB in run.sh: what the plan says about it, and what the real controller did.

  metallb.py facts --plan PLAN
      One line per cluster, `NAME SERVICE_CIDR POOLS` (POOLS 1 where the cluster has
      [cluster.metallb]: MetalLB's controller runs there), after a first line
      `version MAJOR.MINOR NAMESPACE` (the plan's mesh.metallb.version, default 0.15, and
      mesh.metallb.namespace, default metallb-system). Read from the plan itself (tomllib), not
      from meshplan's output.

  metallb.py check --plan PLAN --cluster NAME=CONTEXT...
      After the install procedure: on every cluster with MetalLB pools, every LoadBalancer
      Service must hold exactly one address in status.loadBalancer, an address the plan's
      [cluster.lb] puts on that cluster, assigned by MetalLB itself (its IPAllocated event names
      it); every planned address must be held. A Service without its address is reported with
      MetalLB's own reason, read from the Warning events the controller wrote on it.
"""

import argparse
import sys
import time
import tomllib

import kube

PLANNED_KEYS = ("istiod", "eastwest", "ingress")
CONTROLLER = "metallb-controller"  # the event source MetalLB's controller records as (k8s.Config.ProcessName)


def read_plan(path):
    with open(path, "rb") as f:
        return tomllib.load(f)


def has_pools(cluster):
    return "metallb" in cluster


def planned_addresses(cluster):
    lb = cluster.get("lb", {})
    return sorted(lb[k] for k in PLANNED_KEYS if k in lb)


def metallb_minor(plan):
    version = str(plan.get("mesh", {}).get("metallb", {}).get("version", "0.15"))
    return ".".join(version.split(".")[:2])


def metallb_namespace(plan):
    return plan.get("mesh", {}).get("metallb", {}).get("namespace", "metallb-system")


def facts(args):
    plan = read_plan(args.plan)
    print(f"version {metallb_minor(plan)} {metallb_namespace(plan)}")
    for c in plan.get("cluster", []):
        print(f"{c['name']} {c['service_cidr']} {1 if has_pools(c) else 0}")
    return 0


def kubectl_json(context, *args):
    """`kubectl --context CONTEXT ARGS -o json`, over HTTPS from this process (kube.py)."""
    try:
        return kube.get_json(context, *args)
    except kube.Error as e:
        raise RuntimeError(str(e)) from e


def service_events(context, namespace, name):
    """(type, reason, message, source) of every event on the Service, oldest first."""
    items = kubectl_json(
        context, "-n", namespace, "get", "events",
        "--field-selector", f"involvedObject.kind=Service,involvedObject.name={name}",
    )["items"]
    items.sort(key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")
    return [
        (e.get("type", ""), e.get("reason", ""), e.get("message", ""), (e.get("source") or {}).get("component") or e.get("reportingComponent", ""))
        for e in items
    ]


def metallb_reason(events):
    """MetalLB's last word on a Service that has no address: its Warning events, newest last."""
    warnings = [f"{reason}: {message}" for kind, reason, message, source in events if source == CONTROLLER and kind == "Warning"]
    return "; ".join(dict.fromkeys(warnings)) or "MetalLB wrote no event on it (did its controller see the pools?)"


def check_cluster(name, context, cluster):
    planned = planned_addresses(cluster)
    services = [
        s for s in kubectl_json(context, "get", "services", "--all-namespaces")["items"]
        if s["spec"].get("type") == "LoadBalancer"
    ]
    report, problems, held = [], [], {}
    for svc in sorted(services, key=lambda s: (s["metadata"]["namespace"], s["metadata"]["name"])):
        ns, svc_name = svc["metadata"]["namespace"], svc["metadata"]["name"]
        ident = f"{name}: Service {ns}/{svc_name}"
        ips = [i.get("ip") for i in (svc.get("status", {}).get("loadBalancer", {}).get("ingress") or [])]
        events = service_events(context, ns, svc_name)
        if not ips:
            problems.append(f"{ident} has no load-balancer address; MetalLB: {metallb_reason(events)}")
            continue
        if len(ips) != 1 or ips[0] not in planned:
            problems.append(f"{ident} holds {ips}; the plan puts {planned} on {name}")
            continue
        allocated = [m for kind, reason, m, source in events if source == CONTROLLER and reason == "IPAllocated" and ips[0] in m]
        if not allocated:
            problems.append(f"{ident} holds {ips[0]}, but MetalLB's controller recorded no IPAllocated event for it (something else wrote the status)")
            continue
        held.setdefault(ips[0], []).append(f"{ns}/{svc_name}")
        report.append(f"    {ident}: {ips[0]} (MetalLB: {allocated[-1]})")
    for ip in planned:
        if ip not in held:
            problems.append(f"{name}: no LoadBalancer Service holds the planned address {ip}")
        elif len(held[ip]) > 1:
            problems.append(f"{name}: {ip} is held by {held[ip]}")
    return report, problems


def settled(attempt, seconds=10):
    """ATTEMPT's (report, problems) once it has no problem, or after SECONDS (MetalLB records its
    events a moment after it writes the status)."""
    deadline = time.monotonic() + seconds
    while True:
        report, problems = attempt()
        if not problems or time.monotonic() > deadline:
            return report, problems
        time.sleep(1)


def check(args):
    plan = read_plan(args.plan)
    contexts = dict(spec.split("=", 1) for spec in args.cluster)
    problems = []
    for cluster in plan.get("cluster", []):
        if has_pools(cluster):
            report, found = settled(lambda: check_cluster(cluster["name"], contexts[cluster["name"]], cluster))
            for line in report:
                print(line)
            problems += found
    for p in problems:
        print(f"metallb: {p}", file=sys.stderr)
    return 1 if problems else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("facts")
    p.add_argument("--plan", required=True)
    p = sub.add_parser("check")
    p.add_argument("--plan", required=True)
    p.add_argument("--cluster", action="append", default=[], metavar="NAME=CONTEXT")
    args = parser.parse_args()
    try:
        return facts(args) if args.command == "facts" else check(args)
    except RuntimeError as e:
        print(f"metallb: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
