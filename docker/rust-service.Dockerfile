# syntax=docker/dockerfile:1

# One image recipe for every Rust service of the depot (discovery, dispatch,
# splat-worker, rtk-base). The build context is the service's crate directory
# (Cargo.toml, optional Cargo.lock, src/); BINARY names the cargo binary:
#   docker build -f docker/rust-service.Dockerfile --build-arg BINARY=discovery <crate-dir>

# Exact versions so a rebuild gets the same toolchain and base. The runtime
# base must stay on the builder's Alpine minor release.
ARG RUST_VERSION=1.83.0
ARG ALPINE_VERSION=3.21
ARG ALPINE_PATCH=3.21.3

# =============================================================================
# Build stage
# =============================================================================
FROM rust:${RUST_VERSION}-alpine${ALPINE_VERSION} AS builder

RUN apk add --no-cache musl-dev

# Never run as a container; hadolint wants every stage to state its check.
HEALTHCHECK NONE

# Size-optimised release profile for every crate without editing its
# Cargo.toml: cargo reads these overrides from the environment. Set before the
# dependency build so the cached dependencies match the final profile.
ENV CARGO_PROFILE_RELEASE_LTO=true \
    CARGO_PROFILE_RELEASE_STRIP=true \
    CARGO_PROFILE_RELEASE_OPT_LEVEL=z \
    CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1

WORKDIR /app

# Declared after the shared layers above so they are reused across services.
ARG BINARY
RUN test -n "$BINARY" || (echo "BINARY build arg is required" >&2; exit 1)

# Dependencies first: this layer is rebuilt only when the manifests change.
COPY Cargo.toml Cargo.lock* ./
# A stub main.rs lets cargo compile just the dependencies. If the stub cannot
# build (e.g. the binary lives in src/bin/), the cache is merely cold: the
# real build below compiles everything. The compiled dependencies stay in this
# layer, so a registry cache (cache-to type=registry) carries them to fresh CI
# runners; crate downloads go to BuildKit cache mounts, so changing Cargo.lock
# fetches only what changed on a warm builder.
RUN --mount=type=cache,id=cargo-registry,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,id=cargo-git,target=/usr/local/cargo/git,sharing=locked \
    mkdir src \
 && echo 'fn main() {}' > src/main.rs \
 && (cargo build --release --bin "$BINARY" || true) \
 && rm -rf src

COPY src ./src
# COPY keeps the context's mtimes, which may be older than the stub build:
# touch the crate root (if any) so cargo cannot ship the stub binary.
RUN --mount=type=cache,id=cargo-registry,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,id=cargo-git,target=/usr/local/cargo/git,sharing=locked \
    touch -c src/main.rs \
 && cargo build --release --bin "$BINARY" \
 && mkdir -p /out \
 && cp "target/release/$BINARY" "/out/$BINARY"

# =============================================================================
# Runtime stage
# =============================================================================
FROM alpine:${ALPINE_PATCH} AS runtime

# ca-certificates for outbound TLS. The healthchecks rely on busybox wget and
# pgrep: assert they exist so a base image without them fails the build, not
# the containers. Fixed numeric ids let the deployment and volume owners refer
# to the service user without reading /etc/passwd.
RUN apk add --no-cache ca-certificates \
 && command -v wget \
 && command -v pgrep \
 && addgroup -g 10001 -S depot \
 && adduser -S -D -H -u 10001 -G depot -s /sbin/nologin depot

ARG BINARY
ARG SOURCE_URL=""
LABEL org.opencontainers.image.title="${BINARY}" \
      org.opencontainers.image.source="${SOURCE_URL}"

# Owned by root (COPY's default), mode 0755: the service can run its binary
# but not replace it.
COPY --from=builder /out/${BINARY} /usr/local/bin/${BINARY}
# One stable name for every service: exec-form ENTRYPOINT cannot expand
# ${BINARY}, and the healthcheck looks for this process name.
RUN ln -s "${BINARY}" /usr/local/bin/depot-service

ENV RUST_LOG=info
# No EXPOSE and no PORT default: ports differ per service, the workers listen
# on none, and Dockerfile syntax cannot make EXPOSE conditional on a build
# arg. An empty ENV PORT would count as set and break services that fall back
# to their own default when PORT is unset. The deployment declares the port
# and sets PORT.

# Default check; the deployment overrides it per container. With PORT set,
# probe /health; otherwise (workers) check the process is alive. Exec form
# running sh -c is the shell form spelled out (hadolint flags the shell form
# as DL3025). The anchored pgrep pattern instead of -x is deliberate: busybox
# pgrep -x tests argv[0] (/usr/local/bin/depot-service) and never falls back
# to the process name.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["/bin/sh", "-c", "if [ -n \"${PORT:-}\" ]; then wget -q -O- \"http://127.0.0.1:${PORT}/health\"; else pgrep '^depot-service$'; fi || exit 1"]

USER 10001:10001
# Exec form: the service is PID 1 and receives SIGTERM itself. PID 1 gets no
# default signal handlers, so either the service handles SIGTERM or the
# deployment runs it with an init (docker run --init).
ENTRYPOINT ["/usr/local/bin/depot-service"]
