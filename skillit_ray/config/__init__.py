"""Stage 1, config: the typed schema of a job (one dataclass per section), YAML + `--set` loading, key docs.

Every command starts here (`job.load_config`); no Ray, no torch. A source's or a strategy's own options
are typed by their stage (`plugins.py`, `loading.OPTION_SECTIONS`).
"""
