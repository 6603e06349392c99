#!/usr/bin/env python3
"""The harness's own reads and writes of the test API servers, over HTTPS from one process.

A kubectl run costs about 0.06 s of CPU however small (a 50 MB Go binary starting and reading its
discovery cache), and the harness (run.sh, istiod.py, metallb.py, revision.py, gateway.py,
trust.py) made about a hundred of them per plan. Its reads and writes go through here instead: one
keep-alive HTTPS connection per cluster, to the server and with the credentials of the context
in $KUBECONFIG, which run.sh writes. The generated scripts (install.sh, doctor.sh, upgrade.sh)
still run the real kubectl: executing them as an operator would is what the run is for.

`get_json(context, *kubectl_args)` takes the arguments of a `kubectl get ... -o json` and
answers as kubectl does (a list's items carry their apiVersion and kind); a form or a resource
this module does not know (an ambiguous short name such as `gateway`) runs the real kubectl.

Usage (run.sh):
  kube.py kubeconfig OUT CA TOKEN CONTEXT=PORT...  the kubeconfig of the job's servers, and
                                                  OUT-<i> (the ith context alone, current) for
                                                  the controller-manager and MetalLB
  kube.py ready I:CONTEXT:PID...                   waits (60 s) for each server's /readyz; prints
                                                  `I exited` or `I timeout` for each that failed
  kube.py prepare CONTEXT NAMESPACE NODE...        what a cluster has before the procedure runs
"""

import base64
import http.client
import json
import os
import ssl
import subprocess
import sys
import time
import urllib.parse

import yaml

LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class Error(Exception):
    def __init__(self, message, status=None):
        super().__init__(message)
        self.status = status


# kubectl's names of the kinds the harness asks for -> (group/version, plural, namespaced).
# Only unambiguous names: `gateway` (Istio's and Gateway API's) is left to kubectl.
_KINDS = [
    ("v1", "pods", True, ["pod", "po"]),
    ("v1", "services", True, ["service", "svc"]),
    ("v1", "secrets", True, ["secret"]),
    ("v1", "configmaps", True, ["configmap", "cm"]),
    ("v1", "events", True, ["event", "ev"]),
    ("v1", "nodes", False, ["node", "no"]),
    ("v1", "namespaces", False, ["namespace", "ns"]),
    ("apps/v1", "deployments", True, ["deployment", "deploy", "deployments.apps"]),
    ("apps/v1", "daemonsets", True, ["daemonset", "ds", "daemonsets.apps"]),
    ("discovery.k8s.io/v1", "endpointslices", True, ["endpointslice", "endpointslices.discovery.k8s.io"]),
    ("admissionregistration.k8s.io/v1", "mutatingwebhookconfigurations", False, ["mutatingwebhookconfiguration"]),
    ("admissionregistration.k8s.io/v1", "validatingwebhookconfigurations", False, ["validatingwebhookconfiguration"]),
    ("apiextensions.k8s.io/v1", "customresourcedefinitions", False, ["customresourcedefinition", "crd", "crds"]),
    ("networking.istio.io/v1", "destinationrules", True, ["destinationrules.networking.istio.io", "destinationrule", "dr"]),
]
RESOURCES = {}
for _gv, _plural, _namespaced, _names in _KINDS:
    for _name in [_plural, *_names]:
        RESOURCES[_name] = (_gv, _plural, _namespaced)


def resource_path(kind, namespace=None, name=None, subresource=None):
    gv, plural, namespaced = RESOURCES[kind]
    path = ("/api/" if "/" not in gv else "/apis/") + gv
    if namespaced and namespace is not None:
        path += f"/namespaces/{namespace}"
    path += f"/{plural}"
    if name:
        path += f"/{name}"
    if subresource:
        path += f"/{subresource}"
    return path


# ------------------------------------------------------------------------------------------------
# Connections


_config = None
_clients = {}


def _kubeconfig():
    global _config
    if _config is None:
        with open(os.environ["KUBECONFIG"], encoding="utf-8") as f:
            _config = yaml.load(f, Loader=LOADER)
    return _config


def _named(entries, name, what):
    for entry in entries or []:
        if entry["name"] == name:
            return entry[what]
    raise Error(f"no {what} {name!r} in {os.environ.get('KUBECONFIG')}")


class _Client:
    def __init__(self, context):
        config = _kubeconfig()
        ctx = _named(config.get("contexts"), context, "context")
        cluster = _named(config.get("clusters"), ctx["cluster"], "cluster")
        user = _named(config.get("users"), ctx["user"], "user")
        url = urllib.parse.urlsplit(cluster["server"])
        self.context, self.host, self.port = context, url.hostname, url.port or 443
        if "certificate-authority-data" in cluster:
            self.ssl = ssl.create_default_context(cadata=base64.b64decode(cluster["certificate-authority-data"]).decode())
        else:
            self.ssl = ssl.create_default_context(cafile=cluster["certificate-authority"])
        self.token = user["token"]
        self.connection = None

    def request(self, method, path, body=None, content_type="application/json"):
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
            body = body if isinstance(body, bytes) else json.dumps(body).encode()
        for attempt in (1, 2):
            if self.connection is None:
                self.connection = http.client.HTTPSConnection(self.host, self.port, context=self.ssl, timeout=60)
            try:
                self.connection.request(method, path, body=body, headers=headers)
                response = self.connection.getresponse()
                data = response.read()
                break
            except (http.client.HTTPException, ConnectionError, OSError) as e:
                self.connection.close()
                self.connection = None
                if attempt == 2:
                    raise Error(f"{method} {path} on context {self.context}: {e}") from e
        if response.status >= 400:
            try:
                status = json.loads(data)
                message = f"{status.get('reason', response.status)}: {status.get('message', '')}"
            except ValueError:
                message = f"{response.status}: {data[:200]!r}"
            raise Error(f"{method} {path} on context {self.context}: {message}", response.status)
        if "json" not in (response.getheader("Content-Type") or ""):
            return data.decode(errors="replace")
        return json.loads(data) if data else None


def client(context):
    if context not in _clients:
        _clients[context] = _Client(context)
    return _clients[context]


def request(context, method, path, body=None, content_type="application/json"):
    return client(context).request(method, path, body, content_type)


# ------------------------------------------------------------------------------------------------
# kubectl's forms


def _as_kubectl_list(answer):
    """A REST list as `kubectl get -o json` prints it: items with their apiVersion and kind."""
    kind = answer.get("kind", "")
    if kind.endswith("List"):
        for item in answer.get("items", []):
            item.setdefault("apiVersion", answer.get("apiVersion"))
            item.setdefault("kind", kind[: -len("List")])
    return answer


def _parse_get(args):
    """(kind, namespace, name, query) of `[-n NS] get KIND [NAME] [-l SEL] [--field-selector SEL]
    [--all-namespaces]`, or None for any other form."""
    namespace, words, query, all_namespaces = "default", [], {}, False
    i = 0
    while i < len(args):
        a = args[i]
        if a in ("-n", "--namespace") and i + 1 < len(args):
            namespace, i = args[i + 1], i + 2
        elif a in ("-l", "--selector") and i + 1 < len(args):
            query["labelSelector"], i = args[i + 1], i + 2
        elif a == "--field-selector" and i + 1 < len(args):
            query["fieldSelector"], i = args[i + 1], i + 2
        elif a in ("--all-namespaces", "-A"):
            all_namespaces, i = True, i + 1
        elif a.startswith("-"):
            return None
        else:
            words.append(a)
            i += 1
    if len(words) not in (2, 3) or words[0] != "get" or words[1] not in RESOURCES or "/" in "".join(words[1:]):
        return None
    name = words[2] if len(words) == 3 else None
    if all_namespaces and name:
        return None
    return words[1], None if all_namespaces else namespace, name, query


def _kubectl(context, args, stdin=None):
    result = subprocess.run(["kubectl", "--context", context, *args], input=stdin, capture_output=True, text=True)
    if result.returncode != 0:
        status = 404 if "NotFound" in result.stderr else None
        raise Error(f"kubectl --context {context} {' '.join(args)}: {result.stderr.strip()}", status)
    return result.stdout


def get_json(context, *args):
    """`kubectl --context CONTEXT ARGS -o json`, answered over HTTPS where the form is known."""
    parsed = _parse_get(args)
    if parsed is None:
        return json.loads(_kubectl(context, [*args, "-o", "json"]))
    kind, namespace, name, query = parsed
    path = resource_path(kind, namespace, name)
    if query:
        path += "?" + urllib.parse.urlencode(query)
    return _as_kubectl_list(request(context, "GET", path))


def get_or_none(context, *args):
    """get_json, or None when the object does not exist."""
    try:
        return get_json(context, *args)
    except Error as e:
        if e.status == 404:
            return None
        raise


def _object_path(obj, subresource=None):
    meta = obj["metadata"]
    kind = obj["kind"].lower()
    if kind not in RESOURCES or RESOURCES[kind][0] != obj["apiVersion"]:
        return None
    return resource_path(kind, meta.get("namespace", "default"), meta["name"], subresource)


def apply(context, obj, manager):
    """`kubectl apply --server-side --field-manager MANAGER -f -` of one object."""
    path = _object_path(obj)
    if path is None:
        _kubectl(context, ["apply", "--server-side", "--field-manager", manager, "-f", "-"], stdin=json.dumps(obj))
        return
    request(context, "PATCH", f"{path}?fieldManager={urllib.parse.quote(manager)}", obj, "application/apply-patch+yaml")


def merge_patch(context, kind, namespace, name, patch, subresource=None):
    """`kubectl -n NAMESPACE patch KIND NAME [--subresource=S] --type=merge -p PATCH`."""
    request(context, "PATCH", resource_path(kind, namespace, name, subresource), patch, "application/merge-patch+json")


def create(context, path, obj):
    """`kubectl create --raw PATH -f -`."""
    return request(context, "POST", path, obj)


def replace(context, obj):
    """`kubectl replace -f -` of one object (apiVersion, kind, metadata.resourceVersion)."""
    group_version = obj["apiVersion"]
    kind = obj["kind"].lower()
    if kind in RESOURCES:
        gv, plural, namespaced = RESOURCES[kind]
        meta = obj["metadata"]
        path = ("/api/" if "/" not in group_version else "/apis/") + group_version
        if namespaced:
            path += f"/namespaces/{meta.get('namespace', 'default')}"
        path += f"/{plural}/{meta['name']}"
        if not meta.get("resourceVersion"):
            # As kubectl replace does for an object without one: the current resourceVersion.
            obj = dict(obj, metadata=dict(meta, resourceVersion=request(context, "GET", path)["metadata"]["resourceVersion"]))
        request(context, "PUT", path, obj)
        return
    _kubectl(context, ["replace", "-f", "-"], stdin=json.dumps(obj))


def delete(context, kind, namespace, name):
    """`kubectl -n NAMESPACE delete KIND NAME --ignore-not-found`."""
    try:
        request(context, "DELETE", resource_path(kind, namespace, name))
    except Error as e:
        if e.status != 404:
            raise


def minified(context):
    """`kubectl config view --minify --flatten --context CONTEXT`: that context alone, current."""
    config = _kubeconfig()
    ctx = _named(config.get("contexts"), context, "context")
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": ctx["cluster"], "cluster": _named(config.get("clusters"), ctx["cluster"], "cluster")}],
        "users": [{"name": ctx["user"], "user": _named(config.get("users"), ctx["user"], "user")}],
        "contexts": [{"name": context, "context": ctx}],
        "current-context": context,
    }


# ------------------------------------------------------------------------------------------------
# run.sh's steps


def write_kubeconfig(out, ca, token, pairs):
    with open(ca, "rb") as f:
        ca_data = base64.b64encode(f.read()).decode()
    contexts = [pair.rsplit("=", 1) for pair in pairs]
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [{"name": c, "cluster": {"server": f"https://127.0.0.1:{p}", "certificate-authority-data": ca_data}} for c, p in contexts],
        "users": [{"name": c, "user": {"token": token}} for c, p in contexts],
        "contexts": [{"name": c, "context": {"cluster": c, "user": c}} for c, p in contexts],
        "current-context": "",
    }
    with open(out, "w", encoding="utf-8") as f:
        yaml.safe_dump(config, f, sort_keys=False)
    global _config
    _config = config
    for i, (c, _) in enumerate(contexts):
        with open(f"{out}-{i}", "w", encoding="utf-8") as f:
            yaml.safe_dump(minified(c), f, sort_keys=False)
    return 0


def wait_ready(servers):
    """Each I:CONTEXT:PID's /readyz answers ok within 60 s, or it is named (exited or timeout)."""
    pending = {}
    for server in servers:
        i, context, pid = server.split(":")
        pending[i] = (context, int(pid))
    deadline, failed = time.monotonic() + 60, 0
    while pending:
        for i, (context, pid) in list(pending.items()):
            try:
                os.kill(pid, 0)
            except OSError:
                print(f"{i} exited")
                failed = 1
                del pending[i]
                continue
            try:
                request(context, "GET", "/readyz")
                del pending[i]
            except Error:
                pass
        if pending and time.monotonic() > deadline:
            for i in pending:
                print(f"{i} timeout")
            return 1
        if pending:
            time.sleep(0.25)
    return failed


def prepare(context, namespace, nodes):
    """The MetalLB namespace, kube-proxy's ConfigMap (as kubeadm writes it), a Node for each NODE;
    then every CRD Established (the seeded prerequisites)."""

    def create_once(path, obj):
        try:
            request(context, "POST", path, obj)
        except Error as e:
            if e.status != 409:
                raise

    request(context, "POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    request(
        context,
        "POST",
        "/api/v1/namespaces/kube-system/configmaps",
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kube-proxy"}, "data": {"config.conf": "mode: ipvs\nipvs:\n  strictARP: false"}},
    )
    for node in nodes:
        create_once("/api/v1/nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": node}})
    deadline = time.monotonic() + 60
    while True:
        crds = request(context, "GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions")["items"]
        waiting = [
            c["metadata"]["name"] for c in crds
            if not any(k.get("type") == "Established" and k.get("status") == "True" for k in c.get("status", {}).get("conditions", []))
        ]
        if not waiting:
            return 0
        if time.monotonic() > deadline:
            raise Error(f"CRDs not established after 60 s: {', '.join(waiting)}")
        time.sleep(0.25)


def main(argv):
    try:
        if argv[0] == "kubeconfig":
            return write_kubeconfig(argv[1], argv[2], argv[3], argv[4:])
        if argv[0] == "ready":
            return wait_ready(argv[1:])
        if argv[0] == "prepare":
            return prepare(argv[1], argv[2], argv[3:])
    except Error as e:
        print(f"kube.py: {e}", file=sys.stderr)
        return 1
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
