"""The glimpse sensor against an independent NumPy loop on hand-made images."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attnlab.ram.glimpse import glimpse


def numpy_glimpse(image, loc, patch, scales):
    """Reference: pixel by pixel, reading zeros outside the image, then block means."""
    height, width, channels = image.shape
    loc = np.clip(np.asarray(loc, np.float64), -1.0, 1.0)
    centre = (loc[0] + 1) / 2 * height, (loc[1] + 1) / 2 * width
    out = np.zeros((scales, patch, patch, channels))
    for i in range(scales):
        w = patch * 2**i
        top, left = (math.floor(c - w / 2 + 0.5) for c in centre)
        crop = np.zeros((w, w, channels))
        for r in range(w):
            for c in range(w):
                y, x = top + r, left + c
                if 0 <= y < height and 0 <= x < width:
                    crop[r, c] = image[y, x]
        for r in range(patch):
            for c in range(patch):
                block = crop[r * 2**i : (r + 1) * 2**i, c * 2**i : (c + 1) * 2**i]
                out[i, r, c] = block.mean(axis=(0, 1))
    return out


IMAGE = np.arange(12 * 10 * 2, dtype=np.float32).reshape(12, 10, 2)  # H != W, two channels


@pytest.mark.parametrize(
    "loc",
    [
        (0.0, 0.0),  # centre
        (-1.0, -1.0),  # top-left corner: most of every patch is padding
        (1.0, 1.0),  # bottom-right corner
        (0.9, -0.85),  # near a corner, between pixels
        (-0.33, 0.41),
        (1.7, -2.5),  # outside [-1, 1]: clipped to the edge
    ],
)
@pytest.mark.parametrize("patch,scales", [(2, 3), (3, 2), (4, 1)])
def test_glimpse_matches_numpy_reference(loc, patch, scales):
    got = glimpse(jnp.asarray(IMAGE), jnp.asarray(loc, jnp.float32), patch, scales)
    assert got.shape == (scales, patch, patch, 2)
    np.testing.assert_allclose(got, numpy_glimpse(IMAGE, loc, patch, scales), rtol=1e-6)


def test_glimpse_centre_patch_is_exact_and_scales_average():
    # A 4x4 image, a 2-pixel patch at the centre: the middle 2x2 pixels, then the whole image
    # averaged in 2x2 blocks, then an 8x8 window (the image plus a zero border) in 4x4 blocks.
    image = np.arange(16, dtype=np.float32).reshape(4, 4, 1)
    got = np.asarray(glimpse(jnp.asarray(image), jnp.zeros(2), 2, 3))[..., 0]
    np.testing.assert_array_equal(got[0], [[5, 6], [9, 10]])
    np.testing.assert_array_equal(got[1], [[2.5, 4.5], [10.5, 12.5]])
    corners = [[0 + 1 + 4 + 5, 2 + 3 + 6 + 7], [8 + 9 + 12 + 13, 10 + 11 + 14 + 15]]
    np.testing.assert_array_equal(got[2], np.array(corners) / 16)


def test_glimpse_jits_and_vmaps_over_a_batch():
    images = np.stack([IMAGE, 2 * IMAGE, IMAGE[::-1]])
    locs = np.array([[0.1, -0.2], [-1.0, 1.0], [0.5, 0.5]], np.float32)
    batched = jax.jit(jax.vmap(lambda x, loc: glimpse(x, loc, 2, 3)))(images, locs)
    for b in range(3):
        np.testing.assert_allclose(batched[b], numpy_glimpse(images[b], locs[b], 2, 3), rtol=1e-6)
