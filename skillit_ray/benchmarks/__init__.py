"""Stage 6, benchmarks: every measurement that backs a claim, one module each, found by `registry.py` and run as
`python -m skillit_ray.benchmarks NAME`. Nothing of the runtime imports this package."""
