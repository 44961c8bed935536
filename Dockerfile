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
# toolchain and git; memgate runs as an unprivileged user and puts every
# pull request's build and service in a sandbox of user, mount, pid and
# network namespaces (docker-compose.yml gives the worker the security
# options that needs; `memgate doctor` says whether it has them).
# Services' declared dependencies run from the system's programs, in the
# service's sandbox: redis-server for `kind: redis`, PostgreSQL's initdb and
# postgres for `kind: postgres` (Debian's own cluster is not made: each gate
# makes a throwaway one in its memory).
FROM golang:1.26-bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends git ca-certificates tini postgresql-common \
 && sed -i 's/^#* *create_main_cluster.*/create_main_cluster = false/' /etc/postgresql-common/createcluster.conf \
 && apt-get install -y --no-install-recommends redis-server postgresql-15 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 10001 memgate \
 && mkdir -p /var/lib/memgate/work /var/lib/memgate/cache \
 && chown -R memgate /var/lib/memgate && chmod 0711 /var/lib/memgate /var/lib/memgate/work
COPY --from=build /out/memgate /usr/local/bin/memgate
USER memgate
ENV MEMGATE_ADDR=:8080 \
    MEMGATE_WORKDIR=/var/lib/memgate/work \
    MEMGATE_CACHE_DIR=/var/lib/memgate/cache \
    GOPATH=/home/memgate/go \
    GOCACHE=/home/memgate/.cache/go-build \
    GOTOOLCHAIN=local
WORKDIR /var/lib/memgate
EXPOSE 8080
ENTRYPOINT ["/usr/bin/tini", "--", "memgate"]
CMD ["serve"]
