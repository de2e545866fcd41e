"""tle-kedro: early seizure recurrence after temporal lobe epilepsy surgery (TransEpRelap)."""

__version__ = "0.1.0"
