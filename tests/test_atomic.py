"""Files written whole or not at all (ctmodels.atomic), and the commands that write so."""

import errno

import pytest

from ctmodels.atomic import PARTIAL, write_together
from ctmodels.errors import OutputError


def _full(path, part=b"half"):
    """A writer that gets part of its file out and then finds the disk full."""
    path.write_bytes(part)
    raise OSError(errno.ENOSPC, "No space left on device")


def test_files_are_written_together_or_not_at_all(tmp_path):
    (tmp_path / "a.txt").write_text("an earlier run's a")
    write_together({tmp_path / "a.txt": lambda f: f.write_text("a"), tmp_path / "b.png": lambda f: f.write_bytes(b"b")})
    assert (tmp_path / "a.txt").read_text() == "a" and (tmp_path / "b.png").read_bytes() == b"b"
    with pytest.raises(OutputError) as err:
        write_together({tmp_path / "a.txt": lambda f: f.write_text("new a"), tmp_path / "c.png": _full})
    assert str(err.value) == f"{tmp_path}: could not write c.png: No space left on device"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.png"]  # no c.png, no partial files
    assert (tmp_path / "a.txt").read_text() == "a"  # as it was: its new version was not put in place
    seen = []
    write_together({tmp_path / "d.nii.gz": lambda f: seen.append(f.name) or f.write_bytes(b"d")})
    assert seen[0].startswith(PARTIAL) and seen[0].endswith("-d.nii.gz")  # writers choose the format by the suffix


def test_a_figure_on_a_full_disk_is_one_line_and_no_empty_image(tmp_path, capsys, monkeypatch):
    """check-breath-hold --save-figure on a full disk left an empty fig.png and said only "error: No space left on
    device"."""
    import numpy as np
    from PIL import Image

    from ctmodels.cli import main
    from ctmodels.phantoms import chest_phantom

    sp = (2.0, 0.7, 0.7)
    np.save(tmp_path / "chest.npy", chest_phantom(sp, extent_mm=80, seed=11))
    monkeypatch.setattr(Image.Image, "save", lambda self, fp, *a, **k: _full(fp))
    out = tmp_path / "figs"
    out.mkdir()
    assert main(["check-breath-hold", str(tmp_path / "chest.npy"), "--spacing", "2,0.7,0.7", "--save-figure",
                 str(out / "fig.png")]) == 2
    assert capsys.readouterr().err == f"error: {out}: could not write fig.png: No space left on device\n"
    assert list(out.iterdir()) == []
