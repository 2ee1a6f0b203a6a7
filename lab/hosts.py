"""What each container of a run looks like: pure specs, no Docker calls.

One function per role returns the keyword arguments for the Docker SDK's `containers.run`.
Keeping them pure makes least privilege checkable without starting anything, and the runner
and the tests build containers from the same specs.

    role      network namespace        capabilities               user
    server    its own (on the run net)  none                       10001
    client    its own, or the netns     none                       10001
              holder's when shaped
    capture   the server's              NET_RAW, SETUID, SETGID    root (tcpdump drops to root
    (capture- (the client's netns       (tcpdump's privilege drop)  owner; see
     client)  holder's)                                             docs/architecture.md)
    shaper    the server's / client's   NET_ADMIN                  root
    netns     its own                   none                       10001 (holds the client's
                                                                    namespace while shapers attach)
    browser   as the client's           none                       10001 (headless Chromium,
                                                                    its sandbox off, see below)
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from lab import LABELS, RUN_LABEL

ROLE_LABEL = "tcplab.role"
LAB_UID = "10001:10001"
CAPTURE_PATH = "/tmp/capture.pcap"  # in the capture container's writable layer; read back via API
# The runner probes the bridge's own RTT with connects to this closed port (runner.py); they are
# not the experiment's traffic, so the capture leaves them out.
PROBE_PORT = 2999
CAPTURE_FILTER = f"tcp and not port {PROBE_PORT}"

# Every namespace the lab makes runs Reno, not the host's default congestion control: a new
# namespace inherits the host's (BBR on some machines, whose paced startup is not the slow start
# the model and the analysis describe), and Reno is the one a container may always pick
# (net.ipv4.tcp_allowed_congestion_control). Its slow start is CUBIC's, without HyStart.
NET_SYSCTLS = {"net.ipv4.tcp_congestion_control": "reno"}

# The overlay driver's MTU option is the underlay's: it subtracts VXLAN's 50 bytes itself, so
# 1500 gives the containers an MTU of 1450 (Docker's default on a 1500-byte LAN), an MSS of 1410.
OVERLAY_MTU_OPTION = "com.docker.network.driver.mtu"
OVERLAY_UNDERLAY_MTU = 1500
VXLAN_OVERHEAD = 50
OVERLAY_MTU = OVERLAY_UNDERLAY_MTU - VXLAN_OVERHEAD

DEFAULT_MEMORY = 512 * 1024 * 1024
DEFAULT_PIDS = 2048  # a thread per connection: the server needs room for its connection limit


@dataclass(frozen=True)
class Limits:
    memory: int | str = DEFAULT_MEMORY  # bytes, or Docker's "512m"
    pids: int = DEFAULT_PIDS


def labels(run_id: str, role: str, mode: str) -> dict[str, str]:
    return {**LABELS, RUN_LABEL: run_id, ROLE_LABEL: role, "tcplab.mode": mode}


def dns_label(name: str) -> str:
    """A Swarm network's name must be a DNS label: letters, digits and '-', at most 63
    characters. Others become '-', and a long name is cut and keeps a hash of the whole."""
    clean = re.sub(r"[^a-z0-9-]", "-", name.lower()).strip("-")
    if len(clean) <= 63 and clean == name:
        return clean
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{clean[:54].rstrip('-')}-{digest}"


def network_spec(*, run_id: str, mode: str, overlay: bool = False) -> dict:
    """The keyword arguments for the SDK's `networks.create`: one network per mode (and repeat).

    A bridge on one engine; across two engines of a Swarm, an overlay network that containers
    started by `docker run` may join (attachable), with its MTU pinned so that every run sees
    the same packet sizes whatever the engines' defaults.
    """
    spec = {
        "name": f"tcplab-{run_id}-{mode}",
        "driver": "bridge",
        "internal": True,  # the lab's hosts talk to each other and to nothing else
        "labels": labels(run_id, "network", mode),
    }
    if overlay:
        spec["name"] = dns_label(spec["name"])
        spec["driver"] = "overlay"
        spec["attachable"] = True
        spec["options"] = {OVERLAY_MTU_OPTION: str(OVERLAY_UNDERLAY_MTU)}
    return spec


def _environment(environment: dict[str, str] | None) -> dict:
    return {"environment": dict(environment)} if environment else {}


def _base(run_id: str, role: str, mode: str, limits: Limits) -> dict:
    return {
        "name": f"tcplab-{run_id}-{mode}-{role}",
        "labels": labels(run_id, role, mode),
        "detach": True,
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "privileged": False,
        "mem_limit": limits.memory,
        "pids_limit": limits.pids,
        "init": False,
        # Logs are collected with `docker logs`: a daemon's rotation (often 10m x 3) would drop
        # the head of a load run's logs (100,000 requests make about 45 MB). Bounded, but larger.
        "log_config": {"type": "json-file", "config": {"max-size": "512m", "max-file": "1"}},
    }


def server_spec(
    *,
    image: str,
    run_id: str,
    mode: str,
    network: str,
    command: list[str],
    limits: Limits,
    environment: dict[str, str] | None = None,
) -> dict:
    """`environment`: a TLS mode's certificate and key (lab.tlsca.server_environment: PEM text,
    since the root is read-only and Docker cannot copy into a tmpfs)."""
    return {
        **_environment(environment),
        **_base(run_id, "server", mode, limits),
        "image": image,
        "command": command,
        "user": LAB_UID,
        "read_only": True,
        "network": network,
        "hostname": "server",
        "sysctls": NET_SYSCTLS,
    }


def netns_spec(*, image: str, run_id: str, mode: str, network: str, limits: Limits) -> dict:
    """A do-nothing container that owns the client's network namespace.

    A shaper must be in the client's namespace before the client sends its first SYN, and a
    one-shot client container starts sending as soon as it starts: so the namespace is created
    first by this holder (like Kubernetes' pause container), the shapers join it, and only then
    does the client join it too.
    """
    return {
        **_base(run_id, "netns", mode, limits),
        "image": image,
        "entrypoint": ["python3", "-c", "import signal; signal.pause()"],
        "command": [],
        "user": LAB_UID,
        "read_only": True,
        "network": network,
        "hostname": "client",
        "sysctls": NET_SYSCTLS,
    }


def client_spec(
    *,
    image: str,
    run_id: str,
    mode: str,
    command: list[str],
    limits: Limits,
    network: str | None = None,
    netns_of: str | None = None,
    environment: dict[str, str] | None = None,
) -> dict:
    """`environment`: a TLS mode's CA certificate (lab.tlsca.client_environment), no key."""
    spec = {
        **_environment(environment),
        **_base(run_id, "client", mode, limits),
        "image": image,
        "command": command,
        "user": LAB_UID,
        "read_only": True,
    }
    if netns_of:
        spec["network_mode"] = f"container:{netns_of}"
    else:
        spec["network"] = network
        spec["hostname"] = "client"
        spec["sysctls"] = NET_SYSCTLS
    return spec


# Chromium's profile, its net-log and its shared memory (--disable-dev-shm-usage) live in /tmp,
# a tmpfs: the root stays read-only. The driver prints the net-log before it exits.
BROWSER_TMPFS = {"/tmp": "rw,nosuid,nodev,size=256m,mode=1777"}


def browser_spec(
    *,
    image: str,
    run_id: str,
    mode: str,
    command: list[str],
    limits: Limits,
    network: str | None = None,
    netns_of: str | None = None,
) -> dict:
    """The browser in the client's place: the same namespace arrangement as `client_spec`, the
    same least privilege (uid 10001, no capability, no-new-privileges, read-only root). Its own
    sandbox is off (--no-sandbox in client.browser): it needs user namespaces or a setuid
    helper, which no-new-privileges and a dropped CAP_SYS_ADMIN refuse; the container is the
    sandbox."""
    spec = client_spec(
        image=image, run_id=run_id, mode=mode, command=command, limits=limits,
        network=network, netns_of=netns_of,
    )  # fmt: skip
    base = _base(run_id, "browser", mode, limits)
    spec.update(name=base["name"], labels=base["labels"], tmpfs=dict(BROWSER_TMPFS))
    return spec


def capture_spec(
    *,
    image: str,
    run_id: str,
    mode: str,
    server_id: str,
    snaplen: int,
    limits: Limits,
    role: str = "capture",
) -> dict:
    """tcpdump in the namespace of `server_id`: the server's (role capture) or, for a capture on
    both ends, the client's namespace holder (role capture-client)."""
    # -p: no promiscuous mode; --immediate-mode -U: every packet reaches the file at once (without
    # it the last second before the stop is lost, see docs/architecture.md); -Z root keeps the file
    # root's.
    # -B: a 32 MiB kernel buffer. veth hands tcpdump GSO frames of up to 64 KiB, so the default
    # 2 MiB holds only ~30 of them and a busy machine dropped packets mid-run (seen here).
    command = [
        "-i", "eth0", "-p", "--immediate-mode", "-U", "-n", "-B", "32768",
        "-s", str(snaplen), "-Z", "root", "-w", CAPTURE_PATH, CAPTURE_FILTER,
    ]  # fmt: skip
    return {
        **_base(run_id, role, mode, limits),
        "image": image,
        "entrypoint": ["tcpdump"],
        "command": command,
        "cap_add": ["NET_RAW", "SETUID", "SETGID"],
        "network_mode": f"container:{server_id}",
    }


def shaper_spec(
    *, image: str, run_id: str, mode: str, side: str, target_id: str, command: list[str],
    limits: Limits,
) -> dict:  # fmt: skip
    return {
        **_base(run_id, f"shaper-{side}", mode, limits),
        "image": image,
        "command": command,
        # Debian's iptables (nf_tables backend) needs no NET_RAW (verified by the shaper tests)
        "cap_add": ["NET_ADMIN"],
        "network_mode": f"container:{target_id}",
    }
