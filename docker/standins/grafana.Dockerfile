# The grafana stand-in: what the official grafana image promises the deployment, from busybox.
# /api/health on port 3000, user 472, the admin password read from
# GF_SECURITY_ADMIN_PASSWORD__FILE, its state written under /var/lib/grafana.
ARG BASE
FROM ${BASE} AS debian
HEALTHCHECK NONE
# Marks this stage's untagged image, which the tier removes after the build.
LABEL depot.standin-stage="busybox"

FROM scratch
COPY --from=debian /bin/busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
RUN mkdir -p /tmp /var/lib/grafana /usr/share/grafana/public/api /etc \
 && echo '{"database": "ok"}' > /usr/share/grafana/public/api/health \
 && echo 'root:x:0:0:root:/root:/bin/sh' > /etc/passwd \
 && echo 'grafana:x:472:0:grafana:/usr/share/grafana:/bin/sh' >> /etc/passwd \
 && echo 'root:x:0:' > /etc/group \
 && chown 472:0 /var/lib/grafana \
 && chmod 1777 /tmp
COPY grafana-standin.sh /run.sh

HEALTHCHECK NONE
USER 472:0
EXPOSE 3000
ENTRYPOINT ["/run.sh"]
