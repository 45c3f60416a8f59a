"""Training state as a safetensors file plus a JSON file: no pickle, so loading a checkpoint can
never run code.

A state is a tree of dicts, lists and tuples over tensors, numpy arrays and plain scalars (an
optimizer's, an lr schedule's or an EMA's `state_dict()`, the RNG states). `save_tree` writes
its tensors to `<name>.safetensors` and the rest to `<name>.json`, where each tensor stands as
{"__tensor__": key}; tuples, numpy arrays and dicts with non-string keys are tagged the same way
so `load_tree` rebuilds the tree exactly. Anything else raises ValueError instead of being
pickled.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

TENSOR, ARRAY, TUPLE, ITEMS = "__tensor__", "__ndarray__", "__tuple__", "__items__"
_TAGS = (TENSOR, ARRAY, TUPLE, ITEMS)


def split_tree(tree: Any) -> tuple[Any, dict[str, Any]]:
    """(JSON-ready tree, {key: tensor}) of `tree`."""
    import numpy as np
    import torch

    tensors: dict[str, Any] = {}

    def enc(x: Any) -> Any:
        if isinstance(x, torch.Tensor):
            key = str(len(tensors))
            tensors[key] = x.detach().cpu().contiguous()
            return {TENSOR: key}
        if isinstance(x, np.ndarray):
            kind = "int64" if x.dtype.kind in "iu" else "bool" if x.dtype.kind == "b" else "float64"
            if x.dtype.kind not in "iubf":
                raise ValueError(f"cannot store a numpy array of {x.dtype} without pickle")
            key = str(len(tensors))
            tensors[key] = torch.from_numpy(np.ascontiguousarray(x.astype(kind)))
            return {ARRAY: key, "dtype": str(x.dtype)}
        if isinstance(x, np.generic):
            return x.item()
        if x is None or isinstance(x, (bool, int, float, str)):
            return x
        if isinstance(x, tuple):
            return {TUPLE: [enc(v) for v in x]}
        if isinstance(x, list):
            return [enc(v) for v in x]
        if isinstance(x, dict):
            if all(isinstance(k, str) and k not in _TAGS for k in x):
                return {k: enc(v) for k, v in x.items()}
            return {ITEMS: [[enc(k), enc(v)] for k, v in x.items()]}
        raise ValueError(f"cannot store a {type(x).__name__} in a checkpoint without pickle")

    return enc(tree), tensors


def join_tree(data: Any, tensors: dict[str, Any]) -> Any:
    """The inverse of split_tree."""
    import numpy as np

    def dec(x: Any) -> Any:
        if isinstance(x, list):
            return [dec(v) for v in x]
        if not isinstance(x, dict):
            return x
        if TENSOR in x:
            return tensors[x[TENSOR]]
        if ARRAY in x:
            return tensors[x[ARRAY]].numpy().astype(np.dtype(x["dtype"]))
        if TUPLE in x:
            return tuple(dec(v) for v in x[TUPLE])
        if ITEMS in x:
            return {_hashable(dec(k)): dec(v) for k, v in x[ITEMS]}
        return {k: dec(v) for k, v in x.items()}

    return dec(data)


def _hashable(key: Any) -> Any:
    return tuple(key) if isinstance(key, list) else key


def save_tree(tree: Any, folder: str | Path, name: str) -> list[Path]:
    """Write `<folder>/<name>.safetensors` and `<name>.json`; return both paths."""
    from safetensors.torch import save_file

    folder = Path(folder)
    data, tensors = split_tree(tree)
    weights, meta = folder / f"{name}.safetensors", folder / f"{name}.json"
    save_file(tensors, str(weights))
    meta.write_text(json.dumps(data) + "\n")
    return [weights, meta]


def load_tree(folder: str | Path, name: str) -> Any:
    """The tree `save_tree` wrote as `name` in `folder`."""
    from safetensors.torch import load_file

    folder = Path(folder)
    data = json.loads((folder / f"{name}.json").read_text())
    return join_tree(data, load_file(str(folder / f"{name}.safetensors")))


# --- random number generators --------------------------------------------------------------------
def rng_state() -> dict[str, Any]:
    """Python's, numpy's, torch's and (when present) every CUDA device's generator state."""
    import random

    import numpy as np
    import torch

    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def set_rng_state(state: dict[str, Any]) -> None:
    import random

    import numpy as np
    import torch

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
