"""The labelled reply set and the per-class scores of a classifier on it."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .classifier import INTENTS, Classification, classify

LABELLED_REPLIES = Path(__file__).with_name("data") / "labelled_replies.jsonl"


@dataclass(frozen=True)
class LabelledReply:
    text: str
    subject: str | None
    intent: str
    revocation: bool


def labelled_replies(path: Path = LABELLED_REPLIES) -> Iterator[LabelledReply]:
    """The hand-labelled replies: several per intent, with signatures, quoted threads, typos, languages."""
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                row = json.loads(line)
                yield LabelledReply(row["text"], row.get("subject"), row["intent"], bool(row["revocation"]))


def _ratio(hits: int, total: int) -> float | None:
    return round(hits / total, 4) if total else None


def score(classifier: Callable[[str, str | None], Classification] = classify,
          replies: list[LabelledReply] | None = None) -> dict[str, object]:
    """Precision and recall per intent and for revocation, plus the misclassified examples."""
    replies = list(labelled_replies()) if replies is None else replies
    judged = [(r, classifier(r.text, r.subject)) for r in replies]
    per_class = {}
    for intent in INTENTS:
        true_pos = sum(1 for r, c in judged if r.intent == intent and c.intent == intent)
        predicted = sum(1 for _, c in judged if c.intent == intent)
        actual = sum(1 for r, _ in judged if r.intent == intent)
        per_class[intent] = {"support": actual, "precision": _ratio(true_pos, predicted),
                             "recall": _ratio(true_pos, actual)}
    rev_true_pos = sum(1 for r, c in judged if r.revocation and c.revocation)
    return {
        "replies": len(judged),
        "accuracy": _ratio(sum(1 for r, c in judged if r.intent == c.intent), len(judged)),
        "per_class": per_class,
        "revocation": {"support": sum(1 for r, _ in judged if r.revocation),
                       "precision": _ratio(rev_true_pos, sum(1 for _, c in judged if c.revocation)),
                       "recall": _ratio(rev_true_pos, sum(1 for r, _ in judged if r.revocation))},
        "errors": [{"expected": r.intent, "got": c.intent, "text": r.text[:80]}
                   for r, c in judged if r.intent != c.intent or r.revocation != c.revocation],
    }
