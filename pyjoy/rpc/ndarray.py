"""N-d arrays where numpy is not importable: the bytes, the shape and the dtype, nothing more.

A received `ndarray` (or `typedarray`) decodes to `NDArray` when numpy is missing, and an
`NDArray` encodes like a numpy array, so a plugin without numpy can still pass arrays on:

    a = NDArray(memoryview(b"\\0\\0\\x80?"), (1,), "float32")
    a.tolist()          # [1.0]
    numpy.asarray(a)    # once numpy is there: a view of the same bytes

The data are C order, little-endian (as on the wire); `DTYPES` lists the dtypes the wire knows.
"""

from __future__ import annotations

import math
from typing import Any

# Wire dtype -> struct format of one element (native order: WASM and x86/ARM hosts are little-endian).
DTYPES: dict[str, str] = {
    "int8": "b", "uint8": "B", "int16": "h", "uint16": "H", "int32": "i", "uint32": "I",
    "int64": "q", "uint64": "Q", "float32": "f", "float64": "d", "bool": "?",
}
ITEMSIZE: dict[str, int] = {
    "int8": 1, "uint8": 1, "int16": 2, "uint16": 2, "int32": 4, "uint32": 4,
    "int64": 8, "uint64": 8, "float32": 4, "float64": 8, "bool": 1,
}


class NDArray:
    """`data` (a byte memoryview), `shape` (tuple of ints) and `dtype` (a name in `DTYPES`)."""

    def __init__(self, data: bytes | bytearray | memoryview, shape: tuple[int, ...] | list[int], dtype: str) -> None:
        if dtype not in DTYPES:
            raise ValueError(f"NDArray: dtype {dtype!r} is not one of {', '.join(DTYPES)}")
        self.data = memoryview(data).cast("B")
        self.shape = tuple(int(n) for n in shape)
        self.dtype = dtype
        expected = math.prod(self.shape) * ITEMSIZE[dtype]
        if self.data.nbytes != expected:
            raise ValueError(
                f"NDArray: shape {self.shape} of {dtype} needs {expected} bytes, the data has {self.data.nbytes}"
            )

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def tolist(self) -> Any:
        """Nested lists of Python numbers (a number for a 0-d array), like numpy's `tolist`."""
        # memoryview cannot cast an empty view, hence the special case.
        flat = self.data.cast(DTYPES[self.dtype]).tolist() if self.data.nbytes else []
        return _nest(flat, self.shape)

    def __array__(self, dtype: Any = None, copy: Any = None) -> Any:
        import numpy

        array = numpy.frombuffer(self.data, dtype=numpy.dtype(self.dtype).newbyteorder("<")).reshape(self.shape)
        return array if dtype is None else array.astype(dtype)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, NDArray):
            return NotImplemented
        return (self.shape, self.dtype) == (other.shape, other.dtype) and self.data == other.data

    __hash__ = None  # type: ignore[assignment]  # mutable, like numpy arrays

    def __repr__(self) -> str:
        return f"NDArray(shape={self.shape}, dtype={self.dtype!r})"


def _nest(flat: list[Any], shape: tuple[int, ...]) -> Any:
    if not shape:
        return flat[0]
    if len(shape) == 1:
        return flat
    step = math.prod(shape[1:])
    return [_nest(flat[i * step:(i + 1) * step], shape[1:]) for i in range(shape[0])]
