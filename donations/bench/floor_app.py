"""The app's own floor: the whole app (extensions, before/after-request hooks) with one route that does nothing.

Beside the empty Flask app it shows what the app costs every request before any view runs, so a target's gap
to the empty route splits into what every route pays and what the endpoint itself does. Benchmarks only.
"""
from donations import create_app

app = create_app()


@app.get("/bench/noop")
def noop():
    return "", 204
