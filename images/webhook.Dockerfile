# The admission webhook image: the cloudtaser CLI running `webhook serve`.
# Build (from the repository root):  docker build -f images/webhook.Dockerfile .
# The test environment builds the same layout without a Docker engine
# (testenv/webhook-image.ts: Debian 12's libc6/libgcc-s1/libstdc++6, node at
# /nodejs/bin/node, /app/{package.json,node_modules,dist}, USER 65532, no
# shell); keep the two in step. The Helm chart (charts/cloudtaser) runs it.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
RUN npm ci --ignore-scripts
COPY src/ src/
# The cloud SDKs are optional dependencies only `target import` uses.
RUN npx tsc -p tsconfig.build.json && npm prune --omit=dev --omit=optional

FROM gcr.io/distroless/nodejs20-debian12:nonroot
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules node_modules/
COPY --from=build /app/dist dist/
EXPOSE 8443
ENTRYPOINT ["/nodejs/bin/node", "/app/dist/bin/cloudtaser.js", "webhook", "serve"]
CMD ["--tls-cert", "/tls/tls.crt", "--tls-key", "/tls/tls.key", "--port", "8443"]
