r"""Ray Job entry point: one Skill-it training run (Ray Train workers + mixture-sampler actor).

    ray job submit --working-dir . --runtime-env jobs/runtime_env.yaml \
        -- python jobs/train.py --config jobs/configs/lego_paper.yaml

Thin by design (style rule R2): argument parsing, `ray.init` and the work live in `skillit_ray.cli`.
Extra arguments (`--set a.b=c`, ...) are passed through unchanged.
"""

import sys

from skillit_ray.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["train", *sys.argv[1:]]))
