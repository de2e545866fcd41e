"""Column names of the participants.tsv contract (DESIGN.md), in one place."""

from __future__ import annotations

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
