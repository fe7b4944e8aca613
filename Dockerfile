# fhir-clr server image (used by docker-compose.yml; configure the store with FHIR_CLR_STORE_URL).
# Stage 1 builds the same wheel the CI check installs (`pip wheel --no-deps .`); stage 2 installs only that
# wheel, at the dependency versions of constraints.txt, and runs it as an unprivileged user.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY profiles ./profiles
COPY mappings ./mappings
COPY notices ./notices
COPY fhir_clr ./fhir_clr
RUN pip wheel --no-deps --wheel-dir /dist .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    FHIR_CLR_DATA_DIR=/data
COPY constraints.txt /tmp/constraints.txt
COPY --from=build /dist/ /tmp/dist/
RUN pip install --constraint /tmp/constraints.txt /tmp/dist/*.whl \
    && rm -rf /tmp/dist /tmp/constraints.txt \
    && useradd --system --uid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin fhirclr \
    && mkdir /data && chown fhirclr /data
# The auth registry, the token signing key, received files and $export output live here.
VOLUME ["/data"]
USER 10001
WORKDIR /data
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/readyz', timeout=4).status != 200)"]
# --host 0.0.0.0 binds every interface *inside the container*, so the port published by Docker can reach
# the server; what is reachable from outside is decided by the `ports:` mapping in docker-compose.yml.
CMD ["fhir-clr", "serve", "--host", "0.0.0.0", "--port", "8080"]
