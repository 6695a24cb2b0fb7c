# The tollgate binary, for docker-compose.yml (extproc, ratelimit, migrate and envoy-config all
# run from it). Envoy itself runs from the official image.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/tollgate ./cmd/tollgate
# The directory envoy-config renders into, owned by Envoy's user (101 in the official image): a
# named volume mounted there starts with this ownership, so the bootstrap, which holds the peer
# secret, can be mode 0600 and still readable by Envoy.
RUN mkdir -p /out/envoy

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/tollgate /usr/local/bin/tollgate
COPY config /etc/tollgate
COPY --from=build --chown=101:101 /out/envoy /envoy
ENTRYPOINT ["/usr/local/bin/tollgate"]
