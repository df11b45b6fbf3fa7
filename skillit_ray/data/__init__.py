"""Stage 2, data: skills -> sources -> per-skill streams -> token rows -> this rank's batch.

`sources/` (one module per kind of data, found by `sources/registry.py`) resolve the skills and open one
stream per skill; `tokens.py` and `tokenizer.py` turn text into rows; `assembly.py` takes each step's
exact per-skill counts; `storage.py` is where every file lives (local or object storage); `prepare/`
writes datasets (`skillit-ray prepare`, `corpus`).
"""
