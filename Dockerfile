# syntax=docker/dockerfile:1

# --- builder: a virtualenv holding the dependencies and the `papers` command ---------------
FROM python:3.11-slim AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /app
COPY pyproject.toml README.md ./
COPY service/ service/
# Editable install: the code runs from /app, beside migrations/ and seeds/, which the
# service finds relative to its own package (service/config.py PROJECT_ROOT).
RUN pip install --editable .

# --- runtime ------------------------------------------------------------------------------
FROM python:3.11-slim

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PAPERS_HOST=0.0.0.0 \
    PAPERS_PORT=8000 \
    PAPERS_DATA_DIR=/data

RUN groupadd --system --gid 10001 papers \
    && useradd --system --uid 10001 --gid papers --home-dir /app --shell /usr/sbin/nologin papers \
    && mkdir -p /data /keys \
    && chown papers:papers /data /keys

WORKDIR /app
COPY --from=builder /opt/venv /opt/venv
COPY pyproject.toml README.md ./
COPY service/ service/
COPY migrations/ migrations/
COPY seeds/ seeds/

USER papers
EXPOSE 8000

# slim has no curl: ask the liveness endpoint with the standard library.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"]

ENTRYPOINT ["papers"]
CMD ["serve"]
