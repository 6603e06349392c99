"""The images a rendered Helm chart makes a cluster pull: the containers and init containers of
its workloads (Deployment, DaemonSet, StatefulSet, Job, Pod), one per line, sorted. Images in a
ConfigMap's text (the sidecar injector's optional templates) are pulled only by workloads that
ask for them, and `auto` is the injector's placeholder: neither is listed.

Usage: python3 images.py RENDERED.yaml
"""

import re
import sys

import yaml

WORKLOADS = {"Deployment", "DaemonSet", "StatefulSet", "Job", "Pod"}
# libyaml's parser where PyYAML has it: the same documents, about ten times faster.
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# A document's top-level `kind:` (column 0 is top level in block YAML). A document of another kind
# is not parsed (most of a rendering is CRDs); one without such a line is parsed to be sure.
KIND = re.compile(r"^kind:[ \t]*['\"]?([A-Za-z]+)", re.MULTILINE)
SEPARATOR = re.compile(r"^---[ \t]*(?:#.*)?$", re.MULTILINE)


def pod_spec(doc):
    if doc.get("kind") == "Pod":
        return doc.get("spec") or {}
    return ((doc.get("spec") or {}).get("template") or {}).get("spec") or {}


def main(path):
    images = set()
    with open(path, encoding="utf-8") as rendered:
        text = rendered.read()
    for part in SEPARATOR.split(text):
        kinds = KIND.findall(part)
        if kinds and not WORKLOADS.intersection(kinds):
            continue
        for doc in yaml.load_all(part, Loader=LOADER):
            if not isinstance(doc, dict) or doc.get("kind") not in WORKLOADS:
                continue
            spec = pod_spec(doc)
            for container in (spec.get("containers") or []) + (spec.get("initContainers") or []):
                image = container.get("image")
                if image and image != "auto":
                    images.add(image)
    for image in sorted(images):
        print(image)


if __name__ == "__main__":
    main(sys.argv[1])
