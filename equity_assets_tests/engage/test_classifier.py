"""The reply classifier: the labelled set, revocations in every disguise, quoted text ignored, the CLI."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys

import pytest

from equity_assets.engage.classifier import INTENTS, classify, classify_event, new_text
from equity_assets.engage.labelled import labelled_replies, score

REVOCATION_WORDS = ["stop", "quit", "end", "cancel", "unsubscribe", "revoke", "opt out", "remove me",
                    "do not contact"]


def test_labelled_set_is_big_and_covers_every_class():
    replies = list(labelled_replies())
    assert len(replies) >= 120
    counts = {intent: sum(1 for r in replies if r.intent == intent) for intent in INTENTS}
    assert min(counts.values()) >= 8, counts
    assert sum(1 for r in replies if "wrote:" in r.text or "From:" in r.text) >= 10  # quoted threads


def test_revocation_recall_is_one_and_every_class_is_well_separated():
    figures = score()
    assert figures["revocation"]["recall"] == 1.0, figures["errors"]
    assert figures["revocation"]["precision"] >= 0.95
    assert figures["accuracy"] >= 0.9
    # The last replies of the set were written after the rules and left as they scored (unknown
    # phrasings fall back to "question"), so the other classes are not perfect.
    for intent, numbers in figures["per_class"].items():
        assert numbers["recall"] >= 0.85, (intent, figures["errors"])
        assert numbers["precision"] >= 0.7, (intent, figures["errors"])


CASES = [str.lower, str.upper, str.title, lambda w: "".join(c.upper() if i % 2 else c for i, c in enumerate(w))]
AROUND = ["{w}", "{w}.", "{w}!!!", "  {w}  ", "{w}\n\n--\nJohn Smith\nSmith Realty\n(555) 010-2000",
          "{w}\n\nSent from my iPhone", "Please {w}", "{w} please, thank you", "{w} - Mary", '"{w}"',
          "Thanks for reaching out. {w}.\n\nRegards,\nPat"]


@pytest.mark.parametrize("word", REVOCATION_WORDS)
def test_revocation_words_are_never_missed(word):
    for case, template in itertools.product(CASES, AROUND):
        text = template.format(w=case(word))
        verdict = classify(text, "Re: Your home's equity")
        assert verdict.revocation, text
        assert verdict.intent in ("unsubscribe", "hostile")


def test_our_own_footer_in_a_quoted_thread_is_not_a_revocation():
    reply = ("Yes, I'd like to hear more.\n\nOn Tue, Nov 24, 2026 at 6:02 AM Equity Connect <o@x.com> wrote:\n"
             "> Reply STOP to opt out. To unsubscribe click here.\n> End of message")
    assert new_text(reply) == "Yes, I'd like to hear more."
    verdict = classify(reply)
    assert verdict.intent == "interested" and not verdict.revocation
    outlook = "Sounds good\n\n-----Original Message-----\nFrom: Equity\nUnsubscribe | Stop | Opt out"
    assert classify(outlook).revocation is False


def test_a_revocation_below_the_quote_is_still_read():
    reply = "> Can we call you about your home?\n\nSTOP"
    assert classify(reply).revocation


def test_harmless_uses_are_not_revocations():
    for text in ["Stop by the office any time, yes I'm interested", "What happens at the end of the loan?",
                 "Can I cancel the reverse mortgage later?"]:
        assert classify(text).revocation is False, text


def test_event_labels_and_their_text():
    assert classify_event("lead_unsubscribed", None, None).revocation
    assert classify_event("email_bounced", None, None).intent == "bounce"
    assert classify_event("email_opened", None, None) is None
    # Instantly labelled it interested, but the person wrote STOP: the revocation wins.
    assert classify_event("lead_interested", "STOP", None).revocation


def test_cli_classifies_json_lines_without_a_database(tmp_path):
    lines = "\n".join(json.dumps(x) for x in [
        {"text": "Not interested.\n\nSTOP\n--\nJo", "subject": "Re: hi"},
        {"text": "Automatic reply: I am out of the office until Monday."},
        {"text": "How much could I get?"},
    ])
    done = subprocess.run([sys.executable, "-m", "equity_assets.cli", "replies", "classify"], input=lines,
                          capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "EQUITY_DATABASE_URL": "postgresql://nowhere:1/none"})
    assert done.returncode == 0, done.stderr
    answers = [json.loads(line) for line in done.stdout.splitlines()]
    assert [a["intent"] for a in answers] == ["unsubscribe", "out_of_office", "question"]
    assert [a["revocation"] for a in answers] == [True, False, False]
    assert all(0 < a["confidence"] <= 1 for a in answers)
