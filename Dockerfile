# fhir-clr server image (used by docker-compose.yml; configure the store with FHIR_CLR_STORE_URL).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY fhir_clr ./fhir_clr
RUN pip install .

# Conformance resources (profiles, SearchParameters) live outside the installed package.
COPY profiles ./profiles
ENV FHIR_CLR_PROFILES_DIR=/app/profiles \
    FHIR_CLR_DATA_DIR=/data

RUN useradd --system --uid 10001 --home-dir /app fhirclr \
    && mkdir -p /data && chown fhirclr /data
USER fhirclr

EXPOSE 8080
# --host 0.0.0.0 binds every interface *inside the container*, so the port published by Docker can reach
# the server; what is reachable from outside is decided by the `ports:` mapping in docker-compose.yml.
CMD ["fhir-clr", "serve", "--host", "0.0.0.0", "--port", "8080"]
