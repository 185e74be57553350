"""Processing Instantly events from the webhook inbox: classify, then apply the effects in one transaction.

The claim / retry / dead-letter loop is the shared inbox drain (``observe.inbox``): an event is
claimed in a transaction of its own, retried with backoff, parked in the DLQ after ``max_tries``.
An event whose e-mail matches no lead goes to the DLQ at once: no retry will find a lead that
does not exist.

Effects of one event, all in the transaction that marks it processed:

* every classified event: an ``email_replies`` row (unique per event, so a re-run adds nothing);
* a person's reply (not a bounce, not an auto-reply): the lead turns ``replied`` with
  ``last_reply_at`` and ``last_reply_intent`` — which is what makes an interested / question lead
  eligible for a call once written consent exists (``consent`` with a ``consented_phone``);
* a revocation (unsubscribe, hostile, ``lead_unsubscribed``): every lead with that address turns
  ``do_not_contact`` with consent withdrawn, the address and the lead's phone numbers are
  suppressed, and ``lead_consent_audit`` gets a ``revoked`` row;
* a bounce: the address is suppressed and no longer counts as verified;
* out of office: nothing beyond the reply row;
* ``pipeline_events``: ``email_replied`` for replies, ``consent_revoked`` / ``email_bounced`` too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg

from ..observe.events import Event, Stage, record_event
from ..observe.inbox import mark_processed, park
from ..vendors.webhooks import InstantlyEvent, WireError
from .classifier import CLASSIFIER_NAME, Classification, classify_event

STAGE = Stage.EMAIL_REPLIES
PROVIDER = "instantly"
#: Internal do-not-call entries are kept five years; e-mail opt-outs are permanent.
PHONE_SUPPRESSION = timedelta(days=5 * 365)
HUMAN_REPLY_INTENTS = frozenset({"interested", "question", "not_interested", "unsubscribe", "wrong_person",
                                 "hostile"})
#: Instantly events that carry nothing the reply pipeline acts on.
IGNORED_EVENT_TYPES = frozenset({"email_sent", "email_opened", "email_link_clicked", "campaign_completed",
                                 "account_error", "lead_meeting_completed", "lead_closed", "lead_no_show"})


@dataclass(frozen=True)
class Outcome:
    """What processing one event did: ``outcome`` is the intent, ``ignored``, ``dlq`` or ``skipped``."""

    event_id: int
    outcome: str
    revocation: bool = False


def ignore_uninteresting(conn: psycopg.Connection) -> int:
    """Mark pending events no engage step reads (sent, opened, clicked …) processed, in one statement."""
    return conn.execute(
        """UPDATE webhook_events SET status = 'processed', outcome = 'ignored', processed_at = now()
           WHERE provider = %s AND status = 'pending' AND event_type = ANY(%s)""",
        (PROVIDER, sorted(IGNORED_EVENT_TYPES)),
    ).rowcount


def _leads_for(conn: psycopg.Connection, email: str) -> list[tuple]:
    """Leads with this address, the one most recently mailed first (locked for the effects)."""
    return conn.execute(
        """SELECT l.id, l.assigned_broker_id, l.phone, l.consented_phone, l.alt_phones
           FROM leads l LEFT JOIN campaign_sends cs ON cs.lead_id = l.id
           WHERE l.email = %s
           ORDER BY cs.pushed_at DESC NULLS LAST, l.created_at DESC
           FOR UPDATE OF l""",
        (email,),
    ).fetchall()


def _event_time(event: InstantlyEvent, received_at: datetime) -> datetime:
    if event.timestamp:
        try:
            stamp = datetime.fromisoformat(event.timestamp.replace("Z", "+00:00"))
            if stamp.tzinfo is not None:
                return stamp
        except ValueError:
            pass
    return received_at


def process_event(conn: psycopg.Connection, event_id: int, *, run_id: str | None = None) -> Outcome:
    """Classify one claimed event and apply its effects, in the caller's transaction."""
    row = conn.execute(
        "SELECT event_type, payload, status, received_at FROM webhook_events WHERE id = %s FOR UPDATE",
        (event_id,),
    ).fetchone()
    if row is None or row[2] != "pending":
        return Outcome(event_id, "skipped")
    _, payload, _, received_at = row
    try:
        event = InstantlyEvent.from_payload(payload)
    except WireError as exc:
        park(conn, STAGE, event_id, f"unreadable event: {exc}", run_id=run_id)
        return Outcome(event_id, "dlq")
    verdict = classify_event(event.event_type, event.reply_text, event.reply_subject)
    if verdict is None:
        mark_processed(conn, event_id, "ignored")
        return Outcome(event_id, "ignored")
    leads = _leads_for(conn, event.lead_email) if event.lead_email else []
    if not leads:
        park(conn, STAGE, event_id, "unknown lead e-mail" if event.lead_email else "event has no lead_email",
                    run_id=run_id, payload={"event_type": event.event_type, "intent": verdict.intent})
        return Outcome(event_id, "dlq")
    at = _event_time(event, received_at)
    apply_effects(conn, event_id, event, verdict, leads, at=at, run_id=run_id)
    mark_processed(conn, event_id, verdict.intent)
    return Outcome(event_id, verdict.intent, verdict.revocation)


def apply_effects(conn: psycopg.Connection, event_id: int, event: InstantlyEvent, verdict: Classification,
                  leads: list[tuple], *, at: datetime, run_id: str | None) -> None:
    """Everything one classified event changes (see the module docstring)."""
    lead_id, broker_id = leads[0][0], leads[0][1]
    conn.execute(
        """INSERT INTO email_replies (webhook_event_id, lead_id, broker_id, intent, reply_text, received_at,
                                      event_type, lead_email, subject, revocation, confidence, classifier)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
           ON CONFLICT (webhook_event_id) DO NOTHING""",
        (event_id, lead_id, broker_id, verdict.intent, event.reply_text, at, event.event_type, event.lead_email,
         event.reply_subject, verdict.revocation, verdict.confidence, f"{CLASSIFIER_NAME}:{verdict.rule}"),
    )
    if verdict.intent in HUMAN_REPLY_INTENTS and event.event_type != "lead_unsubscribed":
        conn.execute(
            """UPDATE leads SET
                   campaign_status = CASE WHEN campaign_status IN ('do_not_contact', 'converted')
                                          THEN campaign_status ELSE 'replied' END,
                   last_reply_intent = CASE WHEN last_reply_at IS NULL OR last_reply_at <= %(at)s
                                            THEN %(intent)s ELSE last_reply_intent END,
                   last_reply_at = greatest(last_reply_at, %(at)s)
               WHERE id = %(lead)s""",
            {"at": at, "intent": verdict.intent, "lead": lead_id},
        )
    if event.event_type == "reply_received":
        record_event(conn, Event.EMAIL_REPLIED, stage=STAGE, lead_id=lead_id, run_id=run_id, count=1,
                     payload={"intent": verdict.intent, "revocation": verdict.revocation,
                              "webhook_event_id": event_id},
                     idempotency_key=f"email_replied:{event_id}")
    if verdict.revocation:
        revoke(conn, event_id, event, verdict, leads, run_id=run_id)
    elif verdict.intent == "bounce":
        suppress_email(conn, event.lead_email, "bounce", f"bounced (webhook event {event_id})", lead_id)
        # The address does not take mail: it is no longer a usable, verified channel.
        conn.execute("UPDATE leads SET email_verified = false WHERE email = %s", (event.lead_email,))
        record_event(conn, Event.EMAIL_BOUNCED, stage=STAGE, lead_id=lead_id, run_id=run_id, count=1,
                     idempotency_key=f"email_bounced:{event_id}")


def suppress_email(conn: psycopg.Connection, email: str, source: str, reason: str, lead_id: Any) -> None:
    conn.execute(
        """INSERT INTO suppression_list (channel, value, reason, source, lead_id)
           VALUES ('email', %s, %s, %s, %s) ON CONFLICT (channel, value) DO NOTHING""",
        (email, reason, source, lead_id),
    )


def revoke(conn: psycopg.Connection, event_id: int, event: InstantlyEvent, verdict: Classification,
           leads: list[tuple], *, run_id: str | None) -> None:
    """Do not contact, by any channel: every lead with the address, every phone number they have."""
    reason = f"{verdict.intent} by e-mail (webhook event {event_id}, {verdict.rule})"
    source = "unsubscribe" if verdict.intent == "unsubscribe" else "revocation"
    suppress_email(conn, event.lead_email, source, reason, leads[0][0])
    for lead_id, broker_id, phone, consented_phone, alt_phones in leads:
        phones = {p for p in (phone, consented_phone, *(alt_phones or [])) if p}
        conn.execute(
            """INSERT INTO suppression_list (channel, value, reason, source, lead_id, expires_at)
               SELECT 'phone', p, %s, 'revocation', %s, now() + %s FROM unnest(%s::text[]) AS p
               ON CONFLICT (channel, value) DO NOTHING""",
            (reason, lead_id, PHONE_SUPPRESSION, sorted(phones)),
        )
        conn.execute(
            "UPDATE leads SET campaign_status = 'do_not_contact', consent = false WHERE id = %s", (lead_id,)
        )
        conn.execute(
            """INSERT INTO lead_consent_audit (lead_id, broker_id, decision, reason, phone_number, method)
               VALUES (%s, %s, 'revoked', %s, %s, 'email_reply')""",
            (lead_id, broker_id, reason, consented_phone or phone),
        )
        record_event(conn, Event.CONSENT_REVOKED, stage=STAGE, lead_id=lead_id, run_id=run_id, count=1,
                     payload={"intent": verdict.intent, "webhook_event_id": event_id},
                     idempotency_key=f"consent_revoked:{event_id}:{lead_id}")
