# Backline: expert routing for Matrix.
#
#   docker build -t backline .
#   docker run -v $PWD/data:/data backline \
#       backline -c /data/config.yaml -r /data/registration.yaml -g
#   docker run -v $PWD/data:/data -p 29333:29333 backline
#
# In /data/config.yaml set appservice.hostname to 0.0.0.0 so the homeserver can reach the
# container, and appservice.address to the URL the homeserver uses for it.

FROM python:3.11-slim AS build
WORKDIR /src
COPY . .
RUN pip install --no-cache-dir --disable-pip-version-check build \
    && python -m build --wheel --outdir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
COPY --from=build /wheels /wheels
RUN pip install /wheels/*.whl \
    && rm -rf /wheels \
    && useradd --system --uid 1337 --user-group --home-dir /data --no-create-home backline \
    && mkdir /data \
    && chown backline:backline /data

USER backline
WORKDIR /data
VOLUME /data
EXPOSE 29333

# slim has no curl; urlopen raises on connection errors and on 4xx/5xx, so any failure exits 1.
# Backline answers within seconds of starting, so three misses in a row mean it is unhealthy.
HEALTHCHECK --interval=30s --timeout=5s --retries=3 CMD ["python", "-c", \
    "import urllib.request; urllib.request.urlopen('http://127.0.0.1:29333/health', timeout=4)"]

CMD ["backline", "-c", "/data/config.yaml", "-r", "/data/registration.yaml"]
