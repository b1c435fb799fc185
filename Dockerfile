# syntax=docker/dockerfile:1
# One image for every duetime process: `duetime migrate`, `duetime api`, `duetime worker`.
# docker-compose.yml runs it; `docker build -t duetime .` builds it alone.

# Builder and runtime must be the same image: the venv's python is a symlink to the image's
# /usr/local/bin/python3, and the venv's scripts' shebangs name /app/.venv/bin/python.
ARG PYTHON_IMAGE=python:3.12-slim

FROM ${PYTHON_IMAGE} AS builder
RUN pip install --no-cache-dir --disable-pip-version-check uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /app

# Dependencies first (their layer is rebuilt only when the lock changes), then the project.
COPY pyproject.toml uv.lock README.md ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --no-install-project

# The project is installed editable (a .pth naming /app): shared/migrate.py finds the alembic
# scripts at <shared>/../migrations, so the source must stay in /app, migrations/ next to shared/.
COPY api/ api/
COPY worker/ worker/
COPY shared/ shared/
COPY migrations/ migrations/
COPY duetime.py ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev \
 && python -m compileall -q api worker shared migrations duetime.py


FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 10001 duetime \
 && useradd --system --uid 10001 --gid duetime --create-home --home-dir /home/duetime \
        --shell /usr/sbin/nologin duetime
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /app
# Same path as in the builder; owned by root, so read-only for the user that runs it.
COPY --from=builder /app /app
USER duetime:duetime
EXPOSE 8000
CMD ["duetime", "--help"]
