"""The sources of skill data, one module each (generators, a prepared parquet directory, a table); `registry.py`
finds every `SkillSource` subclass here, so a new source is one module."""
