"""The glimpse sensor of the recurrent attention model (Mnih et al. 2014, §3, "Sensor").

`glimpse(image, loc, patch, scales)` extracts `scales` square patches centred on one location,
patch `i` being `patch * 2**i` pixels wide, and reduces each to `patch x patch` by averaging
`2**i x 2**i` blocks: a high-resolution focus with low-resolution surroundings ("each twice as
wide as the last and resized to the smallest"). Block averaging is the exact area resize by a
power of two, so no interpolation choice enters the result.

Coordinates: `loc = (row, col)` in `[-1, 1]`, where -1 and 1 are the image edges and `(0, 0)` is
its centre, as in the paper. Pixel `i` covers the interval `[i, i + 1)`, so the centre in pixels
is `(loc + 1) / 2 * size`, and a patch of width `w` starts at `floor(centre - w / 2 + 0.5)` (the
nearest integer). Locations outside `[-1, 1]` (a Gaussian policy can sample them) are clipped
to the edge. Pixels outside the image read as zero.

Everything is written per example with static sizes (one padding, then `lax.dynamic_slice`), so
the function is `jax.jit`- and `jax.vmap`-friendly. The patch contents are piecewise constant in
`loc`: the sensor passes no gradient to the location (the policy is trained by REINFORCE).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def patch_widths(patch: int, scales: int) -> tuple[int, ...]:
    """Widths in pixels of the `scales` patches: `patch, 2 patch, 4 patch, ...`."""
    return tuple(patch * 2**i for i in range(scales))


def patch_starts(loc: jnp.ndarray, size: tuple[int, int], width: int) -> jnp.ndarray:
    """Top-left pixel `[2]` int32 of a `width`-pixel patch centred on `loc [2]` (clipped to
    `[-1, 1]`) in an image of `size = (H, W)`; may be negative or past the edge."""
    centre = (jnp.clip(loc, -1.0, 1.0) + 1.0) / 2.0 * jnp.asarray(size, jnp.float32)
    return jnp.floor(centre - width / 2.0 + 0.5).astype(jnp.int32)


def glimpse(image: jnp.ndarray, loc: jnp.ndarray, patch: int, scales: int) -> jnp.ndarray:
    """The retina-like representation `rho(x, l)` of one image at one location.

    Args:
      image: `[H, W, C]`.
      loc: `[2]` (row, col) in `[-1, 1]`.
      patch: side of the smallest patch and of every output patch, in pixels.
      scales: number of patches `k`.

    Returns:
      `[scales, patch, patch, C]`: patch `i` covers `patch * 2**i` pixels around `loc`, averaged
      down to `patch x patch`; zero where it leaves the image.
    """
    height, width, channels = image.shape
    widths = patch_widths(patch, scales)
    # Enough zeros on every side that the widest patch never leaves the padded image.
    pad = widths[-1] // 2 + 1
    padded = jnp.pad(image, ((pad, pad), (pad, pad), (0, 0)))
    out = []
    for i, w in enumerate(widths):  # static: `scales` is a Python int
        start = patch_starts(loc, (height, width), w) + pad
        crop = jax.lax.dynamic_slice(padded, (start[0], start[1], 0), (w, w, channels))
        block = 2**i
        out.append(crop.reshape(patch, block, patch, block, channels).mean(axis=(1, 3)))
    return jnp.stack(out)
