# Both binaries in one minimal image; the Deployment runs them as two containers of one Pod.
FROM golang:1.26 AS builder
ARG TARGETOS
ARG TARGETARCH
WORKDIR /workspace
# Dependencies first, so that a source change does not re-download modules.
COPY go.mod go.sum ./
RUN go mod download
COPY api/ api/
COPY cmd/ cmd/
COPY controllers/ controllers/
COPY internal/ internal/
RUN CGO_ENABLED=0 GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags='-s -w' -o /out/ ./cmd/manager ./cmd/callback

# distroless/static: no shell, no package manager; the nonroot tag runs as UID 65532.
FROM gcr.io/distroless/static:nonroot
WORKDIR /
COPY --from=builder /out/manager /out/callback /
USER 65532:65532
ENTRYPOINT ["/manager"]
