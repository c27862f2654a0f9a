"""The engine helpers: listing containers while others come and go."""

from __future__ import annotations

import pytest
from docker.errors import NotFound

from chaos.stack.engine import list_containers


class Containers:
    """The SDK's `containers.list` as it behaves when a listed container is removed before the SDK
    inspects it: NotFound for a container the next listing no longer names."""

    def __init__(self, races: int):
        self.races, self.calls = races, []

    def list(self, **kwargs):
        self.calls.append(kwargs)
        if len(self.calls) <= self.races:
            raise NotFound("No such container: 57078f28d482")
        return ["still-there"]


class Client:
    def __init__(self, races: int):
        self.containers = Containers(races)


def test_a_container_removed_while_listing_does_not_fail_the_listing():
    client = Client(races=2)
    assert list_containers(client, all=True, filters={"label": "x"}) == ["still-there"]
    assert client.containers.calls[-1] == {"all": True, "filters": {"label": "x"}}


def test_an_engine_that_keeps_failing_is_not_hidden():
    with pytest.raises(NotFound):
        list_containers(Client(races=99))
