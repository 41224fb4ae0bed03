"""What nvidia-smi says of this machine's GPUs, read without importing any CUDA library."""

from __future__ import annotations

import subprocess


def query_gpus(*fields: str) -> list[list[str]]:
    """One row per GPU with the asked nvidia-smi fields (e.g. "index", "memory.total" in MiB, "name");
    empty where there is no nvidia-smi or it fails."""
    try:
        out = subprocess.run(
            ["nvidia-smi", f"--query-gpu={','.join(fields)}", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    rows = [[value.strip() for value in line.split(",")] for line in out.splitlines()]
    return [row for row in rows if len(row) == len(fields)]
