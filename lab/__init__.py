"""TCP Connection Lab: the controller and everything that runs on the host.

Pure modules (no I/O, unit-tested without Docker) sit beside thin shells (Docker, files, CLI).
This package must stay importable with the standard library plus dpkt alone, because the
analysis also runs inside the lab's containers (Debian's python3-dpkt): import heavy
dependencies (docker, rich, matplotlib, yaml) inside the modules that need them, never here.
"""

__version__ = "0.1.0"

# Every container, network and image the lab makes carries this label; `lab clean` and the
# tests find leftovers by it. Run containers also carry RUN_LABEL=<run id>.
PROJECT_LABEL = "tcplab.project"
RUN_LABEL = "tcplab.run"
LABELS = {PROJECT_LABEL: "1"}
