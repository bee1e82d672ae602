# claude-ops in a container: Python, the Claude Code CLI pinned to the version the tests prove,
# and a non-root user (the CLI refuses to skip permissions as root and keeps state in ~/.claude).
FROM python:3.11-slim

RUN apt-get update \
    && apt-get install -y --no-install-recommends nodejs npm ca-certificates \
    && npm install -g @anthropic-ai/claude-code@2.1.331 \
    && npm cache clean --force \
    && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 1000 claudeops \
    && mkdir -p /data && chown claudeops:claudeops /data

WORKDIR /app
COPY requirements.txt .
# Only what the app needs; the rest of requirements.txt is for the tests.
RUN grep -E '^(bottle|gevent)==' requirements.txt > app-requirements.txt \
    && pip install --no-cache-dir -r app-requirements.txt
COPY claude_ops.py .
COPY templates templates
COPY static static

ENV CLAUDEOPS_DASHBOARD_HOST=0.0.0.0 \
    CLAUDEOPS_STATE_DIR=/data/state \
    CLAUDEOPS_RESULTS_DIR=/data/results \
    PYTHONUNBUFFERED=1
USER claudeops
VOLUME /data
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/api/v1/health', timeout=4)"
CMD ["python", "claude_ops.py"]
