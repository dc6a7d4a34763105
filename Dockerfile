# syntax=docker/dockerfile:1
# One image for every Atrium app. Which app runs is the first argument or
# ATRIUM_APP (see deploy/docker/entrypoint.sh):
#   docker build -t atrium .
#   docker run atrium client-api --config /etc/atrium/atrium.yaml
# The Helm chart runs `node dist/apps/<app>/src/main.js --config ...` directly.

ARG NODE_IMAGE=node:24-slim

# ---- build: all dependencies, compile TypeScript to dist/, drop dev deps ----
FROM ${NODE_IMAGE} AS build
WORKDIR /app
ENV npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false

# Dependencies first, so source edits do not invalidate this layer.
COPY package.json package-lock.json ./
RUN --mount=type=cache,target=/root/.npm npm ci

COPY . .
RUN npm run build \
 && npm prune --omit=dev \
 && rm -rf /root/.npm

# ---- runtime: production node_modules and dist/ only, as a non-root user ----
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    ATRIUM_DIST=/app/dist
WORKDIR /app

COPY --from=build /app/package.json /app/package-lock.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --chmod=0755 deploy/docker/entrypoint.sh /usr/local/bin/atrium-entrypoint
COPY --chmod=0755 deploy/docker/healthcheck.cjs /usr/local/bin/atrium-healthcheck

# /etc/atrium/keys and /var/lib/atrium belong to the runtime user so that a
# named volume mounted there starts with that owner (the compose `init`
# service writes the signing key into one).
RUN mkdir -p /etc/atrium/keys /var/lib/atrium \
 && chown node:node /etc/atrium/keys /var/lib/atrium

# `node` (uid 1000) comes with the base image; numeric so that Kubernetes'
# runAsNonRoot can verify it.
USER 1000:1000

EXPOSE 8080
ENTRYPOINT ["atrium-entrypoint"]
CMD []
