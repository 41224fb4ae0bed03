"""schemathesis against the live API's own OpenAPI document: no request the schema allows, with an
admin or a read token, gets a server error (5xx)."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as examples

from autoresearch.adapters.db import SqlStore
from autoresearch.domain.model import Scope
from tests.test_api import Api, api, database_url, grow, settings  # noqa: F401  (fixtures this module shares)


@pytest.mark.postgres
@pytest.mark.timeout(600)
def test_no_request_the_schema_allows_gets_a_server_error(api: Api, store: SqlStore) -> None:  # noqa: F811
    grow(store, "fuzzed", 20)  # a campaign with trials, so routes reach past their 404s
    schema = schemathesis.openapi.from_url(f"{api.url}/api/v1/openapi.json")
    schema = schema.exclude(path_regex="/events$")  # a stream that never ends by itself
    errors: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 25  # the whole API, not a corner of it

    for operation in operations:

        @given(case=operation.as_strategy())
        @examples(max_examples=15, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def call(case: schemathesis.Case) -> None:
            for scope in (Scope.ADMIN, Scope.READ):
                response = case.call(headers={"Authorization": f"Bearer {api.secrets[scope]}"})
                if response.status_code >= 500:
                    errors.append(f"{case.method} {case.formatted_path} ({scope}): {response.status_code}")

        call()
    assert errors == []
