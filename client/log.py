"""Client output: human lines like the article's, or JSON (one object per request + summary)."""

from __future__ import annotations

import json
import sys
import threading
from typing import Any, TextIO

LOG_FORMATS = ("human", "json")


class Output:
    def __init__(self, fmt: str = "human", stream: TextIO | None = None) -> None:
        self.fmt = fmt
        self.stream = stream if stream is not None else sys.stdout
        self._lock = threading.Lock()

    def _write(self, line: str) -> None:
        with self._lock:
            self.stream.write(line + "\n")
            self.stream.flush()

    def say(self, text: str) -> None:
        """A human log line (silent in JSON mode: stdout is then records only)."""
        if self.fmt == "human":
            self._write(text)

    def record(self, obj: dict[str, Any]) -> None:
        if self.fmt == "json":
            self._write(json.dumps(obj))
