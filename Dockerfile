# Both binaries in one minimal image; the Deployment runs them as two containers of one Pod.
# `make release` builds the same image without Docker (hack/release, from Go alone); keep the two in
# step: static binaries /manager and /callback, user 65532:65532, entrypoint /manager, the OCI
# labels below, no shell. hack/release/release_test.go checks these facts on the release image.
FROM golang:1.26 AS builder
ARG TARGETOS
ARG TARGETARCH
ARG VERSION=dev
WORKDIR /workspace
# Dependencies first, so that a source change does not re-download modules.
COPY go.mod go.sum ./
RUN go mod download
COPY api/ api/
COPY cmd/ cmd/
COPY controllers/ controllers/
COPY internal/ internal/
RUN CGO_ENABLED=0 GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH} \
    go build -trimpath -buildvcs=false \
    -ldflags="-s -w -X github.com/qrcode-operator/wechat-qrcode-operator/internal/version.Version=${VERSION}" \
    -o /out/ ./cmd/manager ./cmd/callback

# distroless/static: no shell, no package manager, CA roots and /etc/passwd; the nonroot tag runs
# as UID 65532.
FROM gcr.io/distroless/static:nonroot
ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="https://github.com/qrcode-operator/wechat-qrcode-operator" \
      org.opencontainers.image.title="wechat-qrcode-operator"
WORKDIR /
COPY --from=builder /out/manager /out/callback /
USER 65532:65532
ENTRYPOINT ["/manager"]
