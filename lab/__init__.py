"""TCP Connection Lab: the controller and everything that runs on the host, and its Python API.

    import lab
    result = lab.run("scenarios/page10.yaml")      # a RunResult; raises lab.ScenarioError,
    result.modes["keepalive"].connections           # lab.RunError
    lab.load_run(result.run_dir)                    # the same RunResult, read back
    lab.analyze_pcap("capture.pcap")                # any capture, as `lab analyze --json`

This package must stay importable with the standard library plus dpkt alone, because the
analysis also runs inside the lab's containers (Debian's python3-dpkt): the API functions are
loaded on first use (PEP 562 `__getattr__`), and heavy dependencies (docker, rich, matplotlib,
yaml) are imported only by the modules that need them. docs/architecture.md draws the packages.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

# Every container, network and image the lab makes carries this label; `lab clean` and the
# tests find leftovers by it. Run containers also carry RUN_LABEL=<run id>.
PROJECT_LABEL = "tcplab.project"
RUN_LABEL = "tcplab.run"
LABELS = {PROJECT_LABEL: "1"}

_API = {
    "run": ("lab.api", "run"),
    "load_run": ("lab.api", "load_run"),
    "analyze_pcap": ("lab.api", "analyze_pcap"),
    "CaptureAnalysis": ("lab.api", "CaptureAnalysis"),
    "RunResult": ("lab.document", "RunResult"),
    "ModeResult": ("lab.document", "ModeResult"),
    "ConnectionResult": ("lab.document", "ConnectionResult"),
    "Manifest": ("lab.document", "Manifest"),
    "ScenarioError": ("lab.errors", "ScenarioError"),
    "RunError": ("lab.errors", "RunError"),
}
__all__ = ["LABELS", "PROJECT_LABEL", "RUN_LABEL", "__version__", *_API]


def __getattr__(name: str) -> Any:
    if name in _API:
        import importlib

        module, attr = _API[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'lab' has no attribute {name!r}")
