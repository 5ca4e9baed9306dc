"""The base of every form: Flask-WTF's, with a CSRF field that carries no id.

Pages such as the manage page and the staff supporter page hold several forms, each with its hidden token;
WTForms would give every one of them ``id="csrf_token"``, so the id would be on the page many times. No label
or script names the hidden field, so it needs no id at all."""
from __future__ import annotations

from flask_wtf import FlaskForm


class Form(FlaskForm):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "csrf_token" in self:
            self["csrf_token"].id = False  # WTForms leaves out an attribute that is False
