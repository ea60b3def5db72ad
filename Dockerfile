# syntax=docker/dockerfile:1

# --- build: install JQS and its dependencies into a virtualenv ---------------------------
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/venv
# The dependencies exactly as locked (versions and hashes), then JQS itself without resolving.
COPY requirements.lock ./
RUN /opt/venv/bin/pip install --no-cache-dir --require-hashes -r requirements.lock
COPY pyproject.toml README.md ./
COPY src ./src
RUN /opt/venv/bin/pip install --no-cache-dir --no-deps .

# --- runtime: the virtualenv only, run as an unprivileged user ----------------------------
FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PORT=8080 \
    JQS_HOST=0.0.0.0 \
    JQS_DATA_DIR=/data/pgdata
RUN groupadd --system --gid 10001 jqs \
    && useradd --system --uid 10001 --gid jqs --home-dir /app --create-home jqs \
    && mkdir -p /data \
    && chown jqs:jqs /data
COPY --from=build /opt/venv /opt/venv
USER 10001:10001
WORKDIR /app
EXPOSE 8080
VOLUME ["/data"]
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PORT', '8080') + '/health', timeout=2)"]
CMD ["jqs", "serve"]
