"""The scenario's server options (the concurrency model): validated, passed to the server's
command line, printed by `lab validate`, and the same names the server knows."""

from __future__ import annotations

import pytest

from lab import cli
from lab.argv import server_argv
from lab.errors import UsageError
from lab.scenario import CONCURRENCY, parse_scenario
from server import __main__ as server_main
from server.core import CONCURRENCY as SERVER_CONCURRENCY

SCENARIO = """\
name: models
protocol: echo
workload: {messages: [Luffy, Zoro]}
modes:
  - {name: threads, persistent: true}
  - {name: epoll, persistent: true, server: {concurrency: epoll}}
  - {name: epoll-2, persistent: true, server: {concurrency: epoll, loops: 2}}
"""


def test_the_lab_and_the_server_know_the_same_models() -> None:
    assert CONCURRENCY == SERVER_CONCURRENCY


def test_each_mode_gets_its_model_on_the_server_command_line() -> None:
    s = parse_scenario(SCENARIO)
    argv = {m.name: server_argv(s, m) for m in s.modes}
    assert argv["threads"][argv["threads"].index("--concurrency") + 1] == "threads"
    assert "--loops" not in argv["threads"]
    assert argv["epoll"][argv["epoll"].index("--concurrency") + 1] == "epoll"
    assert argv["epoll-2"][argv["epoll-2"].index("--loops") + 1] == "2"
    # What the lab writes, the server parses into the same model.
    config = server_main.config_from_args(server_main.build_parser().parse_args(argv["epoll-2"]))
    assert (config.concurrency, config.loops) == ("epoll", 2)


def test_a_scenario_wide_model_applies_to_every_mode_without_its_own() -> None:
    s = parse_scenario(SCENARIO + "server: {concurrency: epoll}\n")
    assert [s.server_of(m).concurrency for m in s.modes] == ["epoll", "epoll", "epoll"]
    assert parse_scenario(SCENARIO).server_of(parse_scenario(SCENARIO).modes[0]).concurrency == (
        "threads"
    )


def test_modes_with_different_models_cannot_share_a_server() -> None:
    s = parse_scenario(SCENARIO)
    with pytest.raises(ValueError, match="server options"):
        server_argv(s)


@pytest.mark.parametrize(
    ("server", "error"),
    [
        ("{concurrency: fibers}", "modes[0].server.concurrency"),
        ("{concurrency: threads, loops: 2}", "loops needs concurrency: epoll"),
        ("{concurrency: epoll, loops: 0}", "modes[0].server.loops"),
        ("{concurrency: epoll, workers: 2}", "workers"),
    ],
)
def test_bad_server_options_are_refused_with_one_line(server: str, error: str) -> None:
    text = SCENARIO.replace("{name: threads, persistent: true}", f"{{name: t, server: {server}}}")
    with pytest.raises(UsageError) as exc:
        parse_scenario(text.replace("{name: t,", "{name: t, persistent: true,"))
    message = str(exc.value)
    assert "\n" not in message
    assert error in message


def test_validate_prints_each_modes_model(tmp_path, capsys) -> None:
    path = tmp_path / "models.yaml"
    path.write_text(SCENARIO)
    assert cli.main(["validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert "mode threads: persistent, 1 at a time, framing length, server threads\n" in out
    assert "mode epoll-2: persistent, 1 at a time, framing length, server epoll x 2 loops\n" in out
