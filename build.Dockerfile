# The build stage shared by the images that carry our Rust binaries (vote,
# worker, result; the redis image's sentinel-follow; pgha for the postgres,
# pgpool and mariadb images): compiles the workspace
# once, with Debian's Rust. deploy.sh builds it as swarmvote/build and each
# image's Dockerfile copies its binary out of it.
# swarmvote/build-base: debian:bookworm-slim with this host's extra CAs, to
# reach crates.io behind a TLS-inspecting proxy (images/debian-base.sh). The
# images that run start from debian:bookworm-slim and do not trust them.
FROM swarmvote/build-base:latest

# rustc-web/cargo-web come from bookworm-security, which carries a current Rust.
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      cargo-web rustc-web gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
ENV CARGO_HOME=/cargo CARGO_TERM_COLOR=never

# Dependencies first, from the manifests alone with stub sources: this layer
# is reused until Cargo.toml or Cargo.lock change, so a code change
# recompiles only our own crates.
COPY Cargo.toml Cargo.lock ./
COPY common/Cargo.toml common/
COPY vote/Cargo.toml vote/
COPY worker/Cargo.toml worker/
COPY result/Cargo.toml result/
COPY testkit/Cargo.toml testkit/
COPY bench/Cargo.toml bench/
COPY loadgen/Cargo.toml loadgen/
COPY pgha/Cargo.toml pgha/
RUN for crate in common vote worker result testkit bench loadgen pgha; do \
      mkdir -p "$crate/src" && echo 'fn main() {}' > "$crate/src/main.rs" && touch "$crate/src/lib.rs"; \
    done \
 && cargo build --release --locked -p vote -p worker -p result \
 && rm -rf common/src vote/src worker/src result/src pgha/src

COPY common common
COPY vote vote
COPY worker worker
COPY result result
COPY pgha pgha
# COPY keeps the sources' old modification times; cargo must see them as new.
RUN find common vote worker result pgha -name '*.rs' -exec touch {} + \
 && cargo build --release --locked -p vote -p worker -p result -p common -p pgha --bins \
 && ls -l target/release/vote target/release/worker target/release/result target/release/sentinel-follow target/release/pgha
