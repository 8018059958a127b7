"""store.atomic_folder: a folder appears whole or not at all, on a real file system."""

from pathlib import Path

import pytest

from juno.errors import JunoError
from juno.models import store


def siblings(dest: Path) -> list[str]:
    """Everything next to ``dest``: itself, and any temporary or old copy left behind."""
    return sorted(p.name for p in dest.parent.iterdir())


def old_folder(dest: Path) -> Path:
    dest.mkdir()
    (dest / "old.txt").write_text("keep me")
    return dest


def test_the_folder_appears_when_the_block_ends(tmp_path):
    dest = tmp_path / "models" / "model"  # the parent is made too
    with store.atomic_folder(dest) as tmp:
        assert tmp.parent == dest.parent and tmp.name.startswith(".")
        assert list(tmp.iterdir()) == []
        (tmp / "weights.bin").write_bytes(b"123")
        assert not dest.exists()
    assert (dest / "weights.bin").read_bytes() == b"123"
    assert (dest.stat().st_mode & 0o777) == 0o755
    assert siblings(dest) == ["model"]


def test_a_failing_block_leaves_nothing_behind(tmp_path):
    dest = tmp_path / "model"
    with pytest.raises(RuntimeError, match="disk on fire"), store.atomic_folder(dest) as tmp:
        (tmp / "half.bin").write_bytes(b"1")
        raise RuntimeError("disk on fire")
    assert siblings(dest) == []


def test_a_failing_block_keeps_the_old_folder(tmp_path):
    dest = old_folder(tmp_path / "model")
    with pytest.raises(KeyboardInterrupt), store.atomic_folder(dest, overwrite=True) as tmp:
        (tmp / "half.bin").write_bytes(b"1")
        raise KeyboardInterrupt
    assert sorted(p.name for p in dest.iterdir()) == ["old.txt"]
    assert siblings(dest) == ["model"]


def test_an_existing_folder_is_replaced_only_when_asked(tmp_path):
    dest = old_folder(tmp_path / "model")
    with pytest.raises(JunoError, match="already exists"), store.atomic_folder(dest):
        pytest.fail("the block must not run")
    assert (dest / "old.txt").read_text() == "keep me"
    assert siblings(dest) == ["model"]

    with store.atomic_folder(dest, overwrite=True) as tmp:
        (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in dest.iterdir()) == ["new.txt"]
    assert siblings(dest) == ["model"]


def test_a_file_in_the_way_is_not_replaced(tmp_path):
    dest = tmp_path / "model"
    dest.write_text("not a folder")
    with pytest.raises(JunoError, match="is not a folder"):
        with store.atomic_folder(dest, overwrite=True):
            pytest.fail("the block must not run")
    assert dest.read_text() == "not a folder"
    assert siblings(dest) == ["model"]
