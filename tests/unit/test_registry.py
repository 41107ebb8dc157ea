"""registry.tree_sha256: the integrity hash of a model artifact folder."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from autoretrain.registry import ModelIntegrityError, tree_sha256

FILES = {"MLmodel": b"flavors:\n  sklearn: {}\n", "model.pkl": bytes(range(256)) * 4,
         "conda.yaml": b"name: x\n", "sub/requirements.txt": b"scikit-learn==1.5\n"}


def _make(root: Path, files: dict[str, bytes], order: list[str] | None = None) -> Path:
    for name in order or list(files):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(files[name])
    return root


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    return _make(tmp_path / "model", FILES)


def test_hash_is_hex_sha256_and_repeatable(model_dir: Path) -> None:
    digest = tree_sha256(model_dir)
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    assert tree_sha256(model_dir) == digest
    assert tree_sha256(str(model_dir)) == digest


def test_hash_format_is_pinned(tmp_path: Path) -> None:
    # versions registered earlier carry this hash in a tag: changing the format breaks every load
    root = _make(tmp_path / "m", {"b/c.txt": b"world", "a.txt": b"hello"})
    expected = hashlib.sha256(b"a.txt\0hello\0b/c.txt\0world\0").hexdigest()
    assert tree_sha256(root) == expected


def test_hash_independent_of_creation_order_and_location(tmp_path: Path, model_dir: Path) -> None:
    other = _make(tmp_path / "elsewhere" / "copy", FILES, order=sorted(FILES, reverse=True))
    assert tree_sha256(other) == tree_sha256(model_dir)


def test_one_changed_byte_changes_the_hash(model_dir: Path) -> None:
    before = tree_sha256(model_dir)
    data = bytearray((model_dir / "model.pkl").read_bytes())
    data[500] ^= 0x01
    (model_dir / "model.pkl").write_bytes(bytes(data))
    assert tree_sha256(model_dir) != before


def test_renamed_file_changes_the_hash(model_dir: Path) -> None:
    before = tree_sha256(model_dir)
    (model_dir / "conda.yaml").rename(model_dir / "conda.yml")
    assert tree_sha256(model_dir) != before


def test_moved_file_changes_the_hash(model_dir: Path) -> None:
    before = tree_sha256(model_dir)
    (model_dir / "sub/requirements.txt").rename(model_dir / "requirements.txt")
    assert tree_sha256(model_dir) != before


def test_added_file_changes_the_hash(model_dir: Path) -> None:
    before = tree_sha256(model_dir)
    (model_dir / "extra.txt").write_bytes(b"")
    assert tree_sha256(model_dir) != before


def test_removed_file_changes_the_hash(model_dir: Path) -> None:
    before = tree_sha256(model_dir)
    (model_dir / "conda.yaml").unlink()
    assert tree_sha256(model_dir) != before


def test_content_moved_between_files_changes_the_hash(tmp_path: Path) -> None:
    a = _make(tmp_path / "a", {"x": b"ab", "y": b""})
    b = _make(tmp_path / "b", {"x": b"a", "y": b"b"})
    assert tree_sha256(a) != tree_sha256(b)


def test_empty_directories_do_not_count(model_dir: Path) -> None:
    before = tree_sha256(model_dir)
    (model_dir / "empty" / "nested").mkdir(parents=True)
    assert tree_sha256(model_dir) == before


@pytest.mark.parametrize("layout", ["empty", "only-subfolders"])
def test_folder_without_files_is_refused(tmp_path: Path, layout: str) -> None:
    root = tmp_path / "model"
    root.mkdir()
    if layout == "only-subfolders":
        (root / "a" / "b").mkdir(parents=True)
    with pytest.raises(ModelIntegrityError, match=r"holds no files to hash") as info:
        tree_sha256(root)
    assert str(root) in str(info.value)


def test_missing_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelIntegrityError, match="holds no files to hash"):
        tree_sha256(tmp_path / "does-not-exist")


SKOPS_IMPORT = """
import airflow.sdk, airflow.utils  # what every task process has imported
{how}
print("IMPORTED")
"""


@pytest.mark.parametrize(("how", "flood"), [
    ("import skops.io", True),  # the control: the flood that issue 15 measured in every task log
    ("from autoretrain.registry import quiet_skops_import; quiet_skops_import()", False),
])
def test_skops_import_does_not_flood_a_task_log(how, flood, tmp_path):
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", SKOPS_IMPORT.format(how=how)], capture_output=True, text=True,
                          env=env, timeout=120)
    assert done.returncode == 0 and "IMPORTED" in done.stdout, done.stderr[-2000:]
    lines = sum("DeprecatedImportWarning" in line for line in (done.stdout + done.stderr).splitlines())
    assert (lines > 100) if flood else (lines == 0), lines
