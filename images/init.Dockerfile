# The cloudtaser-init image: holds only the static wrapper. The webhook adds it
# as an init container that copies the wrapper into an in-memory emptyDir.
# Build (from the repository root):  docker build -f images/init.Dockerfile .
FROM golang:1.24 AS build
WORKDIR /src/wrapper
COPY wrapper/ .
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/cloudtaser-wrapper .

FROM scratch
COPY --from=build /out/cloudtaser-wrapper /cloudtaser-wrapper
USER 65532:65532
ENTRYPOINT ["/cloudtaser-wrapper"]
