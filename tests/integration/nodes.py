"""Test fixtures only: Docker engines in containers ("nodes") on a private bridge, in one Swarm.

The lab's multi-host tests need two Docker engines. Each node is a container running `dockerd`
(overlay2 on a volume, see STORAGE_DRIVER), listening on tcp://NODE_IP:2375 on
a private user bridge; the host reaches that port through the bridge IP, nothing is published.
`docker run --privileged` fails on these machines ("unable to apply caps"), so a node gets the
recipe that works: every capability but SYS_RESOURCE, no seccomp/AppArmor confinement,
unmasked /proc and /sys paths, every device, the host's cgroup tree. These broad settings are
for the nodes only: the lab's own containers inside them keep their least-privilege specs.

The node image is Debian with docker.io, made with mmdebstrap and `docker import` (no registry),
tagged with a hash of its recipe and labelled tcplab.project=1 so `lab clean --images` removes
it. Nodes, their volumes and their bridge carry `tcplab.test-node=1` (and this session's
testcontainers label) and `tcplab.project=0`: they are not the lab's leftovers.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import docker

from lab import LABELS, PROJECT_LABEL
from lab.images import digest

NODE_LABEL = "tcplab.test-node"
NODE_REPO = "tcplab/node"
NODE_PACKAGES = ("docker.io", "iproute2", "iptables", "ca-certificates", "procps")
NODE_SUITE = "bookworm"
ENGINE_PORT = 2375
# The node's engine. Its /var/lib/docker is a volume, a plain directory on the host's own file
# system (ext4 here), not on the outer engine's fuse-overlayfs, so overlay2 works inside: with
# vfs every container start copied the whole image (15 s instead of 0.2 s per container).
# TCPLAB_NODE_STORAGE=vfs for a host whose volumes cannot take overlay2.
STORAGE_DRIVER = os.environ.get("TCPLAB_NODE_STORAGE", "overlay2")
DOCKERD = [
    "dockerd", "--storage-driver", STORAGE_DRIVER,
    "-H", "unix:///var/run/docker.sock", "-H", f"tcp://0.0.0.0:{ENGINE_PORT}",
]  # fmt: skip
NODE_SECURITY = {
    "cap_add": ["ALL"],
    "cap_drop": ["SYS_RESOURCE"],
    "security_opt": ["seccomp=unconfined", "apparmor=unconfined"],
    "device_cgroup_rules": ["a *:* rwm"],
    "tmpfs": {"/run": ""},
}
# `--security-opt systempaths=unconfined` is the CLI's: the API takes empty masked and
# read-only path lists instead.
UNMASKED_PATHS = {"MaskedPaths": [], "ReadonlyPaths": []}


def node_recipe() -> str:
    # The engine's command line is given at start, not baked in: not part of the image.
    return "\n".join([f"suite {NODE_SUITE}", "packages " + " ".join(NODE_PACKAGES)])


def node_ref() -> str:
    return f"{NODE_REPO}:{digest([('recipe', node_recipe().encode())])}"


def ensure_node_image(client: docker.DockerClient) -> str:
    """The node image, built once per machine (about 100 s cold)."""
    ref = node_ref()
    with contextlib.suppress(docker.errors.ImageNotFound):
        client.images.get(ref)
        return ref
    with tempfile.TemporaryDirectory(prefix="tcplab-node-") as tmp:
        target = str(Path(tmp) / "node.tar")
        subprocess.run(
            ["mmdebstrap", "--variant=minbase", "--include=" + ",".join(NODE_PACKAGES),
             NODE_SUITE, target],
            check=True, capture_output=True, timeout=900,
        )  # fmt: skip
        repo, tag = ref.split(":")
        changes = [
            *(f"LABEL {k}={v}" for k, v in {**LABELS, NODE_LABEL: "1"}.items()),
            "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            'CMD ["dockerd"]',
        ]
        client.api.import_image_from_file(target, repository=repo, tag=tag, changes=changes)
    client.images.get(ref)  # ImageNotFound here means the import failed
    return ref


@dataclass
class Node:
    container: object
    ip: str
    volume: str

    @property
    def url(self) -> str:
        return f"tcp://{self.ip}:{ENGINE_PORT}"

    def client(self, timeout: float = 60) -> docker.DockerClient:
        return docker.DockerClient(base_url=self.url, timeout=timeout)


def start_nodes(client: docker.DockerClient, name: str, count: int, labels: dict) -> list[Node]:
    """`count` nodes on a fresh bridge `name`, each engine answering; not yet in a Swarm."""
    # A container inherits its image's labels: without the override, the node would carry
    # tcplab.project=1 and any `lab clean` or leftover check on this engine would remove it.
    labels = {**labels, NODE_LABEL: "1", PROJECT_LABEL: "0"}
    image = ensure_node_image(client)
    client.networks.create(name, driver="bridge", labels=labels, check_duplicate=True)
    nodes = []
    for i in range(1, count + 1):
        volume = client.volumes.create(f"{name}-{i}", labels=labels).name
        host_config = client.api.create_host_config(
            binds={
                "/sys/fs/cgroup": {"bind": "/sys/fs/cgroup", "mode": "rw"},
                volume: {"bind": "/var/lib/docker", "mode": "rw"},
            },
            network_mode=name,
            **NODE_SECURITY,
        )
        created = client.api.create_container(
            image, DOCKERD, name=f"{name}-{i}", hostname=f"node{i}", labels=labels,
            host_config={**host_config, **UNMASKED_PATHS},
        )  # fmt: skip
        container = client.containers.get(created["Id"])
        container.start()
        container.reload()
        ip = container.attrs["NetworkSettings"]["Networks"][name]["IPAddress"]
        nodes.append(Node(container, ip, volume))
    for node in nodes:
        _wait_for_engine(node)
    return nodes


def _wait_for_engine(node: Node, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            c = docker.DockerClient(base_url=node.url, timeout=3)
            c.ping()
            c.close()
            return
        except Exception:
            node.container.reload()
            if node.container.status != "running" or time.monotonic() > deadline:
                tail = node.container.logs(tail=5).decode(errors="replace")
                raise RuntimeError(f"node engine {node.url} did not start: {tail}") from None
            time.sleep(0.5)


def form_swarm(nodes: list[Node]) -> None:
    """The first node initialises a Swarm, the others join it as workers."""
    manager = nodes[0].client()
    manager.swarm.init(advertise_addr=nodes[0].ip, listen_addr=f"{nodes[0].ip}:2377")
    manager.swarm.reload()
    token = manager.swarm.attrs["JoinTokens"]["Worker"]
    for node in nodes[1:]:
        c = node.client()
        c.swarm.join(remote_addrs=[f"{nodes[0].ip}:2377"], join_token=token)
        c.close()
    manager.close()


def remove_nodes(client: docker.DockerClient, name: str) -> None:
    """Every node of bridge `name`, their volumes and the bridge (never raises)."""
    for container in client.containers.list(all=True, filters={"label": f"{NODE_LABEL}=1"}):
        if container.name.startswith(f"{name}-"):
            with contextlib.suppress(docker.errors.APIError):
                container.remove(force=True, v=True)
    for volume in client.volumes.list(filters={"label": f"{NODE_LABEL}=1"}):
        if volume.name.startswith(f"{name}-"):
            with contextlib.suppress(docker.errors.APIError):
                volume.remove(force=True)
    for network in client.networks.list(names=[name], filters={"label": f"{NODE_LABEL}=1"}):
        if network.name == name:
            with contextlib.suppress(docker.errors.APIError):
                network.remove()
