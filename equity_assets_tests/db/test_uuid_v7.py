"""uuid_v7(): time-ordered ids with the RFC 9562 layout, as every new lead takes one."""

import time
import uuid


def test_uuid_v7_has_version_variant_and_current_milliseconds(admin_conn):
    before = int(time.time() * 1000)
    ids = [row[0] for row in admin_conn.execute("SELECT uuid_v7() FROM generate_series(1, 2000)")]
    after = int(time.time() * 1000)
    assert len(set(ids)) == len(ids)
    for value in ids:
        assert isinstance(value, uuid.UUID)
        assert value.version == 7 and value.variant == uuid.RFC_4122
        # the first 48 bits are Unix milliseconds (a little slack for the two clocks)
        assert before - 1000 <= value.int >> 80 <= after + 1000


def test_uuid_v7_sorts_by_creation_time(admin_conn):
    first = admin_conn.execute("SELECT uuid_v7()").fetchone()[0]
    time.sleep(0.01)
    second = admin_conn.execute("SELECT uuid_v7()").fetchone()[0]
    assert first < second and str(first) < str(second)
