"""Read-back contract of `verified_leads`: what a verification run wrote to `leads`."""

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from equity_assets.observe.validation import E164, EMAIL, MAK

PROVIDERS = ["melissa", "batchdata"]


class VerifiedLeadsTable(pa.DataFrameModel):
    """Recently verified leads: flags consistent with the contact data and the safety flags."""

    id: Series[pd.StringDtype] = pa.Field(unique=True)
    verification_provider: Series[pd.StringDtype] = pa.Field(nullable=True, isin=PROVIDERS)
    mak: Series[pd.StringDtype] = pa.Field(nullable=True, str_matches=MAK)
    email: Series[pd.StringDtype] = pa.Field(nullable=True)  # any text: judging it is the verifier's job
    phone: Series[pd.StringDtype] = pa.Field(nullable=True, str_matches=E164)
    email_verified: Series[bool]
    phone_verified: Series[bool]
    litigator: Series[bool]
    deceased: Series[bool]
    phone_in_dnc: Series[pd.BooleanDtype] = pa.Field(nullable=True)

    @pa.dataframe_check(name="usable_email_is_an_address", ignore_na=False)
    def _usable_email(cls, frame: pd.DataFrame) -> Series[bool]:
        return ~frame["email_verified"] | frame["email"].str.fullmatch(EMAIL).fillna(False).astype(bool)

    @pa.dataframe_check(name="usable_phone_has_a_number", ignore_na=False)
    def _usable_phone(cls, frame: pd.DataFrame) -> Series[bool]:
        return ~frame["phone_verified"] | frame["phone"].notna()

    @pa.dataframe_check(name="no_usable_phone_for_litigator_deceased_or_dnc", ignore_na=False)
    def _callable(cls, frame: pd.DataFrame) -> Series[bool]:
        """A phone marked usable would be called: never for a litigator, a deceased owner or a DNC number."""
        blocked = frame["litigator"] | frame["deceased"] | frame["phone_in_dnc"].fillna(False).astype(bool)
        return ~(frame["phone_verified"] & blocked)

    class Config:
        coerce = True
