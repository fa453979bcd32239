"""Streamed weight loading: *.safetensors tensors read by blocks straight into their target
dtype and device (used by :func:`sentscale.models.load_causal_lm`).

Where an embed job's peak memory came from (benchmarks/memory_benchmark.py, transformers 5.24):
``from_pretrained`` memory-maps each *.safetensors file and keeps the mapping open until every
tensor is loaded. Every page it reads stays mapped and counts in the process's RSS: a
provisioned copy is float32 (the GGUF is dequantised), so qwen2.5-coder-0.5b's 2.52 GB file
was resident in full beside the 1.26 GB of bfloat16 weights built from it (peak 4.0 GB), and
each tensor was cast whole, a float32 copy of it next to its bfloat16 result, on up to 4
loader threads at once (0.54 GB each for qwen's embedding and LM head).

Streamed loading keeps transformers' own loading (model class on the meta device, key
renamings, dtype plan, tied weights, device_map, quantizers, its errors) and changes only how
a tensor's bytes reach memory: each tensor is allocated once, in its target dtype on its target
device, and filled from the file by blocks of ``STREAM_CHUNK_BYTES`` read with ``os.preadv``
into a reused buffer: nothing is mapped (the kernel's page cache is not this process's RSS)
and no full-size source copy exists. safetensors' own pread backend cannot do this: its
slices read the whole tensor for any row range. Peak: the weights in the target dtype + one
block per loader thread.
"""

from __future__ import annotations

import contextlib
import json
import logging
import mmap
import os
import struct
import threading
from collections.abc import Iterator
from typing import Any

log = logging.getLogger(__name__)

#: Bytes read and cast at a time, per loader thread.
STREAM_CHUNK_BYTES = 16 * 2**20
#: safetensors dtype -> torch dtype name, for the dtypes read by blocks (others: safetensors)
_ST_DTYPES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16",
              "I64": "int64", "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8",
              "BOOL": "bool"}  # fmt: skip
_STREAM_LOCK = threading.Lock()  # the hooks below are process-wide: one streamed load at a time


def _pread_into(fd: int, view: memoryview, offset: int, path: str) -> None:
    """Fill ``view`` from ``fd`` at ``offset`` (preadv may return less than asked)."""
    done = 0
    while done < len(view):
        got = os.preadv(fd, [view[done:]], offset + done)
        if got == 0:
            raise OSError(f"{path}: file ends at byte {offset + done}, inside a tensor")
        done += got


class _TensorBlocks:
    """One tensor of a *.safetensors file, read by blocks (:meth:`read`); for anything else
    (``[...]``, slices for tensor parallelism) it is safetensors' own slice."""

    def __init__(self, file: _StreamedFile, name: str, entry: dict[str, Any]):
        self.file, self.name = file, name
        self.shape = [int(n) for n in entry["shape"]]
        self.st_dtype = entry["dtype"]
        begin, end = entry["data_offsets"]
        self.offset, self.nbytes = file.data_start + int(begin), int(end) - int(begin)

    def get_shape(self) -> list[int]:
        return list(self.shape)

    def get_dtype(self) -> str:
        return self.st_dtype

    def __getitem__(self, index):
        return self.file.handle.get_slice(self.name)[index]

    def read(self, device=None, dtype=None, chunk_bytes: int = STREAM_CHUNK_BYTES):
        """``self[...].to(device, dtype)`` without the full-size source copy: ``empty`` then
        ``copy_`` block by block is what ``Tensor.to`` does in one go (bit-identical values)."""
        import torch

        source = getattr(torch, _ST_DTYPES[self.st_dtype])
        out = torch.empty(
            self.shape,
            dtype=source if dtype is None else dtype,
            device="cpu" if device is None else device,  # a device_map may give cuda index 0
        )
        flat, itemsize = out.view(-1), torch.empty((), dtype=source).element_size()
        if flat.numel() * itemsize != self.nbytes:
            raise OSError(f"{self.file.path}: tensor {self.name!r} has the wrong byte count")
        if out.dtype == source and out.device.type == "cpu":  # no cast: read straight into it
            _pread_into(self.file.fd, memoryview(flat.view(torch.uint8).numpy()), self.offset,
                        self.file.path)  # fmt: skip
            return out
        step = max(1, chunk_bytes // itemsize)
        # The block buffer is an anonymous mapping, unmapped on exit: a malloc'ed one of this
        # size can stay in the loader thread's arena after it is freed (part of the peak).
        with mmap.mmap(-1, min(step, flat.numel()) * itemsize) as block:
            view, buffer = memoryview(block), torch.frombuffer(block, dtype=torch.uint8)
            try:
                for start in range(0, flat.numel(), step):
                    count = min(step, flat.numel() - start)
                    _pread_into(self.file.fd, view[: count * itemsize],
                                self.offset + start * itemsize, self.file.path)  # fmt: skip
                    flat[start : start + count].copy_(buffer[: count * itemsize].view(source))
            finally:
                del buffer
                view.release()
        return out


class _StreamedFile:
    """What ``safe_open`` returns inside :func:`streamed_weights`: safetensors' own handle
    (pread backend: it checks the header and serves keys, metadata, other reads) whose
    ``get_slice`` gives :class:`_TensorBlocks` for the dtypes they read."""

    def __init__(self, path: str, handle: Any):
        self.path, self.handle = path, handle  # opened first: a damaged header fails there
        with open(path, "rb") as fh:
            size = struct.unpack("<Q", fh.read(8))[0]
            self.entries = json.loads(fh.read(size))
        self.data_start = 8 + size
        self.fd = os.open(path, os.O_RDONLY)

    def get_slice(self, name: str):
        entry = self.entries.get(name)
        if entry is None or entry.get("dtype") not in _ST_DTYPES:
            return self.handle.get_slice(name)
        return _TensorBlocks(self, name, entry)

    def __getattr__(self, name: str):
        return getattr(self.handle, name)

    def __enter__(self) -> _StreamedFile:
        return self

    def __exit__(self, *exc: Any) -> Any:
        os.close(self.fd)
        return self.handle.__exit__(*exc)


def release_freed_memory() -> None:
    """Hand memory freed so far back to the OS (glibc's ``malloc_trim``; elsewhere a no-op):
    the tokenizer's parse leaves ~60 MB freed but held in the heap, under the weights."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


@contextlib.contextmanager
def streamed_weights(chunk_bytes: int = STREAM_CHUNK_BYTES) -> Iterator[None]:
    """Within this block, ``from_pretrained`` reads *.safetensors tensors by blocks straight
    into their target dtype and device (see above).

    Two module globals of transformers are swapped and restored (``modeling_utils.safe_open``,
    ``core_model_loading._materialize_copy``); a transformers without them loads as it does
    by itself, with a warning."""
    import transformers.core_model_loading as loading
    import transformers.modeling_utils as modeling

    opener = getattr(modeling, "safe_open", None)
    materialize = getattr(loading, "_materialize_copy", None)
    if opener is None or materialize is None:
        # another transformers than the pinned one: load as it does by itself (correct, only
        # heavier); tests/test_memory.py bounds the peak on the pinned version
        import transformers

        log.warning(
            "transformers %s has no modeling_utils.safe_open or "
            "core_model_loading._materialize_copy: weights load without streaming",
            transformers.__version__,
        )
        yield
        return

    def open_streamed(filename, framework, device="cpu", **_backend):
        handle = opener(filename, framework=framework, device=device, backend="pread")
        return _StreamedFile(str(filename), handle) if framework == "pt" else handle

    def materialize_streamed(tensor, device=None, dtype=None):
        if isinstance(tensor, _TensorBlocks):
            return tensor.read(device, dtype, chunk_bytes)
        return materialize(tensor, device, dtype)

    with _STREAM_LOCK:
        modeling.safe_open, loading._materialize_copy = open_streamed, materialize_streamed
        try:
            yield
        finally:
            modeling.safe_open, loading._materialize_copy = opener, materialize
