# syntax=docker/dockerfile:1
# srt-gw's gateway, `srt-gw serve`, as a container image for a fleet of agents (docs/fleet.md).
# The image runs the gateway only: `srt-gw run` (the jail) needs bubblewrap, nftables and the native
# helpers on a host, not in a container.
#
#   docker build -t srt-gw .
#   docker run --read-only -v srt-gw-state:/var/lib/srt-gw --tmpfs /tmp \
#     -v "$PWD/policy.yaml:/etc/srt-gw/policy/policy.yaml:ro" -p 8080:8080 -p 9464:9464 srt-gw
#
# test/e2e/deploy-dockerfile.test.ts checks this file and runs its ENTRYPOINT + CMD the way the
# image would: the packed package with production dependencies only, as UID 10001, on a read-only
# root with only the volumes writable.
ARG NODE_IMAGE=node:20-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
# --ignore-scripts: the package's install hook compiles the jail's native helpers (C), which the
# gateway never uses; without it the build needs no compiler.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY . .
# The files a user's `npm install srt-gw` gets (package.json "files"), with production
# dependencies only, exactly as the lockfile pins them.
RUN npm run build \
 && npm pack --silent --pack-destination /tmp \
 && mkdir -p /opt/srt-gw \
 && tar -xzf /tmp/srt-gw-*.tgz -C /opt/srt-gw --strip-components=1 --no-same-owner \
 && cp package-lock.json /opt/srt-gw/ \
 && cd /opt/srt-gw \
 && npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
 && rm package-lock.json

FROM ${NODE_IMAGE} AS runtime
# The CA and srt-gw's state directory ($XDG_STATE_HOME/srt-gw: the signing key of issued client
# tokens) live in the state volume. The code cache is off: it would be written beside the code,
# which is read-only here. HOME does not exist: nothing may depend on writing there.
ENV NODE_ENV=production \
    SRT_GW_CA_DIR=/var/lib/srt-gw/ca \
    XDG_STATE_HOME=/var/lib \
    SRT_GW_CODE_CACHE=0 \
    HOME=/nonexistent
RUN groupadd --system --gid 10001 srt-gw \
 && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin srt-gw \
 && install -d -o 10001 -g 10001 -m 0700 /var/lib/srt-gw \
 && install -d -m 0755 /etc/srt-gw/policy
COPY --from=build /opt/srt-gw /opt/srt-gw
WORKDIR /opt/srt-gw
USER 10001:10001
# The only writable places: the CA and state, and /tmp. The root file system can be read-only.
VOLUME ["/var/lib/srt-gw", "/tmp"]
# 8080: the proxy agents point HTTPS_PROXY at. 9464: /metrics, /healthz, /readyz.
EXPOSE 8080 9464
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:9464/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["node", "/opt/srt-gw/dist/bin/srt-gw.js"]
# The policy is mounted at /etc/srt-gw/policy (a ConfigMap in Kubernetes); none is built in, so a
# container started without one exits with status 2 instead of serving.
CMD ["serve", "--policy", "/etc/srt-gw/policy/policy.yaml", "--listen", "0.0.0.0:8080", "--metrics", "0.0.0.0:9464", "--ca-dir", "/var/lib/srt-gw/ca"]
