"""Synthetic skills (LEGO, addition, the staircase chain, lookup chains), their word-level tokenizer and
answer-token evaluators.

Place in the flow: **generators** -> tokenizer -> data streams -> training/eval. Everything
here is pure Python/numpy/torch (no Ray) so that any worker can import it.

Use `get_skill_generator("lego", num_variables=5)` or `get_skill_generator("addition")`.
"""
