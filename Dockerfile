# The tq image: one image for every tq service of compose.yaml (consumers, tq serve,
# tq web, tq watch, tq migrate). Its install step is the README's quick start
# (tests/test_deploy.py checks they stay the same).
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TQ_TQ_DATA_DIR=/data

WORKDIR /app
COPY pyproject.toml README.md ./
COPY tq ./tq
RUN pip install -q -e .

# Not root: a task's code runs in this container.
RUN useradd --system --create-home --uid 10001 tq \
    && mkdir -p /data /inbox && chown tq:tq /data /inbox
USER tq

CMD ["tq", "up"]
