# tcplab/capture: tcpdump plus the `lab` package (the compose demo analyses the pcap in here).
# Root inside the container because tcpdump opens a raw socket; the container gets NET_RAW,
# SETUID and SETGID only (tcpdump's -Z root needs the last two), nothing else.
ARG BASE
FROM ${BASE}
ENV PYTHONPATH=/opt/tcplab PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
CMD ["tcpdump", "-p", "--immediate-mode", "-U", "-Z", "root", "-i", "eth0", "-w", "/capture/capture.pcap"]
LABEL tcplab.project=1 tcplab.role=capture
COPY code/ /opt/tcplab/
