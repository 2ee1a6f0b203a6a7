"""Two Docker engines in containers ("nodes") on a private bridge, in one Swarm, for the
session (see tests/integration/nodes.py). Removed at the end with their volumes and bridge."""

from __future__ import annotations

from collections.abc import Iterator

import docker
import pytest
from testcontainers.core.labels import LABEL_SESSION_ID, SESSION_ID

from tests.integration.nodes import Node, form_swarm, remove_nodes, start_nodes


@pytest.fixture(scope="session")
def swarm_nodes(needs_docker: None, lab_images: dict[str, str]) -> Iterator[list[Node]]:
    client = docker.from_env(timeout=120)
    name = f"tcplab-nodes-{SESSION_ID[:8]}"
    remove_nodes(client, name)
    try:
        nodes = start_nodes(client, name, 2, {LABEL_SESSION_ID: SESSION_ID})
        form_swarm(nodes)
        yield nodes
    finally:
        remove_nodes(client, name)
        client.close()
