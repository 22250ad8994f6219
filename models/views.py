"""Weight-sharing views of a network: the same parameters with one submodule swapped.

Why: the cached model is shared by every browser session and thread. Instead of hooks or in-place edits on
that model (which another thread would see), we build a shallow copy of the modules on the path to the
swapped submodule. Parameters and buffers are shared, nothing of the original is touched.
"""

from __future__ import annotations

import copy

from torch import nn


def shallow_module_copy(module: nn.Module) -> nn.Module:
    """A copy of `module` sharing parameters, buffers and children, with its own child table."""
    clone = copy.copy(module)
    clone._modules = type(module._modules)(module._modules)  # own table; children still shared
    return clone


def replace_submodule(root: nn.Module, path: str, new: nn.Module) -> nn.Module:
    """Return a view of `root` in which the submodule at dotted `path` is `new`; `root` itself is unchanged."""
    names = path.split(".")
    view = shallow_module_copy(root)
    parent = view
    for name in names[:-1]:
        child = shallow_module_copy(parent._modules[name])
        parent._modules[name] = child
        parent = child
    if names[-1] not in parent._modules:
        raise KeyError(f"no submodule {path!r}")
    parent._modules[names[-1]] = new
    return view
