"""pixdrop's benchmark harness: upload throughput and server memory, against baselines.

Not a test: it measures, it does not judge. Run ``python -m bench --help`` from the repository
root; ``bench/README.md`` explains every figure it prints.
"""
