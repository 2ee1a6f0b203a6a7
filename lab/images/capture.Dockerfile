# tcplab/capture: tcpdump plus the `lab` package (the compose demo analyses the pcap in here).
# Root inside the container because tcpdump opens a raw socket; the container gets NET_RAW,
# SETUID and SETGID only (tcpdump's -Z root needs the last two), nothing else.
# The code comes last, one COPY per package, from the repository's layout: Compose's context is
# the repository (.dockerignore keeps it to the packages) and lab/images.py assembles the same
# layout in memory, so a code change rebuilds only the COPY layers after it.
# BASE: `python -m lab build` passes tcplab/base:<recipe hash>; Compose passes ${TCPLAB_BASE}.
ARG BASE=tcplab/base:latest
FROM ${BASE}
ENV PYTHONPATH=/opt/tcplab PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
CMD ["tcpdump", "-p", "--immediate-mode", "-U", "-Z", "root", "-i", "eth0", "-w", "/capture/capture.pcap"]
LABEL tcplab.project=1 tcplab.role=capture
COPY wire/ /opt/tcplab/wire/
COPY lab/ /opt/tcplab/lab/
