# claude-ops in a container: the app on Python, and the Claude Code CLI pinned to the version the
# tests prove. The CLI is a native binary that npm fetches as a per-platform package: a Node stage
# downloads it, and only the binary reaches the image, which has no Node.

FROM node:22-trixie-slim AS cli
# --ignore-scripts: the package's postinstall only copies the same binary over a stub; taking it
# from the platform's own package (claude-code-linux-x64 or -linux-arm64, glibc) runs no scripts.
# `--version` proves the binary runs on this platform before anything is copied.
RUN npm install --prefix /cli --ignore-scripts --no-audit --no-fund @anthropic-ai/claude-code@2.1.331 \
    && mv "/cli/node_modules/@anthropic-ai/claude-code-linux-$(node -p process.arch)/claude" /claude \
    && /claude --version

FROM python:3.11-slim-trixie
# tini as PID 1 forwards `docker stop`'s SIGTERM to the app and reaps what sessions leave behind;
# curl and ssh are for the agent's own checks (the Docker socket answers curl --unix-socket).
# Debian keeps only the newest build of a package in a release, so a pinned version would break
# the build at its next security update: the base image's release (trixie) fixes what we get.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini ca-certificates curl openssh-client \
    && rm -rf /var/lib/apt/lists/*

COPY --from=cli /claude /usr/local/bin/claude
RUN claude --version

# A numeric user whose home is on the volume: the CLI keeps ~/.claude there, which follow-ups need
# after the container is re-created. It refuses --dangerously-skip-permissions as root anyway.
RUN groupadd --gid 10001 claudeops \
    && useradd --uid 10001 --gid 10001 --home-dir /data/home --no-create-home --shell /bin/bash claudeops \
    && install -d -o 10001 -g 10001 /data /data/home /data/state /data/results

WORKDIR /app
# requirements.txt names what the app needs; constraints.txt pins everything they pull in.
COPY requirements.txt deploy/constraints.txt ./
RUN pip install --no-cache-dir --disable-pip-version-check -r requirements.txt -c constraints.txt
COPY claude_ops.py ./
# Its compiled code, which the app's user could not write here, so that no start compiles it anew.
RUN python -m compileall -q claude_ops.py
COPY templates templates
COPY static static

# DISABLE_AUTOUPDATER: the CLI stays the version this image pins.
ENV HOME=/data/home \
    CLAUDEOPS_DASHBOARD_HOST=0.0.0.0 \
    CLAUDEOPS_STATE_DIR=/data/state \
    CLAUDEOPS_RESULTS_DIR=/data/results \
    DISABLE_AUTOUPDATER=1 \
    PYTHONUNBUFFERED=1
USER 10001
VOLUME /data
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/api/v1/health' % os.environ.get('CLAUDEOPS_DASHBOARD_PORT', '8080'), timeout=4)"]
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["python", "claude_ops.py"]
