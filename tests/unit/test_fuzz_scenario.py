"""Fuzzing the scenario loader (issue 6, hostile input).

Properties: any text or any mutation of a good scenario gives a `Scenario` or one `UsageError`
(a one-line message), never another exception; what loads dumps and loads back equal; alias
bombs, megabyte strings, floods and deep nesting are refused fast with bounded memory (measured
with tracemalloc); and whatever name a file gives the scenario or its modes, the run folder and
every mode folder stay inside `--out`, and every container and network name is one Docker
accepts.
"""

from __future__ import annotations

import copy
import gc
import re
import time
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lab import hosts, results
from lab.errors import UsageError
from lab.scenario import (
    MODE_RE,
    NAME_RE,
    Scenario,
    dump_yaml,
    load_scenario,
    parse_scenario,
)
from lab.spec import MAX_EVENTS

FUZZ = settings(max_examples=100, deadline=None)
DOCKER_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+")  # the daemon's rule for container names

GOOD = {
    "name": "fuzz",
    "protocol": "http",
    "description": "a page",
    "workload": {
        "resources": [
            {"name": "index.html", "kind": "html", "size": "14k"},
            {"name": "app.js", "kind": "js", "size": 2000},
        ]
    },
    "modes": [
        {"name": "http1.0", "persistent": False, "parallel": 2},
        {"name": "keepalive", "persistent": True, "pipeline": True},
    ],
    "timeouts": {"connect": 5, "request": 10},
    "network": {"rtt": 20, "rate": "20mbit", "loss": 0.5},
    "limits": {"memory": "256m", "pids": 512},
    "capture": {"snaplen": 0},
    "faults": [{"action": "pause_server", "at": {"request": 1}, "duration": 2}],
}

# Leaves of GOOD, as paths, for mutation.
LEAVES: list[tuple] = []


def _collect(node, path=()):
    if isinstance(node, dict):
        for k, v in node.items():
            _collect(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            _collect(v, (*path, i))
    else:
        LEAVES.append(path)


_collect(GOOD)

hostile_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=50),
    st.sampled_from(
        [
            "9" * 400,
            "9" * 400 + "k",
            "9" * 400 + "mbit",
            "1e999",
            "-1",
            "1.5PiB",
            "1125899906842624000",  # petabytes
            "../../etc",
            "$(reboot)",
            "; rm -rf /",
            "a\x00b",
            "ä",
            "x" * 5000,
            ".inf",
            "0x10",
            "1:30",
        ]
    ),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)


def _set(doc, path, value):
    node = doc
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value


def _outcome(text: str) -> Scenario | None:
    """Load `text`; a UsageError must be one line naming the source. Anything else fails."""
    try:
        scenario = parse_scenario(text, "fuzz.yaml")
    except UsageError as exc:
        message = str(exc)
        assert message.startswith("fuzz.yaml"), message
        assert "\n" not in message, message
        return None
    # What loads dumps back to the same scenario (the run folder keeps the dump).
    assert parse_scenario(dump_yaml(scenario)) == scenario
    return scenario


@FUZZ
@given(
    mutations=st.lists(st.tuples(st.sampled_from(LEAVES), hostile_values), min_size=1, max_size=3),
)
def test_mutated_scenario_loads_or_gives_one_usage_error(mutations) -> None:
    doc = copy.deepcopy(GOOD)
    for path, value in mutations:
        _set(doc, path, value)
    _outcome(yaml.safe_dump(doc, allow_unicode=True))


@FUZZ
@given(text=st.text(max_size=400))
def test_any_text_loads_or_gives_one_usage_error(text: str) -> None:
    _outcome(text)


@FUZZ
@given(data=st.binary(max_size=400))
def test_any_file_loads_or_gives_one_usage_error(tmp_path_factory, data: bytes) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "s.yaml"
    path.write_bytes(data)
    try:
        load_scenario(path)
    except UsageError as exc:
        assert "\n" not in str(exc)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param('"' + "9" * 400 + 'k"', id="bytes-overflow-float"),
        pytest.param('"' + "9" * 400 + '"', id="bytes-400-digit-string"),
        pytest.param('"1.5e3k"', id="exponent-not-accepted"),
    ],
)
def test_huge_byte_strings_are_a_usage_error(value: str) -> None:
    """'9'*400 as a float is inf, and int(inf) raised OverflowError out of the loader."""
    text = yaml.safe_dump(GOOD).replace("size: 14k", f"size: {value}")
    with pytest.raises(UsageError, match=r"workload\.resources\[0\]\.size"):
        parse_scenario(text)


def test_huge_rate_is_a_usage_error() -> None:
    text = yaml.safe_dump(GOOD).replace("rate: 20mbit", "rate: " + "9" * 400 + "mbit")
    with pytest.raises(UsageError, match=r"network\.rate: must be from"):
        parse_scenario(text)


# --- Resource exhaustion: refused fast, with memory bounded by the input ------------------------

_LAUGH = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"{n}: &{n} [{','.join(['*' + p] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi", strict=True)
)


@pytest.mark.parametrize(
    ("text", "expected", "traced"),
    [
        pytest.param(_LAUGH, "anchors and aliases", True, id="billion-laughs"),
        pytest.param("name: &x a\nprotocol: *x\n", "anchors and aliases", True, id="one-alias"),
        pytest.param(
            "name: " + "A" * (1 << 20) + "\n", "a value of 1048576", True, id="1MiB-scalar"
        ),
        pytest.param(
            "description: |\n" + "  line\n" * 200_000, "a value of", True, id="1MiB-block"
        ),
        pytest.param("x: [" + "1," * (MAX_EVENTS + 10) + "1]", "too many YAML", False, id="flood"),
        pytest.param("[" * 100_000 + "]" * 100_000, "nested deeper", True, id="deep-nesting"),
        pytest.param(
            "name: x\nsizes: !!python/object/apply:os.system ['id']\n", "tag", True, id="py-tag"
        ),
    ],
)
def test_hostile_text_is_refused_fast_with_bounded_memory(
    text: str, expected: str, traced: bool
) -> None:
    started = time.perf_counter()
    with pytest.raises(UsageError, match=expected):
        parse_scenario(text)
    assert time.perf_counter() - started < 3  # ~0.5 s for the flood, milliseconds for the rest
    if not traced:  # 100,000 events under tracemalloc take seconds; its memory is the text's
        return
    tracemalloc.start()
    try:
        with pytest.raises(UsageError, match=expected):
            parse_scenario(text)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Never an expansion: a few times the text (which Python holds as str) plus a constant.
    assert peak < 4 * len(text) + (2 << 20), (peak, len(text))


def test_file_over_the_cap_is_refused_before_parsing(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_bytes(b"name: x\ndescription: " + b"A" * (16 << 20) + b"\n")
    tracemalloc.start()
    try:
        with pytest.raises(UsageError, match="larger than"):
            load_scenario(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20, peak  # refused from its size: the 16 MiB are never read


# --- Hostile names: paths and container names ---------------------------------------------------

hostile_names = st.one_of(
    st.from_regex(NAME_RE, fullmatch=True),
    st.from_regex(MODE_RE, fullmatch=True),
    st.text(max_size=70),
    st.sampled_from(
        [
            "..",
            "../x",
            "a/../../etc",
            "..a",
            ".hidden",
            "-rf",
            "_x",
            "a;reboot",
            "$(id)",
            "`id`",
            "a b",
            "a|b",
            "a&b",
            "a>b",
            "a\nb",
            "a\x00b",
            "ä",
            "ＡＢＣ",
            "a\u202eb",
            "A",
            "x" * 63,
            "x" * 64,
            "/abs",
            "C:\\x",
            "a\\b",
            "a.b",
            "a..b",
        ]
    ),
)


def _containers_of(run_id: str, tag: str) -> list[str]:
    """Every container and network name `lab run` would create for one mode (one repeat)."""
    common = {"image": "i", "run_id": run_id, "mode": tag, "limits": hosts.Limits()}
    specs = [
        hosts.server_spec(**common, network="n", command=[]),
        hosts.netns_spec(**common, network="n"),
        hosts.client_spec(**common, command=[]),
        hosts.capture_spec(**common, server_id="s", snaplen=0),
        hosts.shaper_spec(**common, side="server", target_id="t", command=[]),
        hosts.shaper_spec(**common, side="client", target_id="t", command=[]),
    ]
    return [s["name"] for s in specs] + [f"tcplab-{run_id}-{tag}"]  # the network (lab.runner)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=hostile_names, mode_names=st.lists(hostile_names, min_size=1, max_size=3))
def test_hostile_names_stay_in_the_run_folder_and_make_valid_docker_names(
    tmp_path_factory, name: str, mode_names: list[str]
) -> None:
    doc = copy.deepcopy(GOOD)
    doc["name"] = name
    doc["modes"] = [{"name": m, "persistent": True} for m in mode_names]
    doc["faults"] = []
    doc["repeats"] = 2
    scenario = _outcome(yaml.safe_dump(doc))
    if scenario is None:
        # Refused: then something about the name was wrong (or two modes shared one).
        ok_name = re.fullmatch(NAME_RE.strip("^$"), name)
        ok_modes = all(re.fullmatch(MODE_RE.strip("^$"), m) for m in mode_names)
        assert not (ok_name and ok_modes and len(set(mode_names)) == len(mode_names))
        return
    out = tmp_path_factory.mktemp("out").resolve()
    # The run id and folder as `lab run` builds them (lab/commands/run.py).
    run_id = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{scenario.name}"
    run_dir = out / run_id
    assert run_dir.resolve().parent == out
    for plan in results.plans(scenario, scenario.modes, run_dir):
        assert plan.folder.resolve().is_relative_to(run_dir.resolve()), plan.folder
        assert plan.folder.resolve() != run_dir.resolve()
        tag = f"{plan.mode}-r{plan.repeat}" if plan.repeats > 1 else plan.mode  # lab.runner
        for container in _containers_of(run_id, tag):
            assert DOCKER_NAME.fullmatch(container), container
            assert hosts.labels(run_id, "server", tag)["tcplab.run"] == run_id


def test_loading_many_scenarios_keeps_no_nodes() -> None:
    """The shared YAML constructor cached every scalar node of every file it ever read (found
    by the atheris run: its RSS grew with every input)."""
    from lab import spec as spec_module

    text = yaml.safe_dump(GOOD)
    parse_scenario(text)
    tracemalloc.start()
    try:
        # A full collection empties the interpreter's free lists too: freed tuples parked there
        # are still traced, and they filled the 64 KiB once the scenario grew a few fields.
        gc.collect()
        before, _ = tracemalloc.get_traced_memory()
        for _ in range(50):
            parse_scenario(text)
        gc.collect()
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert not spec_module._constructor().constructed_objects
    assert after - before < 64 * 1024, after - before  # was ~100 nodes per file, kept forever
