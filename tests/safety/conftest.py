"""Fixtures of the adversarial suite: folders that refuse writes (read-only, full), and
the trainer's tiny model and real tokenizer."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.trainer.conftest import smol_tokenizer, tiny_model_dir  # noqa: F401 - fixtures


def _mount_tmpfs(folder: Path, options: str) -> bool:
    """Mount a tmpfs at ``folder`` (needs root); False when this machine does not allow it."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
                          capture_output=True)
    return done.returncode == 0


@pytest.fixture
def readonly_dir(tmp_path):
    """A folder nothing can be written in: mode 555, or for root (whom permission bits do
    not stop) a read-only tmpfs."""
    folder = tmp_path / "readonly"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    if not _mount_tmpfs(folder, "ro,size=1m"):
        pytest.skip("running as root without permission to mount a read-only folder")
    yield folder
    subprocess.run(["umount", str(folder)], check=False)


@pytest.fixture
def full_disk(tmp_path):
    """A folder on a 64 KiB tmpfs: a real 'No space left on device' (needs root)."""
    folder = tmp_path / "small_disk"
    folder.mkdir()
    if not _mount_tmpfs(folder, "size=64k"):
        pytest.skip("cannot mount a small tmpfs here (not root); the RLIMIT_FSIZE test covers it")
    yield folder
    subprocess.run(["umount", str(folder)], check=False)
