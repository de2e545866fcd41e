"""Column names of the participants.tsv contract (DESIGN.md), in one place."""

from __future__ import annotations

import re

PARTICIPANT_ID_PATTERN = r"^sub-[A-Za-z0-9]+$"
_ID_RE = re.compile(PARTICIPANT_ID_PATTERN)

NUMERIC_COLUMNS: tuple[str, ...] = (
    "age_at_onset_months",
    "age_at_surgery_months",
    "epilepsy_duration_months",
    "seizure_frequency_per_month",
)
# History items, 0/1.
BINARY_COLUMNS: tuple[str, ...] = (
    "febrile_seizures",
    "secondary_generalization",
    "early_brain_injury",
    "family_history",
    "hypoxia",
    "cns_infection",
    "head_trauma",
    "prior_surgery",
)


def is_valid_participant_id(value: object) -> bool:
    """True for a string matching ``^sub-[A-Za-z0-9]+$`` (so it cannot escape the folder)."""
    return isinstance(value, str) and _ID_RE.fullmatch(value) is not None
