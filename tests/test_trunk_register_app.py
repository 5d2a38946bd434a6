"""A trunk with ``register = true``: the running dialer keeps its account registered
with the provider (the simulated trunk, which challenges with digest) and un-registers
when it stops."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sipdialer.app import PhoneSystem
from sipdialer.config import parse_config
from sipdialer.simulate.trunk import SimTrunk


async def test_registering_trunk_is_registered_and_unregistered(tmp_path: Path) -> None:
    trunk = SimTrunk(username="acct", password="pw-trunk", rtp_ports="45000-45099")
    host, port = await trunk.start()
    config = parse_config(f"""
[sip]
listen = "127.0.0.1:0"
qualify_interval = 0
[media]
rtp_ports = "45100-45199"
[store]
url = "sqlite:///{tmp_path / "d.db"}"
[[trunks]]
name = "provider"
address = "{host}:{port}"
username = "acct"
password = "pw-trunk"
register = true
[[trunks]]
name = "plain"
address = "{host}:{port}"
""")
    system = PhoneSystem(config)
    try:
        await system.start()
        assert len(system.trunk_registrations) == 1
        registration = system.trunk_registrations[0]
        async with asyncio.timeout(5.0):
            while not registration.registered:
                await asyncio.sleep(0.02)
        assert trunk.registrations >= 1
        assert trunk.last_register is not None
        # The trunk only accepts a REGISTER with valid digest credentials of the account.
        assert 'username="acct"' in str(trunk.last_register.headers.get("Authorization"))
        assert "acct" in str(trunk.last_register.headers.get("To"))
    finally:
        await system.close()
        await trunk.close()
    assert not registration.registered
    assert trunk.last_register is not None
    assert trunk.last_register.headers.get("Expires") == "0"  # the un-REGISTER
