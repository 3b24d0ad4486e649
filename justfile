# Recipes over the binaries and scripts. `just --list` shows them all. Those that run a
# binary build first (`build`: a no-op when nothing changed); none installs anything but
# `package-test`, which says so. One build command everywhere (cargo's feature
# unification would otherwise rebuild polars).

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

# Installs what it needs when missing (Debian packages, kubernetes-validate from PyPI) and
# runs the package test, which installs and purges the Debian package on this machine,
# and the systemd test, which keeps a Debian root in /var/tmp.
# Everything CI checks: fmt, clippy, tests, profiles, deploy files, the package.
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

# The suite's reference relay is socat, from Debian's packages: install it first.
# Criterion benchmarks of the hot paths, then the end-to-end suite (needs socat).
bench *ARGS: build
    @command -v socat >/dev/null || { echo "just bench: socat (the reference relay) is missing: apt-get install socat" >&2; exit 2; }
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

# Man pages and bash/zsh/fish completions of every binary into target/dist/.
man: build
    {{target}}/release/dist --out {{target}}/dist

# README "Install" says what they hold and how to install them.
# The distributor's Debian package and archive into target/package/.
package: build
    bash deploy/package

# Root only; CI runs it (deploy/package-test says what it checks).
# The package test: INSTALLS the package on this machine (dpkg -i), runs it, purges it.
package-test: build
    bash deploy/package-test

# Root only; CI runs it. The first run builds a Debian root into /var/tmp (mmdebstrap).
# The unit under a real systemd in namespaces of its own: start, traffic, TLS, reload, stop.
systemd-test: build
    bash deploy/systemd-test

# Needs haproxy, systemd-analyze and kubernetes-validate; .ci/run installs them.
# Check deploy/: the unit's systemd-analyze score, haproxy -c, the Kubernetes manifests.
check-deploy:
    bash deploy/check
