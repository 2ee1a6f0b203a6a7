"""Where the sidecars go and what each is told (pure): the orchestrator's recipe.

A round trip crosses both hosts, and each sidecar holds what arrives at its own host (or, with
netem, what leaves it), so one sidecar per end with half the RTT gives symmetric one-way delays
and a full round trip of `rtt`. Rate and loss apply in both directions that way: tbf shapes each
host's egress, and each line drops what arrives. Jitter is split like the delay.
"""

from __future__ import annotations


def _ms(value: float) -> str:
    return f"{value:g}"


def sidecar_args(
    *,
    rtt_ms: float = 0.0,
    jitter_ms: float = 0.0,
    loss_pct: float = 0.0,
    rate: str | None = None,
    ports: str = "3000-3010",
    method: str = "auto",
    seed: int | None = None,
) -> dict[str, list[str]]:
    """`python -m shaper` arguments for the sidecar in the client's and in the server's namespace.

    Each end holds half the delay and jitter. Loss means "per packet, per direction", as netem's
    does, so each end drops `loss_pct` of what it holds. Seeds differ per end so the two loss
    patterns are independent.
    """
    common = ["--ports", ports, "--method", method]
    if rate:
        common += ["--rate", rate]
    if loss_pct:
        common += ["--loss", _ms(loss_pct)]
    if rtt_ms:
        common += ["--rtt", _ms(rtt_ms / 2)]
    if jitter_ms:
        common += ["--jitter", _ms(jitter_ms / 2)]
    out = {}
    for i, role in enumerate(("client", "server")):
        extra = ["--seed", str(seed * 2 + i)] if seed is not None else []
        out[role] = [*common, *extra]
    return out
