"""tfp_glow.data.toys: the 2-D toy densities, against their geometry.

Expected values come from independent references: scikit-learn's raw digits,
numpy bit shifts, PIL-written files, geometric properties of the toy sets.
"""
import numpy as np
import pytest

from tfp_glow import data as D


@pytest.mark.parametrize("name", ["moons", "circles", "checkerboard", "rings", "8gaussians"])
def test_toy_shape_determinism_finiteness(name):
    a = D.toy_2d(name, n=1000, seed=0)
    b = D.toy_2d(name, n=1000, seed=0)
    c = D.toy_2d(name, n=1000, seed=1)
    assert a.shape == (1000, 2) and a.dtype == np.float32
    assert np.isfinite(a).all()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    # roughly within [-4, 4]^2, and not degenerate
    assert np.mean(np.abs(a) <= 4.0) > 0.99
    assert np.abs(a).max() < 5.0
    assert a.std(axis=0).min() > 0.5
    assert D.toy_2d(name, n=7).shape == (7, 2)


def test_toy_checkerboard_only_black_squares():
    x = D.toy_2d("checkerboard", n=2000).astype(np.float64)
    assert x.min() >= -4.0 and x.max() < 4.0
    cells = np.floor(x[:, 0] / 2) + np.floor(x[:, 1] / 2)
    assert np.all(cells % 2 == 0)
    # all 8 black squares are populated
    assert len({(int(a), int(b)) for a, b in np.floor(x / 2)}) == 8


def test_toy_circles_and_rings_radii():
    r = np.linalg.norm(D.toy_2d("circles", n=2000), axis=1)
    near = np.minimum(np.abs(r - 3.0), np.abs(r - 1.5))
    assert np.mean(near < 0.75) > 0.99
    assert 0.4 < np.mean(r > 2.25) < 0.6  # half on each circle

    r = np.linalg.norm(D.toy_2d("rings", n=2000), axis=1)
    radii = np.array([3.0, 2.25, 1.5, 0.75])
    assert np.mean(np.min(np.abs(r[:, None] - radii), axis=1) < 0.3) > 0.99
    counts = np.bincount(np.argmin(np.abs(r[:, None] - radii), axis=1), minlength=4)
    assert counts.min() > 400


def test_toy_8gaussians_near_centres():
    x = D.toy_2d("8gaussians", n=2000)
    ang = np.arange(8) * np.pi / 4
    centres = 4.0 / 1.414 * np.stack([np.cos(ang), np.sin(ang)], axis=1)
    d = np.linalg.norm(x[:, None, :] - centres[None], axis=2)
    assert np.mean(d.min(axis=1) < 1.5) > 0.99
    assert np.bincount(d.argmin(axis=1), minlength=8).min() > 150


def test_toy_moons_near_arcs():
    x = D.toy_2d("moons", n=2000)
    t = np.linspace(0, np.pi, 400)
    upper = np.stack([np.cos(t), np.sin(t)], 1) * 2 + [-1, -0.2]
    lower = np.stack([1 - np.cos(t), 0.5 - np.sin(t)], 1) * 2 + [-1, -0.2]
    curve = np.concatenate([upper, lower])
    dist = np.linalg.norm(x[:, None, :] - curve[None], axis=2).min(axis=1)
    assert np.median(dist) < 0.3
    assert np.mean(dist < 0.8) > 0.99


def test_toy_bad_inputs():
    with pytest.raises(ValueError, match="unknown toy data set 'spiral'.*8gaussians"):
        D.toy_2d("spiral")
    for bad_n in (0, -5, 2.5):
        with pytest.raises(ValueError, match="n must be a positive int"):
            D.toy_2d("moons", n=bad_n)
