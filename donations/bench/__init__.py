"""The benchmark suite (`make bench`): the app measured side by side with a reference doing the same work.

Each measurement is a module with a ``run_*`` function that returns a :class:`results.Section`; ``results.write``
merges the section into ``docs/benchmarks.json`` (replacing only its own section) and renders
``docs/benchmarks.md`` from the whole file, so measurements can be run and re-run one at a time.
"""
