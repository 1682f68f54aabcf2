# One image, one static binary: `raum <subcommand>` is every component.
#
# The binary is linked statically against glibc (the only Rust target these build
# machines have), so the final stage needs no libc of its own.
FROM docker.io/library/rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY crds ./crds
ENV RUSTFLAGS="-C target-feature=+crt-static"
RUN cargo build --release --locked --target x86_64-unknown-linux-gnu \
 && cp target/x86_64-unknown-linux-gnu/release/raum /raum

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /raum /raum
USER 65532:65532
ENTRYPOINT ["/raum"]
