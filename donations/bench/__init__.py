"""The benchmark suite (`make bench`): the app measured side by side with a reference doing the same work.

- ``load``: the servers under load (:class:`load.Gunicorn`, one set of settings for the app and its references)
  and the load generator (:func:`load.run_wrk`, wrk driven by a Lua script that reports JSON).
- ``results``: a measurement returns a :class:`results.Section`; :func:`results.write` merges it into
  ``docs/benchmarks.json`` (replacing only its own section, with its own machine, date and commit) and renders
  ``docs/benchmarks.md`` from the whole file, so measurements can be run and re-run one at a time.
- ``cli``: the ``flask --app app bench`` group; one command per measurement (``embed`` now; issue 9 adds
  ``seed``, ``renewals``, ``export``, ``outbox``…), each added to ``make bench`` in the Makefile.
- ``embed``: issue 7's embed traffic against ``empty_app``, the empty Flask route.
"""
