# syntax=docker/dockerfile:1
#
# perpass: one image for every process of the production topology —
#   fleet collector | consumer | migrate | alerts | report | prices | demo
# (and `fleet start`, the embedded all-in-one with chDB).
#
# Node runs the TypeScript sources directly (type stripping, Node >= 22.18),
# so there is no build step: the image is the sources plus production
# dependencies.
#
# linux/amd64 and linux/arm64: chDB's native library (embedded mode,
# `fleet start`) is a prebuilt optional package per platform
# (@chdb/lib-linux-x64-gnu, @chdb/lib-linux-arm64-gnu) pinned in
# package-lock.json. It needs glibc, hence Debian slim and never Alpine.

ARG NODE_IMAGE=node:24-slim

# ---------------------------------------------------------------- deps
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# Production dependencies only, exactly as locked. --ignore-scripts skips the
# root package's `prepare` (a TypeScript build of the SDK for npm consumers,
# a dev step needing devDependencies); no runtime dependency needs an
# install script (chDB's library is a prebuilt package, not a download).
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
 && npm cache clean --force
# Fail the build, not the first `fleet start`, if chDB's native library for
# this platform is missing or cannot load on this libc (require loads it).
RUN node -e "require('chdb')"

# ---------------------------------------------------------------- runtime
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production
WORKDIR /app
# Code and dependencies belong to root and are read-only to the process.
COPY --from=deps /app/node_modules ./node_modules
COPY . .
# The only writable place: the embedded store's directory (`fleet start`,
# FLEET_DATA_DIR=/app/data). Mount a volume there to keep it.
RUN mkdir -p /app/data && chown node:node /app/data
# The `node` user (uid 1000) of the official image: never root.
USER node
# OTLP/HTTP receiver, embedded query endpoint, /metrics of consumer and alerts.
EXPOSE 4318 8123 9464
ENTRYPOINT ["node", "bin/fleet.js"]
CMD ["--help"]
