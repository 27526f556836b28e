"""A corpus of broken and hostile inputs: each gets a typed, one-line error naming the file,
exit status 2 from the CLI, and nothing is written outside the output folder."""

import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ctmodels import io
from ctmodels.cli import main
from ctmodels.errors import CTModelsError
import corpus
from synth import chest_phantom, write_series


@pytest.mark.parametrize("case", sorted(corpus.CASES))
def test_bad_input_corpus(tmp_path, capsys, case):
    src = tmp_path / "in"
    target = corpus.build(case, src)
    before = sorted(os.walk(tmp_path))
    with pytest.raises(CTModelsError) as e:
        io.read_ct(target)
    msg = str(e.value)
    assert "\n" not in msg and target.name in msg
    out = tmp_path / "out"
    assert main(["segment", str(target), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and target.name in err
    assert main(["info", str(target)]) == 2
    assert "Traceback" not in capsys.readouterr().err
    # nothing written beside the input; nothing lands in the output folder but (at most) an empty results table
    assert sorted(os.walk(src)) == [w for w in before if w[0].startswith(str(src))]
    assert not (tmp_path.parent / "evil.dcm").exists() and not Path("/abs/evil.dcm").exists()
    assert not out.exists() or all(p.name == "results.csv" for p in out.iterdir())


def test_non_utf8_names_in_a_folder_and_a_zip(tmp_path):
    hu = chest_phantom((3, 16, 16))
    d = tmp_path / "series"
    files = write_series(d, hu)
    raw = os.fsencode(str(d)) + b"/caf\xe9_\xff.dcm"  # not valid UTF-8
    os.rename(files[0], raw)
    assert np.array_equal(io.read_ct(d).voxels, hu)
    z = tmp_path / "names.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for i, f in enumerate(sorted(d.iterdir())):
            info = zipfile.ZipInfo(f"s\u00e9rie/\udcff{i}.dcm".encode("utf-8", "surrogateescape").decode("cp437"))
            zf.writestr(info, f.read_bytes())
    assert np.array_equal(io.read_ct(z).voxels, hu)


def test_mixed_series_with_one_broken_file(tmp_path):
    hu = chest_phantom((4, 16, 16))
    write_series(tmp_path, hu, kernel="LUNG")
    (tmp_path / "README.txt").write_text("not dicom")
    (tmp_path / "broken.dcm").write_bytes(b"DICM" * 10)
    vol = io.read_ct(tmp_path)
    assert np.array_equal(vol.voxels, hu)
