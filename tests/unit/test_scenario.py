"""Scenario loading and validation: good files, bad files (each with its exact error), hostile
files, the JSON Schema, and the command lines built from a scenario."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lab import cli, schema
from lab.argv import client_argv, server_argv
from lab.errors import UsageError
from lab.results import plans
from lab.scenario import (
    MAX_FILE_BYTES,
    Mode,
    dump_yaml,
    load_scenario,
    parse_scenario,
    select_modes,
)
from lab.spec import MAX_SCALAR
from server.__main__ import build_parser, config_from_args

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = sorted((ROOT / "scenarios").glob("*.yaml"))
BAD = sorted((ROOT / "tests" / "data" / "bad_scenarios").glob("*.yaml"))

MINIMAL = """\
name: tiny
protocol: http
workload:
  resources:
    - {name: index.html, kind: html, size: 14k}
modes:
  - {name: keepalive, persistent: true}
"""


def _expected(path: Path) -> str:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# expect: "), f"{path.name} has no '# expect:' first line"
    return first.removeprefix("# expect: ")


# --- The committed scenarios ------------------------------------------------------------------


@pytest.mark.parametrize("path", [pytest.param(p, id=p.name) for p in SCENARIOS])
def test_committed_scenarios_load_and_round_trip(path: Path) -> None:
    scenario = load_scenario(path)
    assert parse_scenario(dump_yaml(scenario)) == scenario
    # to_dict is plain data: JSON can hold it (it is written into the run folder)
    assert json.loads(json.dumps(scenario.to_dict()))["name"] == scenario.name


def test_page10_is_the_articles_page() -> None:
    s = load_scenario(ROOT / "scenarios" / "page10.yaml")
    assert s.protocol == "http"
    assert len(s.workload.resources) == 10
    kinds = {r.kind for r in s.workload.resources}
    assert kinds == {"html", "css", "js", "image", "font"}
    assert 500_000 < sum(s.workload.byte_sizes()) < 700_000
    modes = {m.name: m for m in s.modes}
    assert (modes["http1.0"].persistent, modes["http1.0"].parallel) == (False, 1)
    assert (modes["keepalive"].persistent, modes["keepalive"].parallel) == (True, 1)
    assert (modes["keepalive-6"].persistent, modes["keepalive-6"].parallel) == (True, 6)
    assert not s.network.shaped


def test_page10_wan_differs_from_page10_only_by_name_and_network() -> None:
    plain = load_scenario(ROOT / "scenarios" / "page10.yaml").to_dict()
    wan = load_scenario(ROOT / "scenarios" / "page10-wan.yaml").to_dict()
    assert wan.pop("network") == {"rtt": 50.0, "rate": 20_000_000}
    assert plain.pop("network") == {}
    for d in (plain, wan):
        d.pop("name")
        d.pop("description")
    assert plain == wan


def test_article_reproduces_both_experiments() -> None:
    s = load_scenario(ROOT / "scenarios" / "article.yaml")
    first, second = s.modes
    assert s.workload_of(first).messages == ("Luffy", "Zoro", "Sanji", "Nami", "Robin")
    assert (first.persistent, first.parallel, s.framing_of(first)) == (False, 5, "length")
    assert s.workload_of(second).messages == ("Luffy", "Zoro", "Sanji")
    assert (second.persistent, s.framing_of(second)) == (True, "raw")


# --- Bad files: each refused with exactly the message in its first line ----------------------


def test_there_are_at_least_twenty_bad_files() -> None:
    assert len(BAD) >= 20


@pytest.mark.parametrize("path", [pytest.param(p, id=p.stem) for p in BAD])
def test_bad_scenario_gives_its_expected_error(path: Path) -> None:
    with pytest.raises(UsageError) as err:
        load_scenario(path)
    message = str(err.value)
    assert "\n" not in message
    assert message == f"{path}:{_expected(path)}"


@pytest.mark.parametrize("path", [pytest.param(BAD[0], id="first-bad-file")])
def test_validate_command_exits_2_with_one_line(path: Path, capsys) -> None:
    assert cli.main(["validate", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == f"error: {path}:{_expected(path)}\n"


def test_validate_command_accepts_good_file(capsys) -> None:
    assert cli.main(["validate", str(ROOT / "scenarios" / "page10.yaml")]) == 0
    out, _ = capsys.readouterr()
    assert "ok: page10 (http), 10 requests" in out
    assert "mode keepalive-6: persistent, 6 at a time" in out


# --- Hostile or broken files (generated here rather than committed: they are large) ----------


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        pytest.param(b"x" * (MAX_FILE_BYTES + 1), "bytes, larger than", id="file-over-1MiB"),
        pytest.param(
            b"name: tiny\ndescription: '" + b"a" * (MAX_SCALAR + 1) + b"'\n",
            f":2: a value of {MAX_SCALAR + 1} characters",
            id="long-string",
        ),
        pytest.param(
            MINIMAL.encode().replace(b"tiny", b"\xff\xfe"), ":1: not UTF-8 text", id="not-utf8"
        ),
        pytest.param(b"- " * 0 + b"[" * 5000, "nested deeper than 16 levels", id="deep-flow"),
        pytest.param(
            (MINIMAL + "description: " + "x" * (MAX_SCALAR + 5) + "\n").encode(),
            "characters (at most 4096)",
            id="long-plain-scalar",
        ),
        pytest.param(
            ("items: [" + "1," * 120_000 + "1]\n").encode(),
            "too many YAML nodes",
            id="event-flood",
        ),
        pytest.param(MINIMAL.encode() + b"---\nname: second\n", "invalid YAML", id="two-documents"),
        pytest.param(
            MINIMAL.replace("size: 14k", "size: .inf").encode(),
            "size: must be from 0 B to 1 GiB, got inf",
            id="infinite-size",
        ),
        pytest.param(
            MINIMAL.replace("persistent: true}", "persistent: true, parallel: 1e9}").encode(),
            "parallel: must be an integer from 1 to 4096",
            id="float-parallel",
        ),
    ],
)
def test_hostile_file_is_refused(tmp_path: Path, content: bytes, expected: str) -> None:
    path = tmp_path / "hostile.yaml"
    path.write_bytes(content)
    with pytest.raises(UsageError) as err:
        load_scenario(path)
    assert str(err.value).startswith(str(path))
    assert expected in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"nope\.yaml: no such file$"):
        load_scenario(tmp_path / "nope.yaml")


def test_directory_is_not_a_scenario(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="is a directory"):
        load_scenario(tmp_path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "secret.yaml"
    path.write_text(MINIMAL)
    path.chmod(0)
    with pytest.raises(UsageError, match="cannot read: Permission denied"):
        load_scenario(path)


def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    path = tmp_path / "pipe.yaml"
    os.mkfifo(path)
    with pytest.raises(UsageError, match="not a regular file"):
        load_scenario(path)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=400))
def test_any_text_gives_a_scenario_or_one_usage_error(text: str) -> None:
    try:
        parse_scenario(text, "fuzz.yaml")
    except UsageError as exc:
        assert str(exc).startswith("fuzz.yaml")
        assert "\n" not in str(exc)


_fields = st.fixed_dictionaries(
    {},
    optional={
        "parallel": st.one_of(st.integers(-5, 5000), st.text(max_size=5), st.none()),
        "pipeline": st.one_of(st.booleans(), st.integers()),
        "persistent": st.one_of(st.booleans(), st.text(max_size=3)),
        "framing": st.sampled_from(["raw", "length", "other"]),
        "bogus": st.integers(),
    },
)


@settings(max_examples=100, deadline=None)
@given(_fields, st.integers(-10, 2**62))
def test_mutated_scenarios_give_a_scenario_or_one_usage_error(mode_fields, size) -> None:
    data = yaml.safe_load(MINIMAL)
    data["modes"][0].update(mode_fields)
    data["workload"]["resources"][0]["size"] = size
    try:
        s = parse_scenario(yaml.safe_dump(data), "m.yaml")
    except UsageError as exc:
        assert str(exc).startswith("m.yaml:")
        return
    assert 0 <= s.workload.resources[0].size <= 1 << 30
    assert 1 <= s.modes[0].parallel <= 4096


# --- Helpers ----------------------------------------------------------------------------------


def test_select_modes() -> None:
    s = load_scenario(ROOT / "scenarios" / "page10.yaml")
    assert [m.name for m in select_modes(s, [])] == ["http1.0", "keepalive", "keepalive-6"]
    # scenario order, duplicates ignored
    chosen = select_modes(s, ["keepalive-6", "http1.0", "http1.0"])
    assert [m.name for m in chosen] == ["http1.0", "keepalive-6"]
    with pytest.raises(UsageError, match=r"--mode keepalive6: .*did you mean 'keepalive-6'\?"):
        select_modes(s, ["keepalive6"])


def test_defaults_and_limits() -> None:
    s = parse_scenario(MINIMAL)
    assert s.modes[0] == Mode(name="keepalive", persistent=True)
    assert (s.limits.memory, s.limits.pids) == (512 << 20, 2048)
    assert (s.timeouts.connect, s.timeouts.request) == (5.0, 10.0)
    assert (s.timeouts.head, s.timeouts.message) == (10.0, 10.0)
    assert s.repeats == 1 and s.faults == () and not s.network.shaped


def test_faults_are_validated_into_the_model() -> None:
    text = MINIMAL + (
        "faults:\n"
        "  - {action: pause_server, at: {time: 1.5}, duration: 12}\n"
        "  - {action: reset_connections, at: {request: 1}, mode: keepalive}\n"
    )
    pause, reset = parse_scenario(text).faults
    assert (pause.action, pause.at.time, pause.at.request, pause.duration) == (
        "pause_server",
        1.5,
        None,
        12.0,
    )
    assert (reset.at.request, reset.mode) == (1, "keepalive")


# --- Command lines ----------------------------------------------------------------------------


def test_client_and_server_argv_for_page10() -> None:
    s = load_scenario(ROOT / "scenarios" / "page10.yaml")
    k6 = s.mode("keepalive-6")
    argv = client_argv(s, k6, "server")
    assert argv[:4] == ["--host", "server", "--port", "3002"]
    assert argv[argv.index("--mode") + 1] == "persistent"
    assert argv[argv.index("--parallel") + 1] == "6"
    assert argv[argv.index("--log-format") + 1] == "json"
    resources = next(a for a in argv if a.startswith("--resources="))
    assert resources.startswith("--resources=index.html:14336,style.css:24576,")
    assert resources.count(",") == 9
    assert "--pipeline" not in argv

    srv = server_argv(s)
    listens = [srv[i + 1] for i, a in enumerate(srv) if a == "--listen"]
    assert listens == ["3000:non-persistent", "3001:persistent", "3002:persistent"]
    assert srv[srv.index("--protocol") + 1] == "http"
    assert srv[srv.index("--log-format") + 1] == "json"
    one = server_argv(s, s.mode("http1.0"))
    assert [one[i + 1] for i, a in enumerate(one) if a == "--listen"] == ["3000:non-persistent"]


def test_server_argv_passes_every_server_timeout() -> None:
    s = parse_scenario(MINIMAL + "timeouts: {request: 7, idle: 3, head: 4, message: 60}\n")
    argv = server_argv(s)
    flags = {a: argv[i + 1] for i, a in enumerate(argv) if a.endswith("-timeout")}
    assert flags == {
        "--read-timeout": "7",
        "--idle-timeout": "3",
        "--head-timeout": "4",
        "--message-timeout": "60",
    }
    # ... and the server takes each of them.
    config = config_from_args(build_parser().parse_args(argv))
    assert (config.read_timeout, config.idle_timeout) == (7, 3)
    assert (config.options.head_timeout, config.options.message_timeout) == (4, 60)


ECHO = """\
name: big
protocol: echo
workload:
  sizes: [{size}]
{extra}modes:
  - {{name: once, persistent: false, parallel: {parallel}}}
"""


@pytest.mark.parametrize(
    ("size", "parallel", "extra", "fits"),
    [
        pytest.param("10m", 1, "", True, id="10m-fits"),
        pytest.param("100m", 1, "", False, id="100m-over-512m-memory"),
        pytest.param("100m", 1, "limits: {memory: 2g}\n", True, id="100m-with-2g"),
        pytest.param("10m", 16, "", False, id="16-connections-of-10m"),
        pytest.param("1m", 1, "network: {rate: 1mbit}\n", True, id="1m-at-1mbit-in-10s"),
        pytest.param("2m", 1, "network: {rate: 1mbit}\n", False, id="2m-at-1mbit-over-10s"),
        pytest.param(
            "2m", 1, "network: {rate: 1mbit}\ntimeouts: {message: 30}\n", True, id="deadline-30s"
        ),
    ],
)
def test_echo_modes_that_cannot_work_are_refused(
    size: str, parallel: int, extra: str, fits: bool
) -> None:
    text = ECHO.format(size=size, parallel=parallel, extra=extra)
    if fits:
        parse_scenario(text)
        return
    with pytest.raises(UsageError, match=r"^<scenario>:\d+: modes\[0\]: a .* echo message"):
        parse_scenario(text)


def test_raw_persistent_streams_so_no_size_is_refused() -> None:
    # Each read is echoed as it comes: nothing is held whole, whatever the message size.
    text = ECHO.format(size="300m", parallel=1, extra="framing: raw\n").replace(
        "persistent: false", "persistent: true"
    )
    assert parse_scenario(text).workload.sizes == (300 << 20,)


def test_validate_refuses_an_impossible_scenario_with_one_line_and_exit_2(capsys) -> None:
    path = ROOT / "tests" / "data" / "bad_scenarios" / "echo_message_over_memory.yaml"
    assert cli.main(["validate", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == f"error: {path}:{_expected(path)}\n"
    assert "100 MiB echo message on 2 connections" in err


def test_argv_for_article_uses_per_mode_framing_and_workload() -> None:
    s = load_scenario(ROOT / "scenarios" / "article.yaml")
    raw = s.mode("persistent-raw")
    argv = client_argv(s, raw, "10.0.0.2", 4000)
    assert "--messages=Luffy,Zoro,Sanji" in argv
    assert argv[argv.index("--framing") + 1] == "raw"
    assert argv[argv.index("--port") + 1] == "4000"
    assert "--pipeline" in argv
    with pytest.raises(ValueError, match="different framings"):
        server_argv(s)  # length and raw cannot share one server process
    assert server_argv(s, raw)[server_argv(s, raw).index("--framing") + 1] == "raw"


def test_message_starting_with_dash_stays_one_argument() -> None:
    text = (
        "name: dash\nprotocol: echo\nworkload:\n  messages: ['--help', '-x']\n"
        "modes:\n  - {name: a, persistent: false}\n"
    )
    s = parse_scenario(text)
    assert "--messages=--help,-x" in client_argv(s, s.modes[0], "h", 1)


# --- JSON Schema ------------------------------------------------------------------------------


def test_committed_schema_is_the_generated_one() -> None:
    committed = (ROOT / "scenarios" / "schema.json").read_text()
    assert committed == schema.render(), "regenerate: python -m lab.schema > scenarios/schema.json"


@pytest.mark.parametrize("path", [pytest.param(p, id=p.name) for p in SCENARIOS])
def test_committed_scenarios_validate_against_schema(path: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.Draft202012Validator(schema.scenario_schema()).validate(
        yaml.safe_load(path.read_text())
    )


@pytest.mark.parametrize(
    "name",
    ["unknown_key", "negative_parallel", "unknown_protocol", "empty_workload", "name_shell"],
)
def test_schema_rejects_what_the_loader_rejects(name: str) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    data = yaml.safe_load((ROOT / "tests" / "data" / "bad_scenarios" / f"{name}.yaml").read_text())
    validator = jsonschema.Draft202012Validator(schema.scenario_schema())
    assert list(validator.iter_errors(data)), f"schema accepted {name}"


def test_capture_on_both_ends_has_a_short_form(tmp_path: Path, capsys) -> None:
    """`capture: [server, client]` is `capture: {sides: [server, client]}`; the default is the
    server alone, and the JSON Schema accepts both forms."""
    short = parse_scenario(MINIMAL + "capture: [server, client]\n")
    long = parse_scenario(MINIMAL + "capture: {sides: [server, client], snaplen: 262144}\n")
    assert short == long and short.capture.on_client
    assert parse_scenario(dump_yaml(short)) == short
    path = tmp_path / "both.yaml"
    path.write_text(MINIMAL + "capture: [server, client]\n")
    assert cli.main(["validate", str(path)]) == 0
    assert "capture: on the server and on the client" in capsys.readouterr().out
    assert not parse_scenario(MINIMAL).capture.on_client
    (plan,) = plans(short, short.modes, Path("/tmp/never-made"))
    assert plan.capture_client
    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft202012Validator(schema.scenario_schema())
    for text in ("capture: [server, client]\n", "capture: {sides: [server], drain: 1}\n"):
        validator.validate(yaml.safe_load(MINIMAL + text))
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(yaml.safe_load(MINIMAL + "capture: [server, elsewhere]\n"))
