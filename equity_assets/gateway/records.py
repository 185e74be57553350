"""What the gateway writes to PostgreSQL: accepted uploads (with their replay guard) and rejections."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import psycopg

from equity_assets.observe.events import Event, Stage, record_event

STAGE = Stage.GATEWAY

# Claim the content hash; an existing row is only taken over once it has expired.
_CLAIM_GUARD = """
INSERT INTO ingest_replay_guard AS g (content_sha256, upload_id, first_seen_at, expires_at)
VALUES (%(sha)s, NULL, now(), now() + %(window)s)
ON CONFLICT (content_sha256) DO UPDATE
   SET upload_id = NULL, first_seen_at = now(), expires_at = now() + %(window)s
 WHERE g.expires_at <= now()
RETURNING content_sha256
"""


@dataclass(frozen=True)
class NewUpload:
    """An upload whose signature checked out and whose file is stored."""

    content_sha256: str
    source: str
    filename: str | None
    storage_path: str
    byte_size: int
    client_ip: str | None
    scheme: str
    secret_index: int


@dataclass(frozen=True)
class UploadOutcome:
    """Either the new upload's id, or (a replay) the id of the earlier upload of the same content."""

    upload_id: str | None
    replay_of: str | None = None
    replay_first_seen_at: str | None = None

    @property
    def is_replay(self) -> bool:
        return self.upload_id is None


def claim_replay_guard(conn: psycopg.Connection, content_sha256: str, window: timedelta) -> bool:
    """Take the replay guard for this content; False when a live guard row already holds it.

    Concurrent claims of one hash serialize on the primary key: the loser waits for the winner's
    commit, then sees a live row and gets False.
    """
    row = conn.execute(_CLAIM_GUARD, {"sha": content_sha256, "window": window}).fetchone()
    return row is not None


def record_upload(conn: psycopg.Connection, upload: NewUpload, replay_window: timedelta) -> UploadOutcome:
    """In the caller's transaction: replay guard, ``uploads`` row, ``upload_received`` event."""
    if not claim_replay_guard(conn, upload.content_sha256, replay_window):
        earlier = conn.execute(
            "SELECT upload_id::text, first_seen_at::text FROM ingest_replay_guard WHERE content_sha256 = %s",
            (upload.content_sha256,),
        ).fetchone()
        return UploadOutcome(upload_id=None, replay_of=earlier[0], replay_first_seen_at=earlier[1])
    upload_id = conn.execute(
        """INSERT INTO uploads (content_sha256, source, filename, storage_path, byte_size, client_ip)
           VALUES (%s, %s, %s, %s, %s, %s) RETURNING id::text""",
        (upload.content_sha256, upload.source, upload.filename, upload.storage_path, upload.byte_size,
         upload.client_ip),
    ).fetchone()[0]
    conn.execute("UPDATE ingest_replay_guard SET upload_id = %s WHERE content_sha256 = %s",
                 (upload_id, upload.content_sha256))
    record_event(
        conn, Event.UPLOAD_RECEIVED, stage=STAGE, upload_id=upload_id, count=1,
        payload={"bytes": upload.byte_size, "source": upload.source, "content_sha256": upload.content_sha256,
                 "scheme": upload.scheme, "secret_index": upload.secret_index},
        idempotency_key=f"upload_received:{upload_id}",
    )
    return UploadOutcome(upload_id=upload_id)


def record_rejection(conn: psycopg.Connection, event_type: Event, reason: str, client_ip: str | None,
                     details: dict[str, Any] | None = None) -> None:
    """Append a rejection event: reason, client IP and safe details — never a body or a secret."""
    record_event(conn, event_type, stage=STAGE,
                 payload={"reason": reason, "client_ip": client_ip, **(details or {})})
