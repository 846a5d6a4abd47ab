"""Benchmarks of the fake: throughput against bare Starlette, memory per job, scaling. Run `python -m benchmarks`."""
