# Thin recipes over the binaries. `just --list` shows them all.
# One build command everywhere (cargo's feature unification would otherwise rebuild polars).

target := env_var_or_default("CARGO_TARGET_DIR", "target")

# Show the recipes.
default:
    @just --list

# Build every binary (release); the README's build command.
build:
    cargo build --release --workspace

# Run every test (the README's test command).
test:
    cargo test --release --workspace

# Everything CI checks: fmt, clippy, tests, profile validation and short profile runs.
ci:
    bash .ci/run

# The basic profile: 3 emitters x 300 msg/s, 3 analyzers (5/3/2), 60 s.
basic *ARGS: build
    {{target}}/release/harness basic {{ARGS}}

# The throughput profile: 100 emitters x 800 msg/s, 10 analyzers, 120 s.
throughput *ARGS: build
    {{target}}/release/harness throughput {{ARGS}}

# The chaos profile: 20 emitters x 500 msg/s, 8 analyzers, 300 s, with failures.
chaos *ARGS: build
    {{target}}/release/harness chaos {{ARGS}}

# The secure profile: basic over mutual TLS, an impostor and a restricted emitter, 60 s.
secure *ARGS: build
    {{target}}/release/harness secure {{ARGS}}

# The crash loop: an acknowledged stream while the distributor is killed with SIGKILL 20
# times at seeded random moments (CI runs 5); every secured message must arrive.
crashloop:
    cargo test --release --workspace --test crashloop -- --nocapture

# Validate every profile.
check: build
    {{target}}/release/harness check profiles/*.toml

# Re-run the report on a run folder.
report DIR: build
    {{target}}/release/report {{DIR}}

# Criterion benchmarks of the hot paths, then the end-to-end performance suite (socat, the
# reference relay, comes from Debian's packages).
bench *ARGS: build
    command -v socat >/dev/null || (apt-get update -qq && apt-get install -y -qq socat)
    cargo bench --workspace --bench codec --bench routing --bench generate --bench verify
    {{target}}/release/harness bench {{ARGS}}

# Compare a candidate with a base (run folders of one profile, or bench folders); quote a
# side to give several replicates: just compare "results/a results/b" "results/c results/d".
# Exit 1 on a regression.
compare BASE CANDIDATE *ARGS: build
    {{target}}/release/report compare --base {{BASE}} --candidate {{CANDIDATE}} {{ARGS}}

# Remove run results (keeps the folder).
clean:
    find results -mindepth 1 -maxdepth 1 ! -name .gitkeep -exec rm -rf {} +

# Ten million arbitrary inputs through every wire decoder (CI runs 256): none may panic, and
# each must decode the same whether the bytes come at once or cut anywhere.
fuzz CASES="10000000":
    PROPTEST_CASES={{CASES}} cargo test --release --workspace --test arbitrary_input
