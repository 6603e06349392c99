"""The images a rendered Helm chart makes a cluster pull: the containers and init containers of
its workloads (Deployment, DaemonSet, StatefulSet, Job, Pod), one per line, sorted. Images in a
ConfigMap's text (the sidecar injector's optional templates) are pulled only by workloads that
ask for them, and `auto` is the injector's placeholder: neither is listed.

Usage: python3 images.py RENDERED.yaml
"""

import sys

import yaml

WORKLOADS = {"Deployment", "DaemonSet", "StatefulSet", "Job", "Pod"}


def pod_spec(doc):
    if doc.get("kind") == "Pod":
        return doc.get("spec") or {}
    return ((doc.get("spec") or {}).get("template") or {}).get("spec") or {}


def main(path):
    images = set()
    with open(path, encoding="utf-8") as rendered:
        for doc in yaml.safe_load_all(rendered):
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
