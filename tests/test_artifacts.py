"""Artifacts on a local folder and on a real S3 endpoint on loopback (moto's server, not a mock of boto3)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from autoresearch.adapters.artifacts import (
    ArtifactStore,
    LocalArtifacts,
    S3Artifacts,
    bundle_key,
    code_bundle,
    open_artifacts,
    read_bundle,
    trial_key,
)
from autoresearch.adapters.sandbox import make_sandbox
from autoresearch.errors import ConfigError, NotFound
from autoresearch.services.runner import TrialJob, TrialRunner, code_hash, prepare_data
from autoresearch.settings import Settings
from tests.test_campaign import ENV


@pytest.fixture(params=["local", "s3"])
def artifacts(request: pytest.FixtureRequest, tmp_path: Path) -> ArtifactStore:
    if request.param == "local":
        return LocalArtifacts(tmp_path / "artifacts")
    return S3Artifacts("trials", "campaigns/", request.getfixturevalue("s3_endpoint"))


def test_an_artifact_reads_back_as_written_and_a_missing_one_is_not_found(artifacts: ArtifactStore) -> None:
    assert not artifacts.exists("code/abc.tar.gz")
    artifacts.put("code/abc.tar.gz", b"\x00bundle")
    assert artifacts.exists("code/abc.tar.gz") and artifacts.get("code/abc.tar.gz") == b"\x00bundle"
    with pytest.raises(NotFound):
        artifacts.get("code/missing.tar.gz")


def test_trials_with_the_same_code_may_store_its_bundle_at_the_same_time(tmp_path: Path) -> None:
    """Two trials of one idea finish together and both put the same bundle: neither may fail."""
    artifacts = LocalArtifacts(tmp_path / "artifacts")
    start = threading.Barrier(8)

    def put_often(writer: int) -> None:
        start.wait()
        for _ in range(200):
            artifacts.put("code/same.tar.gz", b"bundle")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put_often, range(8)))  # re-raises the first writer's error
    assert artifacts.get("code/same.tar.gz") == b"bundle"
    assert [p.name for p in (tmp_path / "artifacts" / "code").iterdir()] == ["same.tar.gz"]


def test_a_code_bundle_depends_on_the_code_alone_and_unpacks_to_it() -> None:
    code = {"train.py": "print(1)\n", "model/blocks.py": "x = 2\n"}
    assert code_bundle(code) == code_bundle(dict(reversed(code.items())))
    assert read_bundle(code_bundle(code)) == code
    assert code_bundle(code) != code_bundle(code | {"train.py": "print(2)\n"})


def test_each_trial_leaves_its_code_bundle_and_logs_in_the_store(
    artifacts: ArtifactStore, tmp_path: Path
) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    sandbox = make_sandbox(settings.sandbox)
    runner = TrialRunner(ENV, "quick", settings, sandbox, prepare_data(ENV, settings), artifacts)
    code = ENV.read_editable()
    result = runner.run(TrialJob(7, 1, 3, 0, code))
    assert result.code_hash == code_hash(code)
    assert read_bundle(artifacts.get(bundle_key(result.code_hash))) == code
    assert b"loss" in artifacts.get(trial_key(7, 3, "evaluate.log"))
    assert artifacts.get(trial_key(7, 3, "out/result.txt")).split()[0] == b"0.0"  # the checkpoint: x = 0.0


def test_a_checkpoint_over_the_cap_is_not_kept(artifacts: ArtifactStore, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", checkpoint_cap_mb=0)
    sandbox = make_sandbox(settings.sandbox)
    runner = TrialRunner(ENV, "quick", settings, sandbox, prepare_data(ENV, settings), artifacts)
    runner.run(TrialJob(7, 1, 4, 0, ENV.read_editable()))
    assert artifacts.exists(trial_key(7, 4, "train.log"))
    assert not artifacts.exists(trial_key(7, 4, "out/result.txt"))


def test_the_artifacts_setting_picks_the_backend(tmp_path: Path) -> None:
    assert isinstance(open_artifacts(Settings(data_dir=tmp_path)), LocalArtifacts)
    with pytest.raises(ConfigError, match="s3://BUCKET"):
        open_artifacts(Settings(data_dir=tmp_path, artifacts_url="gs://bucket"))
