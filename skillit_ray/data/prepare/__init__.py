"""data/prepare."""
