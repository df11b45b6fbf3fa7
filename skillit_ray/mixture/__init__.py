"""Stage 3, mixture: the update rule, exact quotas, the paper's settings, and every strategy (`strategies/`,
one module per family, found by `registry.py`). Pure numpy: tested with toy arrays."""
