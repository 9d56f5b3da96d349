"""pixdrop side by side with its peers, @tus/server and tuspyserver (issue 6).

``python -m bench.peers`` installs the peers into their own environments (a cache outside
the repository), makes its data, runs six scenarios in interleaved rounds and writes
``docs/benchmarks.md``. ``bench/README.md`` explains the command and every figure.
"""
