# One image for the API, the workers, Flower and the monitor. The JDK (not just a JRE) compiles
# the JVM side of ingestion validation on first use (backend/pipeline/native.py).
FROM python:3.11-slim-bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends openjdk-17-jdk-headless libopenblas0-pthread procps \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY backend backend
COPY workers workers
COPY migrations migrations
RUN pip install --no-cache-dir -e .
ENV RECFLOW_DATA_DIR=/data
VOLUME /data
EXPOSE 8000 5555
CMD ["recflow", "api", "--host", "0.0.0.0"]
