"""Feature codes: what an agent's phone dials to set its own status (semantics §2).

Pure decision: ``FeatureCodeMap.status_for(request_uri_user)`` says which status a
dialed code asks for, or ``None`` when the INVITE is not a feature code. Phones send
the code as the Request-URI user (``sip:*1@dialer``), some %-escape the ``*`` (the URI
parser already unescapes) and some add a ``#`` end-of-dialing key, which is ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .agent_table import AgentStatus

if TYPE_CHECKING:
    from sipdialer.config import FeatureCodes


@dataclass(frozen=True)
class FeatureCodeMap:
    available: str = "*1"
    break_: str = "*2"
    logged_out: str = "*0"

    @classmethod
    def from_config(cls, codes: FeatureCodes) -> FeatureCodeMap:
        return cls(codes.available, codes.break_, codes.logged_out)

    def status_for(self, dialed: str | None) -> AgentStatus | None:
        """The status *dialed* asks for, or ``None`` when it is not a feature code."""
        if not dialed:
            return None
        code = dialed.strip().rstrip("#")
        return {
            self.available: AgentStatus.AVAILABLE,
            self.break_: AgentStatus.BREAK,
            self.logged_out: AgentStatus.LOGGED_OUT,
        }.get(code)
