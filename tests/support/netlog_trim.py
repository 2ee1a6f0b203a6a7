"""Trim a Chromium net-log to what lab.browser reads, for small test fixtures.

    python -m tests.support.netlog_trim IN.json OUT.json

Keeps the sources lab.browser follows (SOCKET, URL_REQUEST, HTTP_STREAM_JOB, HTTP2_SESSION),
only their events it reads, only the parameters it reads, and only the constants those need: a
300 KB net-log of a small page becomes a few KB, and stays a net-log Chromium's viewer opens.
"""

from __future__ import annotations

import json
import sys

SOURCES = {"SOCKET", "URL_REQUEST", "HTTP_STREAM_JOB", "HTTP2_SESSION"}
EVENTS = {
    "TCP_CONNECT",
    "SOCKET_ALIVE",
    "SOCKET_POOL_BOUND_TO_SOCKET",
    "REQUEST_ALIVE",
    "HTTP_STREAM_REQUEST_BOUND_TO_JOB",
    "HTTP_TRANSACTION_SEND_REQUEST",
    "HTTP_TRANSACTION_READ_RESPONSE_HEADERS",
    "URL_REQUEST_JOB_FILTERED_BYTES_READ",
    "FAILED",
    "HTTP2_SESSION_INITIALIZED",
    "HTTP2_SESSION_POOL_FOUND_EXISTING_SESSION",
    "HTTP_STREAM_JOB_HTTP2_SESSION_AVAILABLE",
}
PARAMS = {"local_address", "remote_address", "source_dependency", "url", "byte_count", "net_error"}


def trim(data: dict) -> dict:
    c = data["constants"]
    event_name = {v: k for k, v in c["logEventTypes"].items()}
    source_name = {v: k for k, v in c["logSourceType"].items()}
    events = []
    for e in data["events"]:
        if source_name.get(e["source"]["type"]) not in SOURCES:
            continue
        if event_name.get(e["type"]) not in EVENTS:
            continue
        params = {k: v for k, v in (e.get("params") or {}).items() if k in PARAMS}
        if event_name[e["type"]] == "HTTP_TRANSACTION_READ_RESPONSE_HEADERS":
            params["headers"] = e["params"]["headers"][:1]  # the status line only
        events.append(
            {**e, "params": params} if params else {k: v for k, v in e.items() if k != "params"}
        )
    used_errors = {p.get("net_error") for e in events for p in [e.get("params", {})]}
    constants = {
        "logEventTypes": {k: v for k, v in c["logEventTypes"].items() if k in EVENTS},
        "logSourceType": {k: v for k, v in c["logSourceType"].items() if k in SOURCES},
        "logEventPhase": c["logEventPhase"],
        "netError": {k: v for k, v in c["netError"].items() if v in used_errors},
        "timeTickOffset": c["timeTickOffset"],
    }
    return {"constants": constants, "events": events}


def main(argv: list[str]) -> int:
    src, dst = argv
    with open(src) as f:
        data = trim(json.load(f))
    with open(dst, "w") as f:
        f.write('{"constants": ' + json.dumps(data["constants"]) + ',\n"events": [\n')
        f.write(",\n".join(json.dumps(e) for e in data["events"]))
        f.write("\n]}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
