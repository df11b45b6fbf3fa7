"""Stage 5, discovery: skills for a table without a skill column, from per-sample loss trajectories
(`skillit-ray discover`): the command, its Ray edges (`runs.py`) and the pure clustering."""
