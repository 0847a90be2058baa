# The stand-in for the depot's Rust services (discovery, dispatch): what
# docker/rust-service.Dockerfile promises, from busybox instead of a crate. /health on $PORT,
# the entrypoint /usr/local/bin/depot-service, the numeric user 10001, nothing written outside
# the tmpfs paths. BASE is the debootstrap image: its static busybox is the only binary.
ARG BASE
FROM ${BASE} AS debian
HEALTHCHECK NONE
# Marks this stage's untagged image, which the tier removes after the build.
LABEL depot.standin-stage="busybox"

FROM scratch
COPY --from=debian /bin/busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
# /tmp world-writable and /var/run a link to /run, as in Alpine: a tmpfs mounted there takes
# the mode of the directory it covers.
RUN mkdir -p /tmp \
 && chmod 1777 /tmp \
 && mkdir -p /run /srv/www /etc /var \
 && ln -s /run /var/run \
 && echo ok > /srv/www/health \
 && echo 'root:x:0:0:root:/root:/bin/sh' > /etc/passwd \
 && echo 'depot:x:10001:10001:depot:/nonexistent:/sbin/nologin' >> /etc/passwd \
 && printf 'root:x:0:\ndepot:x:10001:\n' > /etc/group
COPY rust-service-standin.sh /usr/local/bin/depot-service

HEALTHCHECK NONE
USER 10001:10001
ENTRYPOINT ["/usr/local/bin/depot-service"]
