# The robot's image: Python 3.11 on Debian, the package, and Debian's Chromium and its
# headless shell (Playwright adapters, assisted observation, PDF dossiers). It installs with
# scripts/setup.sh, the same script as the README's `make demo` and `make test`, here
# without the test tools (OBSERVATOIRE_EXTRAS=""). No secret is baked in: settings come
# from the environment (.env with docker compose, see .env.example).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    OBSERVATOIRE_EXTRAS=""

WORKDIR /app
COPY pyproject.toml README.md ./
COPY scripts ./scripts
COPY observatoire ./observatoire
COPY migrations ./migrations
COPY templates ./templates
COPY config ./config
# The alert sender of the compose `watch` service (standard library only).
COPY deploy/alert.py ./deploy/alert.py
RUN bash scripts/setup.sh \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/* /root/.cache

RUN useradd --system --uid 10001 --create-home --home-dir /home/observatoire observatoire \
    && mkdir -p /data \
    && chown observatoire:observatoire /data
USER observatoire

ENV PATH=/app/.venv/bin:$PATH \
    OBSERVATOIRE_DATA_DIR=/data \
    OBSERVATOIRE_CONFIG=/app/config/prefectures.yaml \
    OBSERVATOIRE_CHROMIUM_PATH=/usr/bin/chromium-headless-shell
VOLUME ["/data"]

# Unhealthy when `status` finds what needs a human (exit 1): a target unprobed for 3
# cadences, a retired link, a streak of unrecognized/blocked pages, an adapter whose error
# share jumped. Docker only marks the container; the compose `watch` service
# (deploy/alert.py) is what sends an alert. The start period covers the first cadences.
HEALTHCHECK --interval=5m --timeout=60s --start-period=4h --retries=2 \
    CMD ["observatoire", "status"]

ENTRYPOINT ["observatoire"]
CMD ["run", "--log-json"]
