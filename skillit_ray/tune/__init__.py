"""Stage 5, tune: every Ray Tune driver: the skills graph's short runs (`graph_runs.py`), the eta / rounds /
window search (`search.py`), graph -> search -> train (`pipeline.py`), and the demo."""
