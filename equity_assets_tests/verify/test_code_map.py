"""verification_code_map: every documented code is mapped, and the map decides which channels are usable."""

from __future__ import annotations

import pytest

# The reference's Melissa codes (reference/external-apis.md), with the verdict the pipeline needs.
UNUSABLE_EMAIL = ["ES03", "ES04", "ES05", "ES06", "EE01", "EE02", "EE03", "EE04"]
UNUSABLE_PHONE = ["PS02", "PE01", "PE02", "PE03", "PE04", "PE05"]
USABLE = {"email": ["ES01"], "phone": ["PS01", "PS03", "PS06", "PS07", "PS08"], "address": ["AS01", "AS02", "AS03"]}
DOCUMENTED = (
    "AS01 AS02 AS03 AS09 AS10 AS12 AS13 AS14 AS16 AS17 AS18 AS20 AS23 AE01 AE02 AE03 AE05 AE08 AE09 "
    "AC01 AC02 AC03 PS01 PS02 PS03 PS06 PS07 PS08 PE01 PE02 PE03 PE04 PE05 ES01 ES03 ES04 ES05 ES06 "
    "EE01 EE02 EE03 EE04 GS01 VR01 GE01 GE02 GE03 GE04 GE05 GE06 GE07 GE08 GE14 SE01"
).split()


def test_every_documented_melissa_code_is_mapped(query) -> None:
    mapped = {code for (code,) in query("SELECT code FROM verification_code_map WHERE provider = 'melissa'")}
    assert set(DOCUMENTED) <= mapped, sorted(set(DOCUMENTED) - mapped)


def test_only_spamtrap_is_suppressed_among_melissa_codes(query) -> None:
    suppressing = {code for (code,) in query("SELECT code FROM verification_code_map WHERE provider = 'melissa' AND suppress")}
    assert suppressing == {"ES06"}


@pytest.mark.parametrize(
    ("codes", "channel", "usable"),
    [
        *[([c], "email", False) for c in UNUSABLE_EMAIL],
        *[([c], "phone", False) for c in UNUSABLE_PHONE],
        *[([c], ch, True) for ch, cs in USABLE.items() for c in cs],
        (["PS01", "PS07"], "phone", True),
        (["ES01", "EE04"], "email", False),  # any unusable code wins
        (["AS01", "AS16"], "address", False),  # vacant
        ([], "email", False),  # no verdict is not a usable verdict
        (["ZZ99"], "email", False),  # unknown codes alone decide nothing
        (["ES01", "ZZ99"], "email", True),
        (["ES01"], "phone", False),  # another channel's code does not count
    ],
)
def test_channel_usable(query, codes: list[str], channel: str, usable: bool) -> None:
    assert query("SELECT channel_usable(%s::text[], %s)", (codes, channel)) == [(usable,)]


def test_verified_leads_applies_the_map_to_real_provider_answers(
    candidates, email_verdicts, insert_leads, run_verify, query, sandbox_control
) -> None:
    """Melissa's codes land in the arrays; usable flags and spamtrap suppression follow the map."""
    pool = [f"person{n}@example.org" for n in range(400)]
    codes = email_verdicts(pool)
    by_code = {c[0]: e for e, c in reversed(list(codes.items())) if c}
    emails = {
        "ES01": by_code["ES01"], "ES04": "owner@vtext.com", "ES05": "owner@mailinator.com",
        "ES06": by_code["ES06"], "EE01": "not-an-email", "EE02": by_code["EE02"], "EE04": by_code["EE04"],
    }
    phones = {"PE01": "+10175550123", "PE03": "+44207946000", "PE05": "+12170550123"}
    homes = candidates(len(emails) + len(phones), lambda c: c.melissa.address_verified)
    rows = [h.lead(email=e) for h, e in zip(homes, emails.values())]
    rows += [h.lead(phone=p) for h, p in zip(homes[len(emails):], phones.values())]
    insert_leads(rows)

    run = run_verify()

    assert run.metadata["verified_by_melissa"] == len(rows)
    got = {row[0]: row[1:] for row in query("SELECT email, email_codes, email_verified FROM leads WHERE email IS NOT NULL")}
    for code, email in emails.items():
        assert got[email] == ([code], code == "ES01"), (code, got[email])
    got_phones = {row[0]: row[1:] for row in query("SELECT phone, phone_codes, phone_verified FROM leads WHERE phone IS NOT NULL")}
    for code, phone in phones.items():
        assert got_phones[phone] == ([code], False), (code, got_phones[phone])
    # the spamtrap, and only it, is suppressed - permanently, with the code as the reason
    assert query("SELECT channel, value, reason LIKE 'ES06:%%', expires_at FROM suppression_list") == [
        ("email", emails["ES06"], True, None)
    ]
    assert run.checks() == {
        "queued_leads_are_assigned_and_contactable": True,
        "suppressed_channels_are_not_usable": True,
        "verification_dead_letters": True,
        "verified_leads_match_schema": True,
        "scored_leads_match_schema": True,
    }
