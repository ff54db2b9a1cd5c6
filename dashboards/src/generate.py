"""Writes the dashboards defined in this directory as JSON files.

usage: generate.py OUTPUT_DIRECTORY

One file per dashboard module (costs, customer, health), named after the
dashboard's uid. The output is deterministic: keys sorted, two-space indent,
UTF-8, a trailing newline; so the committed JSON can be compared with a fresh
generation byte for byte (scripts/gen-dashboards --check).
"""

import json
import os
import sys

import common
import costs
import customer
import health

DASHBOARDS = (costs, customer, health)


def render(module):
    """(file name, JSON text) of the dashboard that `module.dashboard()` builds."""
    exported = common.export(module.dashboard())
    return exported["uid"] + ".json", json.dumps(exported, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv):
    if len(argv) != 2:
        sys.exit(__doc__.strip().splitlines()[2])
    out = argv[1]
    os.makedirs(out, exist_ok=True)
    for module in DASHBOARDS:
        name, text = render(module)
        with open(os.path.join(out, name), "w", encoding="utf-8", newline="\n") as f:
            f.write(text)


if __name__ == "__main__":
    main(sys.argv)
