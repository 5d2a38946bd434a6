"""In-dialog requests of the call service's legs: re-INVITE, UPDATE, session refreshes.

Theory of operation. Once a leg is up, either far end may send a re-INVITE or an UPDATE
(RFC 3311): a hold (sendonly / inactive / c=0.0.0.0), a resume, a new address or codec,
or an RFC 4028 session refresh. ``InDialog.on_request`` answers them:

* with an SDP offer: our answer from ``LegSip.answer`` (``sdp_offer.make_answer``), and
  the leg's ``StreamSpec`` updated on the media bridge (``stream_spec``: a peer holding
  us is sent nothing and not timed out); no common codec: 488;
* a re-INVITE without SDP: our offer in the 2xx, the answer read from the ACK
  (``on_confirmed``); an UPDATE without SDP: a plain 2xx;
* session timers: ``session_timer_for_request`` gives the timer and the headers of our
  2xx (or a 422 with Min-SE); a refresh without Session-Expires turns the timer off.

``session_timer_due`` runs a leg's ``SessionTimer``: when we are the refresher, an UPDATE
(when the peer allows it) or a re-INVITE with our current offer goes out at half the
interval, and its 2xx makes the next timer (``on_response``; a 491 retries in 2 s);
when the session expires unrefreshed the call is hung up with RECOVERY_ON_TIMER_EXPIRE.
An in-dialog request for a dialog no call knows gets 481 (RFC 3261 §12.2.2); an INFO
in a call's dialog gets 200 (``on_info``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from sipdialer.calls.call_legs import Leg
from sipdialer.calls.causes import HangupCause
from sipdialer.calls.session_timer import (
    SessionIntervalTooSmall,
    SessionTimerAction,
    session_timer_for_request,
    session_timer_from_answer,
)
from sipdialer.media.bridge import StreamSpec
from sipdialer.sip.errors import ParseError
from sipdialer.sip.sdp import SdpError
from sipdialer.sip.sdp_offer import negotiated
from sipdialer.sip.ua_events import (
    CallConfirmed,
    IncomingRequest,
    RequestFailed,
    ResponseReceived,
    UaEvent,
)

from .call_legs import LegSip, refresh_request, sdp_of, stream_spec

if TYPE_CHECKING:
    from .call_setup import LiveCall
    from .calls import CallService

log = logging.getLogger(__name__)

GLARE_RETRY = 2.0
"""Seconds before a refresh refused with 491 is sent again (RFC 3261 §14.1: 2.1-4 s for
the dialog's owner; close enough, and the timer's expiry bounds it anyway)."""


class InDialog:
    def __init__(self, service: CallService) -> None:
        self.service = service
        self._refreshes: dict[str, tuple[LiveCall, Leg, list[tuple[str, str]], bool]] = {}

    # --- requests from the far ends ------------------------------------------------------

    def on_request(self, event: UaEvent) -> None:
        """Handler for in-dialog INVITE (from the endpoint's INVITE handler) and UPDATE."""
        if not isinstance(event, IncomingRequest):
            return
        service = self.service
        ua, now = service.endpoint.ua, service.endpoint.now
        found = service.by_dialog(event.dialog) if event.dialog is not None else None
        if found is None:
            ua.respond(event.key, 481, now)
            return
        live, leg = found
        sip = live.sip(leg)
        if sip is None or live.media is None:
            ua.respond(event.key, 481, now)
            return
        request = event.request
        try:
            timer, timer_headers = session_timer_for_request(request, now)
        except SessionIntervalTooSmall as exc:
            ua.respond(event.key, 422, now, headers=exc.headers)
            return
        except ParseError as exc:
            ua.respond(event.key, 400, now, reason=f"Bad Request ({exc})"[:80])
            return
        offer = sdp_of(request)
        if request.body and offer is None:
            ua.respond(event.key, 488, now, reason="Not Acceptable Here (bad SDP)")
            return
        body = b""
        if offer is not None:
            try:
                body, agreed = sip.answer(offer)
            except SdpError as exc:
                ua.respond(event.key, 488, now, reason=f"Not Acceptable Here ({exc})"[:100])
                return
            spec = stream_spec(agreed)
            if spec is None:
                ua.respond(event.key, 488, now)
                return
            self._set_spec(live, leg, spec)
            log.info("call %s: %s leg %s (%s)", live.core.call_id, leg, request.method,
                     "held" if agreed.remote_hold else agreed.direction)  # fmt: skip
        elif request.method == "INVITE":
            body = sip.new_offer().to_bytes()
            sip.awaiting_ack_answer = True
        sip.timer = timer
        ua.respond(event.key, 200, now, body=body, headers=timer_headers)
        service.run(live)

    def on_info(self, event: UaEvent) -> None:
        """INFO in a call's dialog (SIP INFO DTMF, keep-alives): 200, not acted on (DTMF
        travels as RFC 4733 through the relay); outside one: 481."""
        if isinstance(event, IncomingRequest):
            known = event.dialog is not None and self.service.by_dialog(event.dialog)
            self.service.endpoint.ua.respond(event.key, 200 if known else 481,
                                             self.service.endpoint.now)  # fmt: skip

    def on_confirmed(self, event: CallConfirmed) -> None:
        """The ACK of an offer-less re-INVITE we answered carries the peer's answer."""
        found = self.service.by_dialog(event.dialog)
        if found is None:
            return
        live, leg = found
        sip = live.sip(leg)
        if sip is None or not sip.awaiting_ack_answer or sip.offer is None:
            return
        sip.awaiting_ack_answer = False
        answer = sdp_of(event.ack)
        if answer is None:
            return
        try:
            spec = stream_spec(negotiated(sip.offer, answer))
        except SdpError:
            return
        if spec is not None:
            self._set_spec(live, leg, spec)

    # --- our refreshes -----------------------------------------------------------------

    def session_timer_due(self, live: LiveCall, leg: Leg, now: float) -> None:
        sip = live.sip(leg)
        timer = None if sip is None else sip.timer
        if sip is None or timer is None or sip.dialog is None or live.core.ending:
            return
        action = timer.handle_timer(now)
        if action is SessionTimerAction.EXPIRE:
            log.info("call %s: the %s leg's session expired (RFC 4028)", live.core.call_id, leg)
            sip.timer = None
            live.core.hangup(HangupCause.RECOVERY_ON_TIMER_EXPIRE, now)
        elif action is SessionTimerAction.REFRESH:
            self._refresh(live, leg, sip, now)

    def _refresh(self, live: LiveCall, leg: Leg, sip: LegSip, now: float) -> None:
        assert sip.timer is not None and sip.dialog is not None
        ua = self.service.endpoint.ua
        headers = sip.timer.refresh_headers()
        if sip.timer.refresh_method == "UPDATE":
            key = ua.request_in_dialog(sip.dialog, "UPDATE", now, headers=headers)
            reinvite = False
        else:
            offer = sip.new_offer()
            key = ua.request_in_dialog(sip.dialog, "INVITE", now, body=offer.to_bytes(),
                                       headers=headers)  # fmt: skip
            reinvite = True
        self._refreshes[key] = (live, leg, headers, reinvite)

    def on_response(self, event: ResponseReceived | RequestFailed) -> None:
        entry = self._refreshes.get(event.key)
        if entry is None:
            return
        if isinstance(event, ResponseReceived) and event.response.status_code < 200:
            return
        del self._refreshes[event.key]
        live, leg, headers, reinvite = entry
        sip = live.sip(leg)
        if sip is None or not isinstance(event, ResponseReceived) or live.core.ended:
            return  # no response: the UA ends the dialog (408), the core hears of it
        response, now = event.response, self.service.endpoint.now
        if response.is_success:
            sip.timer = session_timer_from_answer(refresh_request(headers), response, now,
                                                  we_are_uac=True)  # fmt: skip
            answer = sdp_of(response)
            if reinvite and answer is not None and sip.offer is not None:
                try:
                    spec = stream_spec(negotiated(sip.offer, answer))
                except SdpError:
                    spec = None
                if spec is not None:
                    self._set_spec(live, leg, spec)
        elif response.status_code == 491 and sip.timer is not None:
            sip.timer.refresh_again_at(now + GLARE_RETRY)
        self.service.run(live)

    def _set_spec(self, live: LiveCall, leg: Leg, spec: StreamSpec) -> None:
        if live.media is None:
            return
        if leg is Leg.AGENT:
            live.media.set_agent(spec)
        else:
            live.media.set_member(spec)
