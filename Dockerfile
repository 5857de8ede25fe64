# One image with both binaries (and starlingctl); the Kubernetes manifests
# in k8s/ pick the one to run with `command`. Build with
#   docker build -t registry.example.org/starling:latest .
#
# Build stage: static binaries (no cgo), reproducible paths.
FROM golang:1.26.8 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ENV CGO_ENABLED=0 GOFLAGS=-buildvcs=false
RUN go build -trimpath -ldflags="-s -w" -o /out/starling-api ./cmd/api \
 && go build -trimpath -ldflags="-s -w" -o /out/starling-gateway ./cmd/gateway \
 && go build -trimpath -ldflags="-s -w" -o /out/starlingctl ./cmd/starlingctl

# Final stage: no shell, no package manager, CA certificates and tzdata
# only; runs as the unprivileged user 65532 and needs no writable root
# filesystem (the gateway's embedded NATS writes to STARLING_DATA_DIR, a
# volume).
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/starling-api /out/starling-gateway /out/starlingctl /usr/local/bin/
USER 65532:65532
# 8080: API (STARLING_HTTP_ADDR); 9464: gateway ops (STARLING_METRICS_ADDR);
# 4222: the gateway's embedded NATS (STARLING_EMBEDDED_NATS_ADDR).
EXPOSE 8080 9464 4222
ENTRYPOINT ["/usr/local/bin/starling-gateway"]
