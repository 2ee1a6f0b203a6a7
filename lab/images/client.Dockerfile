# tcplab/client: the lab client (standard library only), unprivileged.
# Settings first and the code last: a code change rebuilds the COPY layer only.
ARG BASE
FROM ${BASE}
ENV PYTHONPATH=/opt/tcplab PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
USER 10001:10001
ENTRYPOINT ["python3", "-m", "client"]
LABEL tcplab.project=1 tcplab.role=client
COPY code/ /opt/tcplab/
