# The tollgate binary, for docker-compose.yml (extproc, ratelimit, migrate and envoy-config all
# run from it). Envoy itself runs from the official image.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/tollgate ./cmd/tollgate

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/tollgate /usr/local/bin/tollgate
COPY config /etc/tollgate
ENTRYPOINT ["/usr/local/bin/tollgate"]
