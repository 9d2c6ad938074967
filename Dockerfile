# The cdcrecon worker image: a static binary on a distroless base.
#   docker build -t cdcrecon .
#   docker run --rm cdcrecon --help
# docker-compose.yml builds it for its cdcrecon service. The e2e suite's
# TestDockerfileBuild runs this file's `go build` line outside Docker, so
# CI proves the binary builds and runs without an engine.

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o /out/cdcrecon ./cmd/cdcrecon
RUN mkdir -p /out/state

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/cdcrecon /usr/local/bin/cdcrecon
# The worker's Pebble state, owned by the user it runs as; mount a volume
# here to keep it across restarts.
COPY --from=build --chown=65532:65532 /out/state /var/lib/cdcrecon
WORKDIR /var/lib/cdcrecon
USER nonroot:nonroot
EXPOSE 9464
ENTRYPOINT ["/usr/local/bin/cdcrecon"]
CMD ["run", "--config", "/etc/cdcrecon/config.yaml"]
