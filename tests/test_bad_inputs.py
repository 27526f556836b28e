"""A corpus of broken and hostile inputs: each gets a typed, one-line error naming the file,
exit status 2 from the CLI, and nothing is written outside the output folder."""

import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

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


def test_corpus_is_refused_within_bounded_time_and_memory(tmp_path):
    """All hostile inputs read in one fresh process: each refused with a typed error within a generous
    bound (a hang guard, not a performance target), and the process's peak memory stays small."""
    import json
    import subprocess
    import sys

    paths = {case: str(corpus.build(case, tmp_path / case)) for case in sorted(corpus.CASES)}
    child = (
        "import json, sys, time\n"
        "from ctmodels.io import read_ct\n"
        "from ctmodels.errors import CTModelsError\n"
        "out = {}\n"
        "for case, path in json.loads(sys.argv[1]).items():\n"
        "    t = time.perf_counter()\n"
        "    try:\n"
        "        read_ct(path)\n"
        "        kind = 'no error'\n"
        "    except CTModelsError as e:\n"
        "        kind = 'typed'\n"
        "    except BaseException as e:\n"
        "        kind = type(e).__name__\n"
        "    out[case] = (kind, time.perf_counter() - t)\n"
        "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')][0].split()[1]\n"
        "print(json.dumps({'cases': out, 'peak_mb': int(hwm) / 1024}))\n")
    r = subprocess.run([sys.executable, "-c", child, json.dumps(paths)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    d = json.loads(r.stdout.strip().splitlines()[-1])
    assert {c: k for c, (k, _) in d["cases"].items()} == {c: "typed" for c in paths}
    slow = {c: round(s, 1) for c, (_, s) in d["cases"].items() if s > 20}
    assert not slow, slow
    assert d["peak_mb"] < 512, d["peak_mb"]  # measured ~60 MB


def _undecodable_value(path, tag: bytes) -> None:
    """Make one header value of a DICOM file undecodable: its VR's second letter zeroed (pydicom raises
    NotImplementedError when the value is first used, not when the file is read)."""
    b = bytearray(path.read_bytes())
    b[b.index(tag) + 5] = 0
    path.write_bytes(bytes(b))


MODALITY, MEDIA_SOP_CLASS, STUDY_UID = b"\x08\x00\x60\x00CS", b"\x02\x00\x02\x00UI", b"\x20\x00\x0d\x00UI"


def test_a_file_with_a_header_value_that_does_not_decode(tmp_path, capsys):
    """Found by the fuzz test: such a file alone was an internal error (a NotImplementedError from pydicom); in a
    folder it made the whole series unreadable, and `triage` stopped on it. Now: alone, a one-line error naming
    it; in a series, the series is read without it, with a warning naming it (its slice filled in as a missing
    one); a value nobody needs (the file meta's SOP class) costs nothing."""
    from ctmodels.cli import main

    hu = chest_phantom((6, 16, 16))
    files = sorted(write_series(tmp_path / "s", hu, names="instance"))
    _undecodable_value(files[2], MODALITY)
    with pytest.raises(CTModelsError) as err:
        io.read_ct(files[2])
    assert "IM0002.dcm" in str(err.value) and "\n" not in str(err.value)
    assert main(["info", str(files[2])]) == 2
    out = capsys.readouterr().err
    assert out.startswith("error: ") and "IM0002.dcm" in out and out.count("\n") == 1
    vol = io.read_ct(tmp_path / "s")
    assert vol.shape == hu.shape and vol.meta.interpolated_slices == [2]
    assert np.array_equal(vol.voxels[[0, 1, 3, 4, 5]], hu[[0, 1, 3, 4, 5]])
    assert vol.meta.warnings[0] == ("1 file(s) set aside: a header value does not decode (first: IM0002.dcm); the "
                                    "series is read without them")
    files = sorted(write_series(tmp_path / "u", hu, names="instance"))
    _undecodable_value(files[0], STUDY_UID)  # the first file, whose header the series listing read
    vol = io.read_ct(tmp_path / "u")
    assert np.array_equal(vol.voxels, hu[1:]) and "(first: IM0000.dcm)" in vol.meta.warnings[0]
    files = sorted(write_series(tmp_path / "t", hu, names="instance"))
    _undecodable_value(files[3], MEDIA_SOP_CLASS)
    vol = io.read_ct(tmp_path / "t")
    assert np.array_equal(vol.voxels, hu) and vol.meta.warnings == []
