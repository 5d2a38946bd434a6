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
interval, and its 2xx makes the next timer (``on_response``; a 491 retries in 2 s).
A trunk may list UPDATE in Allow yet refuse the offer-less UPDATE (405, 488, 500, 501):
any other failure of an UPDATE falls back to a re-INVITE with our current offer at once
(and the leg refreshes by re-INVITE from then on); a failed re-INVITE is retried halfway
to the expiry. A 481 or 408 ends the dialog (RFC 3261 §12.2.1.2: the UA reports it, the
core hangs up). When the session expires unrefreshed the call is hung up with
RECOVERY_ON_TIMER_EXPIRE.

Glare (RFC 3261 §14.2, RFC 3311 §5.2): while our own offer on a dialog is unanswered
(``LegSip.refresh_offer``: a refresh re-INVITE in flight, or the offer in our 2xx to an
offer-less re-INVITE awaiting its ACK), an incoming re-INVITE or an UPDATE with an offer
gets 491; an incoming re-INVITE while an earlier one is not complete (its ACK not in:
``awaiting_ack_answer``) gets 500 with a random Retry-After of 0-10 s.
An in-dialog request for a dialog no call knows gets 481 (RFC 3261 §12.2.2); an INFO
in a call's dialog gets 200 (``on_info``), an OPTIONS 200 with Allow (``on_options``).

Early dialogs (a 18x with a To-tag, before the 2xx) are a call's dialogs too: INFO gets
200, an UPDATE is answered by ``_early_request`` (RFC 3311 §5.1).
"""

from __future__ import annotations

import logging
import secrets
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
from sipdialer.sip.sdp import SdpError, SessionDescription
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
RETRY_AFTER_MAX = 10
"RFC 3261 §14.2: the Retry-After of a 500 to an overlapping re-INVITE, 0-10 s at random."


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
        if event.dialog in sip.early:
            self._early_request(live, leg, sip, event)
            return
        if request.method == "INVITE" and sip.awaiting_ack_answer:
            # RFC 3261 §14.2: the previous re-INVITE is not complete (its ACK, with the
            # answer to the offer in our 2xx, is not in): 500 and a random Retry-After.
            retry = str(secrets.randbelow(RETRY_AFTER_MAX + 1))
            ua.respond(event.key, 500, now, headers=[("Retry-After", retry)])
            return
        if (request.method == "INVITE" or request.body) and (
            sip.refresh_offer is not None or sip.awaiting_ack_answer
        ):
            # Glare: our offer on this dialog is unanswered (RFC 3261 §14.2, RFC 3311 §5.2).
            ua.respond(event.key, 491, now)
            return
        try:
            timer, timer_headers = session_timer_for_request(request, now)
        except SessionIntervalTooSmall as exc:
            ua.respond(event.key, 422, now, headers=exc.headers)
            return
        except ParseError as exc:
            ua.respond(event.key, 400, now, reason=f"Bad Request ({exc})"[:80])
            return
        offer = sdp_of(request)
        body = self._answer_offer(live, leg, sip, event, offer, request.method)
        if body is None:
            return
        if offer is None and request.method == "INVITE":
            body = sip.new_offer().to_bytes()
            sip.awaiting_ack_answer = True
        sip.timer = timer
        ua.respond(event.key, 200, now, body=body, headers=timer_headers)
        service.run(live)

    def _early_request(self, live: LiveCall, leg: Leg, sip: LegSip,
                       event: IncomingRequest) -> None:  # fmt: skip
        """UPDATE (or a stray re-INVITE) in an early dialog, before the 2xx to our INVITE.

        RFC 3311 §5.1 allows UPDATE there. Without an offer: 200. With one: answered, and
        the new StreamSpec applied, once our INVITE's offer is answered in this dialog (a
        usable 18x SDP); while it is not, our offer is outstanding: 491 (§5.2). A re-INVITE
        while our INVITE is in progress gets 491 (RFC 3261 §14.2). No session timer yet:
        RFC 4028 runs from the 2xx."""
        ua, now = self.service.endpoint.ua, self.service.endpoint.now
        request = event.request
        offer = sdp_of(request)
        if request.method == "INVITE" or (offer is not None and sip.early_answer != event.dialog):
            ua.respond(event.key, 491, now)
            return
        body = self._answer_offer(live, leg, sip, event, offer, "early UPDATE")
        if body is None:
            return
        ua.respond(event.key, 200, now, body=body)
        self.service.run(live)

    def _answer_offer(self, live: LiveCall, leg: Leg, sip: LegSip, event: IncomingRequest,
                      offer: SessionDescription | None, what: str) -> bytes | None:  # fmt: skip
        """The SDP answer to an in-dialog request's offer (b"" without one), its stream
        applied; None when the request was refused with 488 (bad or unusable SDP)."""
        ua, now = self.service.endpoint.ua, self.service.endpoint.now
        if event.request.body and offer is None:
            ua.respond(event.key, 488, now, reason="Not Acceptable Here (bad SDP)")
            return None
        if offer is None:
            return b""
        try:
            body, agreed = sip.answer(offer)
        except SdpError as exc:
            ua.respond(event.key, 488, now, reason=f"Not Acceptable Here ({exc})"[:100])
            return None
        spec = stream_spec(agreed, sip.destination)
        if spec is None:
            ua.respond(event.key, 488, now)
            return None
        self._set_spec(live, leg, spec)
        log.info("call %s: %s leg %s (%s)", live.core.call_id, leg, what,
                 "held" if agreed.remote_hold else agreed.direction)  # fmt: skip
        return body

    def on_options(self, event: UaEvent) -> None:
        """OPTIONS inside a dialog (the UA answers the ones outside itself): 200 with
        what we serve, as outside one (RFC 3261 §11.2), not 405."""
        if isinstance(event, IncomingRequest):
            policy = self.service.endpoint.ua.config.policy
            headers = [("Allow", ", ".join(policy.allow)),
                       ("Accept", ", ".join(policy.accept)),
                       ("Supported", ", ".join(policy.supported))]  # fmt: skip
            self.service.endpoint.ua.respond(event.key, 200, self.service.endpoint.now,
                                             headers=headers)  # fmt: skip

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
            spec = stream_spec(negotiated(sip.offer, answer), sip.destination)
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
        reinvite = sip.timer.refresh_method != "UPDATE" or sip.update_refused
        if sip.refresh_key is not None or (reinvite and sip.awaiting_ack_answer):
            # Ours still in flight, or our offer in a 2xx unanswered: no second offer.
            sip.timer.refresh_again_at(now + GLARE_RETRY)
            return
        headers = sip.timer.refresh_headers()
        if reinvite:
            offer = sip.new_offer()
            key = ua.request_in_dialog(sip.dialog, "INVITE", now, body=offer.to_bytes(),
                                       headers=headers)  # fmt: skip
            sip.refresh_offer = offer
        else:
            key = ua.request_in_dialog(sip.dialog, "UPDATE", now, headers=headers)
        sip.refresh_key = key
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
        if sip is None:
            return
        offer = sip.refresh_offer
        if sip.refresh_key == event.key:
            sip.refresh_key = sip.refresh_offer = None
        if not isinstance(event, ResponseReceived) or live.core.ended:
            return  # no response: the UA ends the dialog (408), the core hears of it
        response, now = event.response, self.service.endpoint.now
        if response.is_success:
            sip.timer = session_timer_from_answer(refresh_request(headers), response, now,
                                                  we_are_uac=True)  # fmt: skip
            answer = sdp_of(response)
            if reinvite and answer is not None and offer is not None:
                try:
                    spec = stream_spec(negotiated(offer, answer), sip.destination)
                except SdpError:
                    spec = None
                if spec is not None:
                    self._set_spec(live, leg, spec)
        elif response.status_code in (408, 481):
            pass  # RFC 3261 §12.2.1.2: the UA ended the dialog, the core hangs up
        elif sip.timer is not None:
            self._refresh_failed(live, leg, sip, reinvite, response.status_code, now)
        self.service.run(live)

    def _refresh_failed(self, live: LiveCall, leg: Leg, sip: LegSip, reinvite: bool,
                        status: int, now: float) -> None:  # fmt: skip
        """A refresh refused: 491 retries after ``GLARE_RETRY``; a refused UPDATE (a
        trunk that lists it in Allow but answers 405/488/500/501) falls back to a
        re-INVITE at once, and for good on this leg; a refused re-INVITE is tried again
        halfway to the expiry while that leaves room (the session lives till then)."""
        timer = sip.timer
        assert timer is not None
        if status == 491:
            timer.refresh_again_at(now + GLARE_RETRY)
        elif not reinvite:
            log.info("call %s: the %s leg's UPDATE refresh got %d: refreshing by re-INVITE",
                     live.core.call_id, leg, status)  # fmt: skip
            sip.update_refused = True
            timer.refresh_again_at(now)
        elif (timer.expires_at - now) / 2 >= GLARE_RETRY:
            timer.refresh_again_at(now + (timer.expires_at - now) / 2)

    def _set_spec(self, live: LiveCall, leg: Leg, spec: StreamSpec) -> None:
        if live.media is None:
            return
        if leg is Leg.AGENT:
            live.media.set_agent(spec)
        else:
            live.media.set_member(spec)
