"""The dialer's shell: the pure engine driven by the calls layer, the store and the clock.

Theory of operation
-------------------
:class:`DialerRunner` is the one object the API, the CLI and the dashboard use (its facade:
``/tmp/spec/dialer_facade.md``). It owns a :class:`~sipdialer.dialer.engine.DialerEngine`
and feeds it, one at a time and in arrival order, the events of the world: the call
service's ``calls.events``, registrations from the registrar, agents' statuses (REST or
feature codes), API requests, and its timer. Every ``handle`` returns commands, which
:meth:`DialerRunner._run` executes **in order**:

* store commands through :class:`~sipdialer.dialer.runner_store.RunnerStore`, each one
  committed before the next command runs (lease, attempt start, disposition: DESIGN.md
  rule 4); ``LeaseMember`` is answered with ``MemberLeased`` as soon as the lease is
  committed, and what the engine says to that joins the queue;
* telephony commands to ``PhoneSystem.calls`` (``originate``, ``dial_member``, ``bridge``,
  ``hangup``). The call service may report an event from inside such a call (a call
  without a binding ends at once): events arriving while a batch runs wait in a queue and
  are handled after it, so the engine is never entered twice.

Agents: the engine's :class:`~sipdialer.dialer.agents.Agents` *is* ``PhoneSystem.agents``
(one set of objects). The registrar and the feature codes move those agents directly (with
the calls layer's monotonic clock, which only stamps their events: status and registration
inputs set no deadline); the runner hears of it (``registrar.on_event``,
``features.on_status``) and feeds ``AgentRegistered`` / ``AgentStatusChanged`` so that the
engine dispatches at once. Engine
inputs that carry time (wrap-ups, delays, deadlines) all take the runner's wall clock.

Clocks: the engine runs on float Unix seconds (``clock``, ``time.time`` by default); the
calls layer's times (``endpoint.now``, the loop's monotonic clock) are mapped to wall time
by the offset between the two clocks at the moment of conversion. One ``loop.call_at``
wakes the runner at ``engine.get_timer()``.

Start (:meth:`start`): migrate the store, sync the file's definitions, recover what a crash
of this node left (attempts in flight -> PROCESS_CRASH, refunded; members and agents
released), load campaigns with their stored state and member zones, restore members
waiting for a result, restore agents' statuses, then dispatch. The node's name (the lease
owner) is ``node=``, else ``$SIPDIALER_NODE``, else ``hostname:listen``: it must stay the
same across restarts of one node and differ between nodes sharing a store.

A store command that fails (the database is gone, a constraint refuses a row) stops the
node: nothing after it may act on an uncommitted step, so no further offers or leases are
executed, :attr:`DialerRunner.failed` is set, ``serve`` closes and exits 1, and the next
start recovers from what the store has.

Close (:meth:`close`, SIGTERM): every campaign is stopped in the engine only (the store
keeps its state, so it runs again after a restart), live calls are hung up with
SYSTEM_SHUTDOWN and their ends judged and committed (up to ``CLOSE_GRACE`` seconds);
anything still in flight after that is what ``recover`` closes at the next start.

Files: this one holds the lifecycle, the event queue, the timer, command execution and the
facade's requests; ``runner_store`` the persistence (leases, attempts, the shared line
limit, recovery); ``runner_views`` the read-only views and change events. Store calls are
synchronous in the event loop: each is one short transaction (~0.1-2 ms on SQLite), and
running them inline is what keeps "committed before the next command" trivially true.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import os
import secrets
import socket
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sipdialer.calls.events import (
    CallEvent,
)
from sipdialer.dialer.agents import AgentStatus
from sipdialer.dialer.calendar import Calendar
from sipdialer.dialer.campaign import CampaignSettings, CampaignState, TrunkSettings, utc
from sipdialer.dialer.commands import (
    AgentRegistered,
    AgentStatusChanged,
    Bridge,
    CampaignFinished,
    CampaignRun,
    CampaignStop,
    Command,
    DialMember,
    EndMember,
    EngineEvent,
    ExpireMembers,
    FinishAttempt,
    Hangup,
    LeaseMember,
    MembersChanged,
    MemberStatusReceived,
    MemberTerminated,
    OfferAgent,
    PublishAgent,
    ReleaseAgent,
    SaveMember,
    StartAttempt,
    UpdateAttempt,
)
from sipdialer.dialer.dispositions import StatusResult
from sipdialer.dialer.engine import DialerEngine
from sipdialer.dialer.runner_store import RunnerStore
from sipdialer.dialer.runner_views import CALL_STATES, LiveCall, RunnerViews
from sipdialer.dialer.views import RunnerMetrics
from sipdialer.sip.bindings import BindingAdded, BindingExpired, BindingRemoved, RegistrarEvent
from sipdialer.store.api_queries import member_with_number
from sipdialer.store.attempts import AttemptStore
from sipdialer.store.db import open_engine
from sipdialer.store.member_rows import DuplicateNumber, MemberRecord
from sipdialer.store.members import MemberStore
from sipdialer.store.migrations import migrate
from sipdialer.store.sync import load_agents, load_campaigns, set_campaign_state, sync_config

if TYPE_CHECKING:
    from sipdialer.app import PhoneSystem
    from sipdialer.config import Config

__all__ = ["DialerRunner", "default_node"]

log = logging.getLogger("sipdialer.runner")

TELEPHONY = (OfferAgent, DialMember, Bridge, Hangup)
"Commands for the calls layer; every other command is the store's (or the views')."
CLOSE_GRACE = 3.0
"Seconds ``close()`` waits for hung-up calls to end (and be judged)."


def default_node(config: Config) -> str:
    """``$SIPDIALER_NODE``, else ``hostname:listen`` (stable across restarts)."""
    node = os.environ.get("SIPDIALER_NODE") or f"{socket.gethostname()}:{config.sip.listen}"
    return node[:64]  # the store's lease_owner / node columns


class DialerRunner(RunnerViews):
    """The running dialer (module docstring); create, ``await start()``, ``await close()``."""

    def __init__(
        self,
        config: Config,
        system: PhoneSystem,
        *,
        node: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.system = system
        self.clock = clock
        self.node = node or default_node(config)
        self.db = open_engine(config.store.url)
        self.store = RunnerStore(self.db, self.node, self._wall)
        self.members: MemberStore = self.store.members
        self.attempts: AttemptStore = self.store.attempts
        self.metrics = RunnerMetrics()
        trunks = [TrunkSettings.from_config(t) for t in config.trunks]
        # Call ids are unique across nodes and restarts (attempts.call_id is unique).
        tag = hashlib.sha1(self.node.encode()).hexdigest()[:6]
        prefix = f"n{tag}-{int(clock()):x}-{secrets.token_hex(2)}"
        self.engine = DialerEngine((), (), trunks=trunks, now=clock(), call_id_prefix=prefix)
        self.engine.agents = system.agents  # one set of agent objects (module docstring)
        self._names: dict[str, str] = {}
        self._live: dict[str, LiveCall] = {}
        self._since: dict[str, float] = {}
        self._queues: list[asyncio.Queue[dict[str, Any]]] = []
        self._pending: deque[EngineEvent | None] = deque()
        self._busy = False
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._idle_ticks = 0
        self._started = False
        self._closing = False
        self.broken = False
        "A store command failed: no new calls; the node is stopping."
        self.failed = asyncio.Event()
        "Set when the node must stop because the store failed (``serve`` watches it)."

    # --- clocks ------------------------------------------------------------------------------

    def _wall(self, at: float) -> datetime:
        """The calls layer's (monotonic) time ``at`` as an aware UTC datetime."""
        return datetime.fromtimestamp(at + self.clock() - self.system.endpoint.now, tz=UTC)

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the store, sync, recover, load, and start dialing (module docstring)."""
        migrate(self.db)
        report = sync_config(self.db, self.config)
        self._names = dict(report.campaign_ids)
        self.metrics.recovered_members = self.store.recover()
        self._load_campaigns()
        self._restore_agents()
        self.system.calls.on_event(self._on_call_event)
        self.system.registrar.on_event(self._on_binding)
        self.system.features.on_status = self._on_feature_status
        self._started = True
        log.info(
            "dialer node %s: %d campaigns, %d agents, store %s", self.node,
            len(self.engine.campaigns), len(self.system.agents), self.db.url.render_as_string(),
        )  # fmt: skip
        self._feed(None)

    def _load_campaigns(self) -> None:
        rows = {row.id: row for row in load_campaigns(self.db)}
        calendars = {c.name: Calendar.from_config(c) for c in self.config.calendars}
        trunk_names = {route.trunk for route in self.config.routes}
        trunk = trunk_names.pop() if len(trunk_names) == 1 else None
        for cfg in self.config.campaigns:
            campaign_id = self._names[cfg.name]
            settings = CampaignSettings.from_config(
                cfg, calendars[cfg.calendar], campaign_id=campaign_id, trunk=trunk,
                refund_missed_result=cfg.refund_missed_result,
            )  # fmt: skip
            state = CampaignState(rows[campaign_id].state)
            zones = self.members.zones(campaign_id) or frozenset({None})
            self.engine.add_campaign(settings, state=state, zones=zones)
            restored = 0
            for waiting in self.store.waiting_members(campaign_id):
                self.engine.restore_waiting(waiting.member, waiting.call_id, waiting.deadline)
                restored += 1
            log.info(
                "campaign %s (%s): %s, limit %d%s", cfg.name, campaign_id, state.value, cfg.limit,
                f", {restored} members waiting for a result" if restored else "",
            )  # fmt: skip

    def _restore_agents(self) -> None:
        """Statuses survive restarts (the store keeps them); registration is the registrar's."""
        stored = load_agents(self.db)
        now = self.clock()
        for agent in self.system.agents:
            row = stored.get(agent.id)
            if row is not None and row.status != agent.status.value:
                agent.set_status(now, row.status)
            agent.set_registered(now, self.system.registrar.is_registered(agent.id))
            self._since[agent.id] = now

    async def close(self) -> None:
        """No new calls, live calls hung up and judged, state flushed (module docstring)."""
        if self._closing or not self._started:
            self._closing = True
            return
        self._closing = True
        for campaign in list(self.engine.campaigns.values()):
            if campaign.state is CampaignState.RUNNING:
                self._apply(CampaignStop(campaign.id))  # the engine's only: not stored
        for call_id in list(self.engine.calls):
            self.system.calls.hangup(call_id, "SYSTEM_SHUTDOWN")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CLOSE_GRACE
        while self._placed() and loop.time() < deadline:
            await asyncio.sleep(0.02)
        if self.engine.calls:
            log.warning("%d calls still in flight at close: recovered at the next start",
                        len(self.engine.calls))  # fmt: skip
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.store.flush()
        self._publish({"type": "closed"})
        log.info("dialer node %s closed", self.node)

    def _placed(self) -> list[str]:
        """The engine's calls that the calls layer runs (not those never offered)."""
        return [c for c in self.engine.calls if self.system.calls.call(c) is not None]

    # --- feeding the engine ------------------------------------------------------------------

    def _apply(self, event: EngineEvent) -> None:
        """Hand one API event to the engine now; its errors reach the caller."""
        if self._busy:  # called from inside a batch (a listener): keep the order
            self._pending.append(event)
            return
        commands = self.engine.handle(event, self.clock())
        self._busy = True
        try:
            self._run(commands)
        finally:
            self._busy = False
        self._drain()

    def _feed(self, event: EngineEvent | None) -> None:
        """Queue an event (None: the timer) and handle whatever is queued, in order."""
        self._pending.append(event)
        if not self._busy:
            self._drain()

    def _drain(self) -> None:
        self._busy = True
        try:
            while self._pending:
                event = self._pending.popleft()
                now = self.clock()
                try:
                    if event is None:
                        commands = self.engine.handle_timer(now)
                    else:
                        commands = self.engine.handle(event, now)
                except KeyError as exc:  # a late event of a call the engine closed
                    log.debug("event %r ignored: %s", event, exc)
                    continue
                except Exception:  # a listener must not break the calls layer: log it
                    log.exception("the engine refused %r", event)
                    continue
                self._idle_ticks = self._idle_ticks + 1 if event is None and not commands else 0
                self._run(commands)
        finally:
            self._busy = False
        self._arm_timer()

    def _arm_timer(self) -> None:
        if self._closing and not self.engine.calls:
            return
        at = self.engine.get_timer()
        if at is not None and self._idle_ticks > 2:
            at = max(at, self.clock() + 0.05)  # a due timer that does nothing: do not spin
        if at == self._timer_at and self._timer is not None:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = at
        if at is None or not math.isfinite(at):
            return
        loop = asyncio.get_running_loop()
        delay = max(0.0, at - self.clock())
        self._timer = loop.call_at(loop.time() + delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        self._feed(None)

    # --- listeners ---------------------------------------------------------------------------

    def _on_call_event(self, event: CallEvent) -> None:
        live = self._live.get(event.call_id)
        if live is not None:
            state = CALL_STATES.get(type(event))
            if state is not None and state != live.state:
                live.state, live.since = state, self.clock()
                self._publish({"type": "call", "call": live.view(self._names).to_json()})
        if event.call_id in self.engine.calls:
            self._feed(event)

    def _on_binding(self, event: RegistrarEvent) -> None:
        if not isinstance(event, BindingAdded | BindingRemoved | BindingExpired):
            return
        agent_id = event.binding.aor
        if agent_id in self.system.agents and self._started:
            self._feed(AgentRegistered(agent_id, self.system.registrar.is_registered(agent_id)))

    def _on_feature_status(self, agent_id: str, status: AgentStatus) -> None:
        if agent_id in self.system.agents and self._started:
            self._feed(AgentStatusChanged(agent_id, status))

    # --- executing commands ------------------------------------------------------------------

    def _run(self, commands: list[Command]) -> None:
        queue = deque(commands)
        while queue:
            command = queue.popleft()
            self.metrics.commands += 1
            if self.broken and isinstance(command, OfferAgent | DialMember | LeaseMember):
                continue  # nothing new once the store failed (see _store_failed)
            try:
                queue.extend(self._execute(command))
            except Exception as exc:
                if isinstance(command, TELEPHONY):
                    log.exception("command %r failed", command)  # that call ends with a cause
                else:
                    self._store_failed(command, exc)
        try:
            self.store.flush()
        except Exception as exc:
            self._store_failed(None, exc)

    def _store_failed(self, command: Command | None, exc: Exception) -> None:
        """A commit failed: what follows may not act on it, so the node stops (``failed``
        is set; ``serve`` closes and exits 1) and the next start recovers from the store."""
        log.critical("store command %r failed: %s; stopping the node", command, exc,
                     exc_info=exc)  # fmt: skip
        self.broken = True
        self.failed.set()

    def _execute(self, command: Command) -> list[Command]:
        """Run one command; returns what the engine answered (for a lease)."""
        match command:
            case LeaseMember():
                return self._lease(command)
            case StartAttempt():
                self.store.start_attempt(command)
                now = self.clock()
                self._live[command.call_id] = LiveCall(
                    command.call_id, command.agent_id, command.number, command.campaign_id,
                    command.member_id, "offering", now, now,
                )  # fmt: skip
                self._publish({"type": "call", "call": self._live[command.call_id].view(
                    self._names).to_json()})  # fmt: skip
            case OfferAgent(order):
                self.system.calls.originate(order)
            case DialMember(call_id):
                self.system.calls.dial_member(call_id)
            case Bridge(call_id):
                self.system.calls.bridge(call_id)
            case Hangup(call_id, cause):
                self.system.calls.hangup(call_id, cause)
            case FinishAttempt():
                self._finished(command)
            case UpdateAttempt():
                self.store.update_attempt(command)
            case SaveMember():
                self.store.save_member(command)
            case EndMember():
                self.store.end_member(command)
            case ExpireMembers(campaign_id, now):
                self.store.flush()
                expired = self.members.expire_members(campaign_id, now)
                if expired:
                    log.info("campaign %s: %d members expired", self._name(campaign_id),
                             len(expired))  # fmt: skip
            case CampaignFinished(campaign_id, reason):
                self.store.flush()
                set_campaign_state(self.db, campaign_id, "finished")
                log.info("campaign %s finished: %s", self._name(campaign_id), reason)
                self._publish({"type": "campaign", "campaign": self._campaign_json(campaign_id)})
            case PublishAgent(event):
                agent = self.system.agents.get(event.agent_id)
                if agent is not None:
                    self.store.save_agent(agent)
                    self._since[agent.id] = self.clock()
                    self._publish({"type": "agent", "agent": self._agent_view(agent.id).to_json()})
            case ReleaseAgent():
                pass  # the agent's own event (PublishAgent) says it all
        return []

    def _lease(self, command: LeaseMember) -> list[Command]:
        campaign = self.engine.campaign(command.campaign_id)
        started = time.perf_counter()
        answer = self.store.lease(command, utc(self.clock()), campaign.settings.limit)
        self.metrics.leased(time.perf_counter() - started, empty=answer.member is None)
        return self.engine.handle(answer, self.clock())

    def _finished(self, command: FinishAttempt) -> None:
        result = command.result
        self.store.finish_attempt(command, result)
        live = self._live.pop(command.call_id, None)
        self.metrics.call_ended(command.campaign_id, result.cause)
        disposition = command.disposition
        log.info(
            "call ended: campaign %s member %d agent %s number %s cause %s talk %.1fs -> %s%s",
            self._name(command.campaign_id), command.member_id,
            live.agent if live else "?", live.number if live else result.dialed or "?",
            result.cause, result.talk_seconds, disposition.kind.value,
            f" (member ends {disposition.member_ends_with})" if disposition.member_ends_with
            else "",
        )  # fmt: skip
        if live is not None:
            view = replace(live, state="ended", since=self.clock()).view(self._names)
            self._publish(
                {"type": "call_ended", "call": view.to_json(), "cause": result.cause,
                 "talk_seconds": result.talk_seconds, "disposition": disposition.kind.value}
            )  # fmt: skip
        if self._queues:
            self._publish(
                {"type": "campaign", "campaign": self._campaign_json(command.campaign_id)}
            )

    # --- the facade: campaigns ---------------------------------------------------------------

    def set_campaign_state(self, campaign_id: str, run: bool) -> None:
        """run | stop (stop: no new calls; live calls finish). Stored, then applied."""
        self.engine.campaign(campaign_id)
        set_campaign_state(self.db, campaign_id, "running" if run else "stopped")
        self._apply(CampaignRun(campaign_id) if run else CampaignStop(campaign_id))
        self._publish({"type": "campaign", "campaign": self._campaign_json(campaign_id)})

    def members_added(self, campaign_id: str, *, auto_run: bool = False) -> None:
        """Members were inserted: the engine learns their zones and looks again."""
        self._apply(MembersChanged(campaign_id, self.members.zones(campaign_id)))
        campaign = self.engine.campaign(campaign_id)
        if auto_run and campaign.state is not CampaignState.RUNNING:
            self.set_campaign_state(campaign_id, True)

    def member_status(self, campaign_id: str, member_id: int, result: StatusResult) -> None:
        """A status result (§4). Raises NotWaiting or DuplicateNumber (409), KeyError (404).

        A ``next_communication`` that is another member's number is refused here, before
        the engine judges the member: the store would refuse the SaveMember after it."""
        record = self._member(campaign_id, member_id)
        number = result.next_communication
        if number is not None and record.state.number(number) is None:
            owner = member_with_number(self.db, campaign_id, number)
            if owner is not None and owner != member_id:
                raise DuplicateNumber(
                    f"next_communication {number!r} is a number of member {owner}"
                )
        self._apply(MemberStatusReceived(campaign_id, member_id, result))

    def terminate_member(self, campaign_id: str, member_id: int) -> None:
        """Manager request: the member ends with MANAGER_REQUEST. KeyError (404)."""
        self._member(campaign_id, member_id)
        self._apply(MemberTerminated(campaign_id, member_id))

    def _member(self, campaign_id: str, member_id: int) -> MemberRecord:
        self.engine.campaign(campaign_id)
        record = self.members.get(member_id)
        if record is None or record.campaign_id != campaign_id:
            raise KeyError(f"no member {member_id} in campaign {campaign_id!r}")
        return record

    # --- the facade: agents and calls --------------------------------------------------------

    def set_agent_status(self, agent_id: str, status: AgentStatus) -> None:
        """REST status change; KeyError (404) for an unknown agent."""
        if agent_id not in self.system.agents:
            raise KeyError(f"no agent {agent_id!r}")
        self._apply(AgentStatusChanged(agent_id, AgentStatus(status)))
