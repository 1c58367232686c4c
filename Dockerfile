# syntax=docker/dockerfile:1
#
# PiCloud in a container: one static binary on a distroless base.
#
#   docker buildx build --platform linux/amd64,linux/arm64 -t registry.example.com/picloud:0.1.0 --push .
#   docker run --rm -e DATABASE_URL=postgres://... -p 8080:8080 registry.example.com/picloud:0.1.0 serve
#
# docs/deploy/README.md covers Caddy and Kubernetes. docs/deploy/validate_test.go
# checks this file (non-root user, CGO_ENABLED=0, the Go version against
# go.mod) and runs its `go build` line for both platforms.

# Keep at or above the go directive of go.mod (the validation test checks it).
ARG GO_VERSION=1.26.8

# The build stage runs on the builder's own platform and cross-compiles: with
# cgo off, Go needs no emulation to produce the other architecture, so a
# multi-platform build costs two native compiles instead of one under QEMU.
FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
ARG TARGETOS=linux
ARG TARGETARCH
WORKDIR /src
# Dependencies first: this layer survives changes to the source.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
# Static (no libc, so it runs on a base without one), reproducible paths, no
# symbol table or DWARF.
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -ldflags='-s -w' -o /out/picloud ./cmd/picloud

# distroless/static: CA certificates (scripts make outbound HTTPS requests
# through http.request), /etc/passwd with the nonroot user, tzdata; no shell,
# no package manager. The binary also embeds its own zone database
# (time/tzdata), which cron schedules use. Pin a digest in production:
#   FROM gcr.io/distroless/static-debian12:nonroot@sha256:...
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/picloud /usr/local/bin/picloud
# Nothing else is needed in the image for the sandboxes: a worker runs each
# Lua invocation in a child process that is this same binary re-executed
# (os.Executable, then executor.RunSandboxIfChild at the top of main), with
# a clean environment and its own memory limit. Those children live in the
# same container, so the container's memory limit must cover them (see
# docs/deploy/README.md). Nothing is written to the file system, so the
# container runs with a read-only root file system.
#
# 65532 is distroless's nonroot user; numeric, so that Kubernetes can verify
# runAsNonRoot without reading /etc/passwd.
USER 65532:65532
# Listen on every interface: the binary's own default, 127.0.0.1:8080, is
# unreachable from outside the container. A worker ignores it; it serves
# probes only on PICLOUD_HEALTH_ADDR.
ENV PICLOUD_ADDR=0.0.0.0:8080
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/picloud"]
# serve: API and worker in one process. Use `api`, `worker` or `migrate` for
# the split roles.
CMD ["serve"]
