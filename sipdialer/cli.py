"""The ``sipdialer`` command line (also ``python -m sipdialer``).

A thin shell: it parses arguments, loads the configuration and hands over to the
application. ``main(argv)`` returns the exit status instead of exiting, so tests can call
it: 0 success, 1 invalid configuration (and a demo whose checks failed), 2 usage error or a
command that cannot run, 3 ``import --strict`` with refused rows, 130 interrupted.

``import``, ``members`` and ``report`` live in ``cli_import.py`` and ``cli_report.py`` (on
the store, the dialer need not run); ``demo`` in ``cli_demo.py``, ``demo*.py``. They are
imported when their command runs, so ``--help`` and ``check`` stay quick.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import cast

from sipdialer import __version__
from sipdialer.config import Config, ConfigError, load_config

EXIT_OK = 0
EXIT_CONFIG = 1
EXIT_UNAVAILABLE = 2
EXIT_INTERRUPTED = 130

Handler = Callable[[argparse.Namespace], int]


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command and return its exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version and usage errors
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    handler = cast(Handler | None, getattr(args, "handler", None))
    if handler is None:
        parser.print_help(sys.stderr)
        return EXIT_UNAVAILABLE
    return handler(args)


# --- commands ------------------------------------------------------------------------------


def _load(path: str) -> Config | None:
    try:
        return load_config(path)
    except ConfigError as exc:
        _print_problems(path, exc.problems)
        return None


def _print_problems(path: str, problems: list[str]) -> None:
    for problem in problems:
        print(problem, file=sys.stderr)
    count = f"{len(problems)} problem" + ("" if len(problems) == 1 else "s")
    print(f"FAILED: {path} ({count})", file=sys.stderr)


def _check(args: argparse.Namespace) -> int:
    if _load(args.config) is None:
        return EXIT_CONFIG
    print(f"OK: {args.config}")
    return EXIT_OK


def _run(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if config is None:
        return EXIT_CONFIG
    try:  # imported late: the application pulls in asyncio, the store and the API
        app = importlib.import_module("sipdialer.app")
    except ImportError as exc:
        print(f"sipdialer run: cannot load the dialer application: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    run = cast(Callable[..., int] | None, getattr(app, "run", None))
    if run is None:
        print("sipdialer run: sipdialer.app has no run(config) function", file=sys.stderr)
        return EXIT_UNAVAILABLE
    try:
        return run(config, source=str(Path(args.config).resolve()))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def _trunk_sim(args: argparse.Namespace) -> int:
    from sipdialer.simulate.trunk_serve import run  # late: asyncio, sockets

    try:
        return run(args.listen, args.behave, defaults=not args.no_defaults,
                   username=args.username, password=args.password, rtp_ports=args.rtp_ports,
                   duration=args.duration)  # fmt: skip
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def _import(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if config is None:
        return EXIT_CONFIG
    from sipdialer import cli_import  # late: the store (SQLAlchemy)

    return cli_import.run(config, args)


def _members(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if config is None:
        return EXIT_CONFIG
    from sipdialer import cli_report

    return cli_report.run_members(config, args)


def _report(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if config is None:
        return EXIT_CONFIG
    from sipdialer import cli_report

    return cli_report.run_report(config, args)


def _demo(args: argparse.Namespace) -> int:
    from sipdialer import cli_demo  # late: asyncio, sockets, the whole dialer

    try:
        return cli_demo.run(args)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


# --- argument types ------------------------------------------------------------------------


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _encoding(text: str) -> str:
    from sipdialer.importer import check_encoding

    try:
        return check_encoding(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _delimiter(text: str) -> str:
    from sipdialer.importer import check_delimiter

    try:
        return check_delimiter(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _behaviour(text: str) -> object:
    from sipdialer.simulate.behaviour import BehaviourError, parse_behaviour

    try:
        return parse_behaviour(text)
    except BehaviourError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _column_map(text: str) -> str:
    """A ``--map`` checked now (usage error), kept as text: the importer resolves header
    names once it has read the header (``sipdialer.importer.mapping``)."""
    from sipdialer.importer import MappingError, parse_mapping

    try:
        parse_mapping(text)
    except MappingError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


# --- the parser ----------------------------------------------------------------------------


def _command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    handler: Handler,
    summary: str,
    description: str,
) -> argparse.ArgumentParser:
    parser = commands.add_parser(name, help=summary, description=description)
    parser.set_defaults(handler=handler)
    return parser


def _config_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-c", "--config", required=True, metavar="FILE", help="configuration file (TOML)"
    )


def _campaign_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--campaign", required=True, metavar="NAME", help="campaign name or id")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sipdialer",
        description="A progressive outbound dialer that is its own SIP phone system.",
        epilog="Start with: sipdialer demo (no configuration needed), then sipdialer check -c"
        " config.example.toml",
    )
    parser.add_argument("--version", action="version", version=f"sipdialer {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = _command(
        commands, "run", _run, "run the dialer",
        "Run the dialer until SIGINT/SIGTERM, then stop gracefully: no new calls, live"
        " calls finish or are hung up, state is flushed.",
    )  # fmt: skip
    _config_arg(run)

    check = _command(
        commands, "check", _check, "validate a configuration file",
        "Validate the configuration and print every problem with its key path."
        " Exit status 0 when valid, 1 otherwise.",
    )  # fmt: skip
    _config_arg(check)

    demo = _command(
        commands, "demo", _demo, "run a complete demo campaign on this machine",
        "Run a campaign with no configuration: the dialer, a simulated trunk and simulated"
        " agent phones, all speaking real SIP/RTP on 127.0.0.1, with a throw-away SQLite"
        " store. Shows the agents and the campaign live, ends with the summary (about a"
        " minute with the defaults). --fast runs the same campaign on a simulated clock"
        " instead: no SIP, the engine alone, in seconds.",
    )  # fmt: skip
    demo.add_argument("--agents", type=_positive_int, default=3, metavar="N",
                      help="simulated agent phones (default: 3)")  # fmt: skip
    demo.add_argument("--members", type=_positive_int, default=20, metavar="M",
                      help="members to dial (default: 20)")  # fmt: skip
    demo.add_argument("--fast", action="store_true",
                      help="run on a simulated clock (no SIP; any size in seconds)")  # fmt: skip
    demo.add_argument("--store", default=None, metavar="FILE",
                      help="keep the SQLite store in FILE"
                           " (default: a temporary file, removed)")  # fmt: skip
    demo.add_argument("--json", default=None, metavar="FILE",
                      help="also write the summary as JSON to FILE ('-' = stdout)")  # fmt: skip
    demo.add_argument("--seed", type=int, default=1, metavar="N",
                      help="seed of the members' number mix (default: 1)")  # fmt: skip
    demo.add_argument("--plain", action="store_true",
                      help="no live screen: one log line per call"
                           " (the default off a terminal)")  # fmt: skip
    demo.add_argument("--no-api", action="store_true",
                      help="do not serve the REST API and dashboard during the demo")  # fmt: skip
    demo.add_argument("--time-limit", type=float, default=150.0, metavar="S",
                      help="stop the campaign after S seconds if it has not finished"
                           " (default: 150)")  # fmt: skip

    imp = _command(
        commands, "import", _import, "import members from a CSV file",
        "Add the rows of a CSV file as members of a campaign. Bad rows are reported with"
        " their line number and reason and the good rows are imported; importing the same"
        " file again adds nothing twice (rows whose number the campaign has are skipped)."
        " Exit status 0 when the file was read, even with refused rows (see --strict).",
    )  # fmt: skip
    _config_arg(imp)
    _campaign_arg(imp)
    imp.add_argument("csv", metavar="FILE.csv", help="the CSV file")
    imp.add_argument("--encoding", type=_encoding, default="utf-8",
                     help="text encoding of the file, e.g. cp1251 (default: utf-8)")  # fmt: skip
    imp.add_argument("--delimiter", type=_delimiter, default=",",
                     help="column separator, e.g. ';' or '\\t' (default: ',')")  # fmt: skip
    imp.add_argument("--skip-header", action="store_true",
                     help="the first row is a header (its names may be used in --map)")  # fmt: skip
    imp.add_argument("--map", type=_column_map, default="name=0,number=1", metavar="FIELD=COL,...",
                     help="columns of the member fields (from 0, or header names): name,"
                          " number (repeat for more numbers, first highest; number:P=COL),"
                          " priority, timezone, expire (epoch ms or ISO 8601; expire:FORMAT=COL"
                          " for DD.MM.YYYY, DD.MM.YYYY HH:MM, DD/MM/YYYY, MM/DD/YYYY,"
                          " YYYY-MM-DD HH:MM, epoch-seconds or a strptime pattern, in the"
                          " member's timezone), var:NAME (default: name=0,number=1)")  # fmt: skip
    imp.add_argument("--strict", action="store_true",
                     help="exit 3 when any row was refused"
                          " (the good rows are still imported)")  # fmt: skip

    members = _command(
        commands, "members", _members, "list a campaign's members",
        "List the members of a campaign with their state and attempts, from the store.",
    )  # fmt: skip
    _config_arg(members)
    _campaign_arg(members)
    members.add_argument("--status", choices=("ready", "leased", "waiting", "ended"),
                         default=None, help="only members with this status")  # fmt: skip
    members.add_argument("--limit", type=_positive_int, default=100, metavar="N",
                         help="members to show, at most 10000 (default: 100)")  # fmt: skip
    members.add_argument("--offset", type=int, default=0, metavar="N",
                         help="skip the first N (default: 0)")  # fmt: skip
    members.add_argument("--format", choices=("table", "csv", "json"), default="table",
                         help="output format (default: table)")  # fmt: skip

    report = _command(
        commands, "report", _report, "report a campaign's results",
        "Summarise a campaign from the store: members by status and end cause, attempts by"
        " hangup cause and disposition, talk time, success rate (successes / ended members).",
    )  # fmt: skip
    _config_arg(report)
    _campaign_arg(report)
    report.add_argument("--format", choices=("table", "csv", "json"), default="table",
                        help="output format (default: table)")  # fmt: skip

    sim = _command(
        commands, "trunk-sim", _trunk_sim, "run the simulated SIP trunk",
        "Run the loopback SIP trunk used by the demo and the tests until SIGINT/SIGTERM;"
        " one line per call. Numbers follow the demo's plan (sipdialer.simulate.behaviour)"
        " after any --behave rows.",
    )  # fmt: skip
    sim.add_argument("--listen", default="127.0.0.1:5080", metavar="HOST:PORT",
                     help="address to listen on (default: 127.0.0.1:5080)")  # fmt: skip
    sim.add_argument("--behave", type=_behaviour, action="append", default=[], metavar="SPEC",
                     help="'PATTERN word ...', e.g. '^555 early ring=2 status=486 codec=PCMA';"
                          " repeatable, tried in order before the defaults")  # fmt: skip
    sim.add_argument("--no-defaults", action="store_true",
                     help="do not add the demo's number plan after the --behave rows")  # fmt: skip
    sim.add_argument("--username", default=None, help="digest user for REGISTER/challenges")
    sim.add_argument("--password", default=None, help="digest password")
    sim.add_argument("--rtp-ports", default="40000-40999", metavar="LOW-HIGH",
                     help="RTP port range (default: 40000-40999)")  # fmt: skip
    sim.add_argument("--duration", type=float, default=None, metavar="S",
                     help="stop after S seconds (default: run until SIGINT/SIGTERM)")  # fmt: skip
    return parser
