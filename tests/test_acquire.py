"""Paper mode's data stage against a mirror on 127.0.0.1 that serves the synthetic world packed as
the real download files: verification, resume, retries, safe extraction, gated and manual sources."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
import yaml

from helpers import SNAKEMAKE, copy_project, run, smoke_params
from mirror_server import MirrorServer
from pipeline_steps.data.acquire import SourceUnavailable, acquire
from pipeline_steps.data.download import ChecksumMismatch, DownloadError
from pipeline_steps.data.extract import UnsafeArchive, extract
from pipeline_steps.data.mirror import build_mirror
from pipeline_steps.data.prepare import prepare
from pipeline_steps.data.registry import CORPUS_DATASETS, PREPARED_DATASETS, PREPARED_FROM, REMOTE, ZEROSHOT_DATASETS
from pipeline_steps.data.shards import PreparedDataset

TOKEN = "hf_test-secret-token-0123456789"


@pytest.fixture(scope="module")
def mirror(small_world, tmp_path_factory):
    _, raw = small_world
    root = tmp_path_factory.mktemp("mirror")
    build_mirror(raw, root)
    with MirrorServer(root, TOKEN) as server:
        yield server, root


def data_cfg(tmp: Path, mirror_url: str | None, checksums: Path | None, **extra) -> dict:
    cfg = {**smoke_params()["data"], "lock": str(tmp / "checksums.lock.json"), "mirror": mirror_url,
           "checksums": str(checksums) if checksums else None, "retries": 3, "backoff_s": 0.01,
           "timeout_s": 10}
    return {**cfg, **extra}


def test_paper_mode_data_stage_through_the_mirror(small_world, mirror, tmp_path):
    server, root = mirror
    _, raw = small_world
    project = copy_project(tmp_path / "paper")
    override = tmp_path / "paper.yaml"
    override.write_text(yaml.safe_dump({
        "mode": "paper",
        "data": {"mirror": server.url, "checksums": str(root / "checksums.json")},
        "evaluate": {"zeroshot": {"datasets": ["zeroshot_cifar10", "zeroshot_cifar100"]}}}))
    run(SNAKEMAKE + ["data_all", "--cores", "2", "--configfile", str(override)], cwd=project,
        env={"HF_TOKEN": TOKEN})
    # every registered file was fetched from the mirror, the gated ones with the token
    for source, spec in REMOTE.items():
        for f in spec.files:
            got = server.requests_for(f.mirror_path)
            assert got, f"{f.mirror_path} was never requested"
            assert all((r["authorization"] is not None) == (f.access == "token") for r in got)
    # the prepared datasets equal those prepared from the synthetic raw sources directly
    cfg = smoke_params()["prepare"]
    for dataset in PREPARED_DATASETS:
        if dataset in ZEROSHOT_DATASETS:
            continue
        if dataset in CORPUS_DATASETS:  # the synthetic CLIP's pretraining corpus: paper mode fetches a CLIP
            assert not (project / "data/prepared" / dataset).exists()
            continue
        expected = prepare(dataset, raw, tmp_path / "direct" / dataset, cfg)
        records = (project / "data/prepared" / dataset / "records.jsonl").read_bytes()
        assert records == (tmp_path / "direct" / dataset / "records.jsonl").read_bytes(), dataset
        assert expected["images"] > 0
    # CIFAR's binary batches became class folders: the shapes and colours, 32x32
    for dataset, synthetic in (("zeroshot_cifar10", "shapes"), ("zeroshot_cifar100", "colors")):
        with PreparedDataset(project / "data/prepared" / dataset) as ds:
            labels = [r["label"] for r in ds.records()]
            assert sorted(set(labels)) == sorted(p.name.replace("_", " ")
                                                 for p in (raw / "zeroshot" / synthetic).iterdir())
            assert ds.image(next(ds.records())["image"]).size == (32, 32)
        assert len(labels) == len(list((raw / "zeroshot" / synthetic).rglob("*.png")))
    summary = json.loads((project / "data/raw/vqa/ACQUIRED.json").read_text())
    assert set(summary["files"]) == {f.name for f in REMOTE["vqa"].files}
    # the token is nowhere in what the run wrote (logs, metadata, outputs)
    for path in project.rglob("*"):
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), path


def test_checksum_mismatch_is_a_clear_error_and_leaves_nothing(mirror, tmp_path):
    server, root = mirror
    pins = json.loads((root / "checksums.json").read_text())
    pins["sugarcrepe/swap_obj.json"]["sha256"] = "0" * 64
    (tmp_path / "pins.json").write_text(json.dumps(pins))
    cfg = data_cfg(tmp_path, server.url, tmp_path / "pins.json")
    with pytest.raises(ChecksumMismatch, match=r"swap_obj.json: sha256 mismatch: expected 0{64}, got [0-9a-f]{64}"):
        acquire("sugarcrepe", cfg, tmp_path / "downloads", tmp_path / "raw/sugarcrepe")
    assert not (tmp_path / "raw/sugarcrepe").exists()
    assert not list((tmp_path / "downloads/sugarcrepe").glob("swap_obj.json*"))  # no file, no partial


def test_dropped_connection_resumes_and_verifies(mirror, tmp_path):
    server, root = mirror
    f = next(f for f in REMOTE["coco"].files if f.name == "train2017.zip")
    server.faults[f.mirror_path] = ["drop"]
    cfg = data_cfg(tmp_path, server.url, root / "checksums.json")
    acquire("coco", cfg, tmp_path / "downloads", tmp_path / "raw/coco")
    first, second = server.requests_for(f.mirror_path)[-2:]
    assert first["range"] is None and second["range"].startswith("bytes=")
    assert int(second["range"].removeprefix("bytes=").rstrip("-")) > 0  # resumed, not restarted
    assert sorted(p.name for p in (tmp_path / "raw/coco/train2017").iterdir()) == sorted(
        n.split("/")[-1] for n in zipfile.ZipFile(root / f.mirror_path).namelist())


def test_server_errors_are_retried_then_reported(mirror, tmp_path):
    server, root = mirror
    f = next(f for f in REMOTE["snli_ve"].files if f.name == "snli_ve_dev.jsonl")
    server.faults[f.mirror_path] = ["500"] * 10
    before = len(server.requests_for(f.mirror_path))
    cfg = data_cfg(tmp_path, server.url, root / "checksums.json")
    with pytest.raises(DownloadError, match=r"snli_ve_dev.jsonl: failed after 3 attempts \(last: HTTP 500"):
        acquire("snli_ve", cfg, tmp_path / "downloads", tmp_path / "raw/snli_ve")
    assert len(server.requests_for(f.mirror_path)) - before == 3
    assert not (tmp_path / "raw/snli_ve").exists() and not (tmp_path / "downloads/snli_ve/snli_ve_dev.jsonl").exists()
    server.faults[f.mirror_path].clear()


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _tar(path: Path, members: list[tarfile.TarInfo | tuple[str, bytes]]) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for m in members:
            if isinstance(m, tarfile.TarInfo):
                tf.addfile(m)
            else:
                info = tarfile.TarInfo(m[0])
                info.size = len(m[1])
                tf.addfile(info, io.BytesIO(m[1]))
    return path


def _link(name: str, target: str, kind=tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


@pytest.mark.parametrize("build, message", [
    (lambda d: _zip(d / "a.zip", {"images/ok.png": b"x", "../evil.txt": b"x"}), "'../evil.txt' climbs out"),
    (lambda d: _zip(d / "a.zip", {"/tmp/evil.txt": b"x"}), "'/tmp/evil.txt' has an absolute path"),
    (lambda d: _tar(d / "a.tar.gz", [("ok/a.txt", b"x"), ("ok/../../evil.txt", b"x")]), "climbs out"),
    (lambda d: _tar(d / "a.tar.gz", [("/etc/evil", b"x")]), "has an absolute path"),
    (lambda d: _tar(d / "a.tar.gz", [_link("images/passwd", "/etc/passwd")]), "link pointing outside"),
    (lambda d: _tar(d / "a.tar.gz", [_link("images/up", "../../outside")]), "link pointing outside"),
    (lambda d: _tar(d / "a.tar.gz", [_link("images/hard", "/etc/passwd", tarfile.LNKTYPE)]), "hard link"),
])
def test_unsafe_archives_are_refused(tmp_path, build, message):
    archive = build(tmp_path)
    with pytest.raises(UnsafeArchive, match=message):
        extract(archive, tmp_path / "dest" / "inner")
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "dest" / "evil.txt").exists()
    assert not list((tmp_path / "dest" / "inner").rglob("*"))  # checked before anything is written


def test_an_unsafe_archive_on_the_mirror_leaves_no_raw_source(mirror, tmp_path):
    server, root = mirror
    f = next(f for f in REMOTE["aro"].files if f.extract)
    evil_root = tmp_path / "evil-mirror"
    shutil.copytree(root, evil_root)
    _zip(evil_root / f.mirror_path, {"images/a.png": b"x", "../../escaped.txt": b"x"})
    pins = json.loads((root / "checksums.json").read_text())
    pins.pop(f"aro/{f.name}")  # unpinned: the lock records it, then extraction refuses it
    (tmp_path / "pins.json").write_text(json.dumps(pins))
    with MirrorServer(evil_root, TOKEN) as evil:
        with pytest.raises(UnsafeArchive, match="escaped.txt"):
            acquire("aro", data_cfg(tmp_path, evil.url, tmp_path / "pins.json"), tmp_path / "dl", tmp_path / "raw/aro")
    assert not (tmp_path / "raw/aro").exists() and not list(tmp_path.rglob("escaped.txt"))


def _acquire_cli(tmp_path: Path, source: str, cfg: dict, token: str | None) -> subprocess.CompletedProcess:
    params = {**smoke_params(), "data": cfg}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    env = {"HF_TOKEN": token} if token is not None else {"HF_TOKEN": ""}
    return run([sys.executable, "-m", "pipeline_steps", "acquire", "--params", str(tmp_path / "params.yaml"),
                "--source", source, "--downloads", str(tmp_path / "downloads"), "--out",
                str(tmp_path / "raw" / source)], cwd=Path(__file__).resolve().parent.parent, check=False, env=env)


def test_gated_source_without_or_with_a_wrong_token(mirror, tmp_path):
    server, root = mirror
    cfg = data_cfg(tmp_path, server.url, root / "checksums.json")
    proc = _acquire_cli(tmp_path, "winoground", cfg, None)
    assert proc.returncode == 1
    assert "winoground: HF_TOKEN is not set" in proc.stderr
    assert "https://huggingface.co/settings/tokens" in proc.stderr and "Traceback" not in proc.stderr
    wrong = "hf_wrong-token-that-must-not-leak"
    proc = _acquire_cli(tmp_path, "winoground", cfg, wrong)
    assert proc.returncode == 1
    assert "the server refused HF_TOKEN" in proc.stderr and "HTTP 403" in proc.stderr
    assert wrong not in proc.stdout + proc.stderr
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert wrong.encode() not in path.read_bytes(), path
    assert not (tmp_path / "raw/winoground").exists()
    # the right token works
    assert _acquire_cli(tmp_path, "winoground", cfg, TOKEN).returncode == 0
    assert (tmp_path / "raw/winoground/examples.jsonl").is_file()


def test_the_token_is_not_carried_to_another_host_on_redirect(mirror, tmp_path, monkeypatch):
    server, root = mirror
    f = next(f for f in REMOTE["winoground"].files if f.name == "images.zip")
    with MirrorServer(root, TOKEN) as cdn:  # another host:port, serving the same files
        server.redirects[f.mirror_path] = f"{cdn.url}/{f.mirror_path.replace('huggingface.co/', 'cdn/')}"
        on_cdn = root / "cdn" / f.mirror_path.removeprefix("huggingface.co/")
        on_cdn.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(root / f.mirror_path, on_cdn)
        monkeypatch.setenv("HF_TOKEN", TOKEN)
        try:
            acquire("winoground", data_cfg(tmp_path, server.url, root / "checksums.json"), tmp_path / "dl",
                    tmp_path / "raw/winoground")
        finally:
            server.redirects.clear()
        assert server.requests_for(f.mirror_path)[-1]["authorization"] == f"Bearer {TOKEN}"
        assert [r["authorization"] for r in cdn.requests] == [None]
    assert (tmp_path / "raw/winoground/images").is_dir()


def test_manual_source_absent_then_placed(small_world, mirror, tmp_path):
    _, raw = small_world
    _, root = mirror
    cfg = data_cfg(tmp_path, None, None, manual={"vcr": str(tmp_path / "placed"), "flickr30k": None})
    with pytest.raises(SourceUnavailable) as e:
        acquire("vcr", cfg, tmp_path / "downloads", tmp_path / "raw/vcr")
    assert "https://visualcommonsense.com/download/" in str(e.value)
    assert "vcr1annots.zip" in str(e.value) and "data.manual.vcr" in str(e.value)
    assert not (tmp_path / "raw/vcr").exists()
    (tmp_path / "placed").mkdir()
    for f in REMOTE["vcr"].files:
        shutil.copy(root / f.mirror_path, tmp_path / "placed" / f.name)
    acquire("vcr", cfg, tmp_path / "downloads", tmp_path / "raw/vcr")
    prepare("vcr", tmp_path / "raw", tmp_path / "prepared/vcr", smoke_params()["prepare"])
    prepare("vcr", raw, tmp_path / "direct/vcr", smoke_params()["prepare"])
    assert (tmp_path / "prepared/vcr/records.jsonl").read_bytes() == (tmp_path / "direct/vcr/records.jsonl").read_bytes()
    # no published checksum: the first use recorded one, and a changed file no longer verifies
    lock = json.loads((tmp_path / "checksums.lock.json").read_text())
    assert set(lock) == {"vcr/vcr1annots.zip", "vcr/vcr1images.zip"}
    with open(tmp_path / "placed/vcr1annots.zip", "ab") as f:
        f.write(b"\0")
    with pytest.raises(ChecksumMismatch, match="vcr1annots.zip: size mismatch"):
        acquire("vcr", cfg, tmp_path / "downloads", tmp_path / "raw/vcr2")


def test_every_raw_source_is_registered_and_every_prepared_dataset_reachable():
    assert set(REMOTE) == {s for sources in PREPARED_FROM.values() for s in sources}
    for spec in REMOTE.values():
        for f in spec.files:
            assert f.url.startswith(("http://", "https://")) and (f.mirror_path.count("/") >= 1)


def test_cifar_binary_records_round_trip_and_bad_files_are_named(tmp_path):
    import numpy as np

    from pipeline_steps.data import cifar
    from pipeline_steps.data.records import FormatError

    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(3)]
    root = tmp_path / "cifar-100-binary"
    cifar.write_binary(root / "test.bin", [2, 0, 1], images, label_bytes=2)
    (root / "fine_label_names.txt").write_text("apple\naquarium_fish\nbaby\n")
    assert cifar.to_class_folders(tmp_path, "cifar100", tmp_path / "out") == 3
    from PIL import Image
    assert (np.asarray(Image.open(tmp_path / "out/baby/00000.png")) == images[0]).all()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["apple", "aquarium_fish", "baby"]
    with open(root / "test.bin", "ab") as f:
        f.write(b"\0" * 10)  # a truncated record
    with pytest.raises(FormatError, match=r"test.bin: .* not a whole number of 3074-byte records"):
        cifar.to_class_folders(tmp_path, "cifar100", tmp_path / "again")
    cifar.write_binary(root / "test.bin", [7], images[:1], label_bytes=2)
    with pytest.raises(FormatError, match=r"test.bin: record 1: label 7 but only 3 class names"):
        cifar.to_class_folders(tmp_path, "cifar100", tmp_path / "again")
