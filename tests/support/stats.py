"""A container's peak memory and task count from the engine's stats: for the load test and the
load benchmark (benchmarks/load_limit.py), not for runs."""

from __future__ import annotations

import threading


class StatsSampler:
    """Peak memory and task (thread) count of one container, from the engine's stats, sampled
    in a thread until `stop()`. `api` is the SDK's low-level client (`DockerClient.api`)."""

    def __init__(self, api, container_id: str, every: float = 0.5) -> None:
        self.api, self.id, self.every = api, container_id, every
        self.memory_peak = 0
        self.pids_peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                s = self.api.stats(self.id, stream=False, one_shot=True)
            except Exception:  # the container is stopping: the last sample stands
                return
            mem = s.get("memory_stats") or {}
            # cgroup v1 keeps the peak itself (max_usage); v2 has only the current usage
            self.memory_peak = max(self.memory_peak, mem.get("max_usage", 0), mem.get("usage", 0))
            self.pids_peak = max(self.pids_peak, (s.get("pids_stats") or {}).get("current", 0))
            self._stop.wait(self.every)

    def stop(self) -> dict[str, int]:
        self._stop.set()
        self._thread.join(10)
        return {"memory_peak": self.memory_peak, "pids_peak": self.pids_peak}
