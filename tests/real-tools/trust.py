"""Check 7 of run.sh, for a plan with [mesh.trust] phases: real istiod publishes each phase's roots.

For every phase, in order, as the tree's trust.sh would apply it to the first primary: its
`cacerts` Secret is written to that cluster's API server from the CA directory `meshplan certs`
made (the signing intermediate's ca-cert.pem, ca-key.pem and cert-chain.pem, the bundle of the
phase's roots as root-cert.pem, ca-crl.pem where the phase carries CRLs), exactly the files the
`apply_cluster` line of trust.sh names for that phase. Then pilot-discovery starts as istiod.py
starts it (the Secret as its ./etc/cacerts volume, the env of the installed istiod Deployment).
Where trust.sh requires ISTIO_MULTIROOT_MESH=true (`need_multiroot`), that Deployment must carry
it, as the tree's install files set it: nothing here adds it. It must then publish the
`istio-ca-root-cert` ConfigMap (in `default` and `istio-system`) with exactly the SHA-256
fingerprints of the roots the phase's `expect` line of verify-trust.sh names, read from the CA
directory; anything else, or nothing within the timeout, fails naming the phase.

The expectations come from the tree's scripts and the CA directory, not from this script's own
reading of the plan; the istiod is the real one. Only the first primary is checked: istiod
writes the ConfigMap in the cluster it runs for. Usage: trust.py --help.
"""

import argparse
import base64
import hashlib
import os
import shlex
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import istiod  # noqa: E402  (the same directory: its pilot-discovery start and kubectl helpers)
import kube  # noqa: E402

Failure = istiod.Failure


def fingerprints(pem):
    """Sorted SHA-256 fingerprints (AB:CD:...) of every certificate of a PEM text."""
    prints, body, inside = set(), [], False
    for line in pem.splitlines():
        line = line.strip()
        if line.startswith("-----BEGIN") and line.endswith("CERTIFICATE-----"):
            inside, body = True, []
        elif line.startswith("-----END") and inside:
            digest = hashlib.sha256(base64.b64decode("".join(body))).hexdigest().upper()
            prints.add(":".join(digest[i : i + 2] for i in range(0, len(digest), 2)))
            inside = False
        elif inside:
            body.append(line)
    return sorted(prints)


def phase_blocks(script):
    """{phase: [lines]} of a generated `case "$phase" in` of trust.sh or verify-trust.sh."""
    blocks, current = {}, None
    for raw in script.splitlines():
        line = raw.strip()
        if line.endswith(")") and line.startswith("'") and current is None:
            current = shlex.split(line[:-1])[0]
            blocks[current] = []
        elif line == ";;":
            current = None
        elif current is not None:
            blocks[current].append(line)
    return blocks


def phases_of(tree):
    with open(os.path.join(tree, "trust.sh")) as f:
        apply = phase_blocks(f.read())
    with open(os.path.join(tree, "verify-trust.sh")) as f:
        expect = phase_blocks(f.read().split("# With a phase of [mesh.trust]", 1)[1])
    phases = []
    for name, lines in apply.items():
        applies = [shlex.split(l)[1:] for l in lines if l.startswith("apply_cluster ")]
        multiroot = any(l.startswith("need_multiroot ") for l in lines)
        expects = {}
        for l in expect.get(name, []):
            if l.startswith("expect "):
                words = shlex.split(l)[1:]
                expects[words[0]] = list(zip(words[1::2], words[2::2]))
        phases.append((name, applies, multiroot, expects))
    return phases


def write_secret(context, certs, signer, roots, crl_roots):
    files = {}
    for name in ("ca-cert.pem", "ca-key.pem", "cert-chain.pem"):
        with open(os.path.join(certs, signer, name), "rb") as f:
            files[name] = f.read()
    bundle = b""
    for root in roots.split():
        with open(os.path.join(certs, root, "root-cert.pem"), "rb") as f:
            bundle += f.read()
    files["root-cert.pem"] = bundle
    crl = b""
    for root in crl_roots.split():
        with open(os.path.join(certs, root, "ca-crl.pem"), "rb") as f:
            crl += f.read()
    if crl:
        files["ca-crl.pem"] = crl
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "cacerts", "namespace": "istio-system"},
        "data": {k: base64.b64encode(v).decode() for k, v in files.items()},
    }
    # Replaced whole, as `kubectl create --dry-run | kubectl apply` in trust.sh leaves no old key.
    # kubectl -n istio-system delete secret cacerts --ignore-not-found (over HTTPS, kube.py)
    kube.delete(context, "secret", "istio-system", "cacerts")
    istiod.apply_json(context, secret)


def published(context):
    """The fingerprints in istio-ca-root-cert of `default` and `istio-system` (None if absent)."""
    seen = {}
    for namespace in ("default", "istio-system"):
        # kubectl -n NAMESPACE get configmap istio-ca-root-cert -o jsonpath={.data.root-cert\.pem}
        try:
            configmap = kube.get_or_none(context, "-n", namespace, "get", "configmap", "istio-ca-root-cert")
        except kube.Error:
            configmap = None
        seen[namespace] = None if configmap is None else fingerprints((configmap.get("data") or {}).get("root-cert.pem", ""))
    return seen


def need_multiroot(primary):
    """trust.sh's `need_multiroot`: the installed istiod Deployment (from the tree's install
    files) must run with ISTIO_MULTIROOT_MESH=true; pilot-discovery then takes it from there."""
    deployment = istiod.istiod_deployment(primary.context, None)
    container = next((c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "discovery"), {})
    value = istiod.istiod_env(container, deployment).get("ISTIO_MULTIROOT_MESH")
    if value != "true":
        raise Failure(f"the istiod Deployment of {primary.name} runs with ISTIO_MULTIROOT_MESH={value!r}: the tree's install files do not set it")


def check(args):
    clusters, _ = istiod.read_plan(args.plan)
    primary = next(c for c in clusters if c.role == "primary")
    found, shown = [], []
    for name, applies, multiroot, expects in phases_of(args.tree):
        line = next((a for a in applies if a[0] == primary.name), None)
        if line is None:
            found.append(f"phase {name}: trust.sh writes no cacerts for {primary.name}")
            continue
        _, context, signer, roots, crl_roots = line
        want = []
        for root, recorded in expects.get(primary.name, []):
            if recorded:
                want.append(recorded)
            else:
                with open(os.path.join(args.certs, root, "root-cert.pem")) as f:
                    want.extend(fingerprints(f.read()))
        want = sorted(set(want))
        write_secret(context, args.certs, signer, roots, crl_roots)
        if multiroot:
            need_multiroot(primary)
        process, log = istiod.start_istiod(primary, args, args.ports)
        try:
            deadline = time.monotonic() + args.timeout
            istiod.wait_ready(process, args.ports[0], log, deadline)
            seen = published(context)
            while time.monotonic() < deadline and any(v != want for v in seen.values()):
                time.sleep(0.5)
                seen = published(context)
        finally:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        roots_named = ", ".join(r for r, _ in expects.get(primary.name, []))
        if any(v != want for v in seen.values()):
            if os.path.exists(log):
                print(f"  phase {name}: end of istiod's log:\n{istiod.tail(log, 8)}")
            found.append(
                f"phase {name}: istiod of {primary.name} published istio-ca-root-cert {seen}, the phase expects roots {roots_named}: {want}"
            )
        else:
            crl_note = " with ca-crl.pem" if crl_roots else ""
            extra = " (ISTIO_MULTIROOT_MESH=true from its Deployment)" if multiroot else ""
            shown.append(f"phase {name}: {primary.name}'s istiod{extra} published exactly roots {roots_named}{crl_note}: {len(want)} fingerprint(s)")
    for line in shown:
        print(f"  {line}")
    # The failures last: run.sh shows the end of this output.
    if found:
        raise Failure("\n".join(found))


def root_in_istio_system(context):
    """The fingerprints of istio-ca-root-cert in istio-system (None when it is absent)."""
    return published(context)["istio-system"]


def publish(args):
    """--publish CLUSTER: the primary's istiod (pilot-discovery from its installed Deployment and
    its live `cacerts`) runs until istio-ca-root-cert in istio-system holds the roots of that
    cacerts, in its own cluster and in every remote it holds a remote secret of (istiod writes
    the ConfigMap there too; another primary publishes its own). live-doctor.sh uses it to
    bring a cluster's published root to what its cacerts says, as istiod does on a cluster."""
    clusters, _ = istiod.read_plan(args.plan)
    by_name = {c.name: c for c in clusters}
    primary = by_name[args.publish]
    secret = istiod.kubectl_json(primary.context, "-n", "istio-system", "get", "secret", "cacerts")
    want = fingerprints(base64.b64decode(secret["data"]["root-cert.pem"]).decode())
    held = istiod.kubectl_json(primary.context, "-n", "istio-system", "get", "secrets", "-l", "istio/multiCluster=true")["items"]
    watched = [by_name.get(s["metadata"]["name"].removeprefix("istio-remote-secret-")) for s in held]
    targets = [primary] + [c for c in watched if c is not None and c.role == "remote"]
    seen = {c.name: root_in_istio_system(c.context) for c in targets}
    if all(v == want for v in seen.values()):
        print(f"  {primary.name}: istio-ca-root-cert already holds its cacerts root in {', '.join(seen)}")
        return
    process, log = istiod.start_istiod(primary, args, args.ports, istiod.plan_revision(args.plan), name=f"publish-{primary.name}")
    try:
        deadline = time.monotonic() + args.timeout
        istiod.wait_ready(process, args.ports[0], log, deadline)
        seen = {c.name: root_in_istio_system(c.context) for c in targets}
        while time.monotonic() < deadline and any(v != want for v in seen.values()):
            time.sleep(0.5)
            seen = {c.name: root_in_istio_system(c.context) for c in targets}
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    if any(v != want for v in seen.values()):
        raise Failure(f"istiod of {primary.name} published {seen}, its cacerts holds {want}; end of its log:\n{istiod.tail(log, 8)}")
    print(f"  {primary.name}'s istiod published its cacerts root in {', '.join(seen)}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--plan", required=True)
    parser.add_argument("--publish", metavar="CLUSTER", help="only publish CLUSTER's live cacerts root (see publish)")
    parser.add_argument("--tree", help="required without --publish")
    parser.add_argument("--certs", help="the CA directory `meshplan certs` made for the plan (required without --publish)")
    parser.add_argument("--pilot-discovery", required=True)
    parser.add_argument("--ports", required=True, type=lambda s: [int(p) for p in s.split(",")], help="5 free loopback ports")
    parser.add_argument("--work", required=True)
    parser.add_argument("--timeout", type=float, default=90)
    args = parser.parse_args()
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda number, _frame: sys.exit(128 + number))
    if args.publish is None and (args.tree is None or args.certs is None):
        parser.error("--tree and --certs are required without --publish")
    try:
        if args.publish is not None:
            publish(args)
        else:
            check(args)
    except Failure as failure:
        print(f"trust: {failure}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
