"""``/metrics`` after a real campaign (SimTrunk + SimPhones over loopback): it parses with
prometheus-client's own parser and its counters are the store's; plus the two counters
added for it (SIP messages by method/status in the endpoint, retransmissions in the
transaction layer) tested on their own."""

from __future__ import annotations

import base64
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from dashrig import KEY, TOKEN, running_dialer, until
from prometheus_client.parser import text_string_to_metric_families

from sipdialer.sip.message import parse_message
from sipdialer.sip.peer import Peer
from sipdialer.sip.timers import TimerConfig
from sipdialer.sip.transaction.layer import TransactionLayer
from sipdialer.sip.ua import UaConfig, UserAgentCore
from sipdialer.transport.endpoint import message_key


def parse(text: str) -> dict[str, Any]:
    return {family.name: family for family in text_string_to_metric_families(text)}


def samples(family: Any, suffix: str = "") -> dict[tuple[tuple[str, str], ...], float]:
    return {
        tuple(sorted(s.labels.items())): s.value
        for s in family.samples
        if s.name == family.name + suffix
    }


async def test_metrics_match_the_store_after_a_campaign(tmp_path: Path) -> None:
    async with running_dialer(tmp_path) as rig:
        demo = rig.campaign("demo")
        numbers = ["1001", "1002", "1003", "1004", "2001", "2002", "3001"]
        await rig.add_members("demo", [{"communications": [{"number": n}]} for n in numbers])
        for agent in ("101", "102", "103"):
            reply = await rig.client.put(f"/api/v2/agents/{agent}/status",
                                         json={"status": "Available"})  # fmt: skip
            assert reply.status_code == 200
        assert (await rig.client.put("/api/v2/dialer/demo/state/run")).status_code == 200
        await until(lambda: rig.runner.members.counts(demo)["ended"] == len(numbers), 30)
        await until(lambda: not rig.runner.live_calls() and rig.system.media.active == 0, 5)

        reply = await rig.client.get("/metrics")
        assert reply.status_code == 200
        assert reply.headers["content-type"].startswith("text/plain")
        metrics = parse(reply.text)

        # Calls by campaign and cause == the store's ended attempts by cause.
        attempts = rig.runner.attempts.for_campaign(demo, limit=1000)
        store = Counter(a.cause for a in attempts if a.ended_at is not None)
        assert sum(store.values()) == len(attempts) >= len(numbers)
        calls = samples(metrics["sipdialer_calls"], "_total")
        assert calls == {
            (("campaign", "demo"), ("campaign_id", demo), ("cause", cause)): float(n)
            for cause, n in store.items()
        }
        assert {"NORMAL_CLEARING", "USER_BUSY"} <= set(store), store
        members = samples(metrics["sipdialer_campaign_members"])
        counts = rig.runner.members.counts(demo)
        for status, n in counts.items():
            labels = (("campaign", "demo"), ("campaign_id", demo), ("status", status))
            assert members[labels] == n
        assert samples(metrics["sipdialer_active_calls"]) == {}

        agents = samples(metrics["sipdialer_agents"])
        assert sum(agents.values()) == 4
        assert agents[(("state", "Waiting"),)] >= 1
        statuses = samples(metrics["sipdialer_agents_status"])
        assert statuses[(("status", "Available"),)] == 3
        assert statuses[(("status", "LoggedOut"),)] == 1
        assert samples(metrics["sipdialer_agents_registered"]) == {(): 3.0}

        # SIP: every attempt is an INVITE to an agent, the answered ones one to the trunk too.
        requests = samples(metrics["sipdialer_sip_requests"], "_total")
        invites_out = requests[(("direction", "out"), ("method", "INVITE"))]
        assert invites_out >= len(attempts) + store["NORMAL_CLEARING"]
        assert requests[(("direction", "in"), ("method", "REGISTER"))] >= 3
        messages = rig.system.endpoint.messages
        assert invites_out == messages["out", "INVITE", 0]
        responses = samples(metrics["sipdialer_sip_responses"], "_total")
        busy = (("direction", "in"), ("method", "INVITE"), ("status", "486"))
        assert responses[busy] == store["USER_BUSY"]
        assert responses[(("direction", "in"), ("method", "INVITE"), ("status", "200"))] >= (
            2 * store["NORMAL_CLEARING"]
        )
        stats = rig.system.endpoint.ua.layer.stats
        assert samples(metrics["sipdialer_sip_retransmissions"], "_total") == {
            (): float(stats["retransmissions"])
        }

        # Media: what MediaManager counted, and there was audio.
        media = rig.system.media.stats()
        relayed = samples(metrics["sipdialer_rtp_packets_relayed"], "_total")[()]
        assert relayed == media["rtp_relayed"] > 0
        assert samples(metrics["sipdialer_rtp_packets_lost"], "_total")[()] == media["rtp_lost"]

        # Lease latency: one observation per lease, cumulative buckets.
        lease = metrics["sipdialer_member_lease_seconds"]
        count = samples(lease, "_count")[()]
        assert count == rig.runner.metrics.leases >= len(numbers)
        buckets = [s for s in lease.samples if s.name.endswith("_bucket")]
        values = [s.value for s in buckets]
        assert values == sorted(values) and values[-1] == count
        assert buckets[-1].labels["le"] == "+Inf"
        assert 0 < samples(lease, "_sum")[()] < count  # each well under a second

        # A second scrape counts nothing twice.
        again = parse((await rig.client.get("/metrics")).text)
        assert samples(again["sipdialer_member_lease_seconds"], "_count")[()] == count


async def test_metrics_need_the_api_tokens(tmp_path: Path) -> None:
    async with running_dialer(tmp_path, phones=()) as rig:
        async with httpx.AsyncClient(base_url=rig.base, timeout=5.0) as anonymous:
            assert (await anonymous.get("/metrics")).status_code == 401
            wrong = base64.b64encode(f"{TOKEN}:nope".encode()).decode()
            reply = await anonymous.get("/metrics", headers={"Authorization": f"Basic {wrong}"})
            assert reply.status_code == 401 and "sipdialer_" not in reply.text
            basic = base64.b64encode(f"{TOKEN}:{KEY}".encode()).decode()
            reply = await anonymous.get("/metrics", headers={"Authorization": f"Basic {basic}"})
            assert reply.status_code == 200
            assert "# TYPE sipdialer_calls_total counter" in reply.text
            assert "sipdialer_calls_total{" not in reply.text  # no call yet


@pytest.mark.parametrize(
    ("data", "key"),
    [
        (b"INVITE sip:1@x SIP/2.0\r\nCSeq: 1 INVITE\r\n\r\n", ("in", "INVITE", 0)),
        (b"SIP/2.0 180 Ringing\r\nCSeq: 7 INVITE\r\n\r\n", ("in", "INVITE", 180)),
        (
            b"SIP/2.0 200 OK\r\nVia: x\r\ncseq: 2 BYE\r\nContent-Length: 0\r\n\r\n",
            ("in", "BYE", 200),
        ),
        (b"SIP/2.0 401 Unauthorized\r\nCSeq:   3   REGISTER\r\n\r\nbody", ("in", "REGISTER", 401)),
        (b"FOO sip:x SIP/2.0\r\nCSeq: 1 FOO\r\n\r\n", ("in", "other", 0)),
        (b"SIP/2.0 200 OK\r\nCSeq: 1 FOO\r\n\r\n", ("in", "other", 200)),
        (b"\r\n\r\n", None),  # RFC 5626 keep-alive
        (b"SIP/2.0 abc\r\n\r\n", None),
    ],
)
def test_message_key(data: bytes, key: tuple[str, str, int] | None) -> None:
    assert message_key("in", data) == key


def test_retransmissions_are_counted() -> None:
    """Timer E resends an unanswered OPTIONS; Timer F ends it. The automatic 100 Trying of
    a server transaction is not a retransmission."""
    timers = TimerConfig(t1=0.5, t2=4.0, t4=5.0)
    ua = UserAgentCore(UaConfig(host="127.0.0.1", port=5060, timers=timers))
    peer = Peer("UDP", "127.0.0.1", 5070)
    options = ua.new_request("OPTIONS", "sip:x@127.0.0.1:5070", peer, from_uri="sip:me@x")
    ua.send(options, peer, 0.0)
    assert len(ua.data_to_send()) == 1
    now, sent = 0.0, 0
    while (at := ua.get_timer()) is not None:
        now = at
        ua.handle_timer(now)
        sent += len(ua.data_to_send())
    assert now == pytest.approx(64 * timers.t1)
    assert sent == ua.layer.stats["retransmissions"] == 10  # 0.5 1.5 3.5 7.5 11.5 ... 31.5

    layer = TransactionLayer(timers, auto_trying=0.2)
    invite = parse_message(
        b"INVITE sip:1@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKa1\r\n"
        b"From: <sip:a@x>;tag=1\r\nTo: <sip:1@x>\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\n"
        b"Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
    layer.receive(invite, peer, 0.0)
    layer.handle_timer(0.2)
    assert [d[:12] for d, _ in layer.data_to_send()] == [b"SIP/2.0 100 "]
    assert layer.stats["retransmissions"] == 0
