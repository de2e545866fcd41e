"""data/demo."""
