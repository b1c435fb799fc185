# duetime's everyday commands. `just --list` shows them.

# Postgres (embedded unless DATABASE_URL is set), the API on :8000 and 2 workers
dev *args:
    uv run duetime dev {{args}}

# the whole test suite (embedded PostgreSQL unless DATABASE_URL is set)
test *args:
    uv run pytest {{args}}

# ruff, formatting and mypy --strict
lint:
    uv run ruff check .
    uv run ruff format --check .
    uv run mypy

# throughput figures, written to docs/benchmarks.md
bench *args:
    uv run python -m scripts.bench.run {{args}}

# the compose stack: postgres, migrate, api and 10 workers (needs a Docker engine)
up:
    docker compose up --build --scale worker=10
