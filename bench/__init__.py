"""The benchmarks: each runs from the repository root as `python -m bench.bench_<name>`.

See bench/README.md for what each measures and prints, its full and its `--smoke` mode.
"""
