"""NIfTI / NRRD / PNG / NPY readers and the canonical orientation; safe zips."""

import zipfile

import numpy as np
from PIL import Image
import pytest

from ctmodels import io
from ctmodels.errors import (CTModelsError, EmptyInputError, InvalidInputError, UnsafeArchiveError,
                             UnsupportedFormatError)
from ctmodels.preprocessing import spread
from synth import chest_phantom, itk_image, write_series


def _labelled(shape=(6, 7, 8)):
    # every voxel unique, so any transpose or flip is detected
    return np.arange(np.prod(shape), dtype=np.int16).reshape(shape) - 500


def test_nifti_ras_and_flipped_affines_give_the_same_canonical_array(tmp_path):
    import nibabel as nib

    zyx = _labelled()
    sp = (2.0, 0.8, 0.9)
    # standard RAS storage: data[i, j, k] with i -> patient Left? no: RAS +x is patient Left... i goes R->L
    # canonical x runs R->L = RAS -x direction... build from the definition instead:
    data = np.transpose(zyx, (2, 1, 0))  # [x, y, z]
    aff = np.diag([-sp[2], -sp[1], sp[0], 1.0])  # i -> L (RAS -x), j -> P (RAS -y), k -> S
    nib.save(nib.Nifti1Image(data, aff), tmp_path / "a.nii.gz")
    # the same voxels stored as the common RAS+ layout (i -> R, j -> A): flip x and y
    aff2 = np.diag([sp[2], sp[1], sp[0], 1.0])
    nib.save(nib.Nifti1Image(data[::-1, ::-1, :].copy(), aff2), tmp_path / "b.nii")
    a, b = io.read_ct(tmp_path / "a.nii.gz"), io.read_ct(tmp_path / "b.nii")
    assert np.array_equal(a.voxels, zyx) and np.array_equal(b.voxels, zyx)
    assert a.spacing == pytest.approx(sp) and b.spacing == pytest.approx(sp)
    assert a.meta.units == "HU"


def test_nifti_mask_writer_round_trips(tmp_path):
    labels = (np.indices((6, 7, 8)).sum(0) // 3 % 4).astype(np.uint8)  # bands of each label, as masks are
    io.write_mask_nifti(labels, (2.0, 1.0, 1.5), tmp_path / "m.nii.gz")
    back = io.read_labels(tmp_path / "m.nii.gz")
    assert np.array_equal(back.voxels, labels) and back.spacing == pytest.approx((2.0, 1.0, 1.5))


def test_what_looks_like_a_label_map_rather_than_ct():
    """read_ct refuses label maps (corpus cases mask_nifti, label_map_nrrd); CT stays CT, also stored raw
    (air at 0 rather than -1000), and a blank volume or probabilities are not called label maps."""
    hu = chest_phantom((6, 48, 48))
    assert io.label_values(hu) is None and io.label_values(hu + 1024) is None
    mask = np.where(hu < -500, 3, 0).astype(np.uint8)
    mask[:, :4] = 1
    assert io.label_values(mask) == [0.0, 1.0, 3.0]
    lesion = np.zeros((40, 16, 16), np.uint8)
    lesion[17, 5:9, 5:9] = 1  # on one slice, which 16 slices spread through the 40 miss
    assert 17 not in spread(40, 16) and io.label_values(lesion) == [0.0, 1.0]
    assert io.label_values(np.zeros((3, 8, 8))) is None  # one value: blank, not a map of labels
    assert io.label_values(np.linspace(0, 1, 3 * 64).reshape(3, 8, 8)) is None
    lots = np.arange(3 * 10 * 10).reshape(3, 10, 10)  # more than MAX_LABELS values
    assert io.label_values(lots) is None


def test_a_mask_is_written_on_the_nifti_inputs_own_grid(tmp_path):
    """The mask of a NIfTI input has the input's array shape, axis order and affine (here its axes permuted
    and flipped against the canonical layout, with an offset): mask[i, j, k] labels input voxel [i, j, k], and
    viewers overlay it on the CT."""
    import nibabel as nib

    data = _labelled((5, 9, 7))
    aff = np.array([[0, -0.8, 0, 40.0], [0, 0, 0.9, -25.0], [2.5, 0, 0, -310.0], [0, 0, 0, 1]])  # i -> S, j, k
    nib.save(nib.Nifti1Image(data, aff), tmp_path / "ct.nii.gz")
    vol = io.read_ct(tmp_path / "ct.nii.gz")
    assert vol.shape == (5, 7, 9)
    # canonical slice z is input plane i = z: 2.5 mm steps up from S = -310 mm (RAS and LPS agree on S)
    assert [vol.position_mm(z) for z in range(5)] == pytest.approx([-310.0 + 2.5 * z for z in range(5)])
    labels = (vol.voxels % 4).astype(np.uint8)  # each voxel's label follows from its value
    io.write_mask_nifti(labels, vol.spacing, tmp_path / "m.nii.gz", layout=vol.meta.layout)
    m = nib.load(tmp_path / "m.nii.gz")
    assert m.shape == data.shape and np.allclose(m.affine, aff)
    assert np.array_equal(np.asarray(m.dataobj), (data % 4).astype(np.uint8))
    # without a layout (an image, .npy): the canonical grid, as before
    io.write_mask_nifti(labels, vol.spacing, tmp_path / "c.nii.gz")
    assert nib.load(tmp_path / "c.nii.gz").shape == (9, 7, 5)


def test_a_mask_of_an_nrrd_input_lies_on_its_grid_in_the_world(tmp_path):
    import nibabel as nib
    import nrrd

    data = _labelled((7, 9, 5))
    steps = np.array([[0, -0.9, 0], [0, 0, 2.0], [-0.8, 0, 0]])  # per axis, in RAS: -A, +S, -R
    nrrd.write(str(tmp_path / "ct.nrrd"), data, {"space": "right-anterior-superior", "space directions": steps,
                                                 "space origin": np.array([12.0, -30.0, 100.0])})
    vol = io.read_ct(tmp_path / "ct.nrrd")
    io.write_mask_nifti((vol.voxels % 4).astype(np.uint8), vol.spacing, tmp_path / "m.nii.gz",
                        layout=vol.meta.layout)
    m = nib.load(tmp_path / "m.nii.gz")
    want = np.eye(4)
    want[:3, :3], want[:3, 3] = steps.T, [12.0, -30.0, 100.0]
    assert m.shape == data.shape and np.allclose(m.affine, want)
    assert np.array_equal(np.asarray(m.dataobj), (data % 4).astype(np.uint8))


def test_nrrd_lps_and_ras(tmp_path):
    import nrrd

    zyx = _labelled()
    data = np.transpose(zyx, (2, 1, 0))  # x (L), y (P), z (S)
    hdr = {"space": "left-posterior-superior", "space directions": np.diag([0.9, 0.8, 2.0]),
           "space origin": np.zeros(3)}
    nrrd.write(str(tmp_path / "a.nrrd"), data, hdr)
    hdr2 = {"space": "right-anterior-superior", "space directions": np.diag([-0.9, -0.8, 2.0]),
            "space origin": np.zeros(3)}
    nrrd.write(str(tmp_path / "b.nrrd"), data, hdr2)
    for name in ("a.nrrd", "b.nrrd"):
        v = io.read_ct(tmp_path / name)
        assert np.array_equal(v.voxels, zyx), name
        assert v.spacing == pytest.approx((2.0, 0.8, 0.9))


def test_png_is_display_not_hu(tmp_path):
    from PIL import Image

    a = (np.arange(64 * 48) % 256).astype(np.uint8).reshape(48, 64)
    Image.fromarray(a).save(tmp_path / "s.png")
    Image.fromarray(np.stack([a] * 3, -1)).save(tmp_path / "c.jpg", quality=100)
    v = io.read_ct(tmp_path / "s.png")
    assert v.meta.units == "display" and not v.is_hu
    assert v.shape == (1, 48, 64) and np.array_equal(v.voxels[0], a)
    assert io.read_ct(tmp_path / "c.jpg").voxels.dtype == np.uint8


# what an image viewer shows of stored pixels `a` for each EXIF Orientation value (the EXIF specification's words)
EXIF_SHOWN = {2: np.fliplr, 3: lambda a: np.rot90(a, 2), 4: np.flipud,
              5: lambda a: np.rot90(np.fliplr(a), 1),  # mirrored left to right, then turned 270 degrees clockwise
              6: lambda a: np.rot90(a, -1), 7: lambda a: np.rot90(np.fliplr(a), -1), 8: lambda a: np.rot90(a, 1)}


@pytest.mark.parametrize("orientation", sorted(EXIF_SHOWN))
def test_an_image_is_read_the_way_up_its_exif_orientation_tag_says_viewers_show_it(tmp_path, orientation):
    """A phone's photo stores its pixels as the sensor saw them, with an EXIF tag saying how to turn them for
    display. They were read as stored: the overlay and mask lay turned against the image its user sees."""
    y, x = np.indices((48, 64))
    stored = (y + 2 * x).astype(np.uint8)  # a smooth ramp, no two of its 8 turns alike
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(stored).save(tmp_path / "photo.png", exif=exif.tobytes())
    v = io.read_ct(tmp_path / "photo.png")
    assert np.array_equal(v.voxels[0], EXIF_SHOWN[orientation](stored))
    assert v.meta.warnings == [f"read {io.EXIF_TURNS[orientation]}, as image viewers show it (its EXIF orientation "
                               "tag); masks and overlays are that way up"]
    exif[0x0112] = 1  # stored upright: read as stored, nothing said
    Image.fromarray(stored).save(tmp_path / "upright.png", exif=exif.tobytes())
    v = io.read_ct(tmp_path / "upright.png")
    assert np.array_equal(v.voxels[0], stored) and v.meta.warnings == []


@pytest.mark.parametrize("block", [b"garbage" * 3, b"II*\x00\xff\xff\xff\x7f", b"MM\x00*\x00\x00\x00\x08\x00\x05"])
def test_an_image_whose_exif_block_is_damaged_is_read_as_stored(tmp_path, block):
    """Only the EXIF orientation is read: an EXIF block that does not parse (Pillow raised SyntaxError on the first)
    leaves the pixels as stored, and is no reason to refuse them."""
    y, x = np.indices((48, 64))
    stored = (y + 2 * x).astype(np.uint8)
    Image.fromarray(stored).save(tmp_path / "s.png", exif=block)
    v = io.read_ct(tmp_path / "s.png")
    assert np.array_equal(v.voxels[0], stored) and v.meta.warnings == []


def test_a_tiff_of_several_pages_is_read_as_a_stack_of_slices(tmp_path):
    """ImageJ and Fiji save a stack of slices as one TIFF of several pages. Only its first page was read, without a
    word, so a 3-slice stack was graded on its first slice. Each page is a slice now, in the order stored; pages of
    several sizes are refused, and a label image (what `score` reads) of several pages too. A phone JPEG's second
    picture (an MPO file) is no slice: the first picture is read, as before."""
    y, x = np.indices((48, 64))
    pages = [((y + 2 * x + 40 * k) % 256).astype(np.uint8) for k in range(3)]
    Image.fromarray(pages[0]).save(tmp_path / "stack.tif", save_all=True,
                                   append_images=[Image.fromarray(a) for a in pages[1:]])
    v = io.read_ct(tmp_path / "stack.tif")
    assert v.shape == (3, 48, 64) and np.array_equal(v.voxels, np.stack(pages)) and v.meta.units == "display"
    assert v.meta.warnings == ["a TIFF of 3 pages, read as 3 slices in the order stored (no slice positions: no "
                               "volumes in mL)"]
    Image.fromarray(pages[0]).save(tmp_path / "odd.tif", save_all=True,
                                   append_images=[Image.fromarray(pages[1][:40])])
    with pytest.raises(InvalidInputError, match=r"odd.tif: a TIFF of 2 pages of several sizes; expected a stack"):
        io.read_ct(tmp_path / "odd.tif")
    with pytest.raises(InvalidInputError, match=r"stack.tif: a TIFF of 3 pages; expected a label image"):
        io.image_pixels(tmp_path / "stack.tif", lambda im: im, "a label image")
    Image.fromarray(pages[0]).save(tmp_path / "phone.jpg", format="MPO", save_all=True,
                                   append_images=[Image.fromarray(pages[2])], quality=100)
    assert Image.open(tmp_path / "phone.jpg").n_frames == 2
    v = io.read_ct(tmp_path / "phone.jpg")
    assert v.shape == (1, 48, 64) and np.abs(v.voxels[0].astype(int) - pages[0]).mean() < 2


def test_a_colour_tiff_stack_says_its_colour_marks_once(tmp_path, caplog):
    """A stack of colour pages with the same few marks on each: the note that they were read as grey is logged
    once, not once a page (it was logged three times for three pages)."""
    from ctmodels.phantoms import chest_phantom as phantom
    from ctmodels.preprocessing import window_hu

    hu = phantom((5.0, 0.7, 0.7), extent_mm=40, seed=3)
    pages = []
    for z in range(3):
        rgb = np.repeat(window_hu(hu[z], -600, 1500)[..., None], 3, axis=-1)
        rgb[100:104, 100:140] = (255, 0, 0)  # a red mark inside the patient
        pages.append(Image.fromarray(rgb))
    pages[0].save(tmp_path / "colour.tif", save_all=True, append_images=pages[1:])
    with caplog.at_level("WARNING", logger="ctmodels"):
        v = io.read_ct(tmp_path / "colour.tif")
    said = [r.getMessage() for r in caplog.records if "coloured marks" in r.getMessage()]
    assert v.shape[0] == 3 and len(said) == 1
    assert [w for w in v.meta.warnings if "coloured marks" in w] == [said[0].split(": ", 1)[1]]


def test_16bit_png_is_refused(tmp_path):
    from PIL import Image

    Image.fromarray((np.arange(256, dtype=np.uint16) * 200).reshape(16, 16)).save(tmp_path / "x.png")
    with pytest.raises(InvalidInputError, match="x.png.*16/32-bit"):
        io.read_ct(tmp_path / "x.png")


def test_npy_convention(tmp_path):
    hu = chest_phantom((5, 16, 16))
    np.save(tmp_path / "v.npy", hu)
    v = io.read_ct(tmp_path / "v.npy", spacing=(2, 1, 1))
    assert np.array_equal(v.voxels, hu) and v.spacing == (2.0, 1.0, 1.0) and v.is_hu
    np.save(tmp_path / "d.npy", np.zeros((16, 16), np.uint8))
    assert io.read_ct(tmp_path / "d.npy").meta.units == "display"
    f = hu.astype(np.float32)
    f[0, 0, 0] = np.nan
    np.save(tmp_path / "nan.npy", f)
    with pytest.raises(InvalidInputError, match="NaN"):
        io.read_ct(tmp_path / "nan.npy")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(InvalidInputError, match="obj.npy"):
        io.read_ct(tmp_path / "obj.npy")


def test_unknown_and_empty_files(tmp_path):
    (tmp_path / "a.txt").write_text("hello")
    with pytest.raises(UnsupportedFormatError, match="a.txt"):
        io.read_ct(tmp_path / "a.txt")
    (tmp_path / "e.dcm").write_bytes(b"")
    with pytest.raises(EmptyInputError, match="e.dcm"):
        io.read_ct(tmp_path / "e.dcm")


def test_zip_of_dicom_series_reads_and_cleans_up(tmp_path, monkeypatch):
    import tempfile

    hu = chest_phantom((5, 16, 16))
    files = write_series(tmp_path / "series", hu)
    z = tmp_path / "study.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in files:
            zf.write(f, f"patient/series/{f.name}")
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmpdir))
    v = io.read_ct(z)
    assert np.array_equal(v.voxels, hu) and v.meta.source == str(z)
    assert list(tmpdir.iterdir()) == []  # the private extraction folder is gone


def test_what_is_said_of_a_zip_s_files_names_them_as_the_zip_does(tmp_path, caplog):
    """The reader's warning and list_series named a zip's members by the extraction's numbered names
    (000005_b.nii.gz, study.zip!000001_IM....dcm)."""
    hu = chest_phantom((5, 16, 16))
    files = write_series(tmp_path / "series", hu)
    io.write_volume_nifti(hu, (2.5, 0.7, 0.7), tmp_path / "b.nii.gz")
    z = tmp_path / "study.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for f in files:
            zf.write(f, f"a/{f.name}")
        zf.write(tmp_path / "b.nii.gz", "b/b.nii.gz")
    with caplog.at_level("WARNING"):
        io.read_ct(z)
    assert "also holds 1 volume file(s) (b.nii.gz)" in caplog.text
    listed = [f for s in io.list_series(z) for f in s.files]
    assert sorted(listed) == sorted(f"{z}!{f.name}" for f in files)


@pytest.mark.parametrize("name", ["../evil.dcm", "/abs/evil.dcm", "a/../../evil.dcm", "C:/evil.dcm"])
def test_zip_with_unsafe_paths_is_refused(tmp_path, name):
    z = tmp_path / "bad.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr(name, b"x" * 10)
    with pytest.raises(UnsafeArchiveError, match="bad.zip"):
        io.read_ct(z)
    assert not (tmp_path.parent / "evil.dcm").exists()


def test_zip_symlink_and_bomb_are_refused(tmp_path):
    z = tmp_path / "link.zip"
    with zipfile.ZipFile(z, "w") as zf:
        info = zipfile.ZipInfo("link")
        info.external_attr = (0o120777 << 16)
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(UnsafeArchiveError, match="symbolic link"):
        io.read_ct(z)
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zeros.dcm", b"\0" * (20 * 1024 * 1024))
    with pytest.raises(UnsafeArchiveError, match="zip bomb"):
        io.read_ct(bomb)


def test_corrupt_zip(tmp_path):
    (tmp_path / "x.zip").write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(InvalidInputError, match="x.zip.*zip"):
        io.read_ct(tmp_path / "x.zip")


@pytest.mark.parametrize("side", [5000, 14000])
def test_an_image_over_the_size_limit_says_so(tmp_path, side):
    """Over 4096x4096: refused before decoding, saying why; at 14000 px Pillow itself refuses to open it (a possible
    decompression bomb), which before gave only "not a readable image (DecompressionBombError)"."""
    Image.new("L", (side, side)).save(tmp_path / "big.png")
    with pytest.raises(InvalidInputError, match=r"big.png: image is (5000x5000, )?larger than the 4096x4096 limit"):
        io.read_ct(tmp_path / "big.png")


def _nrrd_header(sizes, dtype="int16", encoding="raw", **fields):
    lines = ["NRRD0004", f"type: {dtype}", f"dimension: {len(sizes)}", "sizes: " + " ".join(map(str, sizes)),
             f"encoding: {encoding}", "endian: little"] + [f"{k.replace('_', ' ')}: {v}" for k, v in fields.items()]
    return ("\n".join(lines) + "\n\n").encode()


@pytest.mark.parametrize("named", ["SECRET", "../SECRET", "sub/SECRET", "SECRET%03d", "LIST"])
@pytest.mark.parametrize("header_name", ["study.nrrd", "study.mhd"])
def test_a_header_naming_a_data_file_elsewhere_is_refused_before_reading_it(tmp_path, named, header_name):
    """An NRRD header's "data file" may name any file, and pynrrd read it: an uploaded .nrrd saying
    "data file: /etc/passwd" gave the server's password file as voxels. Only a file beside the header, named
    plainly, is read now; one that names anything else is refused without opening it. MetaImage's ElementDataFile
    is held to the same rule."""
    secret = (np.arange(128, dtype=np.int16) - 1000).tobytes()  # would read as a valid 8x8x2 HU volume
    (tmp_path / "sub").mkdir()
    for where in (tmp_path / "SECRET", tmp_path / "sub" / "SECRET", tmp_path / "SECRET001"):
        where.write_bytes(secret)
    header = tmp_path / "up" / header_name
    header.parent.mkdir()
    (tmp_path / "up" / "SECRET").write_bytes(secret)  # also beside it, so that only the name decides
    name = str(tmp_path / "SECRET") if named == "SECRET" else named  # an absolute path, or relative ones
    header.write_bytes(_nrrd_header((8, 8, 2), data_file=name) if header_name.endswith(".nrrd") else
                       _mha(data_file=name))
    field = "data file" if header_name.endswith(".nrrd") else "ElementDataFile"
    with pytest.raises(InvalidInputError, match=rf"{header_name}: {field} .* is not a file beside the header"):
        io.read_ct(header)


def test_an_nrrd_with_its_data_beside_it_is_read(tmp_path):
    hu = np.arange(128, dtype=np.int16).reshape(2, 8, 8) - 1000  # [z, y, x] as NRRD stores x fastest
    (tmp_path / "ct.raw").write_bytes(hu.tobytes())
    (tmp_path / "ct.nhdr").write_bytes(_nrrd_header((8, 8, 2), data_file="ct.raw"))
    vol = io.read_ct(tmp_path / "ct.nhdr")
    assert vol.shape == (2, 8, 8) and sorted(vol.voxels.ravel().tolist()) == sorted(hu.ravel().tolist())


@pytest.mark.parametrize("encoding", ["gzip", "bzip2"])
def test_compressed_nrrd_data_beyond_its_sizes_is_refused_before_it_is_inflated(tmp_path, encoding):
    """pynrrd inflates all of a compressed NRRD's data before it compares its length with the header's sizes: a
    header of 8x8x2 voxels over 64 MB of compressed zeros (a 60 KB file) took 64 MB, and a 300 MB upload of them
    would take about 300 GB. The data is inflated here in bounded steps and refused past what the sizes need; a
    compressed NRRD that holds what its sizes say is read as before."""
    import bz2
    import gzip

    import nrrd

    pack = gzip.compress if encoding == "gzip" else bz2.compress
    bomb = tmp_path / "bomb.nrrd"
    bomb.write_bytes(_nrrd_header((8, 8, 2), encoding=encoding) + pack(bytes(64 << 20)))
    assert bomb.stat().st_size < 200_000
    with pytest.raises(InvalidInputError, match=r"bomb.nrrd: compressed data inflates to more than its header's "
                                                r"128 voxels need \(256 bytes\)"):
        io.read_ct(bomb)
    hu = chest_phantom((6, 32, 32))
    for enc in ("raw", encoding):
        nrrd.write(str(tmp_path / f"{enc}.nrrd"), np.ascontiguousarray(hu.transpose(2, 1, 0)),
                   {"encoding": enc, "space": "left-posterior-superior", "space directions": np.eye(3).tolist(),
                    "space origin": [0.0, 0.0, 0.0]})
    packed, raw = io.read_ct(tmp_path / f"{encoding}.nrrd"), io.read_ct(tmp_path / "raw.nrrd")
    assert packed.shape == (6, 32, 32) and np.array_equal(packed.voxels, raw.voxels)


@pytest.mark.parametrize("kind", ["nifti", "nrrd"])
def test_a_header_giving_more_voxels_than_the_limit_is_refused_before_reading(tmp_path, kind):
    """A NIfTI header of 2000^3 voxels over a few bytes had nibabel allocate its shape (16 GB as int16) before
    anything said it was too large; now the header's shape is checked first, as an NRRD header's sizes are."""
    import nibabel as nib

    if kind == "nifti":
        hdr = nib.Nifti1Header()
        hdr.set_data_shape((2000, 2000, 2000))
        hdr.set_data_dtype(np.int16)
        path = tmp_path / "huge.nii"
        path.write_bytes(hdr.binaryblock + b"\0" * 4 + b"\0" * 64)
    else:
        path = tmp_path / "huge.nrrd"
        path.write_bytes(_nrrd_header((2000, 2000, 2000)) + b"\0" * 64)
    with pytest.raises(InvalidInputError, match=f"{path.name}: header gives (shape|sizes) .*2000"):
        io.read_ct(path)


def test_axial_pixels_that_are_not_square_are_said_for_volumes_and_arrays(tmp_path):
    """A volume whose axial slices have oblong pixels (made across a coronal stack, or given so) gets one line
    saying so, as a DICOM series does; a file stored in another axis order with square pixels gets none (its
    third axis is not taken for the plane it was scanned in)."""
    import nibabel as nib

    hu = chest_phantom((6, 16, 16))
    said = ("pixels are 2.10 x 0.70 mm (not square: the models were made for axial CT slices of square pixels, so "
            "results are less reliable)")
    np.save(tmp_path / "a.npy", hu)
    assert io.read_ct(tmp_path / "a.npy", spacing=(2.5, 2.1, 0.7)).meta.warnings == [said]
    assert io.read_ct(tmp_path / "a.npy", spacing=(2.5, 0.8, 0.7)).meta.warnings == []
    assert io.read_ct(tmp_path / "a.npy").meta.warnings == []  # 1 mm assumed: said where it matters, not here
    data = np.transpose(hu, (2, 1, 0))  # [x, y, z]
    nib.save(nib.Nifti1Image(data, np.diag([-0.7, -2.1, 2.5, 1.0])), tmp_path / "oblong.nii.gz")
    assert io.read_ct(tmp_path / "oblong.nii.gz").meta.warnings == [said]
    nib.save(nib.Nifti1Image(hu, np.array([[0, 0, -0.7, 0], [0, -0.7, 0, 0], [2.5, 0, 0, 0], [0, 0, 0, 1.0]])),
             tmp_path / "zyx.nii.gz")  # the array in z, y, x order, its affine saying so
    vol = io.read_ct(tmp_path / "zyx.nii.gz")
    assert np.array_equal(vol.voxels, hu) and vol.meta.warnings == []


def test_a_volume_whose_axial_slices_are_tilted_is_said_to_be_oblique(tmp_path):
    """A NIfTI or NRRD file whose directions tilt its axial slices more than 10 degrees off the patient's axial plane
    (an oblique reformat) is read as stored with a line that says so; a file turned within the axial plane, or
    tilted less, gets none."""
    import nibabel as nib
    import nrrd

    hu = chest_phantom((6, 16, 16))
    data = np.transpose(hu, (2, 1, 0))  # [x, y, z]

    def turned(axis, deg):
        t = np.radians(deg)
        c, s = np.cos(t), np.sin(t)
        r = {"x": [[1, 0, 0], [0, c, -s], [0, s, c]], "z": [[c, -s, 0], [s, c, 0], [0, 0, 1]]}[axis]
        a = np.eye(4)
        a[:3, :3] = np.array(r) @ np.diag([-0.7, -0.7, 2.5])
        return a

    said = ("axial slices tilted 25 degrees off the patient's axial plane (an oblique series): read as stored, not "
            "resampled to axial, so results are less reliable")
    for name, (axis, deg), warned in (("a", ("x", 25), True), ("b", ("x", 8), False), ("c", ("z", 30), False)):
        nib.save(nib.Nifti1Image(data, turned(axis, deg)), tmp_path / f"{name}.nii.gz")
        assert io.read_ct(tmp_path / f"{name}.nii.gz").meta.warnings == ([said] if warned else []), name
    ras = turned("x", 25)
    lps = np.diag([-1.0, -1.0, 1.0]) @ ras[:3, :3]
    nrrd.write(str(tmp_path / "a.nrrd"), data, {"space": "left-posterior-superior", "space directions": lps.T,
                                                 "space origin": np.zeros(3)})
    assert io.read_ct(tmp_path / "a.nrrd").meta.warnings == [said]


# ---------------------------------------------------------------------------- ITK MetaImage

# an axial scan as stored head first (z runs down), and one stored as coronal slices, turned and flipped
ITK_DIRECTIONS = {"identity": np.eye(3), "head first": np.diag([1.0, 1.0, -1.0]),
                  "coronal": np.array([[-1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])}


@pytest.mark.parametrize("direction", sorted(ITK_DIRECTIONS))
def test_a_metaimage_written_by_itk_reads_as_the_nifti_itk_writes_of_the_same_image(tmp_path, direction):
    """LUNA16's scans (.mhd + .raw) and grand-challenge.org's images (.mha) were refused as an unsupported file
    type. ITK writes one image as .mha (raw and compressed) and .mhd + .raw/.zraw, and as NIfTI (read here
    already): every one reads to the same voxels on the same grid in the world."""
    import SimpleITK as sitk

    hu = (np.arange(5 * 6 * 7, dtype=np.int16).reshape(5, 6, 7) * 3 - 1000)  # no two voxels alike
    img = itk_image(hu, (2.5, 0.8, 0.7), (-100.0, -120.5, 30.0), ITK_DIRECTIONS[direction])
    sitk.WriteImage(img, str(tmp_path / "ref.nii.gz"))
    ref = io.read_ct(tmp_path / "ref.nii.gz")
    from_nifti = sitk.ReadImage(str(tmp_path / "ref.nii.gz"))  # written again, ITK adds the NIfTI header's fields
    for name, compress in (("a.mha", False), ("b.mha", True), ("c.mhd", False), ("d.mhd", True), ("e.mha", False)):
        sitk.WriteImage(from_nifti if name == "e.mha" else img, str(tmp_path / name), compress)
        v = io.read_ct(tmp_path / name)
        assert np.array_equal(v.voxels, ref.voxels), name
        assert v.spacing == pytest.approx(ref.spacing) and v.meta.format == "metaimage" and v.is_hu
        assert np.allclose(v.meta.layout.affine, ref.meta.layout.affine, atol=1e-4), name
        assert not v.meta.spacing_assumed
    assert b"\ndim[0] = 3\n" in (tmp_path / "e.mha").read_bytes()[:4096]  # "Key = Value" with any key
    if direction == "identity":  # the array ITK was given is the canonical one: z feet to head, y front to back
        assert np.array_equal(ref.voxels, hu)
    if direction == "coronal":
        assert v.meta.layout.stored_plane != "axial"


def _mha(sizes=(8, 8, 2), data_file="LOCAL", extra="", etype="MET_SHORT"):
    return (f"ObjectType = Image\nNDims = {len(sizes)}\nBinaryData = True\nBinaryDataByteOrderMSB = False\n"
            f"{extra}DimSize = {' '.join(map(str, sizes))}\nElementSpacing = {' '.join(['1'] * len(sizes))}\n"
            f"ElementType = {etype}\nElementDataFile = {data_file}\n").encode()


def test_metaimage_headers_and_data_that_do_not_hold_a_ct_volume_are_one_line_each(tmp_path):
    import zlib

    from ctmodels import metaimage

    hu = (np.arange(128, dtype=np.int16) - 1000).reshape(2, 8, 8)
    cases = {
        "huge.mha": (_mha((100000, 100000, 100)), r"DimSize is '100000 100000 100', expected 1 to \d+ voxels"),
        "short.mha": (_mha() + hu.tobytes()[:100], r"short.mha holds 100 bytes of data where the header needs 256"),
        "long.mha": (_mha(etype="MET_LONG") + hu.tobytes(), r"ElementType MET_LONG is not read"),
        "mr.mha": (_mha(extra="Modality = MET_MOD_MR\n") + hu.tobytes(), r"Modality is MET_MOD_MR, expected CT"),
        "rgb.mha": (_mha(extra="ElementNumberOfChannels = 3\n") + hu.tobytes(), r"3 channels per voxel"),
        "text.mha": (b"just text\n", r"header line 'just text' is not 'Key = Value'"),
        "bomb.mha": (_mha(extra="CompressedData = True\n") + zlib.compress(bytes(10_000_000)),
                     r"compressed data inflates to more than the 256 bytes its header needs"),
        "corrupt.mha": (_mha(extra="CompressedData = True\n") + b"not zlib at all",
                        r"compressed data does not inflate"),
        "flat.mha": (_mha(extra="TransformMatrix = 1 0 0 1 0 0 0 0 1\n") + hu.tobytes(),
                     r"TransformMatrix '1 0 0 1 0 0 0 0 1' gives no three independent directions"),
    }
    for name, (content, said) in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(CTModelsError, match=f"{name}: {said}"):
            io.read_ct(tmp_path / name)
    (tmp_path / "scan.raw").write_bytes(hu.tobytes())  # a data file given without its header
    with pytest.raises(UnsupportedFormatError, match=r"scan.raw: .raw holds voxels without their sizes; give the .mhd "
                                                     r"or .nhdr header that names it"):
        io.read_ct(tmp_path / "scan.raw")
    big = _mha().replace(b"BinaryDataByteOrderMSB = False", b"BinaryDataByteOrderMSB = True")
    (tmp_path / "big.mha").write_bytes(big + hu.astype(">i2").tobytes())  # written on a big-endian machine
    assert np.array_equal(io.read_ct(tmp_path / "big.mha").voxels, hu)
    (tmp_path / "slice.mha").write_bytes(_mha((8, 8)) + hu[0].tobytes())  # a 2D image: one axial slice
    v = io.read_ct(tmp_path / "slice.mha")
    assert v.shape == (1, 8, 8) and np.array_equal(v.voxels[0], hu[0])
    assert metaimage.MAX_HEADER_BYTES < 1 << 20


def test_a_metaimage_and_its_data_file_read_from_a_folder_or_a_zip(tmp_path):
    import SimpleITK as sitk

    hu = chest_phantom((6, 32, 32))
    (tmp_path / "s").mkdir()
    sitk.WriteImage(itk_image(hu, (2.0, 0.8, 0.8)), str(tmp_path / "s" / "scan.mhd"))
    assert sorted(f.name for f in (tmp_path / "s").iterdir()) == ["scan.mhd", "scan.raw"]
    assert np.array_equal(io.read_ct(tmp_path / "s").voxels, hu)
    with zipfile.ZipFile(tmp_path / "scan.zip", "w") as z:
        for f in (tmp_path / "s").iterdir():
            z.write(f, f"LUNA/{f.name}")
    v = io.read_ct(tmp_path / "scan.zip")
    assert np.array_equal(v.voxels, hu) and v.spacing == pytest.approx((2.0, 0.8, 0.8))
