"""Evaluation tier: real CT data in ../shared/data (skipped when absent)."""

import numpy as np
import pytest

from conftest import shared
from ctmodels import io

pytestmark = pytest.mark.evaluation


def test_ct64_dicom_series_equals_nrrd_voxel_for_voxel():
    d = io.read_ct(shared("chest_ct64", "ct-64Dicom"))
    n = io.read_ct(shared("chest_ct64", "ct-64.nrrd"))
    assert d.shape == (79, 64, 64) and d.voxels.dtype == np.int16
    assert np.array_equal(d.voxels, n.voxels)
    assert d.spacing == pytest.approx(n.spacing, abs=1e-3)
    assert d.spacing == pytest.approx((3.987, 4.1719, 4.1719), abs=1e-3)
    # HU range as documented in PROVENANCE.txt
    assert d.voxels.min() == -1007 and d.voxels.max() == 1095
    # canonical z runs feet -> head: the airway label (trachea) sits in the upper slices
    lm = io.read_labels(shared("chest_ct64", "lm-64.nrrd")).voxels
    z_airway = np.flatnonzero((lm == 512).any(axis=(1, 2)))
    assert z_airway.min() >= 30 and z_airway.max() == 78


def test_cta_crop_nifti_spacing_and_orientation():
    v = io.read_ct(shared("chest_cta_crop", "ct_cropped.nii.gz"))
    assert v.spacing == pytest.approx((1.5, 1.5, 1.5))
    assert v.shape == (164, 126, 120)
    # the trachea (air inside the body) is in the top slices, i.e. at high z (superior)
    top = v.voxels[150]
    assert (top < -900).sum() > 50


def test_simple_dicom_ge_standard_kernel():
    series = io.list_series(shared("chest_ct64", "simple_dicom"))
    assert len(series) == 1 and series[0].kernel == "STANDARD" and series[0].kernel_class == "soft"
    v = io.read_ct(shared("chest_ct64", "simple_dicom"))
    assert v.shape == (2, 512, 512) and v.voxels.min() == -3024
