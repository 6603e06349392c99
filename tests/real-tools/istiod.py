#!/usr/bin/env python3
"""Check 5 of run.sh: istiod itself, against the API servers the install procedure just ran on.

Runs pilot-discovery (built from the same istio module as istioctl) as a process against the
first primary's API server, configured only by what the generated install put there: the
`istio` ConfigMap (mesh config and meshNetworks), the istiod Deployment's env (CLUSTER_ID,
EXTERNAL_ISTIOD, ...), the `cacerts` Secret and the remote secrets that remote-secrets.sh created.

In every cluster it then creates by hand what the controllers, the scheduler, the injector and the
kubelets would: one Pod per sample Deployment (with the injector's `security.istio.io/tlsMode`
label, a pod IP from the cluster's pod range, Ready) and the EndpointSlices of the Services that
select it. The east-west Services already hold their planned addresses: from MetalLB's real
controller on clusters with MetalLB pools (and, in an ambient mesh, the Gateway's status from the
istiod that gateway.py ran during the install), from the cloud stand-in (stubs/kubectl) elsewhere.

Then it asks istiod's debug endpoints and, as a sidecar on the primary's network, its xDS
(xds-probe/main.go), and fails unless
  - /debug/clusterz: every other cluster of the plan is watched and synced;
  - /debug/endpointShardz: every sample Service has each cluster's endpoint, with that cluster's
    network;
  - /debug/networkz: each network other than the primary's has a gateway at the planned east-west
    address and port, and no gateway sits at an address the plan did not plan;
  - EDS: a sidecar on the primary's network is sent its own network's pods directly and every
    other network's endpoints as that network's planned east-west address and port, nothing else.
  - the traffic model: a sidecar in each client cluster of `meshplan explain --traffic` (with that
    cluster's ID, network and planned locality) is sent, for every service of the model, the
    endpoints of the model's tiers at priorities 0, 1, ... in that order: the pods of its own
    network, other networks' endpoints as their east-west gateway (explain's `via`);
  - and the comparison can fail: edited on the live DestinationRule, a rule without its
    outlierDetection (the tiers flatten) and a failover pointed at a third region (the tiers swap)
    must each make istiod disagree with the model, and agree again once restored.
The sample pods are bound to a Node that node-labels.sh labelled, so istiod reads their locality
from the labels the install set, as it does from a kubelet's Node.
In an ambient plan a network's gateway is its `istio-east-west` Gateway, compared by the HBONE
port, and no EDS is asked for (ambient proxies are sent workloads).

Except the tiers, which are meshplan's model (explain --traffic), the expectations are read from
the plan itself (tomllib), not from meshplan's output, so a wrong
network ID, a missing remote secret or a meshNetworks address off the plan shows up here.
The one stand-in between istiod and the API servers: the remote secrets name each cluster's
planned API server address, which does not exist here, so their `server` is pointed at that
cluster's loopback API server (and `tls-server-name` dropped: the test servers' certificate names
127.0.0.1) before istiod starts. Usage: istiod.py --help.
"""

import argparse
import base64
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request

import kube
import yaml

SYSTEM_NAMESPACES = {"istio-system", "kube-system", "kube-public", "kube-node-lease", "default"}
MANAGED_BY = "meshplan-real-tools"


class Failure(Exception):
    pass


# ------------------------------------------------------------------------------------------------
# The plan: what should be true


class PlannedCluster:
    def __init__(self, table):
        self.name = table["name"]
        self.role = table["role"]
        self.network = table["network"]
        cidr = table["pod_cidr"]
        self.pod_cidr = ipaddress.ip_network(cidr[0] if isinstance(cidr, list) else cidr, strict=False)
        lb = table.get("lb", {})
        self.via = lb.get("via", "metallb" if "metallb" in table else "cloud")
        self.eastwest_host = lb.get("eastwest_hostname")
        self.eastwest = lb.get("eastwest")
        self.eastwest_port = lb.get("eastwest_node_port", 31443) if self.via == "node_port" else 15443
        self.context = table.get("context", self.name)
        self.locality = tuple(table.get(k, "") for k in ("region", "zone", "subzone"))
        self.port = None  # the loopback port of this cluster's test API server


def read_plan(path):
    with open(path, "rb") as f:
        plan = tomllib.load(f)
    clusters = [PlannedCluster(c) for c in plan.get("cluster", [])]
    dataplane = plan.get("mesh", {}).get("dataplane", "sidecar")
    return clusters, dataplane


def failing_over(path):
    """The services ("name.namespace") the plan gives a failover."""
    with open(path, "rb") as f:
        plan = tomllib.load(f)
    return {f"{s['name']}.{s['namespace']}" for s in plan.get("service", []) if s.get("failover")}


HBONE_PORT = 15008


def planned_gateways(clusters, ambient):
    """network -> {(address, port)} of the east-west gateways the plan puts on it (the HBONE port
    in an ambient mesh)."""
    gateways = {}
    for c in clusters:
        if c.eastwest:
            gateways.setdefault(c.network, set()).add((c.eastwest, HBONE_PORT if ambient else c.eastwest_port))
    return gateways


def hostname_networks(clusters):
    return {c.network for c in clusters if c.eastwest_host}


# ------------------------------------------------------------------------------------------------
# kubectl


# The harness's own reads and writes go over HTTPS from this process (kube.py), not through a
# kubectl run each (~0.06 s of CPU a run); their kubectl forms are kept in the comments.


def kube_call(function, *args):
    try:
        return function(*args)
    except kube.Error as e:
        raise Failure(str(e)) from e


def kubectl_json(context, *args):
    """`kubectl --context CONTEXT ARGS -o json` (kube.get_json)."""
    return kube_call(kube.get_json, context, *args)


def apply_json(context, obj):
    """`kubectl apply --server-side --field-manager real-tools -f -`."""
    kube_call(kube.apply, context, obj, MANAGED_BY)


# ------------------------------------------------------------------------------------------------
# What kubelets, the scheduler, the injector and the endpoint controller would do


def sample_deployments(context):
    items = kubectl_json(context, "get", "deployments", "--all-namespaces")["items"]
    return sorted(
        (d for d in items if d["metadata"]["namespace"] not in SYSTEM_NAMESPACES | {"metallb-system"}),
        key=lambda d: (d["metadata"]["namespace"], d["metadata"]["name"]),
    )


LOCALITY_LABELS = ("topology.kubernetes.io/region", "topology.kubernetes.io/zone", "topology.istio.io/subzone")


def sample_node(cluster):
    """The node the scheduler would put the samples on: the first with the cluster's planned
    locality in its labels (which node-labels.sh set), else the first; None without nodes."""
    nodes = sorted(kubectl_json(cluster.context, "get", "nodes")["items"], key=lambda n: n["metadata"]["name"])
    for node in nodes:
        labels = node["metadata"].get("labels", {})
        if tuple(labels.get(k, "") for k in LOCALITY_LABELS) == cluster.locality:
            return node["metadata"]["name"]
    return nodes[0]["metadata"]["name"] if nodes else None


def run_pod(cluster, deployment, ip, node, ambient):
    """One Ready pod of the Deployment at IP, as the ReplicaSet, scheduler, injector and kubelet
    would leave it. `sidecar.istio.io/inject: "false"` keeps the API server from calling the
    injection webhook, whose istiod does not run in this cluster; the label the injector would add
    (`security.istio.io/tlsMode: istio`) is set by hand instead."""
    meta = deployment["metadata"]
    template = deployment["spec"]["template"]
    labels = dict(template["metadata"].get("labels", {}))
    labels["sidecar.istio.io/inject"] = "false"
    if not ambient:
        labels["security.istio.io/tlsMode"] = "istio"
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"{meta['name']}-0", "namespace": meta["namespace"], "labels": labels},
        "spec": template["spec"],
    }
    name, ns = pod["metadata"]["name"], meta["namespace"]
    apply_json(cluster.context, pod)
    if node:
        binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": name}, "target": {"kind": "Node", "name": node}}
        bound = kubectl_json(cluster.context, "-n", ns, "get", "pod", name)["spec"].get("nodeName")
        if not bound:
            # kubectl create --raw /api/v1/namespaces/NS/pods/NAME/binding -f -
            kube_call(kube.create, cluster.context, f"/api/v1/namespaces/{ns}/pods/{name}/binding", binding)
    status = {
        "status": {
            "phase": "Running",
            "podIP": str(ip),
            "podIPs": [{"ip": str(ip)}],
            "conditions": [{"type": "Ready", "status": "True"}, {"type": "ContainersReady", "status": "True"}],
        }
    }
    # kubectl -n NS patch pod NAME --subresource=status --type=merge -p STATUS
    kube_call(kube.merge_patch, cluster.context, "pod", ns, name, status, "status")
    return {"name": name, "namespace": ns, "labels": labels, "ip": ip, "node": node, "spec": template["spec"]}


def container_port(pod, target):
    if isinstance(target, int):
        return target
    for container in pod["spec"].get("containers", []):
        for port in container.get("ports", []):
            if port.get("name") == target:
                return port["containerPort"]
    return None


def publish_endpoints(cluster, service, pods):
    """The EndpointSlice the endpointslice controller would write for SERVICE and its ready PODS."""
    meta = service["metadata"]
    ports, by_service_port = [], {}
    for p in service["spec"].get("ports", []):
        number = container_port(pods[0], p.get("targetPort", p["port"]))
        if number is not None:
            ports.append({"name": p.get("name", ""), "port": number, "protocol": p.get("protocol", "TCP")})
            by_service_port[p["port"]] = number
    family = "IPv6" if pods[0]["ip"].version == 6 else "IPv4"
    endpoints = []
    for pod in pods:
        endpoint = {
            "addresses": [str(pod["ip"])],
            "conditions": {"ready": True, "serving": True, "terminating": False},
            "targetRef": {"kind": "Pod", "name": pod["name"], "namespace": pod["namespace"]},
        }
        if pod["node"]:
            endpoint["nodeName"] = pod["node"]
        endpoints.append(endpoint)
    slice_ = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{meta['name']}-{MANAGED_BY}",
            "namespace": meta["namespace"],
            "labels": {"kubernetes.io/service-name": meta["name"], "endpointslice.kubernetes.io/managed-by": MANAGED_BY},
        },
        "addressType": family,
        "endpoints": endpoints,
        "ports": ports,
    }
    apply_json(cluster.context, slice_)
    return by_service_port


def selects(service, labels):
    selector = service["spec"].get("selector") or {}
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def run_samples(cluster, ambient):
    """Pods and EndpointSlices for every sample Deployment of CLUSTER. Returns
    {service host prefix "name.namespace": {"ips": [pod ip, ...], "ports": {service port: pod port}}}."""
    hosts = iter(cluster.pod_cidr.hosts())
    for _ in range(10):
        next(hosts)
    node = sample_node(cluster)
    pods = [run_pod(cluster, d, next(hosts), node, ambient) for d in sample_deployments(cluster.context)]
    published = {}
    for ns in sorted({p["namespace"] for p in pods}):
        for service in kubectl_json(cluster.context, "-n", ns, "get", "services")["items"]:
            chosen = [p for p in pods if p["namespace"] == ns and selects(service, p["labels"])]
            if chosen:
                ports = publish_endpoints(cluster, service, chosen)
                published[f"{service['metadata']['name']}.{ns}"] = {"ips": sorted(str(p["ip"]) for p in chosen), "ports": ports}
    return published


# ------------------------------------------------------------------------------------------------
# The network between istiod and the remote API servers


def point_remote_secrets_at_loopback(primary, by_name, stub_log):
    secrets = kubectl_json(primary.context, "-n", "istio-system", "get", "secrets", "-l", "istio/multiCluster=true")["items"]
    for secret in secrets:
        patched = {}
        for key, value in secret.get("data", {}).items():
            target = by_name.get(key)
            if target is None:
                raise Failure(f"remote secret {secret['metadata']['name']} holds cluster {key!r}, which the plan does not declare")
            patched[key] = base64.b64encode(loopback_kubeconfig(base64.b64decode(value), target)).decode()
        # kubectl -n istio-system patch secret NAME --type=merge -p '{"data": ...}'
        kube_call(kube.merge_patch, primary.context, "secret", "istio-system", secret["metadata"]["name"], {"data": patched})
        stub_log.write(f"stub: istiod: remote secret {secret['metadata']['name']} points at 127.0.0.1 (planned API server addresses do not exist here)\n")
    return secrets


def loopback_kubeconfig(raw, target):
    # What `kubectl config view --raw -o json` of it prints: the kubeconfig, as JSON.
    config = yaml.safe_load(raw)
    for entry in config.get("clusters", []):
        entry["cluster"]["server"] = f"https://127.0.0.1:{target.port}"
        entry["cluster"].pop("tls-server-name", None)
    return json.dumps(config).encode()


# ------------------------------------------------------------------------------------------------
# istiod


def plan_revision(path):
    """`[mesh.istio] revision`, or None."""
    with open(path, "rb") as f:
        return tomllib.load(f).get("mesh", {}).get("istio", {}).get("revision")


def istiod_deployment(context, revision=None):
    """The istiod Deployment of REVISION (istio.io/rev; the `default` revision when None)."""
    selector = f"app=istiod,istio.io/rev={revision or 'default'}"
    items = kubectl_json(context, "-n", "istio-system", "get", "deployments", "-l", selector)["items"]
    if len(items) != 1:
        raise Failure(f"the primary has {len(items)} istiod Deployments ({selector}) in istio-system, not one")
    return items[0]


FIELD_VALUES = {
    "metadata.name": "istiod-real-tools",
    "metadata.namespace": "istio-system",
    "spec.serviceAccountName": "istiod",
    "status.podIP": "127.0.0.1",
    "spec.nodeName": "real-tools",
}


def istiod_env(container, deployment):
    """The container's env as the kubelet gives it: values, and field references filled in as
    for a pod of DEPLOYMENT. REVISION, which pilot-discovery reads as its revision (its mesh
    config ConfigMap istio-<revision>, the webhooks it patches), comes from the Deployment."""
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "TMPDIR")}
    fields = dict(FIELD_VALUES, **{"spec.serviceAccountName": deployment["spec"]["template"]["spec"].get("serviceAccountName", "istiod")})
    for entry in container.get("env", []):
        if "value" in entry:
            env[entry["name"]] = entry["value"]
        elif "fieldRef" in entry.get("valueFrom", {}):
            value = fields.get(entry["valueFrom"]["fieldRef"]["fieldPath"])
            if value is not None:
                env[entry["name"]] = value
    return env


def write_cacerts(context, directory):
    """What the `cacerts` Secret's volume mount gives istiod: ./etc/cacerts/*.pem."""
    os.makedirs(directory, exist_ok=True)
    secret = kubectl_json(context, "-n", "istio-system", "get", "secret", "cacerts")
    for key, value in secret.get("data", {}).items():
        with open(os.path.join(directory, key), "wb") as f:
            f.write(base64.b64decode(value))


def start_istiod(primary, args, ports, revision=None, name="istiod"):
    """pilot-discovery as the istiod Deployment of REVISION on PRIMARY runs it; NAME names its
    directory and log under args.work."""
    deployment = istiod_deployment(primary.context, revision)
    container = next((c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "discovery"), None)
    if container is None:
        raise Failure("the istiod Deployment has no `discovery` container")
    home = os.path.join(args.work, name)
    shutil.rmtree(home, ignore_errors=True)
    write_cacerts(primary.context, os.path.join(home, "etc", "cacerts"))
    kubeconfig = os.path.join(home, "kubeconfig")
    with open(kubeconfig, "w") as f:
        # kubectl config view --minify --flatten --context CONTEXT
        yaml.safe_dump(kube.minified(primary.context), f, sort_keys=False)
    command = [
        args.pilot_discovery,
        *container.get("args", ["discovery"]),
        "--kubeconfig", kubeconfig,
        "--httpAddr", f"127.0.0.1:{ports[0]}",
        "--grpcAddr", f"127.0.0.1:{ports[1]}",
        "--secureGRPCAddr", f"127.0.0.1:{ports[2]}",
        "--httpsAddr", f"127.0.0.1:{ports[3]}",
        "--monitoringAddr", f"127.0.0.1:{ports[4]}",
    ]
    log = open(os.path.join(args.work, f"{name}.log"), "w")
    env = istiod_env(container, deployment)
    if env.get("REVISION", "default") != (revision or "default"):
        raise Failure(f"istiod Deployment {deployment['metadata']['name']} runs as revision {env.get('REVISION')}, not {revision or 'default'}")
    process = subprocess.Popen(command, cwd=home, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    return process, log.name


def get_json(port, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
        return json.load(response)


def wait_ready(process, port, log, deadline):
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise Failure(f"pilot-discovery exited with {process.returncode}; end of its log:\n{tail(log)}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    raise Failure(f"pilot-discovery did not become ready; end of its log:\n{tail(log)}")


def tail(path, n=25):
    with open(path, errors="replace") as f:
        return "".join("    " + line for line in f.readlines()[-n:])


# ------------------------------------------------------------------------------------------------
# What istiod sees


def observe(port):
    return {
        "clusters": get_json(port, "/debug/clusterz"),
        "gateways": get_json(port, "/debug/networkz") or [],
        "shards": get_json(port, "/debug/endpointShardz") or {},
    }


def seen_endpoints(shards, host_prefix):
    """(cluster, ip, network) for every endpoint istiod holds of the service HOST_PREFIX.svc..."""
    seen = set()
    for host, by_namespace in shards.items():
        if not host.startswith(host_prefix + ".svc."):
            continue
        for entry in by_namespace.values():
            for shard, endpoints in (entry.get("Shards") or {}).items():
                for ep in endpoints or []:
                    for address in ep.get("Addresses") or []:
                        seen.add((shard.split("/", 1)[-1], address, ep.get("Network", "")))
    return seen


def problems(seen, clusters, primary, published, ambient):
    found = []
    synced = {c["id"]: c.get("syncStatus") for c in seen["clusters"] or []}
    for c in clusters:
        if c is not primary and synced.get(c.name) != "synced":
            found.append(f"istiod on {primary.name} does not watch {c.name} (clusterz: {synced.get(c.name, 'absent')})")
    for c in clusters:
        for host, workload in published[c.name].items():
            endpoints = seen_endpoints(seen["shards"], host)
            for ip in workload["ips"]:
                if (c.name, ip, c.network) not in endpoints:
                    got = sorted(e for e in endpoints if e[1] == ip) or "nothing"
                    found.append(f"{host}: istiod does not hold {c.name}'s endpoint {ip} on network {c.network} (holds {got})")
    gateways = {}
    for g in seen["gateways"]:
        port = g.get("HBONEPort", 0) if ambient else g.get("Port", 0)
        gateways.setdefault(g.get("Network", ""), set()).add((g.get("Addr", ""), port))
    by_hostname = hostname_networks(clusters)
    for network, planned in sorted(planned_gateways(clusters, ambient).items()):
        if network == primary.network and len({c.network for c in clusters}) == 1:
            continue
        got = gateways.get(network, set())
        if not planned <= got:
            found.append(f"network {network}: istiod has gateways {sorted(got) or 'none'}, the plan puts {sorted(planned)}")
        if got - planned and network not in by_hostname:
            found.append(f"network {network}: istiod has gateways the plan does not plan: {sorted(got - planned)}")
    return found


def expected_eds(clusters, primary, published):
    """{EDS cluster name: {(address, port)}} a sidecar on the primary's network must be sent:
    its own network's pods directly, every other network's behind that network's planned east-west
    gateways. Networks whose gateway is a DNS name are left out (None: not compared)."""
    gateways = planned_gateways(clusters, False)
    by_hostname = hostname_networks(clusters)
    expected = {}
    for c in clusters:
        for host, workload in published[c.name].items():
            for service_port, pod_port in workload["ports"].items():
                name = f"outbound|{service_port}||{host}.svc.cluster.local"
                if c.network in by_hostname and c.network != primary.network:
                    expected[name] = None
                    continue
                want = expected.setdefault(name, set())
                if want is None:
                    continue
                if c.network == primary.network:
                    want.update((ip, pod_port) for ip in workload["ips"])
                else:
                    want.update(gateways.get(c.network, set()))
    return expected


def eds_problems(eds, expected, primary):
    found = []
    for name, want in sorted(expected.items()):
        if want is None:
            continue
        got = {(e["address"], e["port"]) for e in eds.get(name, [])}
        if got != want:
            found.append(f"EDS for a sidecar on {primary.name} ({primary.network}), {name}: got {sorted(got) or 'nothing'}, the plan means {sorted(want)}")
    return found


def probe_eds(args, client):
    """What istiod sends a sidecar in CLIENT's cluster, network and locality:
    {EDS cluster name: [{address, port, weight, priority, locality}]}."""
    prefix = "" if getattr(args, "name", "istiod") == "istiod" else f"{args.name}-"
    out = os.path.join(args.work, f"{prefix}eds-{client.name}.json")
    region, zone, subzone = client.locality
    command = [
        args.xds_probe, "-xds", f"127.0.0.1:{args.ports[1]}", "-cluster", client.name, "-network", client.network,
        "-region", region, "-zone", zone, "-subzone", subzone, "-out", out,
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise Failure(f"xds-probe exited with {result.returncode}:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    with open(out) as f:
        return json.load(f)


# ------------------------------------------------------------------------------------------------
# The traffic model (`meshplan explain --traffic --format json`) against what istiod sends


def eds_name(service):
    return f"outbound|{service['port']}||{service['service']}.svc.cluster.local"


def model_tiers(service, view, by_name, published):
    """The model's tiers for one client, as the (address, port) sets istiod should send at
    priorities 0, 1, ...: each endpoint cluster's sample pods (the only pods this test runs; a
    planned cluster without them has nothing to send), or its network's east-west gateways. Tiers
    left empty are dropped and the rest renumbered, as istiod renumbers them. None when an
    endpoint is behind a DNS-named gateway (istiod resolves it; nothing resolves here)."""
    client = by_name[view["client"]]
    tiers = []
    for tier in view["tiers"]:
        want = set()
        for endpoint in tier["endpoints"]:
            there = by_name[endpoint["cluster"]]
            workload = published[there.name].get(service["service"])
            if not workload or service["port"] not in workload["ports"]:
                continue
            if there.network != client.network and there.eastwest_host:
                return None
            if endpoint["via"]:
                # "ADDRESS:PORT", an IPv6 address in brackets.
                want.update((a.strip("[]"), int(p)) for a, p in (v.rsplit(":", 1) for v in endpoint["via"]))
            else:
                want.update((ip, workload["ports"][service["port"]]) for ip in workload["ips"])
        if want:
            tiers.append(want)
    return tiers


def sent_tiers(endpoints):
    """istiod's endpoints for one EDS cluster as [(priority, {(address, port)})], by priority."""
    by_priority = {}
    for e in endpoints:
        by_priority.setdefault(e.get("priority", 0), set()).add((e["address"], e["port"]))
    return sorted(by_priority.items())


def show_tiers(tiers):
    return " | ".join(f"{p}: {' '.join(f'{a}:{port}' for a, port in sorted(t))}" for p, t in tiers) or "nothing"


def traffic_problems(args, traffic, by_name, published, only=None):
    """Every (service, client) whose tiers istiod sends differ from the model's, as messages;
    and the comparisons made. ONLY limits it to one service."""
    found, compared, sent = [], [], {}
    for service in traffic["services"]:
        if only and service["service"] != only:
            continue
        for view in service["clients"]:
            want = model_tiers(service, view, by_name, published)
            if want is None:
                compared.append(f"{service['service']} from {view['client']}: not compared (DNS-named gateway)")
                continue
            if view["client"] not in sent:
                sent[view["client"]] = probe_eds(args, by_name[view["client"]])
            got = sent_tiers(sent[view["client"]].get(eds_name(service), []))
            want = list(enumerate(want))
            compared.append(f"{service['service']} from {view['client']}: {show_tiers(want)}")
            if got != want:
                found.append(f"EDS of {service['service']}:{service['port']} to a sidecar in {view['client']}: istiod sends priorities {show_tiers(got)}; the model (explain --traffic) says {show_tiers(want)}")
    return found, compared


def destination_rule(context, service):
    """The DestinationRule meshplan made for SERVICE ("name.namespace") on the config cluster, or None."""
    rules = kubectl_json(context, "-n", "istio-system", "get", "destinationrules.networking.istio.io")["items"]
    return next((r for r in rules if r["metadata"]["name"] == service), None)


def replace(context, obj):
    obj = json.loads(json.dumps(obj))
    for key in ("resourceVersion", "uid", "creationTimestamp", "generation", "managedFields"):
        obj["metadata"].pop(key, None)
    kube_call(kube.replace, context, obj)  # kubectl replace -f -


def regions_of(service, by_name):
    return sorted({by_name[e["cluster"]].locality[0] for v in service["clients"] for t in v["tiers"] for e in t["endpoints"]} - {""})


def edits(traffic, by_name, published, fail_over):
    """The edits of a live DestinationRule that must make istiod disagree with the model:
    [(service, what it shows, edit of the spec)]. Dropping outlierDetection wherever the model
    gives a client more than one tier (Istio ignores locality failover without it, so the tiers
    flatten); pointing each failover at the third region wherever the service fails over and its
    endpoints span three regions (the tiers swap)."""
    out = []
    for service in traffic["services"]:
        views = [model_tiers(service, v, by_name, published) or [] for v in service["clients"]]
        if max((len(t) for t in views), default=0) < 2:
            continue
        out.append((service["service"], "without outlierDetection the tiers flatten", drop_outlier))
        regions = regions_of(service, by_name)
        if service["service"] in fail_over and len(regions) >= 3:
            out.append((service["service"], "each failover pointed at the other region swaps the tiers", lambda spec, r=regions: flip_failover(spec, r)))
    return out


def drop_outlier(spec):
    spec["trafficPolicy"].pop("outlierDetection", None)


def flip_failover(spec, regions):
    for rule in spec["trafficPolicy"]["loadBalancer"]["localityLbSetting"]["failover"]:
        rule["to"] = next(r for r in regions if r not in (rule["from"], rule["to"]))


def wait_for_mismatch(args, traffic, by_name, published, service, deadline):
    """istiod's disagreements with the model about SERVICE, once there are any (an edit takes a
    push to arrive), or none by DEADLINE."""
    while True:
        found, _ = traffic_problems(args, traffic, by_name, published, service)
        if found or time.monotonic() > deadline:
            return found
        time.sleep(1)


def edits_problems(args, traffic, by_name, published, config, deadline):
    """Applies each edit to the live DestinationRule, waits until istiod's tiers disagree with
    the model (the comparison must fail), restores the rule and waits until they agree again.
    Returns the problems (an edit istiod's tiers did not follow) and what was shown."""
    fail_over = failing_over(args.plan)
    found, shown = [], []
    for service, what, edit in edits(traffic, by_name, published, fail_over):
        original = destination_rule(config.context, service)
        if original is None:
            found.append(f"{service}: the model gives it failover tiers, but the config cluster {config.name} has no DestinationRule {service} in istio-system")
            continue
        changed = json.loads(json.dumps(original))
        edit(changed["spec"])
        replace(config.context, changed)
        try:
            mismatch = wait_for_mismatch(args, traffic, by_name, published, service, deadline)
        finally:
            replace(config.context, original)
        if mismatch:
            shown.append(f"edit of DestinationRule {service} ({what}): the comparison fails as it must:\n      {mismatch[0]}")
        else:
            found.append(f"{service}: {what}, yet istiod's tiers still equal the model's: the comparison cannot tell")
        _, back = until(deadline, lambda: (None, traffic_problems(args, traffic, by_name, published, service)[0]))
        found.extend(f"after restoring DestinationRule {service}: {p}" for p in back)
    return found, shown


def report(seen, clusters, primary, published, expected, ambient):
    print(f"    istiod on {primary.name} watches: {', '.join(sorted(c['id'] for c in seen['clusters'] or []))}")
    for c in clusters:
        for host, workload in sorted(published[c.name].items()):
            print(f"    {host}: {c.name} {' '.join(workload['ips'])} on {c.network}")
    for g in sorted(seen["gateways"], key=lambda g: (g.get("Network", ""), g.get("Addr", ""))):
        port = f"HBONE {g.get('HBONEPort')}" if ambient else g.get("Port")
        print(f"    gateway of {g.get('Network')}: {g.get('Addr')}:{port} (from {g.get('Cluster') or 'meshNetworks'})")
    for network in sorted(hostname_networks(clusters)):
        print(f"    network {network}: its gateway is a DNS name, which istiod resolves; not resolvable here, so not checked")
    for name, want in sorted(expected.items()):
        shown = "not compared (DNS-named gateway)" if want is None else " ".join(f"{a}:{p}" for a, p in sorted(want))
        print(f"    EDS to a sidecar on {primary.network}: {name} -> {shown}")


def report_traffic(traffic, compared, shown, ambient):
    if ambient:
        print("    traffic model: not compared with EDS (ambient proxies are sent workloads over ztunnel's stream, which xds-probe does not ask; istiod's endpointShardz is checked above)")
        return
    if not traffic["services"]:
        print("    traffic model: no service to compare (the plan runs no sample and plans no [[service]])")
        return
    print(f"    traffic model: istiod's EDS priorities equal explain --traffic for {len(compared)} service/client pairs of {len(traffic['services'])} services")
    for line in compared:
        print(f"      {line}")
    for line in shown:
        print(f"    {line}")


def until(deadline, attempt):
    """Calls ATTEMPT until it reports no problem or DEADLINE passes; returns its last answer."""
    while True:
        answer = attempt()
        if not answer[-1] or time.monotonic() > deadline:
            return answer
        time.sleep(1)


def check(args):
    clusters, dataplane = read_plan(args.plan)
    ambient = dataplane == "ambient"
    by_name = {c.name: c for c in clusters}
    for spec in args.cluster:
        name, port = spec.split("=", 1)
        by_name[name].port = int(port)
    primary = next(c for c in clusters if c.role == "primary")
    with open(args.stub_log, "a") as stub_log:
        point_remote_secrets_at_loopback(primary, by_name, stub_log)
        stub_log.write("stub: istiod: sample pods, their status and EndpointSlices made by hand (no nodes)\n")
    published = {c.name: run_samples(c, ambient) for c in clusters}
    # Sidecar EDS is what a sidecar mesh's proxies are sent; ambient proxies are sent workloads.
    expected = {} if ambient else expected_eds(clusters, primary, published)
    with open(args.traffic) as f:
        traffic = json.load(f)
    revision = plan_revision(args.plan) if args.revision is None else args.revision
    runs = [(None if revision == "default" else revision, args.ports, args.name)]
    if args.also_revision:
        # A second revision's pilot-discovery beside the first (the canary, run.sh's check 8):
        # both run at once, on the same API servers, and each is checked as the first is.
        also = None if args.also_revision == "default" else args.also_revision
        runs.append((also, args.also_ports, f"istiod-{args.also_revision}"))
    started = []
    failures = []
    try:
        for rev, ports, name in runs:
            started.append(start_istiod(primary, args, ports, rev, name))
        for (rev, ports, name), (process, log) in zip(runs, started):
            if rev:
                print(f"    pilot-discovery runs as revision {rev} (REVISION of Deployment istiod-{rev}; mesh config istio-{rev}; ports {ports[0]}..)")
            elif args.revision or args.also_revision:
                print(f"    pilot-discovery runs as revision default (Deployment istiod; mesh config istio; ports {ports[0]}..)")
            found = serve_checks(argparse.Namespace(**{**vars(args), "ports": ports, "name": name}), process, log, clusters, primary, published, expected, traffic, by_name, ambient)
            if found and len(runs) > 1:
                found = [f"revision {rev or 'default'}: {line}" for line in found]
            failures.extend(found)
    finally:
        for process, _ in started:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    if failures:
        raise Failure("\n".join(failures))


def serve_checks(args, process, log, clusters, primary, published, expected, traffic, by_name, ambient):
    """What one running pilot-discovery serves, against the plan; prints the report and returns
    the problems."""
    compared, shown = [], []
    seen = None
    deadline = time.monotonic() + args.timeout
    wait_ready(process, args.ports[0], log, deadline)
    seen, found = until(deadline, lambda: (seen := observe(args.ports[0]), problems(seen, clusters, primary, published, ambient)))
    if not found and expected:
        _, found = until(deadline, lambda: (None, eds_problems(probe_eds(args, primary), expected, primary)))
    if not found and not ambient:
        compared, found = until(deadline, lambda: traffic_problems(args, traffic, by_name, published)[::-1])
    if not found and not ambient and not args.no_edits:
        found, shown = edits_problems(args, traffic, by_name, published, primary, time.monotonic() + args.timeout)
    report(seen, clusters, primary, published, {} if found else expected, ambient)
    if not found:
        report_traffic(traffic, compared, shown, ambient)
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--plan", required=True)
    parser.add_argument("--cluster", action="append", default=[], metavar="NAME=PORT", help="a cluster's loopback API server port")
    parser.add_argument("--pilot-discovery", required=True)
    parser.add_argument("--xds-probe", required=True)
    parser.add_argument("--traffic", required=True, help="meshplan explain --traffic --format json of the plan")
    parser.add_argument("--ports", required=True, type=lambda s: [int(p) for p in s.split(",")], help="5 free loopback ports")
    parser.add_argument("--work", required=True)
    parser.add_argument("--stub-log", required=True)
    parser.add_argument("--timeout", type=float, default=90)
    parser.add_argument("--revision", help="run the istiod Deployment of this revision (`default`: the unrevisioned one); default the plan's")
    parser.add_argument("--name", default="istiod", help="its directory and log under --work")
    parser.add_argument("--no-edits", action="store_true", help="leave the live DestinationRules alone (another istiod is checked at the same time)")
    parser.add_argument("--also-revision", help="also run this revision's istiod Deployment at the same time, and check it the same way")
    parser.add_argument("--also-ports", type=lambda s: [int(p) for p in s.split(",")], help="5 more free loopback ports, for --also-revision")
    args = parser.parse_args()
    # A stopped run still kills istiod (the finally in check()), so it never outlives run.sh.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda number, _frame: sys.exit(128 + number))
    try:
        check(args)
    except Failure as failure:
        print(f"istiod: {failure}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
