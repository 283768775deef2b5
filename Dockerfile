# syntax=docker/dockerfile:1
#
# vidscope images, one multi-stage file:
#   docker build --target api    -t vidscope-api .     # vidscope-api + the vidscope CLI (loadgen)
#   docker build --target worker -t vidscope-worker .  # vidscope-worker + ffmpeg
# docker-compose.observability.yml builds both. Needs BuildKit (docker compose v2 default)
# for the cache mounts.

ARG RUST_IMAGE=rust:1.95.0-slim-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

# ---------------------------------------------------------------- build
FROM ${RUST_IMAGE} AS build
WORKDIR /src
# Toolchain extras for aws-lc-sys / mimalloc (cc only; no cmake needed with aws-lc-sys >= 0.21).
RUN apt-get update \
 && apt-get install -y --no-install-recommends pkg-config \
 && rm -rf /var/lib/apt/lists/*
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked -p vidscope-api -p vidscope-worker -p vidscope-cli \
 && mkdir -p /out \
 && cp target/release/vidscope-api target/release/vidscope-worker target/release/vidscope /out/

# ---------------------------------------------------------------- runtime base
FROM ${RUNTIME_IMAGE} AS runtime
# curl only for HEALTHCHECK; ca-certificates for TLS to S3/OTLP endpoints.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl tini \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 vidscope \
 && useradd --system --uid 10001 --gid vidscope --home-dir /var/lib/vidscope --shell /usr/sbin/nologin vidscope \
 && install -d -o vidscope -g vidscope /var/lib/vidscope
ENV VIDSCOPE_DATA_DIR=/var/lib/vidscope \
    RUST_LOG=info
WORKDIR /var/lib/vidscope
USER 10001:10001
ENTRYPOINT ["/usr/bin/tini", "--"]
# Each service's image sets HEALTHCHECK_PORT to the port of its /healthz (the shell expands it
# when the check runs).
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD curl -fsS -o /dev/null "http://127.0.0.1:${HEALTHCHECK_PORT}/healthz" || exit 1

# ---------------------------------------------------------------- api
FROM runtime AS api
COPY --from=build /out/vidscope-api /out/vidscope /usr/local/bin/
ENV VIDSCOPE_ADDR=0.0.0.0:8080 \
    HEALTHCHECK_PORT=8080 \
    OTEL_SERVICE_NAME=vidscope-api
EXPOSE 8080
CMD ["vidscope-api"]

# ---------------------------------------------------------------- worker
FROM runtime AS worker
USER root
RUN apt-get update \
 && apt-get install -y --no-install-recommends ffmpeg \
 && rm -rf /var/lib/apt/lists/*
USER 10001:10001
COPY --from=build /out/vidscope-worker /usr/local/bin/
ENV VIDSCOPE_WORKER_HEALTH_ADDR=0.0.0.0:8081 \
    HEALTHCHECK_PORT=8081 \
    OTEL_SERVICE_NAME=vidscope-worker
EXPOSE 8081
CMD ["vidscope-worker"]
