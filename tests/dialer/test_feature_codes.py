from __future__ import annotations

import pytest

from sipdialer.config import parse_config
from sipdialer.dialer.agents import AgentStatus
from sipdialer.dialer.feature_codes import FeatureCodeMap


@pytest.mark.parametrize(
    ("dialed", "status"),
    [
        ("*1", AgentStatus.AVAILABLE),
        ("*2", AgentStatus.BREAK),
        ("*0", AgentStatus.LOGGED_OUT),
        ("*2#", AgentStatus.BREAK),
        ("101", None),
        ("", None),
        (None, None),
        ("*9", None),
    ],
)
def test_default_codes(dialed: str | None, status: AgentStatus | None) -> None:
    assert FeatureCodeMap().status_for(dialed) is status


def test_codes_from_config() -> None:
    config = parse_config('[sip]\nfeature_codes = { available = "*71", break = "*72", '
                          'logged_out = "*70" }\n')  # fmt: skip
    codes = FeatureCodeMap.from_config(config.sip.feature_codes)
    assert codes.status_for("*72") is AgentStatus.BREAK
    assert codes.status_for("*2") is None
