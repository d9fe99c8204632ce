# A Go bridge built from its published Go module at a pinned version, on a Debian
# base, for hosts that cannot pull the upstream image or want their own. One recipe
# for every Go bridge: the role passes the module, its version, the package to build
# and the module's checksum. The layout matches the upstream images for the role:
# the binary at /usr/bin/<BINARY_NAME>, data under /data, uid/gid 1337.
#
# Go: Debian bookworm's own golang is too old for the bridges, so the builder takes
# golang from bookworm-backports and lets the go command fetch the pinned toolchain
# (GO_TOOLCHAIN) from the Go module proxy, like any module.
#
# Build context: this file plus build-ca.pem, an extra CA bundle for a TLS-intercepting
# proxy (or an empty file). It is used in the builder stage only.
ARG BASE_IMAGE=debian:bookworm-slim

FROM ${BASE_IMAGE} AS builder
# The backports suite on the base image's own Debian mirror (either sources format).
RUN set -eu; \
    mirror="$(cat /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null \
      | grep -Eo '(https?|file)://[^ ]+/debian/?( |$)' | head -n 1 | tr -d ' ')"; \
    test -n "$mirror" || { echo "no Debian mirror in the base image's apt sources" >&2; exit 1; }; \
    echo "deb ${mirror} bookworm-backports main" \
      > /etc/apt/sources.list.d/switchboard-backports.list; \
    apt-get update; \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      -t bookworm-backports golang-1.23-go; \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ca-certificates gcc g++ libc6-dev libolm-dev; \
    apt-get clean; rm -rf /var/lib/apt/lists/*

# Kept before the bridge's own arguments, so every Go bridge shares these layers.
ARG GO_TOOLCHAIN=go1.26.8
ENV PATH=/usr/lib/go-1.23/bin:/root/go/bin:$PATH \
    GOTOOLCHAIN=${GO_TOOLCHAIN} \
    CGO_ENABLED=1 \
    GOFLAGS=-trimpath
COPY build-ca.pem /tmp/build-ca.pem
RUN set -eu; \
    if [ -s /tmp/build-ca.pem ]; then cat /tmp/build-ca.pem >> /etc/ssl/certs/ca-certificates.crt; fi; \
    go version

ARG GO_MODULE
ARG GO_MODULE_VERSION
ARG GO_PACKAGE=.
ARG GO_BUILD_TAGS=
ARG BINARY_NAME
# As `go install MODULE/PACKAGE@VERSION` does: the module at that version, checked
# against the Go checksum database, built in its own directory so that its go.mod
# (replacements included) and go.sum decide and check every dependency.
RUN set -eu; \
    test -n "$GO_MODULE" -a -n "$GO_MODULE_VERSION" -a -n "$BINARY_NAME"; \
    go mod download -json "$GO_MODULE@$GO_MODULE_VERSION" > /tmp/module.json \
      || { cat /tmp/module.json >&2; exit 1; }; \
    dir="$(sed -n 's/^\t"Dir": "\(.*\)",$/\1/p' /tmp/module.json)"; \
    go build -C "$dir" -tags "$GO_BUILD_TAGS" \
      -ldflags "-s -w -X main.Tag=$GO_MODULE_VERSION" \
      -o "/build/$BINARY_NAME" "$GO_PACKAGE"; \
    "/build/$BINARY_NAME" --version

FROM ${BASE_IMAGE}
ARG BINARY_NAME
ARG GO_MODULE_VERSION
# What the bridge needs at run time besides its binary (ffmpeg for WhatsApp's media).
ARG RUNTIME_PACKAGES="ca-certificates libolm3"
LABEL org.opencontainers.image.title="${BINARY_NAME}" \
      org.opencontainers.image.description="${BINARY_NAME}, built from its Go module" \
      org.opencontainers.image.version="${GO_MODULE_VERSION}"
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${RUNTIME_PACKAGES} \
 && apt-get clean && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 1337 mautrix \
 && useradd --uid 1337 --gid 1337 --no-create-home --home-dir /data --shell /usr/sbin/nologin mautrix \
 && mkdir /data && chown 1337:1337 /data
COPY --from=builder /build/${BINARY_NAME} /usr/bin/${BINARY_NAME}
ENV BINARY_NAME=${BINARY_NAME}
USER 1337:1337
WORKDIR /data
VOLUME ["/data"]
# The shell form, so the binary's name comes from the build.
CMD exec "/usr/bin/$BINARY_NAME" -c /config/config.yaml --no-update
