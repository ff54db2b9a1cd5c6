# syntax=docker/dockerfile:1
#
# Container image of partnercenter-exporter.
#
#   docker build -t partnercenter-exporter:dev \
#       --build-arg PARTNERCENTER_EXPORTER_REVISION="$(git rev-parse --short HEAD)" .
#
# Stages:
#   chef     the Rust toolchain and cargo-chef, both pinned.
#   planner  reduces Cargo.toml and Cargo.lock to a dependency "recipe".
#   build    compiles the dependencies from the recipe (a layer that is rebuilt
#            only when the dependencies change), then the exporter with exactly
#            the command CI compiles: `cargo build --release --locked`.
#   runtime  distroless: glibc, CA certificates and a non-root user; no shell,
#            no package manager. The binary verifies TLS against the system CA
#            store, which this image provides.
#
# The base images are pinned by tag and digest; update both together
# (docs/deployment.md, "Container image").

FROM rust:1.95.0-slim-bookworm@sha256:d7482085ff5b415f84dba5647ae71606650bdef00db7aeb69f4b3d170c3e4082 AS chef
RUN cargo install cargo-chef --locked --version 0.1.78
WORKDIR /src

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS build
COPY --from=planner /src/recipe.json recipe.json
# Same profile, features and lock file as the real build below, so this layer
# holds every compiled dependency.
RUN cargo chef cook --release --locked --recipe-path recipe.json
COPY . .
# Becomes the `revision` label of partnercenter_exporter_build_info.
ARG PARTNERCENTER_EXPORTER_REVISION=unknown
RUN cargo build --release --locked \
    && install -D -m 0755 target/release/partnercenter-exporter /out/partnercenter-exporter \
    && install -d -m 0700 /out/state

FROM gcr.io/distroless/cc-debian12:nonroot@sha256:9dac0a79194e45a7da0158a9c6da57b217585af0786db3845d1f0ec1a0dd182f AS runtime
LABEL org.opencontainers.image.title="partnercenter-exporter" \
      org.opencontainers.image.description="Prometheus exporter for Microsoft Partner Center (CSP) service costs" \
      org.opencontainers.image.source="https://github.com/partnercenter-exporter/partnercenter-exporter" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/partnercenter-exporter /usr/local/bin/partnercenter-exporter
# The state directory (rotated refresh token, snapshot cache), owned by the
# runtime user so that a named volume mounted here starts out writable.
COPY --from=build --chown=65532:65532 /out/state /var/lib/partnercenter-exporter
USER 65532:65532
EXPOSE 10026
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/partnercenter-exporter"]
