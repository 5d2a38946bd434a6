"""``sipdialer demo``: the terminal side (live screen, log lines, summary, JSON).

On a terminal a rich ``Live`` screen shows the agents (phone registered, status, state,
current call), the campaign's progress and the last calls; off a terminal (or with
``--plain``) each ended call is one line instead, so CI logs read like a call log. Both end
with the same summary: the report of :mod:`sipdialer.report` as the store recorded it,
what each kind of member did, and the audit (:func:`sipdialer.demo.audit`). ``--json``
writes the summary as JSON too (``-``: to stdout; the screen then goes to stderr).

Exit status 0 when the campaign finished and the audit found nothing wrong, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from collections import deque
from typing import Any

from rich import box
from rich.console import Console, Group
from rich.live import Live
from rich.logging import RichHandler
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from sipdialer.demo import MIN_SUCCESS, MIX, Audit, demo_members
from sipdialer.demo_run import DemoResult, Frame, run_sip
from sipdialer.demo_virtual import run_virtual
from sipdialer.report import duration, render_table

RECENT = 8
"Ended calls the live screen lists."
LOG_WIDTH = 120
"Columns of the output when it is not a terminal."
STATE_STYLE = {
    "Waiting": "green", "Reserved": "yellow", "Ringing": "bold yellow", "Talking": "bold cyan",
    "WrapUp": "magenta", "Delayed": "red",
}  # fmt: skip
DISPOSITION_STYLE = {"ok": "green", "retry": "yellow", "error": "red", "minus": "blue",
                     "refund": "dim"}  # fmt: skip


class Screen:
    """Renders frames: live on a terminal, one line per call otherwise."""

    def __init__(self, console: Console, *, live: bool, members: int, names: dict[str, str],
                 mode: str) -> None:  # fmt: skip
        self.console = console
        self.members = members
        self.names = names
        self.mode = mode
        self.info: dict[str, str] = {}
        self.recent: deque[tuple[float, dict[str, Any]]] = deque(maxlen=RECENT)
        self.live = Live(console=console, auto_refresh=False, transient=False) if live else None
        self._last_progress = -1.0
        self._frame: Frame | None = None

    def __enter__(self) -> Screen:
        if self.live is not None:
            self.live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            if self._frame is not None:
                self.live.update(self._render(self._frame), refresh=True)
            self.live.stop()

    def on_info(self, info: dict[str, str]) -> None:
        self.info.update(info)
        if self.live is None:
            for key, value in info.items():
                self.console.print(f"{key}: {value}", highlight=False)

    def on_frame(self, frame: Frame) -> None:
        self._frame = frame
        for event in frame.ended_calls:
            self.recent.appendleft((frame.elapsed, event))
            if self.live is None and self.mode == "sip":  # virtual runs: progress only
                self.console.print(self._call_line(frame.elapsed, event), highlight=False)
        if self.live is not None:
            self.live.update(self._render(frame), refresh=True)
        elif frame.elapsed - self._last_progress >= (10.0 if self.mode == "sip" else 600.0):
            self._last_progress = frame.elapsed
            self.console.print(self._progress_line(frame), highlight=False)

    # --- lines (off a terminal) ----------------------------------------------------------------

    def _who(self, event: dict[str, Any]) -> tuple[str, str, str]:
        call = event.get("call", {})
        number = str(call.get("number", "?"))
        return str(call.get("agent", "?")), number, self.names.get(number, "")

    def _call_line(self, at: float, event: dict[str, Any]) -> str:
        agent, number, name = self._who(event)
        talk = float(event.get("talk_seconds") or 0.0)
        talked = f" talk {talk:.1f}s" if talk else ""
        return (
            f"[{at:6.1f}s] agent {agent} -> {name or 'member'} {number}:"
            f" {event.get('cause')}{talked} -> {_judged(event)}"
        )

    def _progress_line(self, frame: Frame) -> str:
        counts = frame.campaign.counts
        return (
            f"[{frame.elapsed:6.1f}s] campaign {frame.campaign.name} {frame.campaign.state}:"
            f" {counts.get('ended', 0)}/{self.members} members ended,"
            f" {frame.campaign.in_flight} calls in progress"
        )

    # --- the live screen -----------------------------------------------------------------------

    def _render(self, frame: Frame) -> Group:
        return Group(self._header(frame), self._agents(frame), self._campaign(frame),
                     self._recent())  # fmt: skip

    def _header(self, frame: Frame) -> Panel:
        lines = Text()
        for key, value in self.info.items():
            lines.append(f"{key:>8}: ", style="dim")
            lines.append(f"{value}\n")
        clock = "virtual" if self.mode == "virtual" else "wall"
        lines.append(f"{'time':>8}: ", style="dim")
        lines.append(f"{duration(frame.elapsed)} ({clock})")
        return Panel(lines, title="[bold]sipdialer demo[/]", title_align="left",
                     box=box.ROUNDED)  # fmt: skip

    def _agents(self, frame: Frame) -> Table:
        table = Table(box=box.SIMPLE_HEAD, title="agents", title_justify="left", expand=True)
        for column in ("agent", "phone", "status", "state", "call", "calls"):
            table.add_column(column, justify="right" if column == "calls" else "left")
        for agent in frame.agents:
            call = ""
            if agent.call is not None:
                c = agent.call
                name = self.names.get(c.number, "")
                since = f" {max(0.0, time.time() - c.since):.0f}s" if self.mode == "sip" else ""
                call = f"{c.state}{since}: {name} {c.number}".replace("  ", " ")
            table.add_row(
                f"{agent.id} {agent.name}",
                Text("registered", "green") if agent.registered else Text("not registered", "red"),
                agent.status, Text(agent.state, STATE_STYLE.get(agent.state, "")), call,
                str(agent.calls),
            )  # fmt: skip
        return table

    def _campaign(self, frame: Frame) -> Table:
        view = frame.campaign
        counts = view.counts
        ended = counts.get("ended", 0)
        table = Table.grid(padding=(0, 1))
        table.add_column(justify="right", style="dim")
        table.add_column()
        table.add_row("campaign", f"[bold]{view.name}[/] {view.state}, lines"
                      f" {view.lines_in_use}/{view.limit}")  # fmt: skip
        table.add_row("members", ProgressBar(total=max(1, self.members), completed=ended, width=40))
        table.add_row("", f"{ended}/{self.members} ended · {counts.get('ready', 0)} to dial ·"
                      f" {counts.get('leased', 0)} in a call")  # fmt: skip
        if view.causes:
            table.add_row("ended", ", ".join(f"{n} {c}" for c, n in sorted(view.causes.items())))
        return table

    def _recent(self) -> Table:
        table = Table(box=box.SIMPLE_HEAD, title="last calls", title_justify="left", expand=True)
        for column in ("at", "agent", "member", "number", "cause", "talk", "judged"):
            table.add_column(column, justify="right" if column in ("at", "talk") else "left")
        for at, event in self.recent:
            agent, number, name = self._who(event)
            talk = float(event.get("talk_seconds") or 0.0)
            disposition = str(event.get("disposition", ""))
            judged = _judged(event)
            table.add_row(
                f"{at:.1f}s", agent, name, number, str(event.get("cause", "")),
                f"{talk:.1f}s" if talk else "",
                Text(judged, DISPOSITION_STYLE.get(disposition, "")),
            )  # fmt: skip
        return table


def _judged(event: dict[str, Any]) -> str:
    """The disposition, with why a connected call was not a success."""
    disposition = str(event.get("disposition", ""))
    talk = float(event.get("talk_seconds") or 0.0)
    if disposition == "retry" and event.get("cause") == "NORMAL_CLEARING" and talk:
        return f"retry (talk < {MIN_SUCCESS:g}s)"
    return disposition


def _kinds(audit: Audit) -> Table:
    table = Table(box=box.SIMPLE_HEAD, title="what each kind of member did", title_justify="left")
    for column in ("kind", "the trunk", "members", "attempts", "ended with", ""):
        table.add_column(column, justify="right" if column in ("members", "attempts") else "left")
    for kind in MIX:
        causes = audit.by_kind.get(kind.key)
        if not causes:
            continue
        as_expected = set(causes) == {kind.expect}
        table.add_row(
            kind.key, kind.what, str(sum(causes.values())), str(audit.attempts_by_kind[kind.key]),
            ", ".join(f"{n} {c}" for c, n in causes.items()),
            Text("as expected", "green") if as_expected else Text(f"expected {kind.expect}",
                                                                    "yellow"),
        )  # fmt: skip
    return table


def _checks(result: DemoResult) -> Text:
    audit = result.audit
    text = Text()

    def line(ok: bool, message: str) -> None:
        text.append("  ok  " if ok else "FAIL  ", style="bold green" if ok else "bold red")
        text.append(message + "\n")

    if result.finished:
        line(True, "the campaign finished")
    elif "interrupted" in result.info:
        line(False, "the campaign was interrupted (SIGINT/SIGTERM) before it finished")
    else:
        line(False, "the campaign did not finish within the time limit")
    final = audit.ended == audit.members and not any("final state" in p for p in audit.problems)
    line(final, f"every member is in exactly one final state ({audit.ended} of {audit.members}"
         " ended, none leased, waiting or due)")  # fmt: skip
    counts_ok = audit.counted == audit.member_counters and not any(
        "counter says" in p for p in audit.problems
    )
    line(counts_ok, f"attempts counted in the attempt records ({audit.counted} of"
         f" {audit.attempts}) = the members' attempt counters ({audit.member_counters}),"
         " member by member")  # fmt: skip
    for problem in audit.problems[:10]:
        text.append(f"        {problem}\n", style="red")
    return text


def summary(result: DemoResult, members: int, agents: int) -> Group:
    where = "over SIP/RTP on 127.0.0.1" if result.mode == "sip" else "in virtual time"
    title = (
        f"summary: {members} members, {agents} agents, {where}:"
        f" campaign {duration(result.campaign_seconds)}"
        + ("" if result.mode == "sip" else f" of virtual time in {result.wall_seconds:.2f}s")
    )
    return Group(Text(title, style="bold"), render_table(result.report), _kinds(result.audit),
                 Text("checks", style="bold"), _checks(result))  # fmt: skip


def run(args: argparse.Namespace) -> int:
    """The ``demo`` command (arguments as cli.py defines them)."""
    to_stdout = args.json == "-"
    console = Console(stderr=to_stdout, highlight=False)
    if not console.is_terminal:  # a CI log: wide enough for the summary's tables
        console = Console(stderr=to_stdout, highlight=False, width=LOG_WIDTH)
    live = console.is_terminal and not args.plain
    plan = demo_members(args.members, args.seed)
    names = {number: m.name for m in plan for number in m.numbers}
    if live:  # log lines above the live screen, not through it
        handler: logging.Handler = RichHandler(console=console, show_path=False)
        logging.basicConfig(level=logging.WARNING, handlers=[handler], format="%(message)s")
    else:
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    mode = "virtual" if args.fast else "sip"
    screen = Screen(console, live=live, members=args.members, names=names, mode=mode)
    started = time.monotonic()
    try:
        with screen:
            if args.fast:
                result = run_virtual(args.agents, args.members, seed=args.seed,
                                     on_frame=screen.on_frame, on_info=screen.on_info)  # fmt: skip
            else:
                result = asyncio.run(run_sip(
                    args.agents, args.members, seed=args.seed, store=args.store,
                    time_limit=args.time_limit, api=not args.no_api, on_frame=screen.on_frame,
                    on_info=screen.on_info,
                ))  # fmt: skip
    except (FileExistsError, OSError) as exc:
        print(f"sipdialer demo: {exc}", file=sys.stderr)
        return 2
    console.print()
    console.print(summary(result, args.members, args.agents))
    if args.store and not args.fast:
        toml = os.path.splitext(args.store)[0] + ".toml"
        with open(toml, "w", encoding="utf-8") as file:
            file.write(f'# the demo\'s store, for sipdialer report/members\n[store]\nurl = '
                       f'"sqlite:///{os.path.abspath(args.store)}"\n')  # fmt: skip
        console.print(f"store kept: {args.store}; try: sipdialer report -c {toml} --campaign demo")
    body = result.to_json() | {"agents": args.agents, "members": args.members, "seed": args.seed,
                               "store": None if args.fast else args.store,
                               "elapsed": round(time.monotonic() - started, 3)}  # fmt: skip
    if to_stdout:
        print(json.dumps(body, indent=2))
    elif args.json:
        with open(args.json, "w", encoding="utf-8") as file:
            json.dump(body, file, indent=2)
    return 0 if result.ok else 1
