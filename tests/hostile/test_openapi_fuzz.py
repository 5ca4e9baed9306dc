"""Schemathesis against the API's own OpenAPI document (GET /api/v1/openapi.json): valid and invalid requests
generated from the document; no 5xx, and every answer's status code and body as the document describes them."""
from __future__ import annotations

import schemathesis
from hypothesis import settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.hostile.fuzzing import HOSTILE

OPENAPI_URL = "/api/v1/openapi.json"


from tests.hostile.forms import route_app

#: The document is read from an app built at collection time (it needs no database), so that Schemathesis can make
#: one test per operation; the requests go to the test session's app (its database) through ``session``.
schema = schemathesis.openapi.from_wsgi(OPENAPI_URL, route_app())


@schema.parametrize()
@settings(HOSTILE)
def test_the_api_answers_as_its_openapi_document_says(case, world, app):
    case.call_and_validate(session=app.test_client(), checks=[not_a_server_error, status_code_conformance, content_type_conformance,
                                   response_schema_conformance])
