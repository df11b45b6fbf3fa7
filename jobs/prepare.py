r"""Ray Job entry point: write skill-partitioned parquet shards from a built-in generator.

    ray job submit --working-dir . --runtime-env jobs/runtime_env.yaml \
        -- python jobs/prepare.py lego --out /tmp/skillit-lego \
        --config jobs/configs/smoke.yaml

Thin by design (style rule R2): argument parsing, `ray.init` and the work live in `skillit_ray.cli`.
The shards land on the node that runs the entrypoint (the head); copy them to s3:// or gs://
and point data.parquet.path there before training on a multi-node cluster.
Extra arguments (`--set a.b=c`, ...) are passed through unchanged.
"""

import sys

from skillit_ray.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["prepare", *sys.argv[1:]]))
