# tcplab/shaper: the network-conditions sidecar. Root inside the container because tc and
# iptables need it; the container gets NET_ADMIN (and NET_RAW) only, nothing else.
ARG BASE
FROM ${BASE}
ENV PYTHONPATH=/opt/tcplab PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
ENTRYPOINT ["python3", "-m", "shaper"]
LABEL tcplab.project=1 tcplab.role=shaper
COPY code/ /opt/tcplab/
