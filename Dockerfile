# SPDX-License-Identifier: MIT
# docker-registry-proxy as a container image, a drop-in for the nginx-based
# docker-registry-proxy: port 3128, the CA in /ca, the cache in
# /docker_mirror_cache.
#
#   docker build -t docker-registry-proxy .
#   docker run -d --name drp -p 3128:3128 \
#       -v drp-ca:/ca -v drp-cache:/docker_mirror_cache docker-registry-proxy
#   curl http://127.0.0.1:3128/ca.crt     # the CA clients must trust
#
# Configuration: mount an INI at /etc/docker-registry-proxy/
# docker-registry-proxy.ini (see docker/docker-registry-proxy.ini for the
# one the image ships, and man 5 docker-registry-proxy.ini).
# Stopping: the daemon drains for drain_timeout (8 s), inside docker
# stop's 10 s; give a longer drain a longer --stop-timeout (compose:
# stop_grace_period; Kubernetes: terminationGracePeriodSeconds).

FROM debian:bookworm-slim AS build
RUN apt-get update && \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        build-essential autoconf automake libtool libltdl-dev pkg-config \
        libev-dev libgnutls28-dev libc-ares-dev libjansson-dev libpcre2-dev libcrypt-dev \
        libhiredis-dev
COPY . /src
WORKDIR /src
# Unit tests need Check and are run by make check outside the image; the
# image build only compiles.
RUN autoreconf -fi && \
    ./configure --prefix=/usr --sysconfdir=/etc --localstatedir=/var \
        --disable-dependency-tracking && \
    make -j"$(nproc)" && \
    make install-strip DESTDIR=/out && \
    rm -rf /out/usr/include /out/usr/lib/*/pkgconfig /out/usr/lib/pkgconfig \
        /out/usr/share/aclocal /out/usr/lib/systemd /out/etc/logrotate.d && \
    find /out -name '*.la' -delete

FROM debian:bookworm-slim
# Only the runtime libraries.
RUN apt-get update && \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        libev4 libgnutls30 libc-ares2 libjansson4 libpcre2-8-0 libltdl7 libhiredis0.14 \
        ca-certificates && \
    rm -rf /var/lib/apt/lists/* && \
    groupadd --system --gid 3128 drp && \
    useradd --system --uid 3128 --gid drp --home-dir /nonexistent \
        --shell /usr/sbin/nologin drp && \
    mkdir -p /ca /docker_mirror_cache && \
    chown drp:drp /ca /docker_mirror_cache
COPY --from=build /out/ /
COPY docker/docker-registry-proxy.ini /etc/docker-registry-proxy/docker-registry-proxy.ini
COPY docker/entrypoint.sh /usr/local/bin/docker-registry-proxy-entrypoint
COPY docker/healthcheck.sh /usr/local/bin/docker-registry-proxy-healthcheck
USER drp:drp
EXPOSE 3128
VOLUME ["/ca", "/docker_mirror_cache"]
# GET /healthz on the configured listen address (bash's /dev/tcp).
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/docker-registry-proxy-healthcheck"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/docker-registry-proxy-entrypoint"]
CMD []
