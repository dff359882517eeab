"""Ahead-of-time compilation of the Triton kernels for a CUDA target, without a GPU.

The CPU interpreter (``TRITON_INTERPRET=1``) executes kernels with NumPy, so it cannot see errors
that only the GPU compiler raises (a non-constexpr global, a ``tl.dot`` below 16x16x16, a type the
NVIDIA backend rejects) nor register spills. ``python -m aemg.kernels._aot [ARCH]`` compiles every
kernel at the launch configurations the dispatch uses, with Triton's bundled ``ptxas``, and prints
registers and spills per kernel. Run it with ``TRITON_INTERPRET`` unset.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile

_TRITON_TYPES = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}


def compile_kernel(kernel, arg_types: dict[str, str], meta: dict, *, arch: int = 90):
    """Compile ``kernel`` (a ``triton.jit`` function) for ``sm_<arch>``.

    Parameters
    ----------
    kernel : triton JITFunction
    arg_types : dict
        Triton type string of every non-constexpr argument, e.g. ``{"z_ptr": "*fp16", "N": "i32"}``.
    meta : dict
        Constexpr values plus ``num_warps`` and ``num_stages``.
    """
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    if not hasattr(kernel, "arg_names"):
        raise RuntimeError("kernels were decorated by the interpreter; unset TRITON_INTERPRET")
    options = {k: meta[k] for k in ("num_warps", "num_stages") if k in meta}
    constexprs = {k: v for k, v in meta.items() if k not in options}
    signature = {name: ("constexpr" if name in constexprs else arg_types[name]) for name in kernel.arg_names}
    src = ASTSource(kernel, signature, constexprs=constexprs)
    return triton.compile(src, target=GPUTarget("cuda", arch, 32), options=options)


def ptxas_usage(compiled, *, arch: int = 90) -> str:
    """``ptxas -v`` summary (registers, spills) of a compiled kernel, or '' when ptxas is missing."""
    import triton

    ptxas = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "ptxas")
    if not os.path.exists(ptxas):
        return ""
    suffix = "a" if arch == 90 else ""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "kernel.ptx")
        with open(path, "w") as f:
            f.write(compiled.asm["ptx"])
        run = subprocess.run([ptxas, "-v", "--gpu-name", f"sm_{arch}{suffix}", path, "-o", os.devnull],
                             capture_output=True, text=True)
    lines = [ln.split("info    : ")[-1].strip() for ln in run.stderr.splitlines()
             if "registers" in ln or "spill stores" in ln]
    return "; ".join(lines)


def triton_type(dtype) -> str:
    """Triton type string of a torch floating dtype (``torch.bfloat16`` -> ``"bf16"``)."""
    return _TRITON_TYPES[str(dtype).removeprefix("torch.")]


def main(argv: list[str]) -> int:
    arch = int(argv[0]) if argv else 90
    if os.environ.get("TRITON_INTERPRET", "0") == "1":
        print("unset TRITON_INTERPRET to compile for a GPU", file=sys.stderr)
        return 2
    from aemg.kernels import masked_attention, vq_lookup

    for name, compiled in vq_lookup.aot_compile(arch) + masked_attention.aot_compile(arch):
        print(f"{name}: shared {compiled.metadata.shared} B; {ptxas_usage(compiled, arch=arch)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
