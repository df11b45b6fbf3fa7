"""Stage 3, graph: the skills graph A from measured loss drops (paper Algorithms 2 and 3), its file and its
diagnostics. Pure numpy; the short runs that measure the drops are Ray Tune trials (`tune/graph_runs.py`)."""
