"""JSON Schema of scenario files, generated from the specs (`lab.spec`) on `lab.scenario`'s
dataclasses.

`python -m lab.schema > scenarios/schema.json` regenerates the committed file; a unit test
fails when the two differ. Editors (the YAML language server) validate scenario files with it.
"""

from __future__ import annotations

import json
from typing import Any

from lab.scenario import Scenario
from lab.spec import Obj

SCHEMA_ID = "https://tcplab.invalid/scenario.schema.json"


def scenario_schema() -> dict[str, Any]:
    body = Obj(Scenario).schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "TCP Connection Lab scenario",
        **body,
    }


def render() -> str:
    return json.dumps(scenario_schema(), indent=2) + "\n"


if __name__ == "__main__":
    print(render(), end="")
