"""The local runtime's readiness checks (readiness.StackProbe) on the compose runtime's containers."""

from __future__ import annotations

from dataclasses import dataclass

from sessionproof.runtimes.readiness import StackProbe
from sessionproof.topology import Node, StackConfig


class ComposeProbe(StackProbe):
    """StackProbe on the containers: their addresses, and Sentinel naming the master by its hostname."""

    def __init__(self, config: StackConfig, nodes: list[Node]):
        super().__init__(config)
        self.config = _NodesOf(config, nodes)

    def master_node(self) -> Node | None:
        view = self.sentinel_view()
        if view is None or view.master is None:
            return None
        host = view.master[0]
        return next(
            (n for n in self.config.redis_nodes if host in (n.name, n.host) or host.split(".")[0] == n.name), None
        )


@dataclass(frozen=True)
class _NodesOf:
    """What StackProbe reads of a StackConfig, with the containers' addresses in place of the local ones."""

    config: StackConfig
    nodes: list[Node]

    def _kind(self, kind: str) -> list[Node]:
        return [n for n in self.nodes if n.kind == kind and n.host]

    @property
    def redis_nodes(self) -> list[Node]:
        return self._kind("redis")

    @property
    def sentinel_nodes(self) -> list[Node]:
        return self._kind("sentinel")

    @property
    def app_nodes(self) -> list[Node]:
        return self._kind("app")

    @property
    def entry_url(self) -> str:
        return self.config.entry_url

    def get(self, name: str) -> str:
        return self.config.get(name)
