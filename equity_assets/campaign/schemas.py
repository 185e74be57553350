"""Read-back contracts of the campaign stages: scored leads, the contactable set, a day's batch."""

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from equity_assets.observe.validation import EMAIL

SEND_STATUSES = ["queued", "pushed", "failed"]
LEAD_STATUSES = ["new", "queued", "active", "replied", "converted", "do_not_contact"]


class ScoredLeadsTable(pa.DataFrameModel):
    """Verified leads after scoring and assignment: every one scored, queued ones assigned and unflagged.

    (Queued leads as a whole are checked in SQL by `queued_leads_are_assigned_and_contactable`.)
    """

    id: Series[pd.StringDtype] = pa.Field(unique=True)
    lead_score: Series[float] = pa.Field(nullable=False, ge=0, le=100)
    campaign_status: Series[pd.StringDtype] = pa.Field(isin=LEAD_STATUSES)
    assigned: Series[bool]
    flagged: Series[bool]

    @pa.dataframe_check(name="queued_has_a_broker_and_no_safety_flag", ignore_na=False)
    def _queued(cls, frame: pd.DataFrame) -> Series[bool]:
        return (frame["campaign_status"] != "queued") | (frame["assigned"] & ~frame["flagged"])

    class Config:
        coerce = True


class ContactableLeadsTable(pa.DataFrameModel):
    """`contactable_leads`: one row per lead, a broker and a normalized address each."""

    lead_id: Series[pd.StringDtype] = pa.Field(unique=True)
    broker_id: Series[pd.StringDtype] = pa.Field(nullable=False)
    email: Series[pd.StringDtype] = pa.Field(nullable=False)

    @pa.check("email", name="looks_like_an_address")
    def _address(cls, email: Series[pd.StringDtype]) -> Series[bool]:
        return email.str.fullmatch(EMAIL).fillna(False).astype(bool)

    @pa.check("email", name="lower_case")
    def _lower(cls, email: Series[pd.StringDtype]) -> Series[bool]:
        return email == email.str.lower()

    class Config:
        coerce = True


class CampaignBatchTable(pa.DataFrameModel):
    """`campaign_sends` rows of the run's batch dates."""

    lead_id: Series[pd.StringDtype] = pa.Field(unique=True)
    broker_id: Series[pd.StringDtype] = pa.Field(nullable=False)
    campaign_id: Series[pd.StringDtype] = pa.Field(nullable=False)
    consent_token_id: Series[pd.StringDtype] = pa.Field(nullable=False)
    status: Series[pd.StringDtype] = pa.Field(isin=SEND_STATUSES)

    class Config:
        coerce = True
