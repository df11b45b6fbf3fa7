"""The data layer: skills -> sources -> per-skill streams -> token rows -> this rank's batch.

Mental model (one module per step, in flow order):

1. `interface.py` and `sources.py`: `resolve_skills(config)` asks the configured source (`SOURCES`:
   generators, a prepared parquet directory, a table read as is (`table.py`)) which skills exist,
   settles the training and evaluation skills, checks the data before Ray starts, and returns a
   `SkillSetup` that every worker receives. A source also gives the tokenizer, the fixed validation
   sets and curriculum pool items. A new source is one `SkillSource` subclass and one `SOURCES` line.
   `resolve.py` (`resolve_run`) adds the tokenizer checks and the data shape chosen from the data;
   `text_tokenizer.py` trains, converts and checks text tokenizers.
2. `streams.py`: one stream per skill on every worker (`take(count, first_global_index)`); parquet
   is read by one of two interchangeable readers (`PARQUET_READERS`: Ray Data or pyarrow).
3. `tokens.py`: texts -> fixed-length token rows (padded or packed), seeded row and file orders.
4. `assembly.py`: `BatchAssembler` takes each step's exact per-skill counts for this rank.

The mixture (weights -> counts) is not here: `quotas.py` and `plans.py` decide what each step takes.
"""
