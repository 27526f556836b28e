"""Lesion labels written as a DICOM SEG of the series they were read from (ctmodels.dicom_seg), read back with
highdicom: each frame must lie on the slice it references, whatever way the series is stored."""

import numpy as np
import pydicom
import pytest

from ctmodels import dicom_seg, io
from ctmodels.cli import main
from ctmodels.errors import InvalidInputError
from synth import chest_phantom, write_series

hd = pytest.importorskip("highdicom")
FOR = {"FrameOfReferenceUID": "1.2.826.0.1.3680043.8.498.77"}


def _labels(hu):
    """Labels made from HU alone, so that they can be computed again from each stored slice: 2 above 300 HU, 3 below
    -500 HU, 1 between -500 and -200 HU."""
    hu = np.asarray(hu, np.int32)
    return np.select([hu > 300, hu < -500, hu < -200], [2, 3, 1], 0).astype(np.uint8)


def _series(folder, orientation=(1, 0, 0, 0, 1, 0), skip=(), tags=FOR, shape=(9, 40, 48), **kw):
    hu = chest_phantom(shape).astype(np.int16)
    hu[:, 3:9, 30:44] = 500  # a block in one corner: a flip or a transposition moves it
    hu[2:4, 20:26, 6:12] = -300
    return write_series(folder, hu, orientation=orientation, skip=skip, tags=tags, **kw)


def _frame_of(seg, ds):
    return seg.get_pixels_by_source_instance(source_sop_instance_uids=[ds.SOPInstanceUID], combine_segments=True,
                                             skip_overlap_checks=True)[0]


@pytest.mark.parametrize("orientation, kw", [((1, 0, 0, 0, 1, 0), {}), ((1, 0, 0, 0, -1, 0), {}),
                                             ((-1, 0, 0, 0, 1, 0), {}), ((1, 0, 0, 0, 0, -1), {}),
                                             ((1, 0, 0, 0, 1, 0), {"shear": (0.0, 1.0, 0.0)}),
                                             ((1, 0, 0, 0, 1, 0), {"duplicate": (3,)})],
                         ids=["axial", "rows-up-feet-first", "columns-flipped", "coronal", "gantry-tilt",
                              "a-slice-twice"])
def test_each_frame_lies_on_the_slice_it_references(tmp_path, orientation, kw):
    """Labels computed on the canonical volume and written as a SEG equal, frame by frame, the labels computed from
    each stored slice's own pixels; every slice of the series has its frame's pixels (of a slice stored twice, the
    copy read), and the SEG carries the series' study, patient and frame of reference."""
    paths = _series(tmp_path / "ct", orientation, **kw)
    vol = io.read_ct(tmp_path / "ct")
    assert dicom_seg.write_dicom_seg(_labels(vol.voxels), vol, tmp_path / "x.seg.dcm") == []
    seg = hd.seg.segread(tmp_path / "x.seg.dcm")
    referenced = {r.ReferencedSOPInstanceUID for r in seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence}
    assert len(referenced) == vol.shape[0 if orientation[4] else 1]
    for p in paths:
        ds = pydicom.dcmread(p)
        if ds.SOPInstanceUID not in referenced:  # the copy set aside of a slice stored twice
            assert kw.get("duplicate") and ds.InstanceNumber == 4, p.name
            continue
        expected = _labels(ds.pixel_array.astype(np.int32) + int(ds.RescaleIntercept))
        assert np.array_equal(_frame_of(seg, ds), expected), p.name
    assert seg.Modality == "SEG" and seg.StudyInstanceUID == ds.StudyInstanceUID
    assert seg.FrameOfReferenceUID == FOR["FrameOfReferenceUID"] and seg.PatientID == ds.PatientID
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == ds.SeriesInstanceUID
    assert seg.SeriesInstanceUID != ds.SeriesInstanceUID
    kinds = [(d.SegmentNumber, d.SegmentedPropertyTypeCodeSequence[0].CodeValue) for d in seg.SegmentSequence]
    assert kinds == [(1, "112120"), (2, "95436008"), (3, "39607008")]
    regions = [[r.CodeValue for r in getattr(d, "AnatomicRegionSequence", [])] for d in seg.SegmentSequence]
    assert regions == [["39607008"], ["39607008"], []]  # the lesions lie in the lung


def test_slices_made_to_fill_a_gap_are_left_out_and_said(tmp_path):
    paths = _series(tmp_path / "ct", skip=(4,))
    vol = io.read_ct(tmp_path / "ct")
    assert len(vol.meta.interpolated_slices) == 1 and vol.shape[0] == len(paths) + 1
    notes = dicom_seg.write_dicom_seg(_labels(vol.voxels), vol, tmp_path / "x.seg.dcm")
    assert len(notes) == 1 and "1 slice(s) made by interpolation" in notes[0]
    seg = hd.seg.segread(tmp_path / "x.seg.dcm")
    for p in paths:
        ds = pydicom.dcmread(p)
        assert np.array_equal(_frame_of(seg, ds), _labels(ds.pixel_array.astype(np.int32) - 1024)), p.name


def test_inputs_a_seg_cannot_reference_are_one_line(tmp_path, monkeypatch):
    _series(tmp_path / "plain", tags=None)  # no FrameOfReferenceUID
    vol = io.read_ct(tmp_path / "plain")
    with pytest.raises(InvalidInputError, match="no DICOM SEG: the slices name no FrameOfReferenceUID"):
        dicom_seg.write_dicom_seg(_labels(vol.voxels), vol, tmp_path / "x.seg.dcm")
    for tag in ("ImagePositionPatient", "PixelSpacing"):  # read with a default, but a SEG must place its frames
        for f in _series(tmp_path / tag):
            ds = pydicom.dcmread(f)
            delattr(ds, tag)
            ds.save_as(f)
        vol = io.read_ct(tmp_path / tag)
        with pytest.raises(InvalidInputError, match=f"no DICOM SEG: the slices give no {tag}, which a DICOM SEG"):
            dicom_seg.write_dicom_seg(_labels(vol.voxels), vol, tmp_path / "x.seg.dcm")
    nii = io.write_volume_nifti(vol.voxels, vol.spacing, tmp_path / "ct.nii.gz")
    vol = io.read_ct(nii)
    with pytest.raises(InvalidInputError, match=r"ct.nii.gz: no DICOM SEG: not DICOM \(nifti\)"):
        dicom_seg.write_dicom_seg(_labels(vol.voxels), vol, tmp_path / "x.seg.dcm")
    _series(tmp_path / "ct")
    vol = io.read_ct(tmp_path / "ct")
    with pytest.raises(InvalidInputError, match="do not lie on the volume's grid"):
        dicom_seg.write_dicom_seg(_labels(vol.voxels)[1:], vol, tmp_path / "x.seg.dcm")
    monkeypatch.setattr(dicom_seg, "available", lambda: False)
    with pytest.raises(InvalidInputError, match=r"needs highdicom: pip install highdicom \(or ctmodels' seg extra\)"):
        dicom_seg.write_dicom_seg(_labels(vol.voxels), vol, tmp_path / "x.seg.dcm")
    assert not (tmp_path / "x.seg.dcm").exists()


def test_the_headers_kept_for_the_seg_do_not_show_the_patient(tmp_path):
    """The slices' headers ride with the volume (patient name and ID among them) but its repr and its meta's do not
    show them, and they hold no pixel data (the volume does)."""
    _series(tmp_path / "ct")
    vol = io.read_ct(tmp_path / "ct")
    shown = repr(vol) + repr(vol.meta) + str(vol.meta)
    assert "Doe" not in shown and "PID-12345" not in shown
    assert len(vol.meta.sources) == vol.shape[0]
    assert all("PixelData" not in h and h.PatientID == "PID-12345" for h in vol.meta.sources.headers)


def test_segment_writes_a_seg_for_a_dicom_series_and_says_why_not_for_other_inputs(tmp_path, capsys):
    paths = _series(tmp_path / "ct", shape=(6, 64, 64))
    vol = io.read_ct(tmp_path / "ct")
    io.write_volume_nifti(vol.voxels, vol.spacing, tmp_path / "vol.nii.gz")
    out = tmp_path / "out"
    assert main(["segment", str(tmp_path / "ct"), str(tmp_path / "vol.nii.gz"), "--out", str(out), "-q",
                 "--dicom-seg"]) == 0
    err = capsys.readouterr().err
    assert "vol.nii.gz: no DICOM SEG: not DICOM (nifti)" in err and "Traceback" not in err
    assert sorted(p.name for p in out.glob("*.seg.dcm")) == ["ct.seg.dcm"]
    seg = hd.seg.segread(out / "ct.seg.dcm")
    mask = io.read_labels(out / "ct.mask.nii.gz")  # what segment wrote as NIfTI: the SEG holds the same labels
    assert mask.shape == vol.shape
    for p in paths:
        ds = pydicom.dcmread(p)
        z = int(np.argmin([abs(z_mm - float(ds.ImagePositionPatient[2])) for z_mm in vol.meta.slice_positions]))
        assert np.array_equal(_frame_of(seg, ds), mask.voxels[z]), p.name
    # read again as a study folder holding the SEG: the SEG is a series of its own, not a CT slice
    (tmp_path / "ct" / "ct.seg.dcm").write_bytes((out / "ct.seg.dcm").read_bytes())
    again = io.read_ct(tmp_path / "ct")
    assert np.array_equal(again.voxels, vol.voxels)
    capsys.readouterr()
    assert main(["info", str(tmp_path / "ct")]) == 0
    listed = [ln for ln in capsys.readouterr().out.splitlines() if " SEG " in ln]
    assert len(listed) == 1 and listed[0].endswith("not CT slices: a segmentation (DICOM SEG): labels of another "
                                                   "series' slices"), listed


def test_segment_without_highdicom_says_so_before_any_work(tmp_path, capsys, monkeypatch):
    _series(tmp_path / "ct")
    monkeypatch.setattr(dicom_seg, "available", lambda: False)
    assert main(["segment", str(tmp_path / "ct"), "--out", str(tmp_path / "out"), "--dicom-seg"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "error: writing a DICOM SEG needs highdicom: pip install highdicom (or ctmodels' seg extra)"
    assert not any((tmp_path / "out").glob("*.png"))


def test_an_enhanced_ct_file_gets_a_seg_of_its_frames(tmp_path):
    """One multi-frame file (converted by highdicom from a series, frames stored head first): the SEG references
    its frames, each frame's labels those of the slice that frame holds."""
    from pydicom.uid import generate_uid

    files = _series(tmp_path / "single", orientation=(1, 0, 0, 0, -1, 0))
    legacy = [pydicom.dcmread(f) for f in files]
    enh = hd.legacy.LegacyConvertedEnhancedCTImage(legacy_datasets=legacy, series_instance_uid=generate_uid(),
                                                   series_number=7, sop_instance_uid=generate_uid(),
                                                   instance_number=1)
    enh.save_as(tmp_path / "enhanced.dcm")
    vol = io.read_ct(tmp_path / "enhanced.dcm")
    assert vol.meta.sources.multiframe and len(vol.meta.sources.headers) == 1
    assert dicom_seg.write_dicom_seg(_labels(vol.voxels), vol, tmp_path / "x.seg.dcm") == []
    seg = hd.seg.segread(tmp_path / "x.seg.dcm")
    ds = pydicom.dcmread(tmp_path / "enhanced.dcm", stop_before_pixels=True)
    by_position = {tuple(float(v) for v in f.ImagePositionPatient): f for f in legacy}
    for i, frame in enumerate(ds.PerFrameFunctionalGroupsSequence):
        f = by_position[tuple(float(v) for v in frame.PlanePositionSequence[0].ImagePositionPatient)]
        got = seg.get_pixels_by_source_frame(source_sop_instance_uid=ds.SOPInstanceUID, source_frame_numbers=[i + 1],
                                             combine_segments=True, skip_overlap_checks=True)[0]
        assert np.array_equal(got, _labels(f.pixel_array.astype(np.int32) + int(f.RescaleIntercept))), i


def test_viewers_are_told_to_draw_each_segment_in_the_overlay_s_colour(tmp_path):
    """Each segment's RecommendedDisplayCIELabValue, decoded as DICOM scales it and turned back into sRGB, is the
    colour the overlays draw that class in."""
    from skimage.color import lab2rgb

    from ctmodels.viz import DEFAULT_COLORS

    _series(tmp_path / "ct")
    vol = io.read_ct(tmp_path / "ct")
    dicom_seg.write_dicom_seg(_labels(vol.voxels), vol, tmp_path / "x.seg.dcm")
    for d in hd.seg.segread(tmp_path / "x.seg.dcm").SegmentSequence:
        v = np.asarray(d.RecommendedDisplayCIELabValue, float) / 65535
        lab = np.array([v[0] * 100, v[1] * 255 - 128, v[2] * 255 - 128])
        rgb = lab2rgb(lab.reshape(1, 1, 3))[0, 0] * 255
        assert np.abs(rgb - DEFAULT_COLORS[d.SegmentNumber]).max() < 1.5, (d.SegmentNumber, rgb)


def test_making_a_seg_shows_nothing_of_the_patient(tmp_path, capfd, caplog, recwarn):
    """highdicom warns of a one-part patient name by quoting it; that warning reaches no log, stream or caller."""
    import logging

    _series(tmp_path / "ct", patient_name="Smithers")
    vol = io.read_ct(tmp_path / "ct")
    with caplog.at_level(logging.DEBUG):
        dicom_seg.write_dicom_seg(_labels(vol.voxels), vol, tmp_path / "x.seg.dcm")
    out, err = capfd.readouterr()
    assert "Smithers" not in out + err + caplog.text and not [w for w in recwarn if "Smithers" in str(w.message)]
    assert hd.seg.segread(tmp_path / "x.seg.dcm").PatientName == "Smithers"  # the SEG itself carries it
    # labels without a single labelled pixel (no lung found) still make a SEG, of empty frames, without a word
    with caplog.at_level(logging.DEBUG):
        dicom_seg.write_dicom_seg(np.zeros(vol.shape, np.uint8), vol, tmp_path / "empty.seg.dcm")
    out, err = capfd.readouterr()
    assert not (out + err).strip() and not [r for r in caplog.records if r.levelno >= logging.INFO]
    empty = hd.seg.segread(tmp_path / "empty.seg.dcm")
    assert empty.NumberOfFrames >= 1 and not empty.get_volume(combine_segments=True).array.any()


@pytest.mark.evaluation
def test_a_real_dicom_series_gets_a_seg_of_the_labels_segment_writes(tmp_path):
    """The 79-file real CT series: each SEG frame holds the labels of the slice at its source's position in the
    NIfTI mask written on the same volume."""
    from conftest import shared

    folder = shared("chest_ct64", "ct-64Dicom")
    vol = io.read_ct(folder)
    labels = _labels(vol.voxels)
    dicom_seg.write_dicom_seg(labels, vol, tmp_path / "x.seg.dcm")
    seg = hd.seg.segread(tmp_path / "x.seg.dcm")
    files = sorted(p for p in folder.iterdir() if p.is_file())
    assert len(files) == 79
    for p in files:
        ds = pydicom.dcmread(p)
        hu = ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        assert np.array_equal(_frame_of(seg, ds), _labels(np.round(hu))), p.name


def test_the_applications_keep_highdicom_quiet_for_good(tmp_path):
    """The CLI and the app call io.quiet_readers once: highdicom's warnings (a one-part patient name quoted) and its
    log notes are dropped for the process, whatever another thread does with the warning filters meanwhile."""
    import subprocess
    import sys

    code = ("import logging; from ctmodels.io import quiet_readers; quiet_readers(); "
            "from highdicom.valuerep import check_person_name; check_person_name('Smithers'); "
            "logging.getLogger('highdicom.seg.sop').warning('a note naming Smithers')")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "Smithers" not in r.stdout + r.stderr
    r = subprocess.run([sys.executable, "-c", code.replace("quiet_readers(); ", "")], capture_output=True, text=True,
                       timeout=120, cwd=tmp_path)
    assert r.stderr.count("Smithers") == 2  # without it, both reach stderr
