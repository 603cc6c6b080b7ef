# yuqing: one image for the worker (`yuqing run`) and the dashboard (`yuqing dashboard`).
# Built by docker-compose.yml; nothing is downloaded at run time (jieba's
# dictionary and the models ship in the package).
FROM python:3.11-slim AS base

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first, so a code change does not reinstall them.
COPY pyproject.toml README.md ./
COPY core ./core
COPY storage ./storage
COPY crawler ./crawler
COPY nlp ./nlp
COPY alerts ./alerts
COPY dashboard ./dashboard
COPY yuqing ./yuqing
RUN pip install '.[postgres]' \
    && useradd --system --create-home --home-dir /home/yuqing yuqing \
    && mkdir -p /app/var /app/config \
    && chown -R yuqing:yuqing /app/var

COPY config ./config

USER yuqing
# Spool of batches waiting for the post store, jieba cache, local state.
VOLUME ["/app/var"]
ENV YUQING_DATA_DIR=/app/var \
    YUQING_STORAGE__SPOOL_DIR=/app/var/spool

EXPOSE 8501
CMD ["yuqing", "run"]
