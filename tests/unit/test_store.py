"""How the app's Redis client is wired: Sentinel discovery, timeouts, retries, error classes."""

from __future__ import annotations

import pytest
from redis.exceptions import ConnectionError, ResponseError

from sessionproof_app import store


def test_the_master_client_has_timeouts_and_a_retry_policy():
    client = store.connect_master({"REDIS_RETRIES": "4", "REDIS_SOCKET_TIMEOUT_S": "0.3"})
    kwargs = client.connection_pool.connection_kwargs
    assert kwargs["socket_timeout"] == 0.3
    assert kwargs["socket_connect_timeout"] == 0.25
    assert kwargs["retry"].get_retries() == 4
    assert client.connection_pool.service_name == "sessionproof"


@pytest.mark.parametrize(
    ("error", "unavailable"),
    [
        (ConnectionError("refused"), True),
        (ResponseError("NOREPLICAS Not enough good replicas to write."), True),
        (ResponseError("LOADING Redis is loading the dataset in memory"), True),
        (ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"), False),
        # The same replies inside a pipeline, as redis-py annotates them.
        (
            ResponseError(
                "Command # 1 (GETEX sp:session:x EX 1800) of pipeline caused error: NOREPLICAS Not enough good replicas"
            ),
            True,
        ),
        (ResponseError("Command # 2 (GET k) of pipeline caused error: WRONGTYPE Operation against a key"), False),
        (ResponseError("ERR unknown command 'NOREPLICASX'"), False),
    ],
)
def test_store_errors_are_classified(error, unavailable):
    assert store.is_store_unavailable(error) is unavailable
