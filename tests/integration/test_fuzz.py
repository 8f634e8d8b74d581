"""The session contract fuzzed on the live stack: schemathesis generates requests from its OpenAPI description.

Pass: no 5xx other than 503 (which must carry Retry-After), and every 4xx is JSON with an `error` field.
Bounded: FUZZ_EXAMPLES examples per operation, and the test's own timeout.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from sessionproof import REPO_ROOT

pytestmark = pytest.mark.stack

FUZZ_EXAMPLES = 100
schema = schemathesis.openapi.from_path(REPO_ROOT / "services/app/sessionproof_app/openapi.json")


def test_the_description_is_what_the_app_serves(healthy_stack):
    import requests

    served = requests.get(f"{healthy_stack.config.entry_url}/openapi.json", timeout=5)
    assert served.status_code == 200 and served.headers["Content-Type"] == "application/json"
    assert served.json() == schema.raw_schema


@pytest.mark.timeout(300)
@schema.parametrize()
@settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_5xx_but_503_and_every_4xx_is_json_with_an_error(case, stack):
    response = case.call(base_url=stack.config.entry_url, timeout=10)
    where = f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:300]}"
    header = {name.lower(): values[0] for name, values in response.headers.items()}  # schemathesis: name -> [values]
    assert response.status_code < 500 or response.status_code == 503, where
    if response.status_code == 503:
        assert header.get("retry-after"), where
    if 400 <= response.status_code < 500:
        assert header.get("content-type", "").startswith("application/json"), where
        body = response.json()
        assert isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"], where
