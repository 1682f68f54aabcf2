# One image, one static binary: `raum <subcommand>` is every component.
#
# The binary is linked statically against glibc (the only Rust target these build
# machines have), so the final stage needs no libc of its own. It needs no file from
# the image either (tests/static-binary runs it in an empty chroot); it resolves no
# host names (the API server comes from KUBERNETES_SERVICE_HOST, SFUs by IP), which a
# static glibc could not do without NSS libraries.
FROM docker.io/library/rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY crds ./crds
# Cargo checks every target the manifest declares, tests and benches included.
COPY tests ./tests
COPY benches ./benches
# getrandom: the system call, not a dlsym probe a static binary cannot make.
ENV RUSTFLAGS="-C target-feature=+crt-static --cfg getrandom_backend=\"linux_getrandom\""
RUN cargo build --release --locked --target x86_64-unknown-linux-gnu \
 && cp target/x86_64-unknown-linux-gnu/release/raum /raum

# The image: the binary and nothing else. It runs as a numeric non-root user (no
# /etc/passwd needed), and Kubernetes' restricted Pod Security Standard, a read-only
# root filesystem and no volumes are what it is tested under (tests/node). The tests
# build exactly this stage (tests/cluster/node/images), with the statically linked
# binary of tests/static-binary as the `build` stage's /raum.
FROM scratch
COPY --from=build /raum /raum
USER 65532:65532
ENTRYPOINT ["/raum"]
