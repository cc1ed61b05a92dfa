# One image for every escrutinio role (migrate, worker, beat, CLI).
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=2
WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY worker ./worker
COPY pipeline ./pipeline
COPY db ./db
COPY migrations ./migrations
RUN pip install --no-cache-dir .
RUN useradd --create-home escrutinio
USER escrutinio
ENTRYPOINT ["escrutinio"]
