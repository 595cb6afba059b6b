# Container image of the servo (the daemon in servo/); `docker build -t k8s-job-servo .`
# The base is pinned by tag; pin it by digest (python:3.11-slim-bookworm@sha256:...) in release
# builds to make them reproducible.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY servo/ servo/
# servo measure and servo check read cgroups with the monitor's parsers.
COPY mon/ mon/
# Dependency versions are bounded in pyproject.toml; "." is this project, not a registry name.
RUN pip install --no-cache-dir . \
    && useradd --system --uid 10001 --user-group --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin servo

WORKDIR /
# Numeric, so that Kubernetes' runAsNonRoot can tell it is not root.
USER 10001
# Stats receiver (monitors post here), metrics and probes, collector, webhook.
EXPOSE 8080 8081 8090 8443
ENTRYPOINT ["servo"]
