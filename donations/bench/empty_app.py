"""The reference for the embed measurement: a Flask app with one empty route and nothing else.

Served by the same gunicorn settings as the app, so that the ratio between the two is what the app's own work
costs (extensions, hooks, the view), not what the server or the machine costs.
"""
from flask import Flask

app = Flask(__name__)


@app.route("/", methods=["GET", "POST"])
def empty():
    return "", 204
