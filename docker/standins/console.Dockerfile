# The console stand-in: Debian's nginx configured as the official nginx image runs it (the
# master as root binds port 80, workers as the nginx user, temp paths under /var/cache/nginx,
# the pid in /var/run, logs to stdout and stderr), with busybox wget for the healthcheck.
ARG BASE
FROM ${BASE}

RUN groupadd --system nginx \
 && useradd --system --gid nginx --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin nginx \
 && mkdir -p /usr/share/nginx/html /var/cache/nginx \
 && ln -sf /dev/stdout /var/log/nginx/access.log \
 && ln -sf /dev/stderr /var/log/nginx/error.log \
 && ln -s /bin/busybox /usr/local/bin/wget

COPY console-nginx.conf /etc/nginx/nginx.conf

HEALTHCHECK NONE
STOPSIGNAL SIGQUIT
EXPOSE 80
CMD ["nginx", "-g", "daemon off;"]
