"""DICOM series reading: grouping, ordering by position, rescale, gaps, bad files."""

import numpy as np
import pytest

from ctmodels import io
from ctmodels.errors import EmptyInputError, InvalidInputError, NotCTError
from synth import chest_phantom, dose_report, round_field_of_view, write_series


def test_shuffled_files_are_ordered_by_position_not_name(tmp_path):
    hu = chest_phantom((12, 32, 32))
    # file names run the opposite way to the slice positions
    write_series(tmp_path, hu, names="reverse", shuffle=True)
    vol = io.read_ct(tmp_path)
    assert vol.shape == (12, 32, 32)
    assert np.array_equal(vol.voxels, hu)
    assert vol.voxels.dtype == np.int16
    assert vol.spacing == pytest.approx((2.5, 0.7, 0.7))
    assert vol.meta.units == "HU" and vol.meta.modality == "CT"
    assert vol.meta.kernel == "LUNG"
    pos = vol.meta.slice_positions
    assert pos == sorted(pos) and len(pos) == 12


def test_feet_first_orientation_is_brought_to_canonical(tmp_path):
    hu = chest_phantom((8, 24, 32))
    # slice normal pointing to the feet (IOP rows flipped in y): stored top-down
    write_series(tmp_path, hu[:, ::-1, :].copy(), orientation=(1, 0, 0, 0, -1, 0))
    vol = io.read_ct(tmp_path)
    # normal = x cross -y = -z: slices are sorted along -z; canonical z must still run feet->head
    assert vol.shape == (8, 24, 32)
    assert np.array_equal(vol.voxels, hu[::-1, :, :])


def test_a_mask_is_written_on_the_dicom_series_grid(tmp_path):
    """Columns, rows (as stored), then slices in order along their normal (here the normal points to the feet),
    with the affine of the series' ImagePositionPatient, orientation and spacing."""
    import nibabel as nib

    hu = chest_phantom((8, 24, 32))
    stored = hu[:, ::-1, :].copy()  # slice k as written: pixel [row, column]
    write_series(tmp_path / "s", stored, spacing=(2.5, 0.7, 0.6), orientation=(1, 0, 0, 0, -1, 0),
                 origin=(-100.0, 50.0, -300.0))
    vol = io.read_ct(tmp_path / "s")
    io.write_mask_nifti((vol.voxels > -500).astype(np.uint8), vol.spacing, tmp_path / "m.nii.gz",
                        layout=vol.meta.layout)
    m = nib.load(tmp_path / "m.nii.gz")
    assert np.array_equal(np.asarray(m.dataobj), (stored > -500).astype(np.uint8).transpose(2, 1, 0))
    # voxel (i, j, k): origin + i column steps (LPS +x) + j row steps (LPS -y) + k slice steps (LPS -z), in RAS
    lps = np.array([[0.6, 0, 0, -100.0], [0, -0.7, 0, 50.0], [0, 0, -2.5, -300.0], [0, 0, 0, 1]])
    assert np.allclose(m.affine, np.diag([-1, -1, 1, 1]) @ lps)
    assert np.allclose(m.get_qform(), m.affine) and m.header["qform_code"] == m.header["sform_code"] == 1


@pytest.mark.parametrize("orientation", [(1, 0, 0, 0, 1, 0), (1, 0, 0, 0, -1, 0), (1, 0, 0, 0, 0, -1),
                                         (0, 1, 0, 0, 0, -1), (0.8, 0.6, 0, -0.6, 0.8, 0)],
                         ids=["axial", "axial-feet", "coronal", "sagittal", "axial-rotated"])
def test_every_voxel_lies_where_dicom_puts_it_and_its_mask_label_there_too(tmp_path, orientation):
    """Whatever the orientation: a canonical voxel's patient-frame position (Layout.lps_mm) is where DICOM puts
    the stored pixel it came from (ImagePositionPatient + column, row and slice steps), and the written mask
    holds that voxel's label at that position (through its affine)."""
    import nibabel as nib

    shape, sp, origin = (6, 10, 12), (2.5, 0.7, 0.6), np.array([-40.0, 25.0, -300.0])
    stored = np.arange(np.prod(shape)).reshape(shape) - 1000  # every value once: its source is found again
    write_series(tmp_path / "s", stored, spacing=sp, orientation=orientation, origin=tuple(origin))
    vol = io.read_ct(tmp_path / "s")
    labels = (vol.voxels % 4).astype(np.uint8)
    m = nib.load(io.write_mask_nifti(labels, vol.spacing, tmp_path / "m.nii.gz", layout=vol.meta.layout))
    mask, to_index = np.asarray(m.dataobj), np.linalg.inv(m.affine)
    row_dir, col_dir = np.array(orientation[:3], float), np.array(orientation[3:], float)
    normal = np.cross(row_dir, col_dir)
    for zyx in np.ndindex(vol.shape):
        k, r, c = (int(i[0]) for i in np.nonzero(stored == vol.voxels[zyx]))
        world = origin + k * sp[0] * normal + r * sp[1] * col_dir + c * sp[2] * row_dir
        assert np.allclose(vol.meta.layout.lps_mm(zyx), world, atol=1e-3), zyx
        ijk = np.round(to_index @ np.append(world * [-1, -1, 1], 1.0))[:3].astype(int)  # RAS -> mask index
        assert mask[tuple(ijk)] == labels[zyx], zyx


@pytest.mark.parametrize("tag, value", [("RescaleSlope", 0), ("RescaleIntercept", "nan")])
def test_a_rescale_with_no_hounsfield_units_is_refused(tmp_path, tag, value):
    """A slope of 0 made every pixel -1024 HU, which the lesion model reported as 'no lung found' and the
    breath-hold check as 'no air-filled tube'; a NaN intercept made every voxel NaN. Refused, naming the file."""
    import warnings as w

    import pydicom

    files = write_series(tmp_path, chest_phantom((6, 16, 16)))
    ds = pydicom.dcmread(files[2])
    with w.catch_warnings():
        w.simplefilter("ignore")  # pydicom's own warning on writing 'nan' as DS
        setattr(ds, tag, value)
    ds.save_as(files[2])
    with pytest.raises(InvalidInputError, match=f"{files[2].name}.*{tag} .*no Hounsfield units"):
        io.read_ct(tmp_path)


def test_rescale_slope_intercept_applied(tmp_path):
    hu = chest_phantom((4, 16, 16)).astype(np.float32)
    hu = np.round(hu / 2) * 2  # representable with slope 2
    write_series(tmp_path, hu, slope=2.0, intercept=-1000.0)
    vol = io.read_ct(tmp_path)
    assert np.allclose(vol.voxels, hu)


def test_number_type_of_the_volume(tmp_path):
    """int16 where every slice's HU fit it, also with a missing slice made between two; float32 where a slope
    makes fractions, or where one slice holds HU beyond int16 (each value kept exactly)."""
    hu = chest_phantom((5, 32, 32)).astype(np.int32)
    write_series(tmp_path / "plain", hu, skip=(2,))
    plain = io.read_ct(tmp_path / "plain").voxels
    assert plain.dtype == np.int16 and np.array_equal(plain[[0, 1, 3, 4]], hu[[0, 1, 3, 4]])
    big = np.maximum(hu, -1020)  # every stored value (HU + 1024) positive: written as uint16
    big[3, 14:18, 14:18] = 40000  # stored 41024
    write_series(tmp_path / "big", big)
    vol = io.read_ct(tmp_path / "big").voxels
    assert vol.dtype == np.float32 and np.array_equal(vol, big.astype(np.float32))


def test_missing_rescale_tags_warn(tmp_path):
    hu = chest_phantom((3, 16, 16))
    write_series(tmp_path, hu, intercept=0.0, write_rescale=False)
    vol = io.read_ct(tmp_path)
    assert np.array_equal(vol.voxels, hu)
    assert any("RescaleSlope" in w for w in vol.meta.warnings)


def test_missing_slices_are_filled_in_and_duplicates_dropped(tmp_path):
    hu = chest_phantom((10, 16, 16))
    write_series(tmp_path, hu, skip=(4, 5), duplicate=(7,))
    vol = io.read_ct(tmp_path)
    assert vol.shape == (10, 16, 16) and vol.spacing[0] == pytest.approx(2.5)
    real = [0, 1, 2, 3, 6, 7, 8, 9]
    assert np.array_equal(vol.voxels[real], hu[real])
    for z, t in ((4, 1 / 3), (5, 2 / 3)):  # on the straight line between the slices around the gap
        assert np.array_equal(vol.voxels[z], np.round((1 - t) * hu[3].astype(float) + t * hu[6]).astype(np.int16))
    assert vol.meta.interpolated_slices == [4, 5] and vol.meta.missing_slices == 2 and not vol.meta.spacing_uneven
    assert vol.meta.slice_positions == pytest.approx([-300.0 + 2.5 * z for z in range(10)])
    assert [vol.position_mm(z) for z in range(10)] == pytest.approx([-300.0 + 2.5 * z for z in range(10)])
    assert any("duplicate" in w for w in vol.meta.warnings)
    assert any(w.startswith("2 missing slice(s) in 1 gap(s) of the series, filled by linear interpolation")
               for w in vol.meta.warnings), vol.meta.warnings


@pytest.mark.parametrize("orientation", [(1, 0, 0, 0, 1, 0), (1, 0, 0, 0, -1, 0), (1, 0, 0, 0, 0, -1)],
                         ids=["axial", "axial-feet", "coronal"])
def test_a_series_with_missing_slices_reads_on_the_full_series_grid(tmp_path, orientation):
    """Before, the slices were stacked closed up, so that a mask written back put every slice past a gap at the
    wrong position. On a volume that changes linearly from slice to slice, the interpolated slices are the
    missing ones: the series with gaps reads as the full series (voxels, positions, affine) and its mask is the
    full series' mask, voxel for voxel and in the world."""
    import nibabel as nib

    shape, sp = (12, 10, 12), (2.5, 0.7, 0.6)
    k, r, c = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    stored = 1000 * k + 12 * r + c - 1000  # linear along the slices; every value once
    skipped = (3, 6, 7)  # a quarter of the grid: as much as interpolation may make
    write_series(tmp_path / "full", stored, spacing=sp, orientation=orientation)
    write_series(tmp_path / "gaps", stored, spacing=sp, orientation=orientation, skip=skipped)
    full, vol = io.read_ct(tmp_path / "full"), io.read_ct(tmp_path / "gaps")
    assert np.array_equal(vol.voxels, full.voxels)
    assert vol.spacing == pytest.approx(full.spacing)
    assert np.allclose(vol.meta.layout.affine, full.meta.layout.affine)
    assert vol.meta.slice_positions == pytest.approx(full.meta.slice_positions)
    assert vol.meta.missing_slices == 3
    made = [int(z) for z in range(vol.shape[0]) if (vol.voxels[z, 0, 0] + 1000) // 1000 in skipped]
    assert vol.meta.interpolated_slices == (made if orientation[4] else [])  # listed where slices are axial
    labels = (vol.voxels % 3).astype(np.uint8)
    masks = [nib.load(io.write_mask_nifti(labels, v.spacing, tmp_path / f"{name}.nii.gz", layout=v.meta.layout))
             for name, v in (("full", full), ("gaps", vol))]
    assert np.array_equal(np.asarray(masks[0].dataobj), np.asarray(masks[1].dataobj))
    assert np.allclose(masks[0].affine, masks[1].affine)


def test_positions_written_to_a_tenth_of_a_mm_read_as_the_series_grid(tmp_path):
    """0.625 mm slices whose ImagePositionPatient is written to 0.1 mm (gaps of 0.6 and 0.7 mm). Before, such a
    series was read as uneven, stacked at its median gap of 0.6 mm (4 % short: 1 mm off at its top slice here,
    7.5 mm on a 300-slice series; volumes 4 % low), and its missing slices were not filled in. Now the grid's step
    is fitted to all positions."""
    hu = chest_phantom((40, 16, 16))
    exact = io.read_ct(write_series(tmp_path / "exact", hu, spacing=(0.625, 0.7, 0.7))[0].parent)
    vol = io.read_ct(write_series(tmp_path / "rounded", hu, spacing=(0.625, 0.7, 0.7), decimals=1)[0].parent)
    assert np.array_equal(vol.voxels, exact.voxels) and not vol.meta.spacing_uneven and vol.meta.warnings == []
    assert vol.spacing[0] == pytest.approx(0.625, abs=0.002)
    top = [vol.meta.layout.lps_mm((vol.shape[0] - 1, 0, 0)), exact.meta.layout.lps_mm((exact.shape[0] - 1, 0, 0))]
    assert np.allclose(*top, atol=0.1)
    write_series(tmp_path / "gaps", hu, spacing=(0.625, 0.7, 0.7), decimals=1, skip=(7, 20, 21))
    vol = io.read_ct(tmp_path / "gaps")
    assert vol.shape == exact.shape and vol.meta.missing_slices == 3 and not vol.meta.spacing_uneven
    assert sorted(vol.meta.interpolated_slices) == [7, 20, 21]
    kept = [z for z in range(40) if z not in (7, 20, 21)]
    assert np.array_equal(vol.voxels[kept], exact.voxels[kept])


def test_the_grid_step_is_fitted_to_all_positions():
    """regular_grid: 300 slices of 0.625 mm written to 0.1 mm give 0.625 (their median gap is 0.6), with a gap of
    two missing slices counted as such; three slices with one missing between the last two have the step of
    their smaller gap; a gap of a step and a half, or a single slice, has no grid."""
    from ctmodels.dicom import regular_grid

    grid, dz = regular_grid(np.round(np.arange(300) * 0.625 - 100.3, 1))
    assert dz == pytest.approx(0.625, abs=1e-4) and list(grid) == list(range(300))
    kept = [k for k in range(300) if k not in (150, 151)]
    grid, dz = regular_grid(np.round(np.array(kept) * 0.625 - 100.3, 1))
    assert list(grid) == kept and dz == pytest.approx(0.625, abs=1e-4)
    assert regular_grid([0.0, 2.5, 5.0, 8.75, 12.5]) is None
    grid, dz = regular_grid([0.0, 2.5, 7.5])  # 4 slices less one: the median gap (3.75) is no step
    assert list(grid) == [0, 1, 3] and dz == pytest.approx(2.5)
    assert regular_grid([3.0]) is None


def test_a_tilted_gantry_is_said(tmp_path):
    """Slices stepped along the table while their plane is tilted: read as stored, with a warning that the
    mask's world position drifts (by the in-plane offset of the last slice); an untilted series gets none."""
    hu = chest_phantom((9, 16, 16))
    write_series(tmp_path / "tilted", hu, spacing=(2.5, 0.7, 0.7), shear=(0.0, 0.25, 0.0))  # 5.7 degrees
    vol = io.read_ct(tmp_path / "tilted")
    assert np.array_equal(vol.voxels, hu)
    assert ("slices stepped 5.7 degrees off their normal (a tilted gantry): results lie on the slices as stored, but "
            "the written mask's position in the world drifts by up to 2.0 mm across the series") in vol.meta.warnings
    write_series(tmp_path / "straight", hu)
    assert not any("tilted" in w for w in io.read_ct(tmp_path / "straight").meta.warnings)


TILTED = ("axial slices tilted {:.0f} degrees off the patient's axial plane (an oblique series): read as stored, "
          "not resampled to axial, so results are less reliable")


def test_an_oblique_series_is_said_and_a_turned_or_gantry_tilted_one_is_not_said_twice(tmp_path):
    """Slices tilted 25 degrees off axial (an oblique reformat, stepped along their normal) were read as axial
    without a word: now said, with the tilt. Slices turned within the axial plane are not tilted (nothing said); a
    tilted gantry (tilted slices stepped along the table) keeps its own line only."""
    t = np.radians(25)
    hu = chest_phantom((6, 16, 16))
    write_series(tmp_path / "oblique", hu, orientation=(1, 0, 0, 0, np.cos(t), np.sin(t)))
    oblique = io.read_ct(tmp_path / "oblique").meta
    assert oblique.warnings == [TILTED.format(25)] and oblique.axial_tilt_deg == pytest.approx(25)
    write_series(tmp_path / "slight", hu, orientation=(1, 0, 0, 0, np.cos(t / 3), np.sin(t / 3)))  # 8.3 degrees
    assert io.read_ct(tmp_path / "slight").meta.warnings == []
    r = np.radians(30)
    write_series(tmp_path / "turned", hu, orientation=(np.cos(r), np.sin(r), 0, -np.sin(r), np.cos(r), 0))
    turned = io.read_ct(tmp_path / "turned").meta
    assert turned.warnings == [] and turned.axial_tilt_deg == pytest.approx(0, abs=1e-6)
    write_series(tmp_path / "gantry", hu, orientation=(1, 0, 0, 0, np.cos(t), np.sin(t)),
                 shear=(0.0, 2.5 * np.sin(t), 2.5 * (1 / np.cos(t) - np.cos(t))))  # steps along the table (z) only
    gantry = io.read_ct(tmp_path / "gantry").meta
    warnings = gantry.warnings
    assert gantry.axial_tilt_deg == pytest.approx(25)  # its slices' plane is tilted as much: the breath-hold rule
    assert len(warnings) == 1 and warnings[0].startswith("slices stepped 25.0 degrees off their normal (a tilted "
                                                         "gantry)"), warnings


def test_too_many_missing_slices_or_changing_spacing_are_stacked_as_they_are(tmp_path):
    hu = chest_phantom((8, 16, 16))
    write_series(tmp_path / "sparse", hu, skip=(2, 3, 4))  # 3 of 8: more than interpolation may make
    vol = io.read_ct(tmp_path / "sparse")
    assert vol.shape[0] == 5 and vol.meta.spacing_uneven and vol.meta.missing_slices == 3
    assert vol.meta.interpolated_slices == []
    assert any("about 3 missing slice(s) (too many to fill in)" in w for w in vol.meta.warnings), vol.meta.warnings
    # 6 slices 2.5 mm apart, then 3 slices 3.75 mm apart: no whole number of steps to fill
    write_series(tmp_path / "changing" / "a", hu[:6], origin=(-100.0, -120.0, -300.0), series_uid="1.2.3.4",
                 names="instance")
    write_series(tmp_path / "changing" / "b", hu[5:8], spacing=(3.75, 0.7, 0.7), origin=(-100.0, -120.0, -283.75),
                 series_uid="1.2.3.4", names="instance")
    vol = io.read_ct(tmp_path / "changing")
    assert vol.shape[0] == 9 and vol.meta.spacing_uneven and vol.meta.interpolated_slices == []
    assert any(w.startswith("uneven slice spacing (2.50..3.75 mm)") and "approximate" in w
               for w in vol.meta.warnings), vol.meta.warnings


@pytest.mark.parametrize("told", ["ImageType", "TriggerTime"])
def test_two_stacks_of_one_acquisition_are_not_mixed(tmp_path, told):
    """The energies of a dual-energy scan (ImageType) or the phases of a gated scan (TriggerTime) filed under one
    series and acquisition, at the same positions, files mixed in one folder. Before, the first file at each
    position was kept, so that the volume mixed the two stacks slice by slice, under a warning that called the
    other stack's images duplicates. Now one stack is read: the one at the most positions."""
    hu = chest_phantom((10, 16, 16))
    uid = "1.2.826.0.1.3680043.8.498.91"
    tags = {"ImageType": (["ORIGINAL", "PRIMARY", "AXIAL", "LOW_KV"], ["ORIGINAL", "PRIMARY", "AXIAL", "HIGH_KV"]),
            "TriggerTime": ("350", "700")}[told]
    files = (write_series(tmp_path / "a", hu, series_uid=uid, acquisition=1, tags={told: tags[0]})
             + write_series(tmp_path / "b", hu + 100, series_uid=uid, acquisition=1, skip=(0, 9), tags={told: tags[1]}))
    (tmp_path / "s").mkdir()
    for k, f in zip(np.random.default_rng(0).permutation(len(files)), files):  # one folder, in no order
        f.rename(tmp_path / "s" / f"{k:03d}.dcm")
    vol = io.read_ct(tmp_path / "s")
    assert np.array_equal(vol.voxels, hu)
    stacked = [w for w in vol.meta.warnings if w.startswith("the series holds more than one image")]
    assert len(stacked) == 1 and f"told apart by {told} " in stacked[0] and "set 8 other image(s) aside" in stacked[0]
    assert not any("duplicate" in w for w in vol.meta.warnings)
    write_series(tmp_path / "copies", hu, duplicate=(3, 4))  # copies of a slice are still copies
    vol = io.read_ct(tmp_path / "copies")
    assert np.array_equal(vol.voxels, hu) and vol.meta.warnings[0].startswith("2 duplicate slice(s) dropped")


def test_a_series_of_two_stacks_is_listed_and_ranked_by_the_slices_it_reads(tmp_path):
    """A dual-energy series holds two images at each of its 10 positions. Before, its listing said 20 slices (its
    files), and choosing a series ranked it above a lung series of 14 slices of the same study that covers more.
    Now it lists the 10 slices reading it stacks, and the longer series is chosen. A localizer filed in the
    series is not counted either, nor described: before, where its file came first, the listing gave its size."""
    from ctmodels.series import select_series

    hu = chest_phantom((14, 16, 16))
    uid = "1.2.826.0.1.3680043.8.498.92"
    write_series(tmp_path / "s" / "de" / "low", hu[:10], series_uid=uid, acquisition=1, series_number=3,
                 tags={"ImageType": ["ORIGINAL", "PRIMARY", "AXIAL", "LOW_KV"]})
    write_series(tmp_path / "s" / "de" / "high", hu[:10] + 100, series_uid=uid, acquisition=1, series_number=3,
                 tags={"ImageType": ["ORIGINAL", "PRIMARY", "AXIAL", "HIGH_KV"]})
    write_series(tmp_path / "s" / "long", hu, series_number=4)
    scout = write_series(tmp_path / "scout", chest_phantom((1, 40, 64)), orientation=(1, 0, 0, 0, 0, -1),
                         series_uid=uid, series_number=3)[0]
    scout.rename(tmp_path / "s" / "de" / "scout.dcm")
    listed = {s.series_number: s for s in io.list_series(tmp_path / "s")}
    assert len(listed[3].files) == 21 and listed[3].n_slices == 10 and listed[4].n_slices == 14
    assert (listed[3].rows, listed[3].columns) == (16, 16)  # the slices', not the localizer's
    best, why = select_series(list(listed.values()))
    assert best.series_number == 4 and "14 slices" in why
    assert io.read_ct(tmp_path / "s").shape[0] == 14
    # a series whose headers cannot say what reading it stacks (not CT) counts its files
    write_series(tmp_path / "mr", hu[:3], modality="MR")
    assert [s.n_slices for s in io.list_series(tmp_path / "mr")] == [3]


def test_two_scans_of_the_same_positions_in_one_series_are_not_mixed(tmp_path):
    """An inspiration and an expiration scan filed under one SeriesInstanceUID, told apart by AcquisitionNumber,
    their files mixed in one folder (or an inspiration scan and a few expiratory slices). Before, one file per
    position was kept in file order, so the volume mixed the two scans slice by slice. Now it is one scan: the
    one with the most slices, else the lower number."""
    hu = chest_phantom((10, 16, 16))
    uid = "1.2.826.0.1.3680043.8.498.77"
    write_series(tmp_path / "s", hu, series_uid=uid, acquisition=1)
    write_series(tmp_path / "s", hu + 100, series_uid=uid, acquisition=2, skip=(9,))
    vol = io.read_ct(tmp_path / "s")
    assert np.array_equal(vol.voxels, hu)
    assert ("the series holds 2 scans of the same part of the body (AcquisitionNumber 1: 10 slices, 2: 9 slices); "
            "read acquisition 1 (the most slices, else the lowest number) and set the other(s) aside"
            ) in vol.meta.warnings
    assert not any("duplicate" in w for w in vol.meta.warnings)
    write_series(tmp_path / "t", hu, series_uid=uid, acquisition=1, skip=(0,))  # now the second has more
    write_series(tmp_path / "t", hu + 100, series_uid=uid, acquisition=2)
    assert np.array_equal(io.read_ct(tmp_path / "t").voxels, hu + 100)
    write_series(tmp_path / "u", hu, series_uid=uid, acquisition=3)  # a tie: the lower number
    write_series(tmp_path / "u", hu + 100, series_uid=uid, acquisition=2)
    assert np.array_equal(io.read_ct(tmp_path / "u").voxels, hu + 100)
    # a few expiratory slices between the inspiration scan's positions (other table positions)
    write_series(tmp_path / "v", hu, series_uid=uid, acquisition=1)
    write_series(tmp_path / "v", hu[:3] + 100, series_uid=uid, acquisition=2, origin=(-100.0, -120.0, -291.25),
                 spacing=(7.5, 0.7, 0.7))
    vol = io.read_ct(tmp_path / "v")
    assert np.array_equal(vol.voxels, hu) and not vol.meta.spacing_uneven
    assert any(w.startswith("the series holds 2 scans") for w in vol.meta.warnings)


def test_a_step_and_shoot_scan_numbering_each_rotation_is_one_volume(tmp_path):
    """Sequential scanners may give each rotation's slices their own AcquisitionNumber; the rotations overlap by
    a slice here. They are one scan: all read, the repeated position once (the lowest-numbered rotation's)."""
    hu = chest_phantom((11, 16, 16))
    uid = "1.2.826.0.1.3680043.8.498.78"
    for a, (lo, hi) in enumerate([(0, 4), (3, 7), (7, 11)], start=1):
        write_series(tmp_path, hu + 100 * (a - 1), series_uid=uid, acquisition=a, skip=[k for k in range(11)
                                                                                      if not lo <= k < hi])
    vol = io.read_ct(tmp_path)
    assert vol.shape[0] == 11 and vol.meta.interpolated_slices == []
    assert np.array_equal(vol.voxels, np.concatenate([hu[:4], hu[4:7] + 100, hu[7:] + 200]))
    noted = [w for w in vol.meta.warnings if "duplicate" in w or "scans" in w]
    assert len(noted) == 1 and noted[0].startswith("1 duplicate slice(s) dropped: another file at a position")


def test_two_series_in_one_folder_selects_lung_kernel(tmp_path):
    hu = chest_phantom((6, 16, 16))
    soft = write_series(tmp_path / "a", hu, kernel="STANDARD", series_number=3)
    lung = write_series(tmp_path / "b", hu + 1, kernel="LUNG", series_number=4)
    series = io.list_series(tmp_path)
    assert len(series) == 2
    by_kernel = {s.kernel: s for s in series}
    assert by_kernel["STANDARD"].kernel_class == "soft"
    assert by_kernel["LUNG"].kernel_class == "lung"
    vol = io.read_ct(tmp_path)
    assert vol.meta.kernel == "LUNG"
    assert np.array_equal(vol.voxels, hu + 1)
    assert "lung kernel" in vol.meta.extra["selection_reason"]
    assert "soft-tissue series set aside" in vol.meta.extra["selection_reason"]
    assert len(soft) == len(lung) == 6
    assert [d["kernel"] for d in vol.meta.extra["series"]] == [s.kernel for s in series]  # the others, to offer
    # explicit choice wins, and says so
    uid = by_kernel["STANDARD"].series_uid
    chosen = io.read_ct(tmp_path, series_uid=uid)
    assert np.array_equal(chosen.voxels, hu)
    assert chosen.meta.extra["selection_reason"].startswith("the series asked for; soft kernel")
    assert chosen.meta.extra["n_series"] == 2


def test_a_dicomdir_is_an_index_not_a_series_whatever_its_name(tmp_path):
    """A PACS or CD export's DICOMDIR (here renamed, as the app's upload folder prefixes names) is not counted
    as a series of its own."""
    import shutil

    from pydicom.data import get_testdata_file

    hu = chest_phantom((6, 16, 16))
    write_series(tmp_path, hu, kernel="LUNG")
    for name in ("0000_DICOMDIR", "index"):
        shutil.copy(get_testdata_file("DICOMDIR"), tmp_path / name)
    assert len(io.list_series(tmp_path)) == 1
    vol = io.read_ct(tmp_path)
    assert vol.meta.extra["n_series"] == 1 and vol.meta.extra["selection_reason"].startswith("the only series")
    assert np.array_equal(vol.voxels, hu)


def test_a_folder_of_several_studies_is_refused_not_one_picked(tmp_path):
    """Two patients' (or two days') studies in one folder: reading it as one study would pick one series
    unasked, so it is a one-line error naming the folder; an explicit series_uid still reads that series."""
    from ctmodels.errors import InvalidInputError

    hu = chest_phantom((6, 16, 16))
    write_series(tmp_path / "p1", hu, kernel="LUNG", study_uid="1.2.826.0.1.3680043.8.498.11")
    write_series(tmp_path / "p2", hu + 1, kernel="LUNG", study_uid="1.2.826.0.1.3680043.8.498.12",
                 series_uid="1.2.826.0.1.3680043.8.498.13")
    with pytest.raises(InvalidInputError, match="holds 2 studies") as exc:
        io.read_ct(tmp_path)
    assert str(tmp_path) in str(exc.value) and "\n" not in str(exc.value)
    # the error carries the series found, so that a caller (the app) can offer them
    assert sorted(d["study_uid"][-2:] for d in exc.value.series) == ["11", "12"]
    assert np.array_equal(io.read_ct(tmp_path, series_uid="1.2.826.0.1.3680043.8.498.13").voxels, hu + 1)
    assert len(io.list_series(tmp_path)) == 2  # info still lists them, and says none would be used
    from ctmodels.series import select_series

    with pytest.raises(InvalidInputError, match="holds 2 studies"):
        select_series(io.list_series(tmp_path))


def test_pydicom_wheel_ct_file():
    from pydicom.data import get_testdata_file

    path = get_testdata_file("CT_small.dcm")
    vol = io.read_ct(path)
    assert vol.shape == (1, 128, 128)
    assert vol.meta.kernel == "STANDARD"
    # CT_small stores values with intercept -1024: air near -1000, soft tissue around 0..100
    assert -1100 < vol.voxels.min() < -800 and vol.voxels.max() > 200


@pytest.mark.parametrize("syntax", ["RLELossless", "JPEG2000Lossless"])
def test_compressed_transfer_syntaxes(tmp_path, syntax):
    import pydicom
    import pydicom.uid
    from pydicom.data import get_testdata_file

    src = get_testdata_file("CT_small.dcm")
    ref = io.read_ct(src).voxels
    ds = pydicom.dcmread(src)
    ds.compress(getattr(pydicom.uid, syntax))
    out = tmp_path / "c.dcm"
    ds.save_as(out)
    vol = io.read_ct(out)
    assert np.array_equal(vol.voxels, ref)


def test_mr_file_is_refused_with_modality():
    from pydicom.data import get_testdata_file

    path = get_testdata_file("MR_small.dcm")
    with pytest.raises(NotCTError, match="modality is MR, expected CT"):
        io.read_ct(path)


def test_a_ct_of_a_part_of_the_body_without_lung_is_refused_by_its_header(tmp_path):
    """pydicom's J2K_pixelrep_mismatch.dcm is a real head CT slice (BodyPartExamined HEAD): the lesion model called
    its sinuses and mastoid air cells lung and lesion, and graded it CT-2. Refused as another modality is; in a
    study with a chest series too, the head series is set aside, and a folder of only head series is refused."""
    from pydicom.data import get_testdata_file

    from ctmodels.errors import NotChestError
    from ctmodels.dicom import lungless

    path = get_testdata_file("J2K_pixelrep_mismatch.dcm")
    with pytest.raises(NotChestError, match="BodyPartExamined is HEAD, a part of the body without lung; expected a "
                                            "chest CT") as exc:
        io.read_ct(path)
    assert str(exc.value).startswith(f"{path}: ")
    assert all(lungless(v) for v in ("HEAD", "brain", "Knee", " PELVIS ", "S-SPINE", "sspine"))
    assert not any(lungless(v) for v in (None, "", "CHEST", "THORAX", "LUNG", "CHEST_ABDOMEN", "HEADNECK", "NECK",
                                         "ABDOMEN", "WHOLEBODY", "TSPINE", "SHOULDER", "Thorax/Abdomen"))
    hu = chest_phantom((6, 16, 16))
    write_series(tmp_path / "s" / "head", hu - 7, kernel="LUNG", series_number=3, tags={"BodyPartExamined": "HEAD"})
    write_series(tmp_path / "s" / "chest", hu, kernel="STANDARD", series_number=4, tags={"BodyPartExamined": "CHEST"})
    vol = io.read_ct(tmp_path / "s")
    assert np.array_equal(vol.voxels, hu)  # the chest series, though the head series has the lung kernel
    assert vol.meta.extra["selection_reason"].endswith("; 1 series of HEAD (no lung) set aside")
    assert sorted(s["body_part"] for s in vol.meta.extra["series"]) == ["CHEST", "HEAD"]
    write_series(tmp_path / "h", hu, kernel="LUNG", tags={"BodyPartExamined": "BRAIN"})
    with pytest.raises(InvalidInputError, match="BodyPartExamined is BRAIN, a part of the body without lung; "
                                                "expected a chest CT") as exc:
        io.read_ct(tmp_path / "h", purpose="quality")
    assert str(exc.value).startswith(f"{tmp_path / 'h'}: ")


def test_series_of_wrong_modality_in_folder(tmp_path):
    write_series(tmp_path, chest_phantom((3, 16, 16)), modality="MR")
    with pytest.raises(InvalidInputError, match="no CT series|expected CT") as exc:
        io.read_ct(tmp_path)
    assert str(exc.value).startswith(f"{tmp_path}: ")  # names the folder


def test_truncated_dicom_is_a_typed_error(tmp_path):
    p = write_series(tmp_path / "s", chest_phantom((1, 16, 16)))[0]
    bad = tmp_path / "bad.dcm"
    bad.write_bytes(p.read_bytes()[:300])
    with pytest.raises(InvalidInputError) as e:
        io.read_ct(bad)
    assert "bad.dcm" in str(e.value) and "\n" not in str(e.value)


def test_empty_folder(tmp_path):
    with pytest.raises(EmptyInputError, match="no DICOM files"):
        io.read_ct(tmp_path)


def test_a_folder_of_image_slices_says_to_give_them_as_files(tmp_path):
    """A folder is one study; PNG slices (and zips) are read one file each. Before, the error said only that no
    DICOM was found, as for an empty folder."""
    from PIL import Image

    for k in range(2):
        Image.fromarray(np.full((32, 32), 40 * k, np.uint8)).save(tmp_path / f"s{k}.png")
    with pytest.raises(EmptyInputError, match=r"2 image file\(s\) \(\.png\).*give each image as its own input"):
        io.read_ct(tmp_path)
    with pytest.raises(EmptyInputError, match=r"2 image file\(s\) \(\.png\).*give each image as its own input"):
        io.list_series(tmp_path)  # `ctmodels info`
    import zipfile

    zipped = tmp_path / "zipped"
    zipped.mkdir()
    with zipfile.ZipFile(zipped / "study.zip", "w") as zf:  # a zip in a folder is not read: it is a study of its own
        zf.write(tmp_path / "s0.png", "s0.png")
    with pytest.raises(EmptyInputError, match=r"1 zip file\(s\); a folder is read as one study: give each zip"):
        io.read_ct(zipped)


def test_volume_files_beside_a_dicom_series_are_named_not_passed_over(tmp_path, caplog):
    """The DICOM series is read, and the volume file beside it (a converted copy, a mask) is named in a warning."""
    hu = chest_phantom((4, 32, 32))
    write_series(tmp_path, hu)
    io.write_volume_nifti(hu, (2.5, 0.7, 0.7), tmp_path / "copy.nii.gz")
    with caplog.at_level("WARNING"):
        vol = io.read_ct(tmp_path)
    assert np.array_equal(vol.voxels, hu) and vol.meta.format == "dicom"
    said = [w for w in vol.meta.warnings if "1 volume file(s) (copy.nii.gz), not read" in w]
    assert len(said) == 1 and said[0] in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):  # listing the folder (ctmodels info) names it too
        assert len(io.list_series(tmp_path)) == 1
    assert said[0] in caplog.text


# ----------------------------------------------------------------------------- Enhanced (multi-frame) CT
def _enhanced(folder, hu, **series_kw):
    """``hu`` written as single-frame slices, then converted by highdicom (another library's reading of the
    standard) into one Legacy Converted Enhanced CT file: (single-frame folder, the multi-frame file)."""
    import highdicom as hd
    import pydicom
    from pydicom.uid import generate_uid

    files = write_series(folder / "single", hu, **series_kw)
    legacy = [pydicom.dcmread(f) for f in files]
    enh = hd.legacy.LegacyConvertedEnhancedCTImage(legacy_datasets=legacy, series_instance_uid=generate_uid(),
                                                   series_number=7, sop_instance_uid=generate_uid(),
                                                   instance_number=1)
    (folder / "enhanced").mkdir()
    enh.save_as(folder / "enhanced" / "ct.dcm")
    return folder / "single", folder / "enhanced" / "ct.dcm"


@pytest.mark.parametrize("orientation", [(1, 0, 0, 0, 1, 0), (1, 0, 0, 0, -1, 0), (0.8, 0.6, 0, -0.6, 0.8, 0)],
                         ids=["axial", "axial-feet", "axial-rotated"])
def test_an_enhanced_ct_file_reads_as_the_series_it_was_made_from(tmp_path, orientation):
    """One multi-frame file holding a whole series (frame positions, spacing, rescale and kernel in its
    functional groups) reads as that series does: the same voxels, spacing, position in the world, slice
    positions and kernel, given as the file, its folder or a zip; listed as one series of one file."""
    import zipfile

    hu = chest_phantom((7, 24, 30))
    single, enhanced = _enhanced(tmp_path, hu, orientation=orientation, kernel="LUNG", spacing=(2.0, 0.8, 0.7))
    ref = io.read_ct(single)
    with zipfile.ZipFile(tmp_path / "ct.zip", "w") as zf:
        zf.write(enhanced, "study/ct.dcm")
    for given in (enhanced, enhanced.parent, tmp_path / "ct.zip"):
        vol = io.read_ct(given)
        assert np.array_equal(vol.voxels, ref.voxels) and vol.spacing == pytest.approx(ref.spacing), given
        assert np.allclose(vol.meta.layout.affine, ref.meta.layout.affine)
        assert vol.meta.slice_positions == pytest.approx(ref.meta.slice_positions)
        assert vol.meta.kernel == "LUNG" and not vol.meta.spacing_assumed and not vol.meta.warnings
    (info,) = io.list_series(enhanced.parent)
    assert info.n_slices == 7 and info.files == [str(enhanced)] and info.kernel_class == "lung"


def test_enhanced_ct_per_frame_values_win_over_shared_ones_and_compressed_frames_decode(tmp_path):
    """A true Enhanced CT (its SOP class) with the kernel in its CT Reconstruction group, a rescale intercept
    that differs from frame to frame, frames stored head first, and RLE-compressed pixels."""
    import pydicom
    from pydicom.dataset import Dataset
    from pydicom.uid import RLELossless

    hu = chest_phantom((5, 20, 24))
    _, enhanced = _enhanced(tmp_path, hu)
    ds = pydicom.dcmread(enhanced)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2.1"  # Enhanced CT Image
    shared = ds.SharedFunctionalGroupsSequence[0]
    del shared.UnassignedSharedConvertedAttributesSequence  # where highdicom put the kernel
    recon = Dataset()
    recon.ConvolutionKernel = "B70f"
    shared.CTReconstructionSequence = [recon]
    stored = ds.pixel_array.astype(np.int32)
    order = np.argsort([-float(f.PlanePositionSequence[0].ImagePositionPatient[2])
                        for f in ds.PerFrameFunctionalGroupsSequence])  # head first
    frames = [ds.PerFrameFunctionalGroupsSequence[i] for i in order]
    pixels = []
    for k, (i, f) in enumerate(zip(order, frames)):
        transform = Dataset()
        transform.RescaleSlope, transform.RescaleIntercept, transform.RescaleType = 1, -1024 - 10 * k, "HU"
        f.PixelValueTransformationSequence = [transform]  # per frame: wins over the shared -1024
        pixels.append(stored[i] + 10 * k)  # so the HU stay the same
    ds.PerFrameFunctionalGroupsSequence = frames
    ds.PixelData = np.stack(pixels).astype(np.uint16).tobytes()
    ds.compress(RLELossless)
    ds.save_as(enhanced)
    vol = io.read_ct(enhanced)
    assert np.array_equal(vol.voxels, hu) and vol.meta.kernel == "B70f"


def test_a_folder_of_one_frame_enhanced_ct_files_reads_as_its_series(tmp_path):
    """Enhanced CT written one frame a file: position, spacing and rescale are only in the functional groups (read
    as plain slices, the rescale's -1024 was lost and the slices had no position)."""
    import highdicom as hd
    import pydicom
    from pydicom.uid import generate_uid

    hu = chest_phantom((6, 20, 24))
    files = write_series(tmp_path / "single", hu, spacing=(3.0, 0.9, 0.9))
    uid = generate_uid()
    (tmp_path / "enhanced").mkdir()
    for k, f in enumerate(files):
        one = hd.legacy.LegacyConvertedEnhancedCTImage(legacy_datasets=[pydicom.dcmread(f)], series_instance_uid=uid,
                                                       series_number=7, sop_instance_uid=generate_uid(),
                                                       instance_number=k + 1)
        assert "ImagePositionPatient" not in one and "RescaleIntercept" not in one and one.NumberOfFrames == 1
        one.save_as(tmp_path / "enhanced" / f"{k}.dcm")
    ref, vol = io.read_ct(tmp_path / "single"), io.read_ct(tmp_path / "enhanced")
    assert np.array_equal(vol.voxels, ref.voxels) and vol.spacing == pytest.approx((3.0, 0.9, 0.9))
    assert np.allclose(vol.meta.layout.affine, ref.meta.layout.affine) and not vol.meta.warnings
    one = io.read_ct(tmp_path / "enhanced" / "0.dcm")  # one such file alone: its slice, in HU
    assert one.shape[0] == 1 and sum(np.array_equal(one.voxels[0], s) for s in ref.voxels) == 1


def test_multiframe_files_that_are_not_enhanced_ct_are_refused(tmp_path):
    import pydicom
    from pydicom.data import get_testdata_file

    with pytest.raises(NotCTError, match="modality is US"):
        io.read_ct(get_testdata_file("examples_ybr_color.dcm"))  # an ultrasound cine
    ds = pydicom.dcmread(write_series(tmp_path / "s", chest_phantom((1, 16, 16)))[0])
    ds.NumberOfFrames = 2
    ds.PixelData = ds.PixelData * 2
    ds.save_as(tmp_path / "two.dcm")
    with pytest.raises(InvalidInputError, match="two.dcm.*without functional groups"):
        io.read_ct(tmp_path / "two.dcm")


def test_orientations_written_with_a_little_noise_are_one_plane(tmp_path):
    """Direction cosines written with noise in their last digits (1e-7 here) on either side of a rounding edge
    (0.9995). Before, the orientations were rounded to 3 decimals and compared, so half of this series was set
    aside as "another orientation"; now they are compared within 0.001, and the whole series is read as written
    without the noise. A plane 1 degree off (0.017) is still another plane."""
    import pydicom

    hu = chest_phantom((10, 16, 16))
    a = np.arccos(0.9995)
    iop = (np.cos(a), np.sin(a), 0.0, -np.sin(a), np.cos(a), 0.0)
    ref = io.read_ct(write_series(tmp_path / "ref", hu, orientation=iop)[0].parent)
    files = write_series(tmp_path / "noisy", hu, orientation=iop, names="instance")
    for k, f in enumerate(sorted(files)):
        ds = pydicom.dcmread(f)
        noisy = [float(v) + (1e-7 if k % 2 else -1e-7) * (i in (0, 4)) for i, v in enumerate(iop)]
        ds.ImageOrientationPatient = [f"{v:.8f}" for v in noisy]
        ds.save_as(f)
    vol = io.read_ct(tmp_path / "noisy")
    assert vol.meta.warnings == [] and np.array_equal(vol.voxels, ref.voxels)
    assert np.allclose(vol.meta.layout.affine, ref.meta.layout.affine, atol=1e-4)
    b = a + np.radians(1.0)
    ds = pydicom.dcmread(sorted(files)[3])
    ds.ImageOrientationPatient = [f"{v:.8f}" for v in (np.cos(b), np.sin(b), 0.0, -np.sin(b), np.cos(b), 0.0)]
    ds.save_as(sorted(files)[3])
    said = io.read_ct(tmp_path / "noisy").meta.warnings[0]
    assert said.startswith("1 slice(s) of another size, pixel size or orientation"), said


@pytest.mark.parametrize("iop, said", [
    ((1, 0, 0, 1, 0, 0),
     "ImageOrientationPatient (1.0\\0.0\\0.0\\1.0\\0.0\\0.0) is not two perpendicular unit vectors"),
    ((0, 0, 0, 0, 0, 0), "is not two perpendicular unit vectors"),
    ((2, 0, 0, 0, 1, 0), "is not two perpendicular unit vectors"),
    (("nan", 0, 0, 0, 1, 0), "ImageOrientationPatient (nan\\0.0\\0.0\\0.0\\1.0\\0.0) is not six numbers"),
    ((1, 0, 0, 0, 1), "is not six numbers"),
    (None, "ImageOrientationPatient missing"),
])
def test_an_unusable_orientation_is_read_as_axial_and_said(tmp_path, iop, said):
    """Two parallel direction cosines (or zeros) give no slice normal: every slice projected to one position, so
    20 slices were read as one (19 'duplicates' dropped) and the lesion model was handed a 64 x 1 image; zeros
    and NaN were taken as axial without a word. Now each is read as axial, as a missing tag is, and said."""
    import warnings as w

    import pydicom

    hu = chest_phantom((12, 24, 20))
    files = write_series(tmp_path, hu)
    ref = io.read_ct(tmp_path)
    for f in files:
        ds = pydicom.dcmread(f)
        if iop is None:
            del ds.ImageOrientationPatient
        else:
            with w.catch_warnings():
                w.simplefilter("ignore")  # pydicom's own warning on writing 'nan' as DS
                ds.ImageOrientationPatient = list(iop)
        ds.save_as(f)
    vol = io.read_ct(tmp_path)
    assert np.array_equal(vol.voxels, ref.voxels) and vol.spacing == ref.spacing
    said_there = [x for x in vol.meta.warnings if "ImageOrientationPatient" in x]
    assert len(said_there) == 1 and said in said_there[0] and said_there[0].endswith(": axial slices assumed")


def test_a_localizer_filed_in_the_series_is_set_aside_not_stacked(tmp_path):
    """A scout of another size and plane under the series' own SeriesInstanceUID (some exports and anonymisers
    do this) made the whole series unreadable ("slice is 40x64 but the series is 24x30"); now the axial slices are
    read as they would be alone, and the reader says what it set aside."""
    import pydicom

    hu = chest_phantom((7, 24, 30))
    files = write_series(tmp_path / "s", hu, series_uid="1.2.826.0.1.3680043.8.498.77")
    ref = io.read_ct(tmp_path / "s")
    scout = write_series(tmp_path / "scout", chest_phantom((1, 40, 64)), orientation=(1, 0, 0, 0, 0, -1),
                         series_uid="1.2.826.0.1.3680043.8.498.77")[0]
    (tmp_path / "s" / "scout.dcm").write_bytes(scout.read_bytes())
    assert pydicom.dcmread(files[0]).SeriesInstanceUID == pydicom.dcmread(scout).SeriesInstanceUID
    vol = io.read_ct(tmp_path / "s")
    assert np.array_equal(vol.voxels, ref.voxels) and np.allclose(vol.meta.layout.affine, ref.meta.layout.affine)
    assert vol.meta.warnings == ["1 slice(s) of another size, pixel size or orientation set aside (a localizer?); "
                                 "kept the 7 slices of 24x30 at 0.7 x 0.7 mm"]
    # of the same size but another plane: set aside as well
    same_size = write_series(tmp_path / "cor", chest_phantom((1, 24, 30)), orientation=(1, 0, 0, 0, 0, -1),
                             series_uid="1.2.826.0.1.3680043.8.498.77")[0]
    (tmp_path / "s" / "scout.dcm").write_bytes(same_size.read_bytes())
    assert np.array_equal(io.read_ct(tmp_path / "s").voxels, ref.voxels)


def test_a_dose_report_filed_under_ct_is_set_aside_not_read(tmp_path):
    """PACS exports of a CT study hold the scanner's dose report, a Secondary Capture image filed under modality
    CT. Beside a soft-tissue kernel series (no lung kernel, so the report's unknown kernel ranked first) it was the
    series read: "nothing below 0 (values 0..255)", and the breath-hold check measured it rather than saying that
    only soft-tissue kernels were there."""
    import pydicom

    from ctmodels.errors import SeriesSelectionError
    from ctmodels.series import select_series

    hu = chest_phantom((6, 24, 24))
    study = "1.2.826.0.1.3680043.8.498.1"
    write_series(tmp_path / "study" / "soft", hu, kernel="STANDARD", study_uid=study)
    dose_report(tmp_path / "study" / "report" / "IM0001", study)
    listed = {s.description: s for s in io.list_series(tmp_path / "study")}
    assert listed["Dose Report"].not_slices.startswith("a secondary capture")
    assert listed["Dose Report"].kernel_class == "unknown" and listed["synthetic STANDARD"].not_slices is None
    vol = io.read_ct(tmp_path / "study")
    assert np.array_equal(vol.voxels, hu)
    assert vol.meta.extra["selection_reason"].endswith("; 1 series without CT slices (a dose report, raw data) set "
                                                       "aside")
    with pytest.raises(SeriesSelectionError, match="only soft-tissue kernel series found; the breath-hold"):
        select_series(list(listed.values()), purpose="quality")
    with pytest.raises(SeriesSelectionError, match="holds no CT slices, only a secondary capture"):
        select_series([listed["Dose Report"]])
    with pytest.raises(NotCTError, match=r"IM0001: a secondary capture \(a screenshot or a report, such as a CT's "
                                         r"dose report\), expected CT slices"):
        io.read_ct(tmp_path / "study" / "report" / "IM0001")
    # a multi-frame secondary capture's SOP class, filed in the slices' own series: set aside, and said
    uid = listed["synthetic STANDARD"].series_uid
    dose_report(tmp_path / "study" / "soft" / "report.dcm", study, uid, sop_class="1.2.840.10008.5.1.4.1.1.7.2")
    vol = io.read_ct(tmp_path / "study" / "soft")
    assert np.array_equal(vol.voxels, hu)
    assert vol.meta.warnings == ["1 file(s) filed in the series set aside, not CT slices (first: report.dcm, a "
                                 "secondary capture (a screenshot or a report, such as a CT's dose report))"]
    # raw data filed under modality CT (no image at all), beside the slices or in their series
    raw = pydicom.dcmread(tmp_path / "study" / "report" / "IM0001")
    for tag in ("Rows", "Columns", "PixelData", "SOPClassUID"):
        delattr(raw, tag)
    raw.file_meta.MediaStorageSOPClassUID = "1.3.12.2.1107.5.9.1"  # a scanner maker's private non-image storage
    raw.save_as(tmp_path / "study" / "report" / "IM0001")
    (tmp_path / "study" / "soft" / "report.dcm").unlink()
    listed = {s.description: s for s in io.list_series(tmp_path / "study")}
    assert listed["Dose Report"].not_slices.startswith("an object without an image (no Rows/Columns")
    assert np.array_equal(io.read_ct(tmp_path / "study").voxels, hu)
    raw.SeriesInstanceUID = uid
    raw.save_as(tmp_path / "study" / "soft" / "raw")
    assert np.array_equal(io.read_ct(tmp_path / "study" / "soft").voxels, hu)


def test_pixel_padding_value_marks_pixels_that_are_not_image(tmp_path):
    """Stored 0 with RescaleIntercept -1024 is -1024 HU, grey air in the lung window; the header says it is padding
    (the corners outside the field of view), so it reads as PADDING_HU, below every window. The image keeps its
    values, and a series whose header names no padding keeps -1024 there."""
    from ctmodels.dicom import PADDING_HU

    hu = np.maximum(chest_phantom((4, 32, 32)), -1000)  # the image itself never holds the padding value
    fov = round_field_of_view(*hu.shape[1:])
    hu[:, ~fov] = -1024
    write_series(tmp_path / "padded", hu, intercept=-1024.0, tags={"PixelPaddingValue": 0})
    write_series(tmp_path / "plain", hu, intercept=-1024.0)
    padded, plain = io.read_ct(tmp_path / "padded").voxels, io.read_ct(tmp_path / "plain").voxels
    assert (padded[:, ~fov] == PADDING_HU).all() and np.array_equal(padded[:, fov], hu[:, fov])
    assert np.array_equal(plain, hu)


def test_pixel_padding_range_and_a_value_written_with_the_other_sign(tmp_path):
    """PixelPaddingValue to PixelPaddingRangeLimit (inclusive) is padding. A header that writes -2000 as unsigned
    (63536) beside signed pixels means the same 16 bits."""
    from ctmodels.dicom import PADDING_HU, ct_slice_dataset

    hu = chest_phantom((3, 32, 32))
    fov = round_field_of_view(*hu.shape[1:])
    rng = np.random.default_rng(0)
    for name, vr, value, limit, outside in (("range", "SS", -2000, -1500, rng.integers(-2000, -1499, hu.shape)),
                                            ("unsigned", "US", 63536, None, np.full(hu.shape, -2000))):
        folder = tmp_path / name
        folder.mkdir()
        stored = np.where(fov, hu, outside).astype(np.int16)  # intercept 0: stored values are HU
        for k in range(len(stored)):
            ds = ct_slice_dataset(stored[k], (0.0, 0.0, 2.5 * k), (0.7, 0.7), 2.5, "1.2.3.4", "1.2.3", intercept=0.0)
            ds.add_new(0x00280120, vr, value)  # PixelPaddingValue
            if limit is not None:
                ds.add_new(0x00280121, "SS", limit)  # PixelPaddingRangeLimit
            ds.save_as(folder / f"{k}.dcm", enforce_file_format=True)
        vox = io.read_ct(folder).voxels
        assert (vox[:, ~fov] == PADDING_HU).all(), name
        assert np.array_equal(vox[:, fov], hu[:, fov]), name


NOT_SQUARE = " (not square: the models were made for axial CT slices of square pixels, so results are less reliable)"


@pytest.mark.parametrize("orientation,plane,pixels", [
    ((1, 0, 0, 0, 0, -1), "coronal", "3.00 x 0.70"), ((0, 1, 0, 0, 0, -1), "sagittal", "0.70 x 3.00")])
def test_a_coronal_or_sagittal_series_is_read_across_its_slices_and_said(tmp_path, orientation, plane, pixels):
    """A series of coronal or sagittal slices (a reformat exported on its own) was read as the axial slices made
    across it without a word, though those have the series' slice spacing as one side of their pixels (3 mm
    against 0.7 mm): now the reading says so, and how large their pixels are; of thin slices, that they are
    square. An axial series gets no such line."""
    hu = chest_phantom((6, 16, 16))
    write_series(tmp_path / "thick", hu, spacing=(3.0, 0.7, 0.7), orientation=orientation)
    vol = io.read_ct(tmp_path / "thick")
    assert vol.shape == (16, 6, 16) if plane == "coronal" else (16, 16, 6)
    assert (f"slices stored {plane}: read as the axial slices across them, of {pixels} mm pixels"
            + NOT_SQUARE) in vol.meta.warnings, vol.meta.warnings
    write_series(tmp_path / "thin", hu, spacing=(0.7, 0.7, 0.7), orientation=orientation)
    assert (f"slices stored {plane}: read as the axial slices across them, of 0.70 x 0.70 mm pixels"
            in io.read_ct(tmp_path / "thin").meta.warnings)
    write_series(tmp_path / "axial", hu, spacing=(3.0, 0.7, 0.7))
    assert not any("stored" in w or "pixels are" in w for w in io.read_ct(tmp_path / "axial").meta.warnings)
    write_series(tmp_path / "oblong", hu, spacing=(3.0, 0.7, 1.0))  # PixelSpacing of two sizes: rare, said
    assert "pixels are 0.70 x 1.00 mm" + NOT_SQUARE in io.read_ct(tmp_path / "oblong").meta.warnings


def test_slices_of_another_pixel_size_filed_in_the_series_are_set_aside_not_stacked(tmp_path):
    """Slices of the same size and plane but another pixel size (reconstructed with another field of view, filed
    under the series' SeriesInstanceUID) were stacked with the others at the first slice's pixel size: part of the
    volume at the wrong scale. Now the pixel size most slices have is kept, and the others are set aside and said."""
    import pydicom

    hu = chest_phantom((9, 24, 30))
    files = write_series(tmp_path / "s", hu, spacing=(2.5, 0.7, 0.7), series_uid="1.2.826.0.1.3680043.8.498.78")
    ref = io.read_ct(tmp_path / "s")
    top = sorted(files, key=lambda f: float(pydicom.dcmread(f).ImagePositionPatient[2]))[-2:]
    for f in top:  # the two top slices at 0.9 mm pixels
        ds = pydicom.dcmread(f)
        ds.PixelSpacing = [0.9, 0.9]
        ds.save_as(f)
    vol = io.read_ct(tmp_path / "s")
    assert vol.meta.warnings == ["2 slice(s) of another size, pixel size or orientation set aside (a localizer?); "
                                 "kept the 7 slices of 24x30 at 0.7 x 0.7 mm"], vol.meta.warnings
    assert np.array_equal(vol.voxels, ref.voxels[:7]) and vol.spacing == pytest.approx(ref.spacing)
    for f in top:  # written with a little noise, as some exports round: still one pixel size
        ds = pydicom.dcmread(f)
        ds.PixelSpacing = ["0.7000001", "0.6999999"]
        ds.save_as(f)
    assert io.read_ct(tmp_path / "s").meta.warnings == []
