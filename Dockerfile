# mtn in a container: `docker build -t mtn .` then
#   docker run --rm -v mtn-state:/var/lib/mtn -v /srv/backups:/backups -v $PWD/scripts:/scripts:ro \
#     --read-only --tmpfs /tmp mtn run /scripts/nightly.rhai --allow-path /backups
# Multi-stage: the toolchain stays in the build stage; the image holds the binary, the stdlib
# and the database client tools the dump functions call.

FROM rust:1.95-slim-trixie AS build
WORKDIR /src
# Everything but .dockerignore's list (target/, .git/): Cargo.toml names tests/ and examples/.
COPY . .
RUN cargo build --release --locked --bin mtn

FROM debian:trixie-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates postgresql-client mariadb-client \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 mtn \
 && useradd --system --uid 10001 --gid mtn --home-dir /var/lib/mtn --shell /usr/sbin/nologin mtn \
 && install -d -o mtn -g mtn -m 0750 /var/lib/mtn
COPY --from=build /src/target/release/mtn /usr/local/bin/mtn
# Found automatically as ../share/mtn/stdlib beside the binary.
COPY stdlib /usr/local/share/mtn/stdlib
# History, alert state, the trigger token, last restore test: keep them across containers.
ENV MTN_STATE_DIR=/var/lib/mtn
VOLUME ["/var/lib/mtn"]
USER 10001:10001
WORKDIR /var/lib/mtn
ENTRYPOINT ["/usr/local/bin/mtn"]
CMD ["--help"]
