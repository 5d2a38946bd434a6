"""The agent machine as data: vocabulary, transitions, cause penalties, settings, events.

Kept apart from the mechanics in :mod:`sipdialer.dialer.agents` (which re-exports all of
it) so that the tables can be read, printed and checked exhaustively on their own.

Two dimensions plus a flag describe an agent (dialer-semantics §2):

* **status** (:class:`AgentStatus`), the agent's choice: ``LoggedOut``, ``Available``, ``Break``;
* **state** (:class:`AgentState`), the dialer's: ``Waiting``, ``Reserved``, ``Ringing``,
  ``Talking``, ``WrapUp``, ``Delayed``;
* **registered**, the registrar's view of the phone's binding.

:data:`TRANSITIONS` moves only the state. Status and registration inputs are accepted in
every state and leave it where it is, so a Break, a log-out or a lost binding never
interrupts a call. The one input that touches both dimensions is a no-answer failure that
reaches ``max_no_answer`` (Available becomes Break, see ``Agent.apply``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum, StrEnum, auto
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sipdialer.config import AgentConfig, CampaignConfig


class AgentStatus(StrEnum):
    """The agent's own choice; the values are the REST API's strings."""

    LOGGED_OUT = "LoggedOut"
    AVAILABLE = "Available"
    BREAK = "Break"


class AgentState(StrEnum):
    """Where the dialer has the agent; the values are the REST API's strings."""

    WAITING = "Waiting"  # idle: offered a call when status Available and registered
    RESERVED = "Reserved"  # picked by the engine; a member is being leased
    RINGING = "Ringing"  # agent-leg INVITE sent, ring time call_timeout
    TALKING = "Talking"  # agent leg up: member being dialed or bridged
    WRAP_UP = "WrapUp"  # after-call work, until a deadline (or a status-API result)
    DELAYED = "Delayed"  # busy/reject/no-answer penalty after a failed agent leg


class AgentInput(Enum):
    SET_STATUS_LOGGED_OUT = auto()  # REST or feature code (*0)
    SET_STATUS_AVAILABLE = auto()  # (*1)
    SET_STATUS_BREAK = auto()  # (*2)
    REGISTERED = auto()  # the registrar has a live binding for the agent's phone
    UNREGISTERED = auto()  # binding expired, removed, or OPTIONS unanswered
    RESERVE = auto()  # the engine picked this agent (needs eligible())
    RELEASE = auto()  # the reservation was dropped before the agent leg was sent
    OFFER = auto()  # agent-leg INVITE sent
    ANSWERED = auto()  # agent leg up (200 OK)
    AGENT_LEG_FAILED = auto()  # agent leg ended unanswered; penalised by cause
    AGENT_LEG_CANCELLED = auto()  # we cancelled it (ORIGINATOR_CANCEL): no penalty
    CALL_ENDED = auto()  # either side hung up after the agent answered
    WRAP_UP_DONE = auto()  # wrap-up deadline, or a status-API result
    DELAY_DONE = auto()  # penalty deadline


STATUS_INPUTS: dict[AgentInput, AgentStatus] = {
    AgentInput.SET_STATUS_LOGGED_OUT: AgentStatus.LOGGED_OUT,
    AgentInput.SET_STATUS_AVAILABLE: AgentStatus.AVAILABLE,
    AgentInput.SET_STATUS_BREAK: AgentStatus.BREAK,
}
"Status inputs and the status each one sets."

ANY_STATE_INPUTS: tuple[AgentInput, ...] = (
    *STATUS_INPUTS,
    AgentInput.REGISTERED,
    AgentInput.UNREGISTERED,
)
"Inputs of the status and registration dimensions: accepted in every state, state unchanged."

TIMED_STATES: dict[AgentState, AgentInput] = {
    AgentState.WRAP_UP: AgentInput.WRAP_UP_DONE,
    AgentState.DELAYED: AgentInput.DELAY_DONE,
}
"States that carry a deadline, and the input their deadline feeds (``handle_timer``)."

#               RESERVE              OFFER              ANSWERED
#   Waiting -------------> Reserved -------> Ringing -----------> Talking
#     ^ ^ ^  <-- RELEASE ------'  |            |  |                   |
#     | | '------ AGENT_LEG_CANCELLED ---------'  |                   | CALL_ENDED
#     | |                         | AGENT_LEG_    | AGENT_LEG_        v
#     | |                         v FAILED        | FAILED          WrapUp
#     | '-------- DELAY_DONE -- Delayed <---------'                   |
#     '------------------------------------------ WRAP_UP_DONE -------'
#
# (state, input) -> next state. A pair missing from the table is REFUSED: Agent.apply
# raises IllegalAgentTransition(state, input) and changes nothing (state, status, counts,
# deadline, events). Every input comes from our own engine, registrar or API layer, never
# straight off the wire, so a missing pair is a caller bug or a race the caller checks
# first. The two inputs that may legitimately come late are guarded by their methods
# instead: handle_timer() does nothing when no deadline is due, result_received() returns
# False when the agent is not waiting for a result.
TRANSITIONS: dict[tuple[AgentState, AgentInput], AgentState] = {
    (AgentState.WAITING, AgentInput.RESERVE): AgentState.RESERVED,
    (AgentState.RESERVED, AgentInput.RELEASE): AgentState.WAITING,
    (AgentState.RESERVED, AgentInput.OFFER): AgentState.RINGING,
    # No binding found when the INVITE was to be sent: USER_NOT_REGISTERED, 5 s.
    (AgentState.RESERVED, AgentInput.AGENT_LEG_FAILED): AgentState.DELAYED,
    (AgentState.RINGING, AgentInput.ANSWERED): AgentState.TALKING,
    (AgentState.RINGING, AgentInput.AGENT_LEG_FAILED): AgentState.DELAYED,
    (AgentState.RINGING, AgentInput.AGENT_LEG_CANCELLED): AgentState.WAITING,
    (AgentState.TALKING, AgentInput.CALL_ENDED): AgentState.WRAP_UP,
    (AgentState.WRAP_UP, AgentInput.WRAP_UP_DONE): AgentState.WAITING,
    (AgentState.DELAYED, AgentInput.DELAY_DONE): AgentState.WAITING,
    # The status and registration dimensions: every state, no move.
    **{(state, input_): state for state in AgentState for input_ in ANY_STATE_INPUTS},
}


# --- what a failed agent leg costs the agent (dialer-semantics §1, mod_callcenter) --------


class Penalty(Enum):
    BUSY = auto()  # busy_delay
    REJECT = auto()  # reject_delay
    NOT_REGISTERED = auto()  # NOT_REGISTERED_DELAY; not a no-answer
    NONE = auto()  # no delay, not counted: our own CANCEL (AGENT_LEG_CANCELLED)
    NO_ANSWER = auto()  # no_answer_delay; consecutive no-answer count + 1


NOT_REGISTERED_DELAY = 5.0
"Seconds an agent is held back when its phone had no binding (mod_callcenter's 5 s)."

# Cause name (causes.md §3) -> penalty; a cause not listed gets DEFAULT_PENALTY, so the
# ring timeout (NO_ANSWER), 480 NO_USER_RESPONSE, 408/504 RECOVERY_ON_TIMER_EXPIRE, 5xx ...
# all count as the agent not answering.
CAUSE_PENALTIES: dict[str, Penalty] = {
    "USER_BUSY": Penalty.BUSY,  # 486, and 600 (DND): sofia maps both to USER_BUSY
    "BUSY_EVERYWHERE": Penalty.BUSY,  # 600 when the cause is kept verbatim
    "NORMAL_CIRCUIT_CONGESTION": Penalty.BUSY,
    "CALL_REJECTED": Penalty.REJECT,  # 603 (401/403/407/608 share the cause)
    "USER_NOT_REGISTERED": Penalty.NOT_REGISTERED,
    "ORIGINATOR_CANCEL": Penalty.NONE,  # the member leg ended first; not the agent's doing
    "NO_ANSWER": Penalty.NO_ANSWER,  # our ring timeout (call_timeout)
}
DEFAULT_PENALTY = Penalty.NO_ANSWER
"Penalty of any cause missing from CAUSE_PENALTIES (and of an unknown cause, None)."


def cause_name(cause: str | Enum) -> str:
    """A cause as its name: strings as given, enum members (a HangupCause) by ``.name``."""
    return cause.name if isinstance(cause, Enum) else cause


def penalty_for(cause: str | Enum | None) -> Penalty:
    """The penalty of an agent-leg failure with ``cause`` (None: cause unknown)."""
    if cause is None:
        return DEFAULT_PENALTY
    return CAUSE_PENALTIES.get(cause_name(cause), DEFAULT_PENALTY)


# --- per-agent parameters ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AgentSettings:
    """One agent's parameters (``[[agents]]``); durations in seconds."""

    id: str
    "The SIP user (extension) and the REST id."
    name: str = ""
    call_timeout: float = 15.0
    "Agent-leg ring time; the engine cancels with NO_ANSWER after it."
    wrap_up_time: float = 10.0
    "After-call work, unless the campaign waits for a result."
    max_no_answer: int = 3
    "Consecutive no-answers that put the agent on Break; 0 = never."
    busy_delay: float = 30.0
    reject_delay: float = 30.0
    no_answer_delay: float = 30.0
    auto_answer: bool = False
    "Ask the phone to answer by itself (Call-Info answer-after=0, Alert-Info)."

    def __post_init__(self) -> None:
        if not self.id:
            raise ValueError("agent id must not be empty")
        for field in ("wrap_up_time", "busy_delay", "reject_delay", "no_answer_delay"):
            check_duration(field, getattr(self, field))
        if not (math.isfinite(self.call_timeout) and self.call_timeout > 0):
            raise ValueError(f"call_timeout must be > 0 seconds, got {self.call_timeout!r}")
        if self.max_no_answer < 0:
            raise ValueError(f"max_no_answer must be >= 0, got {self.max_no_answer}")

    @classmethod
    def from_config(cls, cfg: AgentConfig) -> AgentSettings:
        """Settings from a validated ``AgentConfig`` (reads attributes; any such object will do).

        The password stays behind: it is the registrar's, and the core never needs it.
        """
        return cls(
            id=cfg.id,
            name=cfg.name,
            call_timeout=float(cfg.call_timeout),
            wrap_up_time=float(cfg.wrap_up_time),
            max_no_answer=int(cfg.max_no_answer),
            busy_delay=float(cfg.busy_delay),
            reject_delay=float(cfg.reject_delay),
            no_answer_delay=float(cfg.no_answer_delay),
            auto_answer=bool(cfg.auto_answer),
        )

    def delay_for(self, penalty: Penalty) -> float:
        """Seconds of Delayed that ``penalty`` costs this agent."""
        match penalty:
            case Penalty.BUSY:
                return self.busy_delay
            case Penalty.REJECT:
                return self.reject_delay
            case Penalty.NOT_REGISTERED:
                return NOT_REGISTERED_DELAY
            case Penalty.NONE:
                return 0.0
            case Penalty.NO_ANSWER:
                return self.no_answer_delay


def campaign_wrap_up(campaign: CampaignConfig) -> float | None:
    """The ``wrap_up`` to pass to ``call_ended`` for a call of ``campaign``.

    The campaign's ``wrap_up_time`` when it waits for a result (the wrap-up then ends early
    on ``result_received``), else None: the agent's own ``wrap_up_time`` applies.
    """
    return float(campaign.wrap_up_time) if campaign.wait_for_result else None


def check_duration(what: str, value: float) -> None:
    """Raise ValueError unless ``value`` is a finite, non-negative number of seconds."""
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{what} must be >= 0 seconds, got {value!r}")


# --- errors --------------------------------------------------------------------------------


class AgentError(Exception):
    """Base of the agent machine's errors."""


class IllegalAgentTransition(AgentError):
    """``input`` is refused in ``state``; nothing changed."""

    def __init__(self, state: AgentState, input_: AgentInput, detail: str = "") -> None:
        message = f"agent cannot {input_.name} while {state.value}"
        super().__init__(f"{message}: {detail}" if detail else message)
        self.state = state
        self.input = input_


class AgentNotEligible(IllegalAgentTransition):
    """RESERVE of an agent that is Waiting but not eligible; ``reason`` says why."""

    def __init__(self, state: AgentState, reason: str) -> None:
        super().__init__(state, AgentInput.RESERVE, reason)
        self.reason = reason


# --- events (outputs), drained with next_event() -------------------------------------------


@dataclass(frozen=True, slots=True)
class AgentStateChanged:
    """The agent's status or state (or both) changed; both are reported as they now are."""

    agent_id: str
    status: AgentStatus
    state: AgentState
    now: float
    "When it happened (a timer's deadline, even when handle_timer ran later)."


@dataclass(frozen=True, slots=True)
class AgentRegistrationChanged:
    """The agent's phone became registered or unregistered."""

    agent_id: str
    registered: bool
    now: float


AgentEvent = AgentStateChanged | AgentRegistrationChanged
