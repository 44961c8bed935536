# memgate: one image for the server and the workers.
#
# Build stage: a static memgate binary.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/memgate ./cmd/memgate

# Runtime: workers build the services they gate, so the image keeps the Go
# toolchain and git; memgate runs as an unprivileged user.
FROM golang:1.26-bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends git ca-certificates tini \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 10001 memgate \
 && mkdir -p /var/lib/memgate/work && chown -R memgate /var/lib/memgate
COPY --from=build /out/memgate /usr/local/bin/memgate
USER memgate
ENV MEMGATE_ADDR=:8080 \
    MEMGATE_WORKDIR=/var/lib/memgate/work \
    GOPATH=/home/memgate/go \
    GOCACHE=/home/memgate/.cache/go-build \
    GOTOOLCHAIN=local
WORKDIR /var/lib/memgate
EXPOSE 8080
ENTRYPOINT ["/usr/bin/tini", "--", "memgate"]
CMD ["serve"]
