# tcplab/browser: headless Chromium (Debian's own package) driven by client.browser, unprivileged.
# Built only when a scenario has a mode with `client: browser` (or `lab build --browser`):
# Chromium and its libraries are most of the image. apt runs in the build against Debian's
# mirror (no registry: FROM is the lab's own base); --no-install-recommends keeps fonts, the
# sandbox helper and the desktop integration out. The dpkg trim rules of the base apply here
# too (no docs, man pages or locales).
# Chromium runs as uid 10001 with its own sandbox off (--no-sandbox): the sandbox needs user
# namespaces or a setuid helper, and the container is the sandbox (no capabilities, read-only
# root, a tmpfs for the profile).
# The code comes last, one COPY per package, from the repository's layout (see client.Dockerfile).
# BASE: `python -m lab build` passes tcplab/base:<recipe hash>; Compose passes ${TCPLAB_BASE}.
ARG BASE=tcplab/base:latest
FROM ${BASE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/log/*.log /var/cache/debconf/*-old
ENV PYTHONPATH=/opt/tcplab PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 HOME=/tmp
USER 10001:10001
ENTRYPOINT ["python3", "-m", "client.browser"]
LABEL tcplab.project=1 tcplab.role=browser
COPY wire/ /opt/tcplab/wire/
COPY client/ /opt/tcplab/client/
