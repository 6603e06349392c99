"""Which plans of a real-tools run are twins of another (issue 28: skip re-proving identical
bundles).

Two plans are twins when the checks would read the same things of both: the plan as data
(tomllib) without `[mesh.gitops]`, and its built tree without `gitops/` and the manifest that
lists it, every other file's bytes and mode the same. No check of run.sh reads `[mesh.gitops]`
or `gitops/` (the GitOps tools are not run here), so a twin's checks 1-10 would prove exactly
what the twin that runs them proves. Of a set of twins, the one that runs the checks is a
shipped plan (under plans/, the only ones check 10 upgrades; a shipped plan always runs them),
else one without `[mesh.gitops]`, else the first in the list.

Usage: twins.py MESHPLAN SCRATCH PLAN...; prints `INDEX PROVER` for each plan (its index in the
list) whose checks the plan at index PROVER runs. A plan that does not build is nobody's twin
(its own job reports the failure).
"""

import hashlib
import json
import os
import subprocess
import sys
import tomllib


def plan_key(path):
    """The plan as data without [mesh.gitops], and whether it had one."""
    with open(path, "rb") as f:
        plan = tomllib.load(f)
    gitops = plan.get("mesh", {}).pop("gitops", None) is not None
    return json.dumps(plan, sort_keys=True, default=str), gitops


def tree_key(tree):
    digest = hashlib.sha256()
    for root, dirs, files in os.walk(tree):
        if root == tree:
            dirs[:] = [d for d in dirs if d != "gitops"]
            files = [f for f in files if f != ".meshplan-manifest"]
        dirs.sort()
        for name in sorted(files):
            rel = os.path.relpath(os.path.join(root, name), tree)
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                content = f.read()
            mode = os.lstat(path).st_mode & 0o777
            digest.update(f"{rel}\0{mode:o}\0{len(content)}\0".encode())
            digest.update(content)
    return digest.hexdigest()


def key_of(meshplan, scratch, index, plan):
    """What the checks read of the plan, and whether it has [mesh.gitops]; None if it does not
    build."""
    tree = os.path.join(scratch, str(index))
    built = subprocess.run(
        [meshplan, "build", plan, "-o", tree], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    if built.returncode != 0:
        return None
    data, gitops = plan_key(plan)
    return data + "\0" + tree_key(tree), gitops


def shipped(plan):
    return os.path.basename(os.path.dirname(os.path.abspath(plan))) == "plans"


def main():
    meshplan, scratch, plans = sys.argv[1], sys.argv[2], sys.argv[3:]
    sets = {}
    for index, plan in enumerate(plans):
        keyed = key_of(meshplan, scratch, index, plan)
        if keyed is not None:
            key, gitops = keyed
            sets.setdefault(key, []).append((not shipped(plan), gitops, index))
    for twins in sets.values():
        prover = min(twins)[2]
        for not_shipped, _, index in twins:
            if index != prover and not_shipped:
                print(index, prover)


if __name__ == "__main__":
    main()
