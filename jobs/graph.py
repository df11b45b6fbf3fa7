r"""Ray Job entry point: learn the skills graph with parallel short runs (Ray Tune).

    ray job submit --working-dir . --runtime-env jobs/runtime_env.yaml \
        -- python jobs/graph.py --config jobs/configs/lego_paper.yaml

Thin by design (style rule R2): argument parsing, `ray.init` and the work live in `skillit_ray.cli`.
Extra arguments (`--set a.b=c`, ...) are passed through unchanged.
"""

import sys

from skillit_ray.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["graph", *sys.argv[1:]]))
