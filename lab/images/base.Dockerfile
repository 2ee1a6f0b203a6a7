# tcplab/base when a registry answers: Debian's slim image (which already leaves out docs, man
# pages and locales) plus the lab's packages. Without a registry lab/images.py makes the same
# package set with mmdebstrap and `docker import` instead.
FROM debian:bookworm-slim
ARG PACKAGES
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $PACKAGES \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/log/*.log /var/cache/debconf/*-old
ENV LANG=C.UTF-8
CMD ["/bin/bash"]
