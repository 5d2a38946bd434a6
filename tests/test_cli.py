"""The command line: ``check``, ``run``'s hand-over, placeholders, help and version."""

from __future__ import annotations

import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

from sipdialer import __version__
from sipdialer.cli import main
from sipdialer.config import Config

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "config.example.toml"
DATA = Path(__file__).resolve().parent / "data" / "config"
BAD = DATA / "bad.toml"
COMMANDS = ["run", "check", "demo", "import", "members", "report", "trunk-sim"]


def sipdialer(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m sipdialer ARGS`` in a child process, importing this checkout."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.run(
        [sys.executable, "-m", "sipdialer", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=60,
        check=False,
    )


# --- check ---------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [EXAMPLE, DATA / "empty.toml", DATA / "minimal.toml"])
def test_check_valid_file(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "-c", str(path)]) == 0
    out, err = capsys.readouterr()
    assert out == f"OK: {path}\n"
    assert err == ""


def test_check_bad_file_prints_every_problem(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--config", str(BAD)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 9
    assert lines[0] == 'sip.qualify_intervall: unknown key; did you mean "qualify_interval"?'
    assert 'campaigns[0].calendar: no calendar named "ofice"; did you mean "office"?' in lines
    assert lines[-1] == f"FAILED: {BAD} (8 problems)"


def test_check_syntax_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "-c", str(DATA / "syntax_error.toml")]) == 1
    assert capsys.readouterr().err.startswith("line 3, column 7: invalid TOML: ")


def test_check_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.toml"
    assert main(["check", "-c", str(missing)]) == 1
    assert f"{missing}: cannot read: No such file or directory" in capsys.readouterr().err


def test_check_needs_a_config(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check"]) == 2
    assert "-c/--config" in capsys.readouterr().err


def test_check_in_a_child_process() -> None:
    good = sipdialer("check", "-c", "config.example.toml")
    assert (good.returncode, good.stdout, good.stderr) == (0, "OK: config.example.toml\n", "")
    bad = sipdialer("check", "-c", str(BAD))
    assert bad.returncode == 1 and bad.stdout == ""
    assert "routes[0].pattern: not a valid regular expression" in bad.stderr
    assert "agents[1].id: duplicate agent id" in bad.stderr
    assert len(bad.stderr.splitlines()) == 9


# --- run -----------------------------------------------------------------------------------


def test_run_hands_the_config_to_the_app(monkeypatch: pytest.MonkeyPatch) -> None:
    received: list[Config] = []
    sources: list[str | None] = []

    def run(config: Config, *, source: str | None = None) -> int:
        received.append(config)
        sources.append(source)
        return 7

    app = types.ModuleType("sipdialer.app")
    app.run = run  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "sipdialer.app", app)
    assert main(["run", "-c", str(EXAMPLE)]) == 7
    assert [c.campaigns[0].name for c in received] == ["reminders"]
    assert sources == [str(EXAMPLE.resolve())]  # the settings page names this file


def test_run_without_the_app(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "sipdialer.app", None)  # makes the import fail
    assert main(["run", "-c", str(EXAMPLE)]) == 2
    assert "sipdialer run: cannot load the dialer application" in capsys.readouterr().err


def test_run_with_a_bad_config_does_not_start(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "sipdialer.app", None)
    assert main(["run", "-c", str(BAD)]) == 1
    assert "FAILED:" in capsys.readouterr().err


def test_run_interrupted(monkeypatch: pytest.MonkeyPatch) -> None:
    def run(config: Config, *, source: str | None = None) -> int:
        raise KeyboardInterrupt

    app = types.ModuleType("sipdialer.app")
    app.run = run  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "sipdialer.app", app)
    assert main(["run", "-c", str(EXAMPLE)]) == 130


# --- store commands without a readable config, help, version -------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["import", "-c", "x.toml", "--campaign", "reminders", "members.csv"],
        [
            "import", "-c", "x.toml", "--campaign", "reminders", "members.csv",
            "--encoding", "cp1251", "--delimiter", ";", "--skip-header",
            "--map", "name=0,number=1",
        ],
        ["members", "-c", "x.toml", "--campaign", "reminders"],
        ["report", "-c", "x.toml", "--campaign", "reminders", "--format", "json"],
    ],
)  # fmt: skip
def test_store_commands_need_a_config(
    argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)  # x.toml does not exist there
    assert main(argv) == 1
    assert "x.toml: cannot read" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["demo", "--agents", "0"],
        ["import", "-c", "x", "--campaign", "c", "f.csv", "--map", "name"],
        ["import", "-c", "x", "--campaign", "c", "f.csv", "--map", "name=0,name=1"],
        ["import", "-c", "x", "--campaign", "c", "f.csv", "--encoding", "klingon"],
        ["import", "-c", "x", "--campaign", "c", "f.csv", "--delimiter", ";;"],
        ["import", "-c", "x", "f.csv"],
        ["report", "-c", "x", "--campaign", "c", "--format", "xml"],
        ["nonsense"],
        [],
    ],
)
def test_usage_errors(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert "usage: sipdialer" in capsys.readouterr().err


@pytest.mark.parametrize("command", COMMANDS)
def test_help_of_each_command(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([command, "--help"]) == 0
    assert capsys.readouterr().out.startswith(f"usage: sipdialer {command} ")


def test_main_help_lists_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(command in out for command in COMMANDS)


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"sipdialer {__version__}\n"
    child = sipdialer("--version")
    assert (child.returncode, child.stdout) == (0, f"sipdialer {__version__}\n")
