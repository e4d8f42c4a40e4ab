# Multi-stage build of the `switchboard` server. The runtime image is Debian slim with
# the one binary (the web app is embedded), running as an unprivileged user.
#   docker build -t switchboard .
#   docker run --network host switchboard           # dev keys, 127.0.0.1 only
#   docker run --network host -e SWITCHBOARD_HTTP=0.0.0.0:7880 -e SWITCHBOARD_RTC_BIND=0.0.0.0 \
#     -e SWITCHBOARD_RTC_ADVERTISE=<public IP> -e SWITCHBOARD_KEYS=prod:<secret> switchboard
FROM rust:1-bookworm AS build
# libopus for the SIP gateway's codecs (audiopus links it through pkg-config).
RUN apt-get update && apt-get install -y --no-install-recommends libopus-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
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
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates libopus0 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --no-create-home switchboard
COPY --from=build /src/target/release/switchboard /usr/local/bin/switchboard
USER 10001:10001
# In a container the defaults listen on every interface; the advertised address must be
# one clients reach (SWITCHBOARD_RTC_ADVERTISE, or the Helm chart's downward API).
ENV SWITCHBOARD_HTTP=0.0.0.0:7880 \
    SWITCHBOARD_RTC_BIND=0.0.0.0
# 5060/udp and the RTP range only matter with SWITCHBOARD_SIP_LISTEN set (docs/sip.md).
EXPOSE 7880/tcp 7882-7889/udp 5060/udp 31000-31999/udp
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/switchboard"]
CMD ["serve"]
