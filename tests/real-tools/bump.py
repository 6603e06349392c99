#!/usr/bin/env python3
"""Prints the plan with [mesh.istio] version one minor newer (patch 0) and, unless the mesh is
ambient (which upgrades in place and names no revision), the revision Istio's docs would give it
(1.31.0 -> 1-31-0): what an operator commits to upgrade, as tests/support/bump.rs writes it.
Usage: bump.py PLAN.toml > NEW.toml
"""

import sys
import tomllib


def main():
    path = sys.argv[1]
    text = open(path, encoding="utf-8").read()
    mesh = tomllib.loads(text)["mesh"]
    major, minor = mesh["istio"]["version"].split(".")[:2]
    to = f"{major}.{int(minor) + 1}.0"
    line = f'version = "{to}"'
    if mesh.get("dataplane") != "ambient":
        line += f'\nrevision = "{to.replace(".", "-")}"'
    start = text.index("\nversion = ", text.index("[mesh.istio]")) + 1
    end = text.index("\n", start)
    sys.stdout.write(text[:start] + line + text[end:])


if __name__ == "__main__":
    main()
