"""Each finished trial as a wandb run, offline (WANDB_MODE=offline writes runs to disk, no network)."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

import pytest

from autoresearch.adapters.catalog import CatalogProposer
from autoresearch.adapters.db import SqlStore
from autoresearch.adapters.tracker import WandbTracker, tracker_for
from autoresearch.domain.model import TrialResult
from autoresearch.services.campaign import CampaignController, create_campaign
from autoresearch.services.runner import TrialJob
from autoresearch.settings import Settings
from tests.test_campaign import ENV, ScoreRecipe


class ScoreWithCurve(ScoreRecipe):
    """The tiny recipe's score, with a training curve as an environment's progress lines give one."""

    def run(self, job: TrialJob, cancel: threading.Event | None = None) -> TrialResult:
        curve = ({"step": 10.0, "train_curve_loss": 2.5}, {"step": 20.0, "train_curve_loss": 1.25})
        return replace(super().run(job, cancel), curve=curve)


def _records(path: Path) -> bytes:
    """The records of a .wandb file, joined. It is a LevelDB log: 32 KiB blocks of chunks, each with a
    7-byte header, so a record that crosses a block boundary is split, and a text searched for in the
    raw bytes is missed whenever it happens to straddle one."""
    data, block, header = path.read_bytes(), 32768, 7
    assert data[:4] == b":W&B", f"{path} is not a wandb transaction log"
    chunks, pos = [], header  # the file starts with its own 7-byte header
    while pos + header <= len(data):
        left = block - pos % block
        if left < header:  # a block's tail too short for a chunk header is padding
            pos += left
            continue
        length = int.from_bytes(data[pos + 4 : pos + 6], "little")
        chunks.append(data[pos + header : pos + header + length])
        pos += header + length
    return b"".join(chunks)


def test_every_finished_trial_is_an_offline_wandb_run_with_its_idea_curve_and_score(
    store: SqlStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "WANDB_CACHE_DIR": str(tmp_path / "cache"),
        "WANDB_CONFIG_DIR": str(tmp_path / "config"),
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    campaign = create_campaign(
        store, ENV, preset=None, strategy="evolve", trials=3, concurrency=1, seed=0, name="tracked", goal=""
    )
    tracker = tracker_for(campaign, Settings(data_dir=tmp_path, wandb_project="autoresearch-tests"))
    assert isinstance(tracker, WandbTracker)
    CampaignController(store, campaign, ENV, ScoreWithCurve(), CatalogProposer(ENV), tracker).run()  # type: ignore[arg-type]

    runs = sorted((tmp_path / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(runs) == 3
    records = b"".join(_records(run) for run in runs)
    for trial in store.list_trials(campaign.id):
        assert f"tracked-{trial.number}".encode() in records
        assert store.get_idea(trial.idea_id).hypothesis.encode() in records
        assert [p["train_curve_loss"] for p in trial.curve] == [2.5, 1.25]  # kept in the store too
    assert records.count(b"train_curve_loss") >= 6  # each run's history has both points
    assert tracker_for(campaign, Settings(data_dir=tmp_path)) is None  # off unless a project is named
