"""Two (or more) ``UserAgentCore``s joined by an in-memory link, on a fake clock.

The h11 ``ConnectionPair`` / aioquic ``roundtrip`` idea: every datagram one core
queues is delivered to the core listening on the destination address, until the
link is quiet. ``drop`` lets a test lose messages on purpose.
"""

from __future__ import annotations

from collections.abc import Callable

from sipdialer.sip.message import Request, Response, parse_message
from sipdialer.sip.peer import Peer
from sipdialer.sip.timers import TimerConfig
from sipdialer.sip.ua import UaConfig, UserAgentCore
from sipdialer.sip.ua_events import UaEvent

Drop = Callable[[Request | Response, Peer, Peer], bool]


class Link:
    def __init__(self, transport: str = "UDP") -> None:
        self.transport = transport
        self.cores: dict[tuple[str, int], UserAgentCore] = {}
        self.events: dict[str, list[UaEvent]] = {}
        self.names: dict[int, str] = {}
        self.wire: list[tuple[str, str, Request | Response]] = []
        self.now = 0.0
        self.drop: Drop | None = None

    def add(self, name: str, port: int, **config: object) -> UserAgentCore:
        timers = config.pop("timers", TimerConfig())
        core = UserAgentCore(
            UaConfig(host="127.0.0.1", port=port, user=name, timers=timers, **config)
        )  # type: ignore[arg-type]
        self.cores[("127.0.0.1", port)] = core
        self.events[name] = []
        self.names[id(core)] = name
        return core

    def peer(self, core: UserAgentCore) -> Peer:
        return Peer(self.transport, core.config.host, core.config.port)

    def run(self, limit: int = 1000) -> None:
        """Deliver until no core has anything to send; collect every event."""
        for _ in range(limit):
            moved = False
            for (host, port), core in list(self.cores.items()):
                name = self.names[id(core)]
                while (event := core.next_event()) is not None:
                    self.events[name].append(event)
                for data, destination in core.data_to_send():
                    moved = True
                    target = self.cores.get((destination.host, destination.port))
                    message = parse_message(data)
                    source = Peer(destination.transport, host, port)
                    if self.drop is not None and self.drop(message, source, destination):
                        continue
                    if target is None:
                        continue
                    self.wire.append((name, self.names[id(target)], message))
                    target.receive_data(data, source, self.now, stream=False)
            if not moved and not any(c._events for c in self.cores.values()):
                return
        raise AssertionError("link never went quiet")

    def advance(self, to: float) -> None:
        """Move the clock to *to*, firing every timer due on the way."""
        while True:
            due = [t for c in self.cores.values() if (t := c.get_timer()) is not None]
            next_at = min(due) if due else None
            if next_at is None or next_at > to:
                break
            self.now = max(self.now, next_at)
            for core in self.cores.values():
                timer = core.get_timer()
                if timer is not None and timer <= self.now:
                    core.handle_timer(self.now)
            self.run()
        self.now = to
        self.run()

    def take(self, name: str) -> list[UaEvent]:
        events, self.events[name] = self.events[name], []
        return events

    def methods(self) -> list[str]:
        """What crossed the wire, as 'INVITE', '180', ... in order."""
        out = []
        for _, _, message in self.wire:
            out.append(message.method if isinstance(message, Request) else str(message.status_code))
        return out
