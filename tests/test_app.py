"""Every app page through streamlit.testing.v1.AppTest: upload, toggle, opacity, numbers, no exception."""

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydicom.data import get_testdata_file

from ctmodels import io as ctio
from ctmodels.mask_scores import score_folders
from ctmodels.phantoms import chest_phantom
import corpus
from synth import itk_image, write_series

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _app(page):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=240)
    at.run()
    assert not at.exception
    if page:
        at.switch_page(f"app_pages/{page}.py")
        at.run()
    return at


def _png_slice() -> bytes:
    from ctmodels.examples import lesion_volume
    from ctmodels.preprocessing import window_hu

    v = lesion_volume(n_slices=2)
    buf = io.BytesIO()
    Image.fromarray(window_hu(v.voxels[0], -600, 1500)).save(buf, format="PNG")
    return buf.getvalue()


def _metric(at, label):
    return [m.value for m in at.metric if m.label == label][0]


def test_lesions_page_upload_toggle_and_opacity():
    at = _app(None)
    assert at.title[0].value == "Lesion segmentation"
    # the synthetic example is on by default for visitors without files
    assert any("SYNTHETIC" in w.value for w in at.warning)
    made = [c.value for c in at.caption if c.value.startswith("Made in code (this example's truth): GGO ")]
    assert len(made) == 1 and "; in this slice " in made[0]  # beside what the model found
    share = [c.value for c in at.caption if c.value.startswith("This slice holds ")]  # a volume: the slice's lung
    assert len(share) == 1 and share[0].endswith(" % of the input's lung.")
    assert 0 < float(share[0].split()[3]) <= 100
    plain = at.get("image")[0].proto.imgs[0]
    at.checkbox(key="show_made").check()  # its truth outlined over the model's overlay
    at.run()
    outlined = at.get("image")[0].proto.imgs[0]
    assert outlined.caption.endswith("; outlined: what the example was made with") and outlined.url != plain.url
    at.file_uploader(key="lesion_upload").set_value(("slice.png", _png_slice(), "image/png"))
    at.run()
    assert not at.exception and not at.error
    assert not any("SYNTHETIC" in w.value for w in at.warning)
    assert not [c for c in at.caption if c.value.startswith("Made in code")]
    assert not [c for c in at.caption if c.value.startswith("This slice holds ")]  # one slice: all of it
    assert "show_made" not in [c.key for c in at.checkbox]
    grade = _metric(at, "Grade")
    assert grade in {"CT-0", "CT-1", "CT-2", "CT-3", "CT-4"}
    inv = float(_metric(at, "Involved").split()[0])
    assert 0.0 <= inv <= 100.0
    img0 = at.get("image")[0].proto.imgs[0]
    assert img0.caption == "slice 0 - ground-glass opacity, consolidation"
    # switching a class off and changing opacity re-renders without re-running the model
    at.checkbox(key="show_1").uncheck()
    at.slider(key="lesion_opacity").set_value(0.9)
    at.run()
    assert not at.exception and not at.error
    assert _metric(at, "Grade") == grade
    assert "8-bit display image" in " ".join(c.value for c in at.caption)
    labels = [b.proto.label for b in at.get("download_button")]
    assert labels == ["Overlay PNG", "Label mask (PNG)", "CSV"]
    img1 = at.get("image")[0].proto.imgs[0]  # drawn again: GGO off, another opacity
    assert img1.caption == "slice 0 - consolidation" and img1.url != img0.url


def test_lesions_page_bad_upload_is_one_line_error():
    at = _app(None)
    at.file_uploader(key="lesion_upload").set_value(("scan.png", b"this is not a png", "image/png"))
    at.run()
    assert not at.exception
    assert len(at.error) == 1 and "not a readable image" in at.error[0].value
    assert "\n" not in at.error[0].value and "Traceback" not in at.error[0].value
    # the page stopped at the error; the research-use notice in the sidebar is still there
    assert any(c.value.startswith("Research use only - not for diagnosis") for c in at.sidebar.caption)


@pytest.mark.parametrize("case", sorted(corpus.CASES))
def test_every_bad_input_is_one_st_error_naming_the_file(tmp_path, case):
    path = corpus.build(case, tmp_path)
    at = _app(None)
    at.file_uploader(key="lesion_upload").set_value((path.name, path.read_bytes(), "application/octet-stream"))
    at.run()
    assert not at.exception
    assert len(at.error) == 1, [e.value for e in at.error]
    msg = at.error[0].value
    assert "\n" not in msg and "Traceback" not in msg and path.name in msg
    assert "ctmodels-upload-" not in msg  # the private temp dir is not shown


def test_small_upload_gets_a_visible_warning():
    at = _app(None)
    yy, xx = np.mgrid[:96, :96]
    disc = (yy - 48) ** 2 + (xx - 48) ** 2 < 40 ** 2
    img = Image.fromarray(np.where(disc, 140 + (yy + xx) // 4, 20 + xx // 8).astype(np.uint8))  # shaded: not a mask
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    at.file_uploader(key="lesion_upload").set_value(("small.png", buf.getvalue(), "image/png"))
    at.run()
    assert not at.exception and not at.error
    assert any("96x96" in w.value and "unreliable" in w.value for w in at.warning)


def assert_refused_upload(name: str, png: bytes, says: str) -> None:
    """A PNG uploaded on Lesions gets one line naming it that ``says`` why, no traceback and no grade."""
    at = _app(None)
    at.file_uploader(key="lesion_upload").set_value((name, png, "image/png"))
    at.run()
    assert not at.exception
    assert len(at.error) == 1 and name in at.error[0].value and says in at.error[0].value
    assert "\n" not in at.error[0].value.strip()
    assert not [m for m in at.metric if m.label == "Grade"]


def test_a_noise_upload_gets_one_line_naming_it_and_no_grade():
    buf = io.BytesIO()
    Image.fromarray((np.random.default_rng(1).random((256, 256)) * 255).astype(np.uint8)).save(buf, format="PNG")
    assert_refused_upload("noise.png", buf.getvalue(), "random noise")


def test_an_image_without_lung_gets_no_grade_on_either_page():
    """A black PNG: the model finds no lung, so both pages say so and show n/a, not CT-0 and a probability."""
    buf = io.BytesIO()
    Image.fromarray(np.zeros((256, 256), np.uint8)).save(buf, format="PNG")
    for page, key in ((None, "lesion_upload"), ("severity", "severity_upload")):
        at = _app(page)
        at.file_uploader(key=key).set_value(("black.png", buf.getvalue(), "image/png"))
        at.run()
        assert not at.exception and not at.error
        assert _metric(at, "Grade") == "n/a"
        assert page is None or _metric(at, "P(extensive)") == "n/a"
        assert sum("no lung found" in w.value for w in at.warning) == 1
        assert not [c for c in at.caption if c.value.startswith("Volumes")]  # an image has no voxel size


def test_severity_page_with_a_dicom_zip(tmp_path):
    hu = chest_phantom((5.0, 1.5, 1.5), extent_mm=40, fov_mm=330, seed=5)
    files = write_series(tmp_path / "s", hu)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for f in files:
            zf.write(f, f"study/{f.name}")
    at = _app("severity")
    at.file_uploader(key="severity_upload").set_value(("study.zip", buf.getvalue(), "application/zip"))
    at.run()
    assert not at.exception and not at.error
    assert _metric(at, "Grade").startswith("CT-")
    p = float(_metric(at, "P(extensive)"))
    assert 0.0 <= p <= 1.0
    assert at.get("arrow_vega_lite_chart") or at.get("vega_lite_chart")
    assert any("What the numbers mean" in m.value for m in at.markdown)
    assert [c.value for c in at.caption if c.value.startswith("Series used:")] == [
        "Series used: the only series; lung kernel (GE kernel LUNG); 8 slices"]
    volumes = [c.value for c in at.caption if c.value.startswith("Volumes, from the scan's voxel size: lung ")]
    assert len(volumes) == 1 and volumes[0].endswith(" mL.")


def _png_of(arr) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.asarray(arr, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _two_slice_pngs():
    """The example's first two slices as PNG uploads, the second cropped by 40 rows: (the volume, the uploads)."""
    from ctmodels.examples import lesion_volume
    from ctmodels.preprocessing import window_hu

    v = lesion_volume(n_slices=2)
    pngs = []
    for k, crop in enumerate((slice(None), slice(40, None))):
        buf = io.BytesIO()
        Image.fromarray(window_hu(v.voxels[k], -600, 1500)[crop]).save(buf, format="PNG")
        pngs.append((f"slice{k}.png", buf.getvalue(), "image/png"))
    return v, pngs


def test_several_slice_images_are_each_segmented_on_their_own(tmp_path):
    """Two PNG slices uploaded together on Lesions: a choice of which to show, each segmented as its own slice
    (before: refused, as a folder of images is not a study); the choice carries over to Study severity."""
    _, pngs = _two_slice_pngs()
    at = _app("lesions")
    at.file_uploader(key="lesion_upload").set_value(pngs)
    at.run()
    assert not at.exception and not at.error
    pick = [s for s in at.selectbox if s.label.startswith("2 slice images uploaded")]
    assert len(pick) == 1 and pick[0].options == ["slice0.png", "slice1.png"] and pick[0].value == 0
    first = _metric(at, "Involved")
    pick[0].set_value(1)
    at.run()
    assert not at.exception and not at.error
    assert [s.value for s in at.selectbox if s.label.startswith("2 slice images")] == [1]
    second = _metric(at, "Involved")
    assert first != second  # another slice, another result
    at.switch_page("app_pages/severity.py")
    at.run()
    assert not at.exception and not at.error
    assert [s.value for s in at.selectbox if s.label.startswith("2 slice images")] == [1]


def test_several_slice_images_can_be_segmented_all_into_one_table(tmp_path):
    """Several slice images on Lesions: a button segments every one into a table (segment's results.csv columns),
    a zip of masks named as segment names them, and one error line for an image that cannot be read."""
    v, pngs = _two_slice_pngs()
    pngs.append(("broken.png", b"\x89PNG\r\n\x1a\n not an image", "image/png"))
    at = _app("lesions")
    at.file_uploader(key="lesion_upload").set_value(pngs)
    at.run()
    assert not at.exception and not at.error
    assert not at.dataframe and at.button(key="lesion_all_images").label == "Segment all 3"
    shown = _metric(at, "Involved")  # slice0.png, segmented for the page
    at.button(key="lesion_all_images").click()
    at.run()
    assert not at.exception
    assert len(at.error) == 1 and "broken.png" in at.error[0].value and "\n" not in at.error[0].value
    rows = at.dataframe[0].value
    assert list(rows["input"]) == ["slice0.png", "slice1.png"]
    assert f"{rows['involved_pct'][0]:.1f} %" == shown
    assert set(rows["grade"]) <= {"CT-0", "CT-1", "CT-2", "CT-3", "CT-4"}
    table = at.session_state["results"][f"lesions-table-{at.session_state['upload']['key']}"]
    assert list(table.rows[0]) == ["input", "stem", "slices", "units", "series", "kernel", "key_slice", "ggo_pct",
                                   "consolidation_pct", "involved_pct", "lung_ml", "ggo_ml", "consolidation_ml",
                                   "grade", "p_extensive", "extent_class", "warnings"]
    with zipfile.ZipFile(io.BytesIO(table.masks_zip())) as z:
        assert z.namelist() == ["slice0.mask.png", "slice1.mask.png"]
        mask = np.asarray(Image.open(io.BytesIO(z.read("slice1.mask.png"))))
    assert mask.shape == (v.shape[1] - 40, v.shape[2]) and set(np.unique(mask)) <= {0, 1, 2, 3}
    lung = (mask > 0).sum()
    assert lung and ((mask == 1) | (mask == 2)).sum() / lung * 100 == pytest.approx(rows["involved_pct"][1], abs=1e-3)
    assert [b.proto.label for b in at.get("download_button")][-2:] == ["Table (CSV)", "Masks (zip)"]
    # references uploaded: slice0's is its own mask (Dice 1), slice1's is lesion-free; scored as ctmodels score does
    refs = [("slice0.png", table.masks["slice0.mask.png"], "image/png"),
            ("slice1.png", _png_of(np.zeros_like(mask)), "image/png")]
    at.file_uploader(key="lesion_references").set_value(refs)
    at.run()
    assert not at.exception and len(at.error) == 1  # broken.png's line only
    for name, data, _ in refs:
        (tmp_path / "ref").mkdir(exist_ok=True)
        (tmp_path / "ref" / name).write_bytes(data)
        (tmp_path / "pred").mkdir(exist_ok=True)
        (tmp_path / "pred" / f"{Path(name).stem}.mask.png").write_bytes(table.masks[f"{Path(name).stem}.mask.png"])
    want = score_folders(tmp_path / "pred", tmp_path / "ref").means()
    assert _metric(at, "Infection Dice") == f"{want['infection_dice']:.3f}" and _metric(at, "Slices scored") == "2"
    assert at.dataframe[1].value["ggo"][0] == pytest.approx(1.0)
    at.radio(key="lesion_empty_rule").set_value("zero")  # Inf-Net's tool: a class a reference lacks scores 0
    at.run()
    zero = score_folders(tmp_path / "pred", tmp_path / "ref", empty="zero").means()
    assert zero != want  # a class a reference lacks and its mask too: 1 by the card's rule, 0 by Inf-Net's
    for c, title in (("infection", "Infection"), ("ggo", "GGO"), ("consolidation", "Consolidation")):
        assert _metric(at, f"{title} Dice") == f"{zero[c + '_dice']:.3f}", c
    at.file_uploader(key="lesion_references").set_value([("slice1.png", _png_of(np.zeros((5, 5))), "image/png")])
    at.run()
    assert not at.exception and len(at.error) == 2  # broken.png's line, and this one
    said = at.error[1].value
    assert said.startswith("slice1.mask.png: ") and "against a 5x5 reference (slice1.png)" in said and "/tmp" not in said
    at.selectbox[0].set_value(1)  # another image shown: the table stays, not made again
    at.run()
    assert not at.exception and at.dataframe and "lesion_all_images" not in [b.key for b in at.button]


def test_warnings_name_uploaded_files_as_the_user_named_them(tmp_path):
    """Files uploaded one by one are kept in a private temp dir under numbered names; a warning that names one
    (here a volume file beside the DICOM series, not read) names it as uploaded. Before: '0008_copy.nii.gz'."""
    hu = chest_phantom((5.0, 1.5, 1.5), extent_mm=40, fov_mm=330, seed=5)
    files = write_series(tmp_path / "s", hu)
    nii = ctio.write_volume_nifti(hu, (5.0, 1.5, 1.5), tmp_path / "copy.nii.gz")
    at = _app("severity")
    at.file_uploader(key="severity_upload").set_value(
        [(f.name, f.read_bytes(), "application/dicom") for f in files] + [(nii.name, nii.read_bytes(), "")])
    at.run()
    assert not at.exception and not at.error
    said = [w.value for w in at.warning if "volume file(s)" in w.value]
    assert len(said) == 1 and "(copy.nii.gz), not read" in said[0], [w.value for w in at.warning]
    assert "ctmodels-upload-" not in " ".join(w.value for w in at.warning)


def test_a_metaimage_header_uploaded_with_its_data_file_reads_as_the_same_scan_in_nifti(tmp_path):
    """Uploads were written as '0000_scan.mhd' and '0001_scan.raw', so a header never found the data file it
    names. Names that do not clash are kept now: the pair reads as the NIfTI of the same scan does."""
    import SimpleITK as sitk

    sp = (2.0, 0.8, 0.8)
    hu = chest_phantom(sp, extent_mm=80, seed=9)
    nii = ctio.write_volume_nifti(hu, sp, tmp_path / "scan.nii.gz")
    sitk.WriteImage(itk_image(hu, sp), str(tmp_path / "scan.mhd"))
    shown = {}
    for files in ([("scan.nii.gz", nii.read_bytes(), "application/gzip")],
                  [(n, (tmp_path / n).read_bytes(), "application/octet-stream") for n in ("scan.mhd", "scan.raw")]):
        at = _app("severity")
        at.file_uploader(key="severity_upload").set_value(files)
        at.run()
        assert not at.exception and not at.error, [e.value for e in at.error]
        shown[files[0][0]] = (_metric(at, "Grade"), _metric(at, "Involved"))
    assert shown["scan.mhd"] == shown["scan.nii.gz"]


def test_a_tiff_stack_is_taken_by_the_uploader_and_shown_as_its_slices():
    """The uploader took PNG and JPG but not the TIFF and BMP slices the readers read (Streamlit refused them)."""
    page = Image.open(io.BytesIO(_png_slice()))
    buf = io.BytesIO()
    page.save(buf, format="TIFF", save_all=True, append_images=[page.transpose(Image.Transpose.FLIP_LEFT_RIGHT)] * 2)
    at = _app(None)
    at.file_uploader(key="lesion_upload").set_value(("stack.tif", buf.getvalue(), "image/tiff"))
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any(w.value.startswith("a TIFF of 3 pages, read as 3 slices") for w in at.warning)
    assert _metric(at, "Grade").startswith("CT-")


def test_a_series_with_a_missing_slice_shows_where_it_was_filled_in(tmp_path):
    hu = chest_phantom((5.0, 1.5, 1.5), extent_mm=40, fov_mm=330, seed=5)
    at = _app(None)
    upload = _zip_of_series(tmp_path, [("s", hu, {"spacing": (5.0, 1.5, 1.5), "skip": (4,)})])
    at.file_uploader(key="lesion_upload").set_value(("study.zip", upload, "application/zip"))
    at.run()
    assert not at.exception and not at.error
    assert any(w.value.startswith("1 missing slice(s) in 1 gap(s) of the series, filled by linear interpolation")
               for w in at.warning), [w.value for w in at.warning]
    at.slider(key="lesion_slice").set_value(4)
    at.run()
    assert at.get("image")[0].proto.imgs[0].caption.startswith(
        "slice 4 (S -280.0 mm), interpolated: missing from the series - ")
    at.slider(key="lesion_slice").set_value(5)
    at.run()
    assert at.get("image")[0].proto.imgs[0].caption.startswith("slice 5 (S -275.0 mm) - ")


def test_an_enhanced_ct_file_is_one_study_on_the_severity_page(tmp_path):
    """One multi-frame Enhanced CT file uploaded alone: read as its series, graded, with its volumes."""
    from test_io_dicom import _enhanced

    _, enhanced = _enhanced(tmp_path, chest_phantom((5.0, 1.5, 1.5), extent_mm=40, fov_mm=330, seed=5))
    at = _app("severity")
    at.file_uploader(key="severity_upload").set_value(("ct.dcm", enhanced.read_bytes(), "application/dicom"))
    at.run()
    assert not at.exception and not at.error
    assert _metric(at, "Grade").startswith("CT-")
    assert any("over all 8 slice(s)" in m.value for m in at.markdown)  # its 8 frames, one slice each
    assert [c for c in at.caption if c.value.startswith("Volumes, from the scan's voxel size: lung ")]


def test_one_upload_is_shared_by_the_pages_until_removed(tmp_path):
    """A study uploaded on Lesions is what Study severity and Breath-hold QA show, without a second upload;
    taking it out of the uploader, or Forget, brings the synthetic example back."""
    sp = (2.0, 0.8, 0.8)
    p = ctio.write_volume_nifti(chest_phantom(sp, extent_mm=80, seed=9), sp, tmp_path / "mine.nii.gz")
    at = _app(None)
    at.file_uploader(key="lesion_upload").set_value(("mine.nii.gz", p.read_bytes(), "application/gzip"))
    at.run()
    assert not at.exception and not at.error
    grade, involved = _metric(at, "Grade"), _metric(at, "Involved")
    assert not any("SYNTHETIC" in w.value for w in at.warning)
    at.switch_page("app_pages/models.py")  # a page without an uploader, then back: the upload is still there
    at.run()
    at.switch_page("app_pages/lesions.py")
    at.run()
    assert not at.exception and "upload" in at.session_state and _metric(at, "Grade") == grade
    at.switch_page("app_pages/severity.py")
    at.run()
    assert not at.exception and not at.error
    assert not any("SYNTHETIC" in w.value for w in at.warning)
    assert any("mine.nii.gz" in c.value and "uploaded earlier" in c.value for c in at.caption)
    assert _metric(at, "Grade") == grade
    at.switch_page("app_pages/quality.py")
    at.run()
    assert not at.exception and not at.error
    assert [r for r in at.dataframe[0].value["study"]] == ["mine.nii.gz"]
    assert _metric(at, "Pass") == "1" and _metric(at, "Undetermined") == "0"
    at.switch_page("app_pages/lesions.py")
    at.run()
    assert not at.exception and _metric(at, "Involved") == involved
    at.button(key="lesion_forget").click()
    at.run()
    assert not at.exception and "upload" not in at.session_state
    assert any("SYNTHETIC" in w.value for w in at.warning)
    assert at.session_state["results"] and all(k.startswith("example-") for k in at.session_state["results"])
    # an upload taken out of the uploader again is gone from every page
    at.file_uploader(key="lesion_upload").set_value(("mine.nii.gz", p.read_bytes(), "application/gzip"))
    at.run()
    assert not any("SYNTHETIC" in w.value for w in at.warning)
    at.file_uploader(key="lesion_upload").set_value(None)
    at.run()
    assert not at.exception and any("SYNTHETIC" in w.value for w in at.warning)
    at.switch_page("app_pages/severity.py")
    at.run()
    assert any("SYNTHETIC" in w.value for w in at.warning)


def _folder_upload(root: Path, top: Path):
    """The files below ``top`` as the browser sends an uploaded folder: names are paths from the folder's name."""
    return [(str(f.relative_to(root)).replace("\\", "/"), f.read_bytes(), "application/octet-stream")
            for f in sorted(top.rglob("*")) if f.is_file()]


def test_a_dicom_folder_as_exported_can_be_uploaded(tmp_path):
    """Files without .dcm (as PACS exports name them), series in subfolders, a DICOMDIR and a .DS_Store: the
    folder upload reads the study, and the other pages show it by the folder's name."""
    sp = (2.0, 0.8, 0.8)
    hu = chest_phantom(sp, extent_mm=80, seed=9)
    for sub, kernel in (("SE1", "STANDARD"), ("SE2", "LUNG")):
        for f in write_series(tmp_path / "export" / sub, hu, spacing=sp, kernel=kernel, series_number=int(sub[2])):
            f.rename(f.with_suffix(""))
    (tmp_path / "export" / "DICOMDIR").write_bytes(Path(get_testdata_file("DICOMDIR")).read_bytes())
    (tmp_path / "export" / ".DS_Store").write_bytes(b"Bud1" + b"\0" * 60)
    upload = _folder_upload(tmp_path, tmp_path / "export")
    assert not any(name.endswith(".dcm") for name, _, _ in upload)
    at = _app(None)
    at.toggle(key="lesion_folder_mode").set_value(True)
    at.run()
    at.file_uploader(key="lesion_folder").set_value(upload)
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert _metric(at, "Grade").startswith("CT-")
    z = at.slider(key="lesion_slice").value  # the slice shown, with its position as viewers give it
    assert at.get("image")[0].proto.imgs[0].caption.startswith(f"slice {z} (S {-300 + 2.0 * z:.1f} mm) - ")
    at.switch_page("app_pages/quality.py")
    at.run()
    assert not at.exception and not at.error
    assert any("**export**" in c.value for c in at.caption)
    assert list(at.dataframe[0].value["study"]) == ["export"] and _metric(at, "Pass") == "1"
    note = [c.value for c in at.caption if c.value.startswith("Series used:")]
    assert len(note) == 1 and "lung kernel" in note[0] and "soft-tissue series set aside" in note[0], note


def _zip_of_series(tmp_path, series) -> bytes:
    """A zip of DICOM series: ``series`` is [(subfolder, hu, write_series keywords)]."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for sub, hu, kw in series:
            for f in write_series(tmp_path / sub, hu, **kw):
                zf.write(f, f"study/{sub}/{f.name}")
    return buf.getvalue()


def test_the_series_to_check_can_be_chosen_on_breath_hold_qa(tmp_path):
    """The QA page's Series box offers the series the check may measure (never one tagged soft-tissue), keeps
    the pick with the upload, and leaves the lesion pages' choice alone. Neither offers a series whose
    BodyPartExamined names a part of the body without lung (reading refuses it)."""
    sp = (2.0, 0.8, 0.8)
    hu = chest_phantom(sp, extent_mm=80, seed=9)
    upload = _zip_of_series(tmp_path, [("se1", hu, dict(spacing=sp, kernel="STANDARD", series_number=1)),
                                       ("se2", hu, dict(spacing=sp, kernel="LUNG", series_number=2)),
                                       ("se3", hu[6:], dict(spacing=sp, kernel="LUNG", series_number=3)),
                                       ("se4", hu, dict(spacing=sp, kernel="LUNG", series_number=4,
                                                        tags={"BodyPartExamined": "HEAD"}))])
    second, third = (ctio.list_series(tmp_path / sub)[0].series_uid for sub in ("se2", "se3"))
    at = _app("quality")
    at.file_uploader(key="qa_upload").set_value(("study.zip", upload, "application/zip"))
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    box = at.selectbox(key=f"qa_series_{at.session_state['upload']['key']}")
    assert box.value == second and [o.split(" - ")[0] for o in box.options] == ["#2", "#3"]
    assert any(c.value.startswith(f"Series used: lung kernel (GE kernel LUNG); {len(hu)} slices") for c in at.caption)
    box.set_value(third)
    at.run()
    assert not at.exception and not at.error
    assert [c.value for c in at.caption if c.value.startswith("Series used:")] == [
        f"Series used: the series asked for; lung kernel (GE kernel LUNG); {len(hu) - 6} slices"]
    assert _metric(at, "Pass") == "1"
    # the lesion pages keep their own choice (their default), and the QA pick is there on return
    at.switch_page("app_pages/lesions.py")
    at.run()
    assert not at.exception and not at.error
    lesion_box = at.selectbox(key=f"lesion_series_{at.session_state['upload']['key']}")
    assert lesion_box.value == second and [o.split(" - ")[0] for o in lesion_box.options] == ["#1", "#2", "#3"]
    at.switch_page("app_pages/quality.py")
    at.run()
    assert at.selectbox(key=f"qa_series_{at.session_state['upload']['key']}").value == third


def test_breath_hold_qa_shows_how_the_study_was_read_and_labels_a_coronal_series(tmp_path):
    """The Lesions page showed the reader's warnings (slices filled in where the series lacked them, ...); Breath-hold
    QA did not. It shows them now; its Series box names a coronal series' plane, and checking that series says how
    its axial slices were made."""
    sp = (2.0, 0.8, 0.8)
    hu = chest_phantom(sp, extent_mm=80, seed=9)
    coronal = np.ascontiguousarray(hu.transpose(1, 0, 2)[:, ::-1])  # rows from head to feet
    upload = _zip_of_series(tmp_path, [
        ("ax", hu, dict(spacing=sp, series_number=2, skip=(9,))),
        ("cor", coronal, dict(spacing=(0.8, 2.0, 0.8), series_number=3, orientation=(1, 0, 0, 0, 0, -1)))])
    at = _app("quality")
    at.file_uploader(key="qa_upload").set_value(("study.zip", upload, "application/zip"))
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert [w.value for w in at.warning if "missing slice" in w.value] == [
        "1 missing slice(s) in 1 gap(s) of the series, filled by linear interpolation between their neighbours so "
        "that results lie on the series' grid; labels there are estimates"], [w.value for w in at.warning]
    box = at.selectbox(key=f"qa_series_{at.session_state['upload']['key']}")
    labels = {o.split(" - ")[0]: o for o in box.options}
    assert labels["#3"].endswith(" - coronal slices") and "coronal" not in labels["#2"], box.options
    box.set_value(ctio.list_series(tmp_path / "cor")[0].series_uid)
    at.run()
    assert not at.exception and not at.error
    assert "slices stored coronal: read as the axial slices across them, of 0.80 x 0.80 mm pixels" in [
        w.value for w in at.warning]


def test_breath_hold_qa_of_an_upload_of_two_studies_checks_both_or_lets_the_user_pick_one(tmp_path):
    """With the batch switch off, a zip with one DICOM study per folder had been refused (holds 2 studies) with the
    series to pick from; it is what batch mode takes, so it is checked as a batch, once, and the page says so.
    Switched off again, the page shows the studies' series to pick one from."""
    from ctmodels.quality import simulate_expiration

    sp = (2.0, 0.8, 0.8)
    expired = simulate_expiration(chest_phantom(sp, extent_mm=80, seed=6), sp, 0.5).astype(np.int16)
    upload = _zip_of_series(tmp_path, [
        (f"p{seed}", chest_phantom(sp, extent_mm=80, seed=seed) if seed == 5 else expired,
         dict(spacing=sp, study_uid=f"1.2.826.0.1.3680043.8.498.{seed}0")) for seed in (5, 6)])
    at = _app("quality")
    at.file_uploader(key="qa_upload").set_value(("both.zip", upload, "application/zip"))
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.toggle(key="qa_batch").value and sorted(at.dataframe[0].value["study"]) == ["p5", "p6"]
    assert _metric(at, "Pass") == "1" and _metric(at, "Fail") == "1"
    assert [i.value for i in at.info] == ["both.zip holds several studies, so each was checked on its own, as a batch. "
                                          "Switch off the batch switch to check one series of it instead."]
    at.toggle(key="qa_batch").set_value(False)
    at.run()
    assert not at.exception and not at.toggle(key="qa_batch").value and not at.info
    assert len(at.error) == 1 and at.error[0].value.startswith("both.zip: holds 2 studies")
    assert "Series box below" in at.error[0].value and "ctmodels" not in at.error[0].value
    box = at.selectbox(key=f"qa_series_{at.session_state['upload']['key']}")
    assert box.value is None and sorted(o.split(" - ")[0] for o in box.options) == ["study 1", "study 2"]
    box.set_value(ctio.list_series(tmp_path / "p5")[0].series_uid)
    at.run()
    assert not at.exception and not at.error and not at.toggle(key="qa_batch").value
    assert _metric(at, "Pass") == "1" and _metric(at, "Fail") == "0"
    assert any(c.value.startswith("Series used: the series asked for; lung kernel") for c in at.caption)


def test_quality_page_batch_folder_gives_sorted_download(tmp_path):
    from ctmodels.quality import simulate_expiration

    sp = (2.0, 0.8, 0.8)
    write_series(tmp_path / "inbox" / "a", chest_phantom(sp, extent_mm=80, seed=31), spacing=sp)
    (tmp_path / "inbox" / "b").mkdir()
    ctio.write_volume_nifti(simulate_expiration(chest_phantom(sp, extent_mm=80, seed=32), sp, 0.5).astype(np.int16),
                            sp, tmp_path / "inbox" / "b" / "b.nii.gz")
    (tmp_path / "inbox" / "notes.txt").write_text("not a study")
    at = _app("quality")
    at.toggle(key="qa_folder_mode").set_value(True)
    at.run()
    at.file_uploader(key="qa_folder").set_value(_folder_upload(tmp_path, tmp_path / "inbox"))
    at.run()
    at.toggle(key="qa_batch").set_value(True)
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert _metric(at, "Pass") == "1" and _metric(at, "Fail") == "1"
    assert sorted(at.dataframe[0].value["study"]) == ["a", "b"]
    spans = dict(zip(at.dataframe[0].value["study"], at.dataframe[0].value["slices (mm)"]))
    assert spans["a"].startswith("-") and spans["b"].count("..") == 1  # a: DICOM from -300 mm, b: NIfTI from 0
    assert [i.value for i in at.info] == ["Not checked: 1 file(s) that are not studies (notes.txt): expected "
                                          "subfolders, zips or volume files."]
    assert [b.proto.label for b in at.get("download_button")][0].startswith("Download sorted studies")
    # batch mode on one file that is not a zip: one line naming it
    at.toggle(key="qa_folder_mode").set_value(False)
    at.run()
    p = ctio.write_volume_nifti(chest_phantom(sp, extent_mm=80, seed=9), sp, tmp_path / "one.nii.gz")
    at.file_uploader(key="qa_upload").set_value(("one.nii.gz", p.read_bytes(), "application/gzip"))
    at.run()
    at.toggle(key="qa_batch").set_value(True)
    at.run()
    assert not at.exception and len(at.error) == 1
    assert at.error[0].value.startswith("one.nii.gz: batch mode needs one zip, or one folder")


def test_the_series_to_segment_can_be_chosen_and_is_kept_across_pages(tmp_path):
    sp = (5.0, 1.5, 1.5)
    hu = chest_phantom(sp, extent_mm=40, fov_mm=330, seed=5)
    upload = _zip_of_series(tmp_path, [(sub, hu, dict(spacing=sp, kernel=kernel, manufacturer="SIEMENS",
                                                      series_number=number))
                                       for sub, kernel, number in (("a", "B30f", 5), ("b", "B70f", 6))])
    at = _app("severity")
    at.file_uploader(key="severity_upload").set_value(("study.zip", upload, "application/zip"))
    at.run()
    assert not at.exception and not at.error
    lung, soft = (ctio.list_series(tmp_path / sub)[0].series_uid for sub in ("b", "a"))
    box = at.selectbox(key=f"lesion_series_{at.session_state['upload']['key']}")
    assert box.value == lung and sorted(box.options) == ["#5 - 8 slices - kernel B30f (soft) - synthetic B30f",
                                                         "#6 - 8 slices - kernel B70f (lung) - synthetic B70f"]
    assert any(c.value.startswith("Series used: lung kernel") for c in at.caption)
    box.set_value(soft)
    at.run()
    assert not at.exception and not at.error
    assert any(c.value.startswith("Series used: the series asked for; soft kernel") for c in at.caption)
    assert at.selectbox(key=f"lesion_series_{at.session_state['upload']['key']}").value == soft
    at.switch_page("app_pages/lesions.py")
    at.run()
    assert not at.exception and not at.error
    assert any(c.value.startswith("Series used: the series asked for; soft kernel") for c in at.caption)


def test_an_upload_of_two_studies_is_refused_then_a_series_can_be_picked(tmp_path):
    sp = (5.0, 1.5, 1.5)
    upload = _zip_of_series(tmp_path, [
        (sub, chest_phantom(sp, extent_mm=40, fov_mm=330, seed=seed),
         dict(spacing=sp, study_uid=f"1.2.826.0.1.3680043.8.498.{seed}0")) for sub, seed in (("p1", 5), ("p2", 6))])
    at = _app("severity")
    at.file_uploader(key="severity_upload").set_value(("both.zip", upload, "application/zip"))
    at.run()
    assert not at.exception and len(at.error) == 1
    assert at.error[0].value == ("both.zip: holds 2 studies (series with different StudyInstanceUIDs); expected one "
                                 "study: pick a series of one of them in the Series box below, or upload each study on "
                                 "its own")  # not the CLI's advice (`ctmodels triage` ...)
    assert not [m for m in at.metric if m.label == "Grade"]
    box = at.selectbox(key=f"lesion_series_{at.session_state['upload']['key']}")
    assert box.value is None and sorted(o.split(" - ")[0] for o in box.options) == ["study 1", "study 2"]
    second = ctio.list_series(tmp_path / "p2")[0].series_uid
    box.set_value(second)
    at.run()
    assert not at.exception and not at.error
    assert _metric(at, "Grade").startswith("CT-")
    assert any(c.value.startswith("Series used: the series asked for") for c in at.caption)


def test_quality_page_examples_and_single_upload(tmp_path):
    at = _app("quality")
    assert not at.exception
    # built-in synthetic examples: inspiration passes, expiration fails, abdomen undetermined
    assert _metric(at, "Pass") == "1" and _metric(at, "Fail") == "1" and _metric(at, "Undetermined") == "1"
    sp = (2.0, 0.8, 0.8)
    p = ctio.write_volume_nifti(chest_phantom(sp, extent_mm=80, seed=9), sp, tmp_path / "s.nii.gz")
    at.file_uploader(key="qa_upload").set_value(("s.nii.gz", p.read_bytes(), "application/gzip"))
    at.run()
    assert not at.exception and not at.error
    assert _metric(at, "Pass") == "1" and _metric(at, "Fail") == "0"


def test_quality_page_batch_zip_gives_sorted_download(tmp_path):
    from ctmodels.quality import simulate_expiration

    sp = (2.0, 0.8, 0.8)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, vol in [("a", chest_phantom(sp, extent_mm=80, seed=31)),
                          ("b", simulate_expiration(chest_phantom(sp, extent_mm=80, seed=32), sp, 0.5).astype(np.int16))]:
            p = ctio.write_volume_nifti(vol, sp, tmp_path / f"{name}.nii.gz")
            zf.write(p, f"studies/{name}.nii.gz")
        for f in write_series(tmp_path / "c", chest_phantom(sp, extent_mm=80, seed=33), spacing=sp, skip=(9,)):
            zf.write(f, f"studies/c/{f.name}")  # a series lacking a slice: filled in, and the table says so
        zf.writestr("studies/notes.txt", "not a study")
    at = _app("quality")
    at.file_uploader(key="qa_upload").set_value(("batch.zip", buf.getvalue(), "application/zip"))
    at.run()
    at.toggle(key="qa_batch").set_value(True)
    at.run()
    assert not at.exception and not at.error
    assert _metric(at, "Pass") == "2" and _metric(at, "Fail") == "1"
    said = dict(zip(at.dataframe[0].value["study"], at.dataframe[0].value["warnings"]))
    assert said["a.nii.gz"] == said["b.nii.gz"] == "" and said["c"].startswith("1 missing slice(s)"), said
    assert [i.value for i in at.info] == ["Not checked: 1 file(s) that are not studies (notes.txt): expected "
                                          "subfolders, zips or volume files."]
    assert [b.proto.label for b in at.get("download_button")][0].startswith("Download sorted studies")
    # the lesion pages do not read the batch as one study; back on Breath-hold QA the batch switch is still on
    at.switch_page("app_pages/lesions.py")
    at.run()
    assert not at.exception and not at.error
    assert [i.value for i in at.info] == ["batch.zip was checked as a batch of studies on Breath-hold QA; upload one "
                                          "study here, or press Forget."]
    at.switch_page("app_pages/quality.py")
    at.run()
    assert not at.exception and not at.error and at.toggle(key="qa_batch").value
    assert _metric(at, "Pass") == "2" and _metric(at, "Fail") == "1"


@pytest.mark.parametrize("members, said", [([("../evil.txt", "x")], "evil.zip: member '../evil.txt' has a '..' path"),
                                           ([("readme.txt", "x")], "evil.zip: no studies found"),
                                           (None, "evil.zip: not a readable zip archive")])
def test_a_batch_that_cannot_be_checked_is_one_line_naming_the_upload(members, said):
    """The line named the server's temp folder (upload/ctmodels-qa-.../upload.zip), not the user's zip."""
    buf = io.BytesIO()
    if members is None:
        buf.write(b"PK\x03\x04 not really a zip")
    else:
        with zipfile.ZipFile(buf, "w") as zf:
            for name, data in members:
                zf.writestr(name, data)
    at = _app("quality")
    at.file_uploader(key="qa_upload").set_value(("evil.zip", buf.getvalue(), "application/zip"))
    at.run()
    at.toggle(key="qa_batch").set_value(True)
    at.run()
    assert not at.exception and len(at.error) == 1
    assert at.error[0].value.startswith(said) and "ctmodels-qa-" not in at.error[0].value


def test_models_page_shows_cards():
    at = _app("models")
    assert not at.exception and not at.error
    text = " ".join(m.value for m in at.markdown)
    assert text.count("Intended use") == 2 and "non-commercial" in text.lower()
    assert "Device" in " ".join(m.value for m in at.markdown)
    captions = [c.value for c in at.caption if "licence:" in c.value]  # one per model, beside the sidebar's
    assert len(captions) == 2 and all(c.startswith("Weights bundled, every file checked against its recorded SHA-256")
                                      and "not pushed yet (revision main" in c for c in captions)


def test_cohort_classes_fit_on_an_upload_and_class_results(tmp_path):
    """The page fits the calibration ctmodels calibrate fit would on the uploaded table (its thresholds, counts and
    left-out rows), classes an uploaded results table with it or with an uploaded calibration, and says what is
    wrong with a table in one line naming it."""
    from ctmodels import cohort, examples, ledger
    from ctmodels.severity import ExtentCalibration

    at = _app("cohort")
    assert at.title[0].value == "Cohort classes" and not at.exception and not at.error
    # on by default, and says it is made up
    example, _ = cohort.fit_rows(cohort.Table.of(examples.labelled_cohort()), "example")
    assert any(w.value.startswith("SYNTHETIC cohort made in code") for w in at.warning)
    assert (_metric(at, "A below"), _metric(at, "C from")) == (f"{example.t_ab_pct:g} %", f"{example.t_bc_pct:g} %")

    rows = examples.labelled_cohort(n=400, seed=7)
    for r in rows[:5]:
        r["extensive"] = "yes" if r["extensive"] == "1" else "no"
    rows[5]["extensive"] = ""
    rows[6].update(involved_pct="0.0", grade="n/a")
    table = tmp_path / "mine.csv"
    table.write_text(ledger.csv_text(rows, []))
    want, left = cohort.fit_table(table, tmp_path / "cal.json")
    at.file_uploader(key="cohort_table").set_value(("mine.csv", table.read_bytes(), "text/csv"))
    at.run()
    assert not at.exception and not at.error and not at.warning
    assert (_metric(at, "Patients"), _metric(at, "Extensive")) == (str(want.n_patients), str(want.n_extensive))
    assert (_metric(at, "A below"), _metric(at, "C from")) == (f"{want.t_ab_pct:g} %", f"{want.t_bc_pct:g} %")
    assert left == {"not_assessed": 1, "unlabelled": 1}
    assert "Left out of the fit: 1 not assessed (no lung found: grade n/a, or no involved_pct); 1 without a label." \
        in [c.value for c in at.caption]
    assert [b.proto.label for b in at.get("download_button")] == ["Calibration (JSON)", "These patients, classed (CSV)"]

    results = [{"input": "a.nii.gz", "involved_pct": "3.0", "grade": "CT-1"},
               {"input": "b.nii.gz", "involved_pct": f"{(want.t_ab_pct + want.t_bc_pct) / 2}", "grade": "CT-2"},
               {"input": "c.nii.gz", "involved_pct": "90", "grade": "CT-4"},
               {"input": "d.png", "involved_pct": "0.0", "grade": "n/a"}]
    at.file_uploader(key="cohort_results").set_value(("results.csv", ledger.csv_text(results, []).encode(),
                                                      "text/csv"))
    at.run()
    assert not at.exception and not at.error
    assert [_metric(at, f"Class {c}") for c in "ABC"] + [_metric(at, "Not assessed")] == ["1", "1", "1", "1"]
    shown = at.dataframe[0].value
    assert list(shown["cohort_class"]) == want.predict_class([3.0, (want.t_ab_pct + want.t_bc_pct) / 2, 90]) + ["n/a"]
    assert list(shown["input"]) == ["a.nii.gz", "b.nii.gz", "c.nii.gz", "d.png"]

    # Study severity classes its study by the calibration too, naming it, until told to forget it
    at.switch_page("app_pages/severity.py")
    at.run()
    assert not at.exception and not at.error
    x = at.session_state["results"]["example-lesions"].report.involved_pct
    said = [c.value for c in at.caption if c.value.startswith("By the cohort calibration of mine.csv")]
    assert said == [f"By the cohort calibration of mine.csv (Cohort classes page): class {want.predict_class([x])[0]}, "
                    f"P(extensive) {want.predict_proba([x])[0]:.2f} at this involvement (A below {want.t_ab_pct:g} %, "
                    f"C from {want.t_bc_pct:g} %)."]
    at.button(key="forget_cohort_fit").click()
    at.run()
    assert not at.exception and not [c for c in at.caption if c.value.startswith("By the cohort calibration")]
    at.switch_page("app_pages/cohort.py")
    at.run()
    at.file_uploader(key="cohort_table").set_value(("mine.csv", table.read_bytes(), "text/csv"))
    at.file_uploader(key="cohort_results").set_value(("results.csv", ledger.csv_text(results, []).encode(),
                                                      "text/csv"))
    at.run()
    assert [_metric(at, f"Class {c}") for c in "ABC"] == ["1", "1", "1"]

    # a calibration saved earlier is used instead of the fit above
    other = ExtentCalibration.from_json(example.to_json().encode(), "x")
    other.t_ab_pct, other.t_bc_pct = 1.0, 2.0
    at.file_uploader(key="cohort_calibration").set_value(("old.json", other.to_json().encode(), "application/json"))
    at.run()
    assert not at.exception and not at.error
    assert [_metric(at, f"Class {c}") for c in "ABC"] == ["0", "0", "3"]
    assert any(c.value.startswith("old.json: fitted on 1000 patients, A below 1 %, C from 2 %") for c in at.caption)

    # what cannot be used: one line naming the upload, and nothing classed
    at.file_uploader(key="cohort_calibration").set_value(("old.json", b"{\"t_ab_pct\": 3}", "application/json"))
    at.file_uploader(key="cohort_table").set_value(("mine.csv", b"involved_pct,severe\n3,1\n", "text/csv"))
    at.run()
    assert not at.exception and len(at.error) == 2 and not at.dataframe
    assert at.error[0].value.startswith("mine.csv: has no extensive column (columns: involved_pct, severe)")
    assert at.error[1].value.startswith("old.json: not an extent calibration")
    assert all("\n" not in e.value and "Traceback" not in e.value for e in at.error)
    at.text_input(key="cohort_label").set_value("severe")
    at.run()  # the label column named: a table of one patient is still too few, said in one line
    assert len(at.error) == 2 and at.error[0].value.startswith("mine.csv: need at least two patients")


def test_the_voxel_size_of_an_npy_upload_can_be_typed_and_is_kept_across_pages(tmp_path):
    """A .npy upload gives no voxel size: the app assumed 1 mm (the breath-hold reason says so, no volumes in mL),
    and, unlike the CLI's --spacing, gave no way to say the size. A box under a .npy upload takes it (z,y,x mm): the
    reason no longer says it was assumed, Study severity gives the volumes, and the box keeps the size on the other
    pages; a size that is not three sizes in mm is one error line. Other uploads get no box."""
    sp = (2.0, 0.7, 0.7)
    buf = io.BytesIO()
    np.save(buf, chest_phantom(sp, extent_mm=80, seed=11))
    at = _app("quality")
    assert not at.text_input
    at.file_uploader(key="qa_upload").set_value(("chest.npy", buf.getvalue(), "application/octet-stream"))
    at.run()
    reason = at.dataframe[0].value["reason"][0]
    assert not at.exception and len(at.text_input) == 1 and "pixel size not given (1 mm assumed)" in reason
    at.text_input[0].set_value("2, 0.7, 0.7")
    at.run()
    assert not at.exception and not at.error and _metric(at, "Pass") == "1"
    assert "pixel size not given" not in at.dataframe[0].value["reason"][0]
    at.switch_page("app_pages/severity.py")
    at.run()
    assert not at.exception and at.text_input[0].value == "2, 0.7, 0.7"
    assert [c for c in at.caption if c.value.startswith("Volumes, from the scan's voxel size: lung ")]
    at.text_input[0].set_value("2,0.7")
    at.run()
    assert not at.exception and len(at.error) == 1
    assert at.error[0].value == "'2,0.7': expected three sizes in mm between 0 and 100, as 2.5,0.7,0.7"
    at.text_input[0].set_value("")
    at.run()
    assert not at.exception and not at.error
    assert not [c for c in at.caption if c.value.startswith("Volumes, from the scan's voxel size")]


def test_lesions_page_offers_a_dicom_seg_of_an_uploaded_series(tmp_path):
    """A DICOM series upload gets a button that makes its labels' DICOM SEG, then the SEG's download: a SEG of the
    uploaded series whose frames hold the labels segment found. A series whose slices name no frame of reference
    says in a caption why it gets none; an image gets no button."""
    import highdicom as hd
    import pydicom

    hu = chest_phantom((5.0, 1.5, 1.5), extent_mm=40, fov_mm=330, seed=5)
    upload = _zip_of_series(tmp_path, [("ct", hu, {"tags": {"FrameOfReferenceUID": "1.2.826.0.1.3680043.8.498.9"}})])
    at = _app("lesions")
    at.file_uploader(key="lesion_upload").set_value(("study.zip", upload, "application/zip"))
    at.run()
    assert not at.exception and not at.error
    assert "DICOM SEG" not in [b.proto.label for b in at.get("download_button")]
    at.button(key="lesion_make_seg").click()
    at.run()
    assert not at.exception and not at.error
    (button,) = [b for b in at.get("download_button") if b.proto.label == "DICOM SEG"]
    seg = hd.seg.segread(io.BytesIO(at.session_state["results"][
        next(k for k in at.session_state["results"] if k.startswith("dicom-seg-"))][0]))
    source = pydicom.dcmread(next((tmp_path / "ct").iterdir()), stop_before_pixels=True)
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == source.SeriesInstanceUID
    (study,) = [v for k, v in at.session_state["results"].items() if k.startswith("lesions-")]
    labels = study.lesions.labels
    assert labels.any() and seg.NumberOfFrames >= 1
    assert np.bincount(seg.get_volume(combine_segments=True).array.ravel(), minlength=4).tolist() == \
        np.bincount(labels.ravel(), minlength=4).tolist()

    at = _app("lesions")
    at.file_uploader(key="lesion_upload").set_value(("study.zip", _zip_of_series(tmp_path / "b", [("ct", hu, {})]),
                                                     "application/zip"))
    at.run()
    assert not at.exception and not at.error
    assert [c.value for c in at.caption if c.value.startswith("No DICOM SEG")] == [
        "No DICOM SEG: the slices name no FrameOfReferenceUID, which a DICOM SEG needs to place its frames"]
    assert not at.button and "DICOM SEG" not in [b.proto.label for b in at.get("download_button")]
