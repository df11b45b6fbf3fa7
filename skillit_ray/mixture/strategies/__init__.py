"""Every data-selection strategy, one module per family; `mixture/registry.py` finds them here."""
