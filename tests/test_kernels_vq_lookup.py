"""Parity tests of the nearest-codeword lookup: every available backend against the reference.

Runs the Triton kernel in the CPU interpreter (``TRITON_INTERPRET=1`` from conftest) on tiny odd
shapes chosen so every loop of the kernel crosses a block boundary, and on CUDA when available.
"""
from __future__ import annotations

import pytest
import torch
from helpers import assert_allclose_verbose, assert_compiles_for_gpu

from aemg import backends, ops
from aemg.errors import DataError

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
BACKENDS = backends.available("vq_lookup")
DTYPES = [torch.float32, torch.float16, torch.bfloat16]
# Rounding of the fp32 distances (accumulation order differs between kernels), per input dtype.
DIST_ATOL = {torch.float32: 1e-5, torch.float16: 1e-4, torch.bfloat16: 1e-4}


def _exact_distances(z: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """(N, K) float64 squared distances of the (rounded) inputs: the oracle for near ties."""
    return torch.cdist(z.double().cpu(), codebook.double().cpu()).pow(2)


def check_lookup(z, codebook, indices, distances, dtype) -> None:
    """Chosen codewords are nearest up to rounding; reported distances match the chosen ones; indices
    equal the reference wherever the reference's winner is not within rounding of another codeword."""
    assert indices.dtype == torch.int64 and distances.dtype == torch.float32
    assert indices.shape == distances.shape == (z.shape[0],)
    exact = _exact_distances(z, codebook)
    idx, dist = indices.cpu(), distances.cpu()
    chosen = exact.gather(1, idx[:, None])[:, 0]
    tol = DIST_ATOL[dtype] * (1 + exact.min(1).values)
    assert (chosen <= exact.min(1).values + tol).all(), "a chosen codeword is not the nearest"
    assert_allclose_verbose(dist, chosen, rtol=1e-5, atol=DIST_ATOL[dtype], what="distances")
    ref_idx, _ = ops.vq_lookup_reference(z, codebook)
    gap = exact.sort(1).values
    clear = (gap[:, 1] - gap[:, 0]) > 2 * tol if exact.shape[1] > 1 else torch.ones_like(tol, dtype=bool)
    mismatch = (idx != ref_idx.cpu()) & clear
    assert not mismatch.any(), f"index differs from reference at rows {mismatch.nonzero()[:, 0].tolist()}"


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("n,k,d", [(37, 19, 24), (70, 45, 40), (1, 3, 16)])
def test_matches_reference(backend, dtype, device, n, k, d):
    g = torch.Generator().manual_seed(n * 1000 + k)
    z = torch.nn.functional.normalize(torch.randn(n, d, generator=g), dim=1).to(dtype).to(device)
    codebook = torch.nn.functional.normalize(torch.randn(k, d, generator=g), dim=1).to(dtype).to(device)
    indices, distances = ops.vq_lookup(z, codebook, backend=backend)
    check_lookup(z, codebook, indices, distances, dtype)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_ties_go_to_lowest_index(backend, device):
    """Duplicate codewords (also across codebook blocks) and rows equal to a codeword: exact ties."""
    g = torch.Generator().manual_seed(1)
    base = torch.randn(23, 20, generator=g)
    codebook = torch.cat([base, base, base[:5]]).to(device)  # K = 51: copies 23 and 46 apart
    z = torch.cat([base[[3, 0, 22, 4]], torch.randn(9, 20, generator=g)]).to(device)
    indices, distances = ops.vq_lookup(z, codebook, backend=backend)
    ref_idx, _ = ops.vq_lookup_reference(z, codebook)
    assert (indices < 23).all(), f"ties not resolved to the lowest index: {indices.tolist()}"
    assert indices.tolist() == ref_idx.tolist()
    assert indices[:4].tolist() == [3, 0, 22, 4]
    assert_allclose_verbose(distances[:4], torch.zeros(4), rtol=0, atol=1e-4, what="self distance")


@pytest.mark.parametrize("backend", BACKENDS)
def test_empty_and_single_codeword(backend):
    z = torch.empty(0, 8)
    indices, distances = ops.vq_lookup(z, torch.randn(5, 8), backend=backend)
    assert indices.shape == distances.shape == (0,)
    assert indices.dtype == torch.int64 and distances.dtype == torch.float32
    z = torch.randn(6, 8)
    codebook = torch.randn(1, 8)
    indices, distances = ops.vq_lookup(z, codebook, backend=backend)
    assert indices.tolist() == [0] * 6
    assert_allclose_verbose(distances, (z - codebook).pow(2).sum(1), rtol=1e-5, atol=1e-5, what="K=1")


@pytest.mark.parametrize("backend", BACKENDS)
def test_non_contiguous_inputs(backend):
    g = torch.Generator().manual_seed(2)
    zt = torch.randn(24, 37, generator=g)  # z = zt.T: column-major
    wide = torch.randn(19, 48, generator=g)  # codebook = every other column
    z, codebook = zt.T, wide[:, ::2]
    assert not z.is_contiguous() and not codebook.is_contiguous()
    got = ops.vq_lookup(z, codebook, backend=backend)
    want = ops.vq_lookup(z.contiguous(), codebook.contiguous(), backend=backend)
    assert got[0].tolist() == want[0].tolist()
    assert_allclose_verbose(got[1], want[1], rtol=1e-6, atol=1e-6, what="distances")


@pytest.mark.parametrize("backend", BACKENDS)
def test_nan_row_gets_index_zero_and_nan_distance(backend):
    """Documented: a row holding NaN gets index 0 and distance NaN (torch.argmin semantics); other
    rows are unaffected."""
    g = torch.Generator().manual_seed(3)
    z = torch.randn(9, 16, generator=g)
    codebook = torch.randn(7, 16, generator=g)
    clean_idx, clean_dist = ops.vq_lookup(z, codebook, backend=backend)
    z[4, 5] = float("nan")
    indices, distances = ops.vq_lookup(z, codebook, backend=backend)
    assert indices[4].item() == 0 and distances[4].isnan()
    keep = torch.arange(9) != 4
    assert indices[keep].tolist() == clean_idx[keep].tolist()
    assert_allclose_verbose(distances[keep], clean_dist[keep], rtol=0, atol=0, what="clean rows")


def test_mixed_dtypes_are_promoted():
    z = torch.randn(5, 16).half()
    codebook = torch.randn(4, 16)
    indices, _ = ops.vq_lookup(z, codebook, backend="torch")
    assert indices.tolist() == ops.vq_lookup_reference(z.float(), codebook)[0].tolist()


def test_reference_chunks_over_rows(monkeypatch):
    z, codebook = torch.randn(50, 8), torch.randn(13, 8)
    whole = ops.vq_lookup_reference(z, codebook)
    monkeypatch.setattr(ops, "VQ_REFERENCE_CHUNK_BYTES", 4 * 13 * 7)  # 7 rows per chunk
    chunked = ops.vq_lookup_reference(z, codebook)
    assert whole[0].tolist() == chunked[0].tolist()
    # BLAS blocks the products differently per chunk: equal up to rounding
    assert_allclose_verbose(chunked[1], whole[1], rtol=1e-6, atol=1e-6, what="chunked distances")


@pytest.mark.parametrize("z,codebook,where", [
    (torch.randn(4), torch.randn(3, 4), "z"),
    (torch.randn(4, 8), torch.randn(3, 7), "codebook"),
    (torch.randn(4, 8), torch.randn(0, 8), "codebook"),
    (torch.zeros(4, 8, dtype=torch.int16), torch.randn(3, 8), "z"),
    (torch.randn(4, 8), torch.zeros(3, 8, dtype=torch.float64), "codebook"),
])
def test_bad_input_raises_data_error(z, codebook, where):
    with pytest.raises(DataError, match=f"vq_lookup: {where}"):
        ops.vq_lookup(z, codebook)


def test_dispatch_never_picks_triton_for_cpu_tensors():
    assert "triton" in backends.names("vq_lookup")
    assert ops.choose("vq_lookup", torch.device("cpu")) != "triton"
    if torch.cuda.is_available():
        assert ops.choose("vq_lookup", torch.device("cuda")) == "triton"


def test_outputs_carry_no_gradient():
    z = torch.randn(6, 8, requires_grad=True)
    indices, distances = ops.vq_lookup(z, torch.randn(4, 8))
    assert not distances.requires_grad and not indices.requires_grad


def test_kernels_compile_for_gpu():
    """The interpreter cannot see GPU-only compile errors: compile for sm_90 with Triton's ptxas."""
    assert_compiles_for_gpu("import torch; from aemg.kernels import vq_lookup; print([n for n, _ in "
                            "vq_lookup.aot_compile(90, dtypes=(torch.float16, torch.float32))])")
