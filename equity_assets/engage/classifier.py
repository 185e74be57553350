"""The deterministic reply classifier: intent, revocation and confidence from a reply's text.

Intents: ``interested, question, not_interested, unsubscribe, out_of_office, wrong_person, bounce,
hostile``. The rules run in this order and the first that fires decides:

1. **bounce** — a delivery-status notification (``Undeliverable``, ``Mail delivery failed``,
   ``550 5.1.1``, ``address not found`` …). Not a person writing, so nothing in it can revoke.
2. **revocation** — the words stop, quit, end, cancel, unsubscribe, revoke, opt out, remove me,
   do not contact and their common variants, typos and other languages' equivalents, in any case,
   with any punctuation or a signature around them. A revocation makes the intent ``unsubscribe``
   (``hostile`` when the reply is also abusive): its effects override everything else.
   Bare words count unless they sit in a known harmless phrase ("stop by", "the end of the month",
   "cancel the mortgage"). The law asks for *any reasonable means*, so the rule errs on the side
   of revoking: a false alarm costs one lead, a miss costs a TCPA violation.
3. **hostile** — abuse, threats or accusations (scam, harassment, lawyers); also treated as a
   revocation (``revocation = true``).
4. **out_of_office** — auto-replies; they change nothing on the lead.
5. **wrong_person** — not the owner, sold the house, deceased, wrong address.
6. **not_interested** — "not interested", "no thanks", a bare "no", other languages' "no thanks".
7. **interested** — "yes", "tell me more", "call me", "I'm interested" …
8. **question** — anything else that asks something (a ``?`` or a question opening).
9. Otherwise ``question`` with low confidence: a human reply we cannot read deserves a human.

Only the new part of a reply is read: lines quoted with ``>``, the ``On … wrote:`` line, and
everything from an Outlook-style ``-----Original Message-----`` / ``From: … Sent:`` block or a
``________`` separator on are dropped — our own e-mail's footer says "unsubscribe" and must not
count as the lead's words.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

INTENTS = ("interested", "question", "not_interested", "unsubscribe", "out_of_office", "wrong_person",
           "bounce", "hostile")
CLASSIFIER_NAME = "rules-v1"


@dataclass(frozen=True)
class Classification:
    """What a reply means: its intent, whether it revokes consent, and how sure the rule is."""

    intent: str
    revocation: bool
    confidence: float
    rule: str

    def as_dict(self) -> dict[str, object]:
        return {"intent": self.intent, "revocation": self.revocation, "confidence": self.confidence}


# --------------------------------------------------------------------------- quoted text

_QUOTE_HEADER = re.compile(
    r"^\s*(on\b.{0,300}\bwrote:?|le\b.{0,300}\ba [ée]crit\s*:|el\b.{0,300}\bescribi[óo]\s*:|"
    r"am\b.{0,300}\bschrieb.{0,100}:|em\b.{0,300}\bescreveu\s*:|il\b.{0,300}\bha scritto\s*:)\s*$",
    re.IGNORECASE,
)
_ORIGINAL_STARTS = re.compile(
    r"^\s*(-{2,}\s*(original message|forwarded message|mensaje original|message d'origine|"
    r"urspr[üu]ngliche nachricht)\b.*|_{5,}\s*|from:\s.*|de:\s.*@.*|von:\s.*@.*|sent from my \w+.*)$",
    re.IGNORECASE,
)


def new_text(text: str) -> str:
    """The part of a reply its sender wrote: quoted lines and the quoted original removed."""
    kept: list[str] = []
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    skip_next = False
    for i, line in enumerate(lines):
        if skip_next:
            skip_next = False
            continue
        if line.lstrip().startswith(">") or _QUOTE_HEADER.match(line):
            continue
        if i + 1 < len(lines) and _QUOTE_HEADER.match(f"{line} {lines[i + 1]}"):
            skip_next = True  # "On <date>, <name>" wrapped onto a second "… wrote:" line
            continue
        if _ORIGINAL_STARTS.match(line):
            break
        kept.append(line)
    return "\n".join(kept).strip()


def normalize(text: str) -> str:
    """Case-folded, accents removed, typographic quotes and dashes made plain, spaces collapsed."""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    plain = plain.replace("\u2019", "'").replace("\u2018", "'").replace("\u2013", "-").replace("\u2014", "-")
    return re.sub(r"\s+", " ", plain.casefold()).strip()


def _subject_core(subject: str | None) -> str:
    core = normalize(subject or "")
    while True:
        stripped = re.sub(r"^(re|fw|fwd|aw|wg|rv|tr|sv)\s*(\[\d+\])?\s*:\s*", "", core)
        if stripped == core:
            return core
        core = stripped


# --------------------------------------------------------------------------- rules

def _any(patterns: list[str]) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{p})" for p in patterns))


_BOUNCE = _any([
    r"\bundeliverable\b", r"\bdelivery (status notification|has failed|failed|failure)\b",
    r"\bmail delivery (failed|subsystem|failure)\b", r"\breturned mail\b", r"\bmailer-daemon\b",
    r"\b5\.1\.1\b", r"\b550[ -]", r"\baddress not found\b", r"\bmailbox (unavailable|not found|does not exist|full)\b",
    r"\buser unknown\b", r"\bno such user\b", r"\brecipient address rejected\b",
    r"\bcould not be delivered\b", r"\bwasn't delivered\b", r"\bwas not delivered\b",
])

# Always a revocation, wherever they appear in the new text.
_REVOKE_PHRASES = _any([
    r"\bun-? ?su[bs]{1,2}c?r?i?be?d?\b", r"\bunsubscri\w*", r"\bunsubs\w*", r"\bunsusc\w*", r"\bunsub\b",
    r"\brevok\w*", r"\brevocation\b", r"\bopt(ing|ed)?[\s-]*(me\s+)?out\b", r"\boptout\b",
    r"\bremove (me|my|us|this (email|address|number))\b", r"\btake (me|my \w+|us) off\b",
    r"\b(do not|don'?t|dont|never|pls don'?t|please don'?t) (ever )?(contact|call|e-?mail|text|message|write|reach|bother)\b",
    r"\b(stop|quit|cease|end) (all |the |these |your |any )?"
    r"(e-?mails?|e-?mailing|calls?|calling|texts?|texting|contact\w*|messag\w*|sending|bothering|spam\w*|writing|reaching|harass\w*|communicat\w*)\b",
    r"\bno (more|further) (e-?mails?|calls?|contact|messages|texts|communication)\b",
    r"\bleave (me|us) alone\b", r"\bwithdraw (my )?(consent|permission)\b", r"\bi (do not|don'?t) consent\b",
    r"\b(no longer|do not|don'?t) (wish|want) to (receive|get|hear|be (called|contacted|e-?mailed))\b",
    r"\blose (my|this|our) (number|e-?mail|address|contact)\b", r"\bs[ .]t[ .]o[ .]p\b",
    r"\bdelete (my|me|our)\b", r"\bdo not (want|wish) (to be|any) (contacted|more)\b",
    r"\boff (your|the) (list|mailing list)\b", r"\bcancel (my |the )?(consent|subscription|emails?)\b",
    # other languages
    r"\b(dar(me|nos)?|darse) de baja\b", r"\bbaja\b", r"\bno me (contacte|contacten|llame|llamen|escriba|escriban|envie|envien)\b",
    r"\bno (me )?(vuelva|vuelvan) a (contactar|llamar|escribir)\b", r"\bdejen de\b", r"\bdeje de\b",
    r"\bdesabonn\w*", r"\bdesinscri\w*", r"\bne (me )?(contactez|appelez|ecrivez) plus\b", r"\barretez\b",
    r"\babmelden\b", r"\bnicht mehr (kontaktieren|anrufen|schreiben)\b", r"\bkeine (e-?mails?|anrufe|werbung) mehr\b",
    r"\bnao me (contate|ligue|ligar|mande)\b", r"\bpare de\b", r"\bdescadastr\w*", r"\bnon contattatemi\b",
    r"\bcancella(mi|re)\b",
])

# Bare words that revoke unless a harmless phrase explains them.
_BARE_WORDS = re.compile(r"\b(stop+|quit|end|cancel|cancell?ed|remove|arret|alto|basta|stopp|halt|parar|pare)\b")
_HARMLESS = _any([
    r"\bstop (by|in|over|at|and)\b", r"\b(bus|one|non|pit|truck|full|last|next|first) ?-?stop\b",
    r"\b(the|an|this|that|week|year|month|back|front|high|low|dead|deep|rear|tail|far|other|either) end\b",
    r"\bend (up|of|result|date|user|goal|game)\b", r"\bat (the|year'?s|month'?s|week'?s) end\b",
    r"\bquit (my|his|her|their|smoking|working)\b",
    r"\bcancel\w* (the |my |our |a |an |existing |current )*(mortgage|loan|policy|insurance|contract|lease|"
    r"appointment|meeting|order|reverse|heloc|line of credit)\b",
    r"\b(can|could|would|will|is|are|do|does)\b.{0,30}\bcancel\w*\b.{0,30}\b(later|anytime|any time)\b",
])

_HOSTILE = _any([
    r"\bf+u+c+k+\w*", r"\bf\*+k?\w*", r"\bsh[i1]t+\w*", r"\bass ?hole\w*", r"\bbastard\w*", r"\bbitch\w*",
    r"\bgo to hell\b", r"\bpiss (off|on)\b", r"\bscre+w (you|off)\b", r"\bdamn you\b", r"\bgoddamn\w*",
    r"\bscam\w*", r"\bfraud\w*", r"\bcrook\w*", r"\bvultures?\b", r"\bpredator\w*", r"\bharass\w*",
    r"\b(report|reporting) (you|this|your)\b", r"\bsue (you|your)\b", r"\b(my )?(lawyer|attorney)\b",
    r"\bcease and desist\b", r"\battorney general\b", r"\bftc\b", r"\bhow did you get my\b", r"\bidiots?\b",
    r"\bhijos? de puta\b", r"\bcabr[oa]n\w*", r"\bmierda\b", r"\bmerde\b", r"\bconnards?\b", r"\barschloch\b",
])

_OUT_OF_OFFICE = _any([
    r"\bout of (the )?office\b", r"\bautomatic reply\b", r"\bauto-?reply\b", r"\bautoreply\b",
    r"\bauto(matic)? response\b", r"\bon (vacation|holiday|leave|annual leave|maternity leave|paternity leave)\b",
    r"\baway from (my )?(desk|email|the office)\b", r"\blimited access to (my )?e-?mail\b",
    r"\bwill (be )?(back|return(ing)?) (on|in|to the office|after)\b", r"\bcurrently (away|traveling|travelling|out)\b",
    r"\bi am out\b.{0,40}\buntil\b", r"\bi'?m out\b.{0,40}\buntil\b", r"\breturning on\b",
    r"\bfuera de la oficina\b", r"\bausente\b", r"\babsent du bureau\b", r"\babwesend\b", r"\babwesenheitsnotiz\b",
    r"\bhors du bureau\b", r"\bde vacaciones\b", r"\ben conge\b", r"\bim urlaub\b",
])

_WRONG_PERSON = _any([
    r"\bwrong (person|email|address|guy|lady|number|house|owner|contact)\b", r"\bnot the (owner|homeowner|right person)\b",
    r"\b(i|we) (don'?t|do not|no longer) own\b", r"\bno longer (own|live|lives|living|the owner)\b",
    r"\b(sold|sold the|sold that|sold this) (house|home|property|it|place)\b", r"\bwe sold\b", r"\bi sold\b",
    r"\bpassed away\b", r"\bdeceased\b", r"\bdied\b", r"\bno one (by|with) that name\b", r"\bnobody (by|named)\b",
    r"\b(i|we) rent\b", r"\b(i'?m|i am) (a |just a |the )?(tenant|renter)\b", r"\bdoesn'?t live here\b",
    r"\bdoes not live here\b", r"\bnot (me|my house|my property|my home)\b", r"\bwho is this\b",
    r"\byou have the wrong\b", r"\bthis isn'?t\b.{0,20}\b(house|property)\b", r"\bpersona equivocada\b",
    r"\bmauvaise personne\b", r"\bfalsche person\b",
])

_NOT_INTERESTED = _any([
    r"\bnot (really |at all )?interested\b", r"\bno(,)? thank(s| you)\b", r"\bno thx\b", r"\bnot (at this|right) (time|now)\b",
    r"\b(i'?m|we'?re|i am|we are) (all )?(set|good|fine|ok|okay)\b", r"\bnot for (me|us)\b",
    r"\b(don'?t|do not|dont) need\b", r"\bno need\b", r"\bnot looking\b", r"\bno interest\b",
    r"\bnot (selling|borrowing)\b", r"\bnever\b", r"\bpass(ing)? on (this|it)\b", r"\bi'?ll pass\b", r"\bwill pass\b",
    r"\bno (gracias|grazie|merci|danke)\b", r"\bnon merci\b", r"\bnein danke\b", r"\bkein interesse\b",
    r"\bnicht interessiert\b", r"\bno me interesa\b", r"\bno (estoy|estamos) interesad[oa]s?\b",
    r"\bpas interess\w*", r"\bnon mi interessa\b", r"\bnao tenho interesse\b", r"\bnao,? obrigad[oa]\b",
    r"\bnot (a )?good fit\b", r"\bnot a fit\b", r"\bdecline\b", r"\bno way\b", r"\bnot now\b",
])
_BARE_NO = re.compile(r"^(no+|nope|nah|non|nein|nao|no\.|nope\.)[\s.!]*$")

_INTERESTED = _any([
    r"\b(i'?m|i am|we'?re|we are|very|definitely|maybe|might be|could be|somewhat) (very |definitely |quite |a bit |a little |really )?interested\b",
    r"^interested\b", r"\btell me more\b", r"\b(call|phone|ring) me\b", r"\bgive me a (call|ring)\b",
    r"\b(please|pls|plz) call\b", r"\breach me at\b", r"\bmy (cell|number|phone) is\b",
    r"\bi'?d (like|love) to (learn|know|hear|talk|discuss|see|get)\b", r"\bi would (like|love) to\b",
    r"\bsign (me|us) up\b", r"\blet'?s (talk|chat|connect|do it)\b", r"\blets talk\b",
    r"\b(set up|schedule|book) (a |the )?(call|time|meeting|appointment)\b", r"\bmore (info|information|details)\b",
    r"\bsend (me )?(more|the details|details|info)\b", r"\bsounds (good|great|interesting)\b", r"\byes\b", r"\byeah\b",
    r"\bsure\b", r"\bcount me in\b", r"\bwhen can we\b", r"\bavailable (to talk|tomorrow|on|after|this)\b",
    r"\bme interesa\b", r"\bsi,? (me|por favor|claro)\b", r"\binteresad[oa]\b", r"\boui\b", r"\binteresse\b",
    r"\bja,? gerne\b", r"\binteressiert\b", r"\btenho interesse\b",
])
_QUESTION_OPENING = re.compile(
    r"(^|[.!\n] ?)(how|what|when|where|why|who|which|is|are|can|could|do|does|did|will|would|should|"
    r"may|am i|cuanto|como|que|quand|comment|combien|wie|was)\b")


def _revocation_rule(body: str, subject: str) -> str | None:
    """The name of the rule that finds a revocation, or None."""
    for text, where in ((body, "body"), (subject, "subject")):
        if _REVOKE_PHRASES.search(text):
            return f"revocation_phrase_{where}"
    harmless_spans = [m.span() for m in _HARMLESS.finditer(body)]
    for match in _BARE_WORDS.finditer(body):
        if not any(start <= match.start() < end for start, end in harmless_spans):
            return "revocation_word"
    # A subject line that is only a revocation word ("STOP", "Re: cancel").
    if _BARE_WORDS.fullmatch(re.sub(r"[^\w\s]", "", subject).strip()):
        return "revocation_subject"
    return None


def classify(text: str | None, subject: str | None = None) -> Classification:
    """Classify one reply (body text, optional subject) with the rules above."""
    body = normalize(new_text(text or ""))
    subject_core = _subject_core(subject)
    if _BOUNCE.search(body) or _BOUNCE.search(subject_core):
        return Classification("bounce", False, 0.99, "bounce")
    revoked_by = _revocation_rule(body, subject_core)
    hostile = bool(_HOSTILE.search(body))
    if revoked_by:
        return Classification("hostile" if hostile else "unsubscribe", True,
                              0.9 if revoked_by == "revocation_word" else 0.99, revoked_by)
    if hostile:
        return Classification("hostile", True, 0.9, "hostile")
    if _OUT_OF_OFFICE.search(body) or _OUT_OF_OFFICE.search(subject_core):
        return Classification("out_of_office", False, 0.95, "out_of_office")
    if _WRONG_PERSON.search(body):
        return Classification("wrong_person", False, 0.9, "wrong_person")
    if _NOT_INTERESTED.search(body) or _BARE_NO.match(body):
        return Classification("not_interested", False, 0.9, "not_interested")
    if _INTERESTED.search(body):
        return Classification("interested", False, 0.85, "interested")
    if "?" in body or _QUESTION_OPENING.search(body):
        return Classification("question", False, 0.75, "question")
    return Classification("question", False, 0.4, "fallback")


#: What Instantly's own labels mean, for events that carry no text to read.
EVENT_INTENTS = {
    "email_bounced": "bounce",
    "lead_unsubscribed": "unsubscribe",
    "lead_interested": "interested",
    "lead_meeting_booked": "interested",
    "lead_not_interested": "not_interested",
    "lead_out_of_office": "out_of_office",
    "lead_wrong_person": "wrong_person",
    "lead_neutral": "question",
}


def classify_event(event_type: str, text: str | None, subject: str | None) -> Classification | None:
    """Classify an Instantly event: a reply by its text, a label by its type; None for other events.

    A label event that also carries text is read as well, so a revocation in it is never lost.
    """
    if event_type == "reply_received":
        return classify(text, subject)
    intent = EVENT_INTENTS.get(event_type)
    if intent is None:
        return None
    if text and intent not in ("bounce", "unsubscribe"):
        read = classify(text, subject)
        if read.revocation:
            return read
    revocation = intent == "unsubscribe"
    return Classification(intent, revocation, 1.0, f"event:{event_type}")
