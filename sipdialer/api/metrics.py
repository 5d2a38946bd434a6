"""``/metrics``: the dialer's counters in the Prometheus text format (prometheus-client).

Theory of operation
-------------------
Nothing is counted twice: :class:`DialerCollector` reads, at each scrape, the counters the
running parts already keep, and turns them into metric families in a private
``CollectorRegistry`` (never the process-global one, so two dialers in one process, as in
tests, do not mix):

======================================  ====================================================
``sipdialer_calls_total``               ended calls by campaign and hangup cause
                                        (``RunnerMetrics.calls``: one per judged attempt)
``sipdialer_active_calls``              live calls by campaign and state (``live_calls``)
``sipdialer_campaign_members``          members by campaign and status (``MemberStore``)
``sipdialer_agents``                    agents by state; ``sipdialer_agents_status`` by
                                        status; ``sipdialer_agents_registered``
``sipdialer_sip_requests_total``        SIP requests in/out by method, and
``sipdialer_sip_responses_total``       responses in/out by method (CSeq) and status
                                        (``SipEndpoint.messages``)
``sipdialer_sip_retransmissions_total`` requests and responses we resent (Timers A, E, G and
                                        2xx until ACK); ``..._received_total``: requests
                                        that came again (the transaction layer's stats)
``sipdialer_rtp_packets_relayed_total`` RTP packets forwarded by the relay, ``..._lost_total``
                                        sequence gaps seen (``MediaManager.stats()``), with
                                        the relay's other totals as ``sipdialer_media_*``
``sipdialer_member_lease_seconds``      histogram of lease latency
======================================  ====================================================

``sipdialer_campaign_members`` costs one GROUP BY over each campaign's members (tens of
ms at 500,000 members) and prometheus-client's collection is synchronous, so the route
reads those counts in a worker thread first
(:func:`~sipdialer.api.routes_common.store_read`) and hands them to the collector for
the scrape (``DialerCollector.member_counts``); everything else is read on the loop.

The lease histogram: ``RunnerMetrics`` keeps the last ``LEASE_SAMPLES`` latencies and the
number of leases; each scrape adds the samples that arrived since the previous one to a
cumulative histogram, so the exposition is monotonic as Prometheus wants. Leases beyond
the window between two scrapes (more than 1,000 within a scrape interval) are in
``sipdialer_member_leases_total`` but not in the histogram.

Access: the same tokens as the API, as ``X-Access-Token`` / ``X-Key`` headers, as HTTP
Basic credentials (user = token, password = key: Prometheus' ``basic_auth``), or the
dashboard's supervisor cookie; 401 otherwise.
"""

from __future__ import annotations

import base64
import binascii
import bisect
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Cookie, Header, HTTPException, Response, status
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from sipdialer.api.auth import KEY_HEADER, TOKEN_HEADER, credentials_match
from sipdialer.api.dashboard_session import SUPERVISOR_COOKIE, Sessions
from sipdialer.api.routes_common import Dialer, store_read
from sipdialer.config import Config
from sipdialer.dialer.agent_table import AgentState, AgentStatus
from sipdialer.dialer.views import RunnerMetrics

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from sipdialer.app import PhoneSystem

LEASE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                 0.5, 1.0)  # fmt: skip
"Seconds; a lease takes ~55 µs on SQLite (DESIGN.md), more under load or on PostgreSQL."
MEDIA_TOTALS = ("rtcp_relayed", "dropped", "foreign", "transcoded", "dtmf_events",
                "dtmf_dropped", "ringback_sent", "suppressed", "send_failed")  # fmt: skip
"MediaManager.stats() keys exposed as ``sipdialer_media_<key>_total``."


class LeaseHistogram:
    """A cumulative histogram fed from ``RunnerMetrics``' window at each scrape."""

    def __init__(self, buckets: Iterable[float] = LEASE_BUCKETS) -> None:
        self.bounds = tuple(sorted(buckets))
        self.counts = [0] * (len(self.bounds) + 1)  # the last one is +Inf
        self.sum = 0.0
        self.seen = 0

    def update(self, metrics: RunnerMetrics) -> None:
        new = metrics.leases - self.seen
        if new <= 0:
            return
        window = list(metrics.lease_seconds)
        samples = window[-new:] if new < len(window) else window  # overflowed: what is left
        for seconds in samples:
            self.counts[bisect.bisect_left(self.bounds, seconds)] += 1
            self.sum += seconds
        self.seen = metrics.leases

    def buckets(self) -> list[tuple[str, float]]:
        out, total = [], 0
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            total += count
            out.append(("+Inf" if bound == float("inf") else repr(bound), float(total)))
        return out


class DialerCollector(Collector):
    """Reads the runner, the SIP endpoint and the media bridge at each scrape."""

    def __init__(self, runner: Dialer, system: PhoneSystem | None) -> None:
        self.runner = runner
        self.system = system
        self.leases = LeaseHistogram()
        self.member_counts: dict[str, dict[str, int]] | None = None
        """Campaign id -> members by status, read off the loop for the scrape under way
        (:meth:`read_member_counts`); None: ``collect`` reads them itself."""

    def read_member_counts(self, campaign_ids: Iterable[str]) -> dict[str, dict[str, int]]:
        """Members by status of each campaign: store queries only, safe in a worker thread."""
        return {cid: self.runner.members.counts(cid) for cid in campaign_ids}

    def collect(self) -> Iterator[Metric]:
        yield from self._calls()
        yield from self._agents()
        if self.system is not None:
            yield from self._sip(self.system)
            yield from self._media(self.system)
        yield from self._lease()

    def _calls(self) -> Iterator[Metric]:
        runner = self.runner
        names = {cid: name for name, cid in runner.campaign_ids().items()}
        metrics: RunnerMetrics | None = getattr(runner, "metrics", None)
        ended = CounterMetricFamily(
            "sipdialer_calls", "Ended calls by campaign and hangup cause.",
            labels=["campaign", "campaign_id", "cause"],
        )  # fmt: skip
        for (campaign_id, cause), count in sorted((metrics.calls if metrics else {}).items()):
            ended.add_metric([names.get(campaign_id, campaign_id), campaign_id, cause], count)
        yield ended
        active: Counter[tuple[str, str, str]] = Counter()
        for call in runner.live_calls():
            active[names.get(call.campaign, call.campaign_name), call.campaign, call.state] += 1
        live = GaugeMetricFamily(
            "sipdialer_active_calls", "Calls in progress by campaign and state.",
            labels=["campaign", "campaign_id", "state"],
        )  # fmt: skip
        for labels, count in sorted(active.items()):
            live.add_metric(list(labels), count)
        yield live
        members = GaugeMetricFamily(
            "sipdialer_campaign_members", "Members by campaign and status (the store).",
            labels=["campaign", "campaign_id", "status"],
        )  # fmt: skip
        prepared = self.member_counts or {}
        for campaign_id, name in sorted(names.items()):
            counts = prepared.get(campaign_id)
            if counts is None:  # collected without the route's preparation
                counts = runner.members.counts(campaign_id)
            for member_status, count in sorted(counts.items()):
                members.add_metric([name, campaign_id, member_status], count)
        yield members

    def _agents(self) -> Iterator[Metric]:
        views = self.runner.agent_views()
        states = Counter(v.state for v in views)
        statuses = Counter(v.status for v in views)
        by_state = GaugeMetricFamily("sipdialer_agents", "Agents by state.", labels=["state"])
        for state in AgentState:
            by_state.add_metric([state.value], states.get(state.value, 0))
        yield by_state
        by_status = GaugeMetricFamily(
            "sipdialer_agents_status", "Agents by status.", labels=["status"]
        )
        for agent_status in AgentStatus:
            by_status.add_metric([agent_status.value], statuses.get(agent_status.value, 0))
        yield by_status
        yield GaugeMetricFamily(
            "sipdialer_agents_registered", "Agents with a registered phone.",
            value=sum(1 for v in views if v.registered),
        )  # fmt: skip

    def _sip(self, system: PhoneSystem) -> Iterator[Metric]:
        endpoint = system.endpoint
        requests = CounterMetricFamily(
            "sipdialer_sip_requests", "SIP requests by direction and method.",
            labels=["direction", "method"],
        )  # fmt: skip
        responses = CounterMetricFamily(
            "sipdialer_sip_responses", "SIP responses by direction, method (CSeq) and status.",
            labels=["direction", "method", "status"],
        )  # fmt: skip
        for (direction, method, code), count in sorted(endpoint.messages.items()):
            if code == 0:
                requests.add_metric([direction, method], count)
            else:
                responses.add_metric([direction, method, str(code)], count)
        yield requests
        yield responses
        stats = endpoint.ua.layer.stats
        yield CounterMetricFamily(
            "sipdialer_sip_retransmissions",
            "Requests and responses resent (Timers A, E, G; 2xx until ACK).",
            value=stats.get("retransmissions", 0),
        )
        yield CounterMetricFamily(
            "sipdialer_sip_retransmissions_received",
            "Requests received again (absorbed by their transaction).",
            value=stats.get("request_retransmissions", 0),
        )
        yield CounterMetricFamily(
            "sipdialer_sip_errors", "Messages the SIP core or a handler failed on (bugs).",
            value=endpoint.internal_errors + endpoint.handler_errors,
        )  # fmt: skip

    def _media(self, system: PhoneSystem) -> Iterator[Metric]:
        stats = system.media.stats()
        yield CounterMetricFamily(
            "sipdialer_rtp_packets_relayed", "RTP packets relayed (both directions).",
            value=stats.get("rtp_relayed", 0),
        )  # fmt: skip
        yield CounterMetricFamily(
            "sipdialer_rtp_packets_lost", "RTP packets lost (sequence gaps on receipt).",
            value=stats.get("rtp_lost", 0),
        )  # fmt: skip
        for key in MEDIA_TOTALS:
            yield CounterMetricFamily(
                f"sipdialer_media_{key}", f"Media relay total: {key}.", value=stats.get(key, 0)
            )
        yield GaugeMetricFamily(
            "sipdialer_media_calls", "Calls with open media.", value=system.media.active
        )

    def _lease(self) -> Iterator[Metric]:
        metrics: RunnerMetrics | None = getattr(self.runner, "metrics", None)
        if metrics is None:
            return
        self.leases.update(metrics)
        histogram = HistogramMetricFamily(
            "sipdialer_member_lease_seconds", "Latency of leasing the next member (store).",
            buckets=self.leases.buckets(), sum_value=self.leases.sum,
        )  # fmt: skip
        yield histogram
        yield CounterMetricFamily(
            "sipdialer_member_leases", "Leases asked for.", value=metrics.leases
        )
        yield CounterMetricFamily(
            "sipdialer_member_leases_empty", "Leases that found no member.",
            value=metrics.empty_leases,
        )  # fmt: skip


def _basic(authorization: str | None) -> tuple[str, str] | None:
    if not authorization or not authorization.lower().startswith("basic "):
        return None
    try:
        text = base64.b64decode(authorization[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, colon, password = text.partition(":")
    return (user, password) if colon else None


def metrics_router(
    runner: Dialer,
    config: Config,
    system: PhoneSystem | None = None,
    *,
    sessions: Sessions | None = None,
) -> APIRouter:
    """``GET /metrics`` for ``runner`` (and ``system``: by default ``runner.system``);
    ``sessions`` admits the dashboard's supervisor cookie too."""
    found: Any = system if system is not None else getattr(runner, "system", None)
    registry = CollectorRegistry(auto_describe=False)
    collector = DialerCollector(runner, found)
    registry.register(collector)
    tokens = tuple(config.api.tokens)
    router = APIRouter(include_in_schema=False)

    @router.get("/metrics")
    async def metrics(
        token: Annotated[str | None, Header(alias=TOKEN_HEADER)] = None,
        key: Annotated[str | None, Header(alias=KEY_HEADER)] = None,
        authorization: Annotated[str | None, Header()] = None,
        cookie: Annotated[str | None, Cookie(alias=SUPERVISOR_COOKIE)] = None,
    ) -> Response:
        basic = _basic(authorization)
        allowed = (
            (token and key and credentials_match(tokens, token, key))
            or (basic is not None and credentials_match(tokens, *basic))
            or (sessions is not None and sessions.supervisor(cookie))
        )
        if not allowed:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                f"missing or wrong {TOKEN_HEADER} / {KEY_HEADER} (or Basic) credentials",
                headers={"WWW-Authenticate": 'Basic realm="sipdialer"'},
            )
        ids = list(runner.campaign_ids().values())
        counts = await store_read(runner, collector.read_member_counts, ids)
        # No await from here to the end of the scrape: these counts are this scrape's.
        collector.member_counts = counts
        try:
            body = generate_latest(registry)
        finally:
            collector.member_counts = None
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return router
