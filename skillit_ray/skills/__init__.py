"""Stage 2, skills: synthetic skill families (LEGO, addition, the staircase chain, lookup chains), their
word-level tokenizer and answer-token evaluation. Pure Python/numpy/torch (no Ray), so any worker can
import it. Each family is one module with a `SkillGenerator` subclass (`registry.py` finds it) and is a
data source by its name: `data.source: lego`, options `data.lego.*`.
"""
