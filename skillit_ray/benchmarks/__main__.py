"""`python -m skillit_ray.benchmarks NAME [args]`: run one registered benchmark (`--help` lists them)."""

from skillit_ray.benchmarks.registry import main

raise SystemExit(main())
