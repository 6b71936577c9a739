# opstream services on Debian 12: build stage with the -dev packages, runtime
# stage with only the shared libraries and the programs.
FROM debian:12-slim AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      gcc make pkg-config librdkafka-dev libavro-dev libhiredis-dev uuid-dev libjansson-dev libmicrohttpd-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN OPSTREAM_DEPS="gcc make pkg-config librdkafka-dev libavro-dev libhiredis-dev uuid-dev libjansson-dev libmicrohttpd-dev" make programs CI=1

FROM debian:12-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      librdkafka1 libavro23 libhiredis0.14 libuuid1 libjansson4 libmicrohttpd12 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home /nonexistent --shell /usr/sbin/nologin opstream
COPY --from=build /src/bin/ /usr/local/bin/
COPY config/alerts.conf /etc/opstream/alerts.conf
USER opstream
ENTRYPOINT []
CMD ["opstream-count", "--help"]
