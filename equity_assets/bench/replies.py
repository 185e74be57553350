"""`equity bench replies`: the reply classifier on the labelled set — precision and recall per intent.

Revocation recall must be 1.0 (a missed "STOP" is a TCPA violation); the figures also include the
classifier's throughput on the same texts.
"""

from __future__ import annotations

import time
from typing import Any

from ..engage.classifier import classify
from ..engage.labelled import labelled_replies, score

OPTIONS: set[str] = set()
THROUGHPUT_ROUNDS = 20


def run() -> dict[str, Any]:
    replies = list(labelled_replies())
    figures = score(classify, replies)
    started = time.perf_counter()
    for _ in range(THROUGHPUT_ROUNDS):
        for reply in replies:
            classify(reply.text, reply.subject)
    elapsed = time.perf_counter() - started
    figures["replies_per_s"] = round(THROUGHPUT_ROUNDS * len(replies) / elapsed)
    figures["revocation_recall_ok"] = figures["revocation"]["recall"] == 1.0
    return figures
