# tcplab/client: the lab client (standard library only), unprivileged.
# The code comes last, one COPY per package, from the repository's layout: Compose's context is
# the repository (.dockerignore keeps it to the packages) and lab/images.py assembles the same
# layout in memory, so a code change rebuilds only the COPY layers after it.
# BASE: `python -m lab build` passes tcplab/base:<recipe hash>; Compose passes ${TCPLAB_BASE}.
ARG BASE=tcplab/base:latest
FROM ${BASE}
ENV PYTHONPATH=/opt/tcplab PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
USER 10001:10001
ENTRYPOINT ["python3", "-m", "client"]
LABEL tcplab.project=1 tcplab.role=client
COPY wire/ /opt/tcplab/wire/
COPY client/ /opt/tcplab/client/
