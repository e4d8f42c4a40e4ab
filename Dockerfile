# Multi-stage build of the `switchboard` server. The runtime image is Debian slim with
# the one binary (the web app is embedded), running as an unprivileged user.
#   docker build -t switchboard .
#   docker run --rm switchboard keys generate       # prints key:secret
#   docker run --network host -e SWITCHBOARD_KEYS=<key:secret> \
#     -e SWITCHBOARD_RTC_ADVERTISE=<public IP> switchboard
# The image listens on every interface, so it needs keys: without SWITCHBOARD_KEYS the
# server refuses to start (development mode, where anyone gets a token, is loopback only).
FROM rust:1-bookworm AS build
# Nothing but Rust and a C compiler (the rust image has both): every codec is Rust.
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY sfu-core sfu-core
COPY signaling signaling
COPY server server
COPY sip sip
COPY loadtest loadtest
COPY cluster cluster
COPY web web
COPY sdk/js/src sdk/js/src
RUN cargo build --release --locked -p server && strip target/release/switchboard

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --no-create-home switchboard
COPY --from=build /src/target/release/switchboard /usr/local/bin/switchboard
USER 10001:10001
# In a container the defaults listen on every interface; the advertised address must be
# one clients reach (SWITCHBOARD_RTC_ADVERTISE, or the Helm chart's downward API).
ENV SWITCHBOARD_HTTP=0.0.0.0:7880 \
    SWITCHBOARD_RTC_BIND=0.0.0.0
# HTTP (app, signaling, API, WHIP/WHEP); media: UDP rtc_port + worker index (one port
# a worker) and ICE-TCP on rtc_port; SIP (with SWITCHBOARD_SIP_LISTEN, docs/sip.md) on
# 5060 UDP and TCP with its RTP range.
EXPOSE 7880/tcp 7882-7889/udp 7882/tcp 5060/udp 5060/tcp 31000-31999/udp
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/switchboard"]
CMD ["serve"]
