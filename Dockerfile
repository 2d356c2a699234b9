# syntax=docker/dockerfile:1
# Inventory Service image. Three stages, one pinned base (same Node patch release everywhere, so
# native addons copied between stages match the runtime's ABI):
#   build   - all dependencies + TypeScript compile to dist/
#   deps    - production dependencies only (no optional ones: the embedded PGlite database is for
#             laptops, and production refuses to start without DATABASE_URL anyway)
#   runtime - node + dist/ + production node_modules + migrations/, as the unprivileged `node` user
# Rules enforced by test/deploy/dockerfile.test.ts.
#
# --ignore-scripts: the only install scripts in the tree are esbuild's (dev only, not needed by tsc)
# and build-from-source fallbacks of @parcel/watcher / msgpackr-extract, whose prebuilt binaries
# come as optional platform packages. Nothing is compiled, so no compiler is needed anywhere.

FROM node:24.21.0-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

FROM node:24.21.0-bookworm-slim AS deps
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --omit=optional --ignore-scripts --no-audit --no-fund && npm cache clean --force

FROM node:24.21.0-bookworm-slim AS runtime
# OCI image annotations (https://github.com/opencontainers/image-spec/blob/main/annotations.md).
# CI passes the release: --build-arg VERSION=$(node -p "require('./package.json').version")
#   --build-arg REVISION=$(git rev-parse HEAD) --build-arg CREATED=$(date -u +%Y-%m-%dT%H:%M:%SZ)
ARG VERSION=0.0.0-dev
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="inventory-service" \
      org.opencontainers.image.description="Inventory Service: stock levels, reservations, transactional outbox to RabbitMQ" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="https://git.example.com/commerce/inventory-service" \
      org.opencontainers.image.documentation="https://git.example.com/commerce/inventory-service/-/blob/main/README.md" \
      org.opencontainers.image.vendor="Commerce platform, Inventory Service team" \
      org.opencontainers.image.licenses="LicenseRef-Proprietary" \
      org.opencontainers.image.base.name="docker.io/library/node:24.21.0-bookworm-slim"
ENV NODE_ENV=production
WORKDIR /app
# Files stay root-owned and read-only for the `node` user; the pod also mounts the root
# filesystem read-only and gives the process an emptyDir at /tmp.
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# package.json marks the package root: migrations/ are found relative to it at run time.
COPY package.json ./
COPY migrations ./migrations
# The admin CLI (docs/operations.md): `kubectl exec deploy/inventory-service -- inventory-admin …`.
RUN printf '#!/bin/sh\nexec node /app/dist/src/bin/admin.js "$@"\n' > /usr/local/bin/inventory-admin \
 && chmod 755 /usr/local/bin/inventory-admin
USER node
# HTTP (PORT). /metrics is on METRICS_PORT when set (9464 in deploy/k8s), else on this port.
EXPOSE 8080
# For docker/compose; Kubernetes ignores it and uses the probes in deploy/k8s.
HEALTHCHECK --interval=30s --timeout=3s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 8080) + '/health/live').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# node as PID 1 receives SIGTERM directly (no npm/sh wrapper swallowing it) for graceful shutdown.
CMD ["node", "dist/src/main.js"]
