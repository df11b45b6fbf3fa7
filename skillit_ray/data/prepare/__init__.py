"""Writing datasets before training: synthetic shards (`generators.py`), a table's per-skill shards with a
validation split and a tokenizer (`table.py`), a real-text corpus from the installed packages (`corpus.py`).
Pure: no Ray."""
