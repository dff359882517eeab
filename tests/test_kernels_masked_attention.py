"""Parity tests of masked attention (forward and gradients): every backend against the reference.

The Triton kernels run in the CPU interpreter (``TRITON_INTERPRET=1`` from conftest) with 16-wide
blocks, so L = 13 and L = 37 cover partial and multiple query/key blocks; CUDA runs when available.
"""
from __future__ import annotations

import pytest
import torch
from helpers import assert_allclose_verbose, assert_compiles_for_gpu

from aemg import backends, ops
from aemg.errors import DataError

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
BACKENDS = backends.available("masked_attention")
DTYPES = [torch.float32, torch.float16, torch.bfloat16]
TOL = {torch.float32: (1e-5, 1e-5), torch.float16: (2e-3, 2e-3), torch.bfloat16: (2e-2, 2e-2)}


def prefix_mask(lengths: list[int], length: int) -> torch.Tensor:
    return torch.arange(length)[None, :] < torch.tensor(lengths)[:, None]


def make_qkv(shape, dtype, device, seed=0, layout="bhld"):
    """q, k, v leaf tensors of ``shape`` (B, H, L, Dh); ``layout="blhd"`` gives the transposed views a
    model produces from (B, L, H*Dh) projections."""
    g = torch.Generator().manual_seed(seed)
    b, h, length, dh = shape
    out = []
    for _ in range(3):
        if layout == "blhd":
            t = torch.randn(b, length, h, dh, generator=g).to(dtype).to(device).transpose(1, 2)
        else:
            t = torch.randn(b, h, length, dh, generator=g).to(dtype).to(device)
        out.append(t.requires_grad_())
    return out


def check_against_reference(q, k, v, mask, backend):
    """Forward and gradients of ``backend`` match the reference (autograd through the fp32 spec)."""
    rtol, atol = TOL[q.dtype]
    g = torch.Generator().manual_seed(7)
    grad_out = torch.randn(q.shape, generator=g).to(q.dtype).to(q.device)
    out = ops.masked_attention(q, k, v, mask, backend=backend)
    grads = torch.autograd.grad(out, (q, k, v), grad_out)
    ref = ops.masked_attention_reference(q, k, v, mask)
    ref_grads = torch.autograd.grad(ref, (q, k, v), grad_out)
    assert out.dtype == q.dtype and out.shape == q.shape
    assert_allclose_verbose(out, ref, rtol=rtol, atol=atol, what=f"{backend} output")
    for name, got, want in zip("qkv", grads, ref_grads):
        assert torch.isfinite(got).all(), f"{backend} d{name} not finite"
        assert_allclose_verbose(got, want, rtol=rtol, atol=atol * 4, what=f"{backend} d{name}")
    return out, grads


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("backend", BACKENDS)
def test_prefix_masks_match_reference(backend, dtype, device):
    """Right padding with one full, one short and one empty sentence; padded rows and their
    gradients are exactly zero."""
    q, k, v = make_qkv((3, 2, 13, 16), dtype, device)
    mask = prefix_mask([13, 5, 0], 13).to(device)
    out, grads = check_against_reference(q, k, v, mask, backend)
    pad = ~mask
    assert (out.permute(0, 2, 1, 3)[pad] == 0).all(), "padded query rows are not zero"
    for name, grad in zip("qkv", grads):
        assert (grad.permute(0, 2, 1, 3)[pad] == 0).all(), f"d{name} nonzero at padded positions"


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_general_masks_and_multiple_blocks(backend, device):
    """Left padding, holes and a single real token, L = 37 (three 16-blocks), Dh = 24 (padded to 32),
    non-contiguous (B, L, H, Dh) -> (B, H, L, Dh) views."""
    length = 37
    q, k, v = make_qkv((4, 3, length, 24), torch.float32, device, seed=1, layout="blhd")
    assert not q.is_contiguous()
    mask = torch.zeros(4, length, dtype=torch.bool)
    mask[0, 20:] = True  # left padding: first key block entirely padded
    mask[1] = torch.rand(length, generator=torch.Generator().manual_seed(3)) < 0.5
    mask[2, 17] = True  # one real token in the middle block
    mask[3, :33] = True
    check_against_reference(q, k, v, mask.to(device), backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_single_token_and_empty_batch(backend):
    q, k, v = make_qkv((2, 1, 1, 16), torch.float32, "cpu", seed=2)
    out, _ = check_against_reference(q, k, v, torch.tensor([[True], [False]]), backend)
    assert torch.allclose(out[0], v[0]) and (out[1] == 0).all()  # one key: attention copies v
    q, k, v = make_qkv((0, 2, 5, 16), torch.float32, "cpu")
    out = ops.masked_attention(q, k, v, torch.zeros(0, 5, dtype=torch.bool), backend=backend)
    assert out.shape == (0, 2, 5, 16)
    out.sum().backward()
    assert q.grad.shape == q.shape


@pytest.mark.parametrize("backend", BACKENDS)
def test_padding_does_not_change_real_outputs(backend):
    """The same sentences padded to different lengths give the same outputs on the real tokens."""
    q, k, v = (t.detach() for t in make_qkv((2, 2, 9, 16), torch.float32, "cpu", seed=4))
    mask = prefix_mask([9, 6], 9)
    short = ops.masked_attention(q, k, v, mask, backend=backend)
    pad = torch.randn(2, 2, 12, 16)
    long = ops.masked_attention(*(torch.cat([t, pad], dim=2) for t in (q, k, v)),
                                torch.cat([mask, torch.zeros(2, 12, dtype=torch.bool)], dim=1),
                                backend=backend)
    assert_allclose_verbose(long[:, :, :9], short, rtol=1e-6, atol=1e-6, what="real tokens")


class _TinyAttentionModel(torch.nn.Module):
    """One pre-norm self-attention block + mean pool over real tokens + linear head."""

    def __init__(self, dim: int = 32, heads: int = 2, backend: str = "torch"):
        super().__init__()
        self.heads, self.backend = heads, backend
        self.norm = torch.nn.LayerNorm(dim)
        self.qkv = torch.nn.Linear(dim, 3 * dim)
        self.proj = torch.nn.Linear(dim, dim)
        self.head = torch.nn.Linear(dim, 1)

    def forward(self, x, mask):
        b, length, dim = x.shape
        q, k, v = self.qkv(self.norm(x)).view(b, length, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        att = ops.masked_attention(q, k, v, mask, backend=self.backend)
        x = x + self.proj(att.transpose(1, 2).reshape(b, length, dim))
        pooled = (x * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1)
        return self.head(pooled)[:, 0]


def _train(backend: str, steps: int = 4) -> list[float]:
    torch.manual_seed(0)
    model = _TinyAttentionModel(backend=backend)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    g = torch.Generator().manual_seed(5)
    x = torch.randn(3, 11, 32, generator=g)
    y = torch.randn(3, generator=g)
    mask = prefix_mask([11, 7, 2], 11)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x, mask), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def test_training_is_identical_across_backends():
    ref = _train("torch")
    assert ref[-1] < ref[0], f"tiny model does not learn: {ref}"
    for backend in BACKENDS:
        if backend != "torch":
            assert_allclose_verbose(torch.tensor(_train(backend)), torch.tensor(ref), rtol=1e-4, atol=1e-5,
                                    what=f"{backend} losses")


@pytest.mark.parametrize("args,where", [
    (((2, 1, 4, 8), (2, 1, 4, 8), (2, 1, 5, 8), (2, 4)), "k, v"),
    (((2, 1, 4, 8), (2, 1, 4, 8), (2, 1, 4, 8), (2, 5)), "key_padding_mask"),
    (((2, 4, 8), (2, 4, 8), (2, 4, 8), (2, 4)), "q"),
])
def test_bad_shapes_raise_data_error(args, where):
    *qkv, mshape = args
    tensors = [torch.randn(s) for s in qkv]
    with pytest.raises(DataError, match=f"masked_attention: {where}"):
        ops.masked_attention(*tensors, torch.ones(mshape, dtype=torch.bool))


def test_non_bool_mask_and_int_inputs_raise():
    q = torch.randn(1, 1, 3, 8)
    with pytest.raises(DataError, match="key_padding_mask"):
        ops.masked_attention(q, q, q, torch.ones(1, 3))
    qi = torch.zeros(1, 1, 3, 8, dtype=torch.int16)
    with pytest.raises(DataError, match="masked_attention: q"):
        ops.masked_attention(qi, qi, qi, torch.ones(1, 3, dtype=torch.bool))


def test_dispatch_on_cpu_prefers_a_torch_backend():
    assert ops.choose("masked_attention", torch.device("cpu")) == "sdpa"
    assert backends.reference("masked_attention") == "torch"
    if torch.cuda.is_available():
        assert ops.choose("masked_attention", torch.device("cuda")) == "triton"


def test_kernels_compile_for_gpu():
    """The interpreter cannot see GPU-only compile errors: compile for sm_90 with Triton's ptxas."""
    assert_compiles_for_gpu("import torch; from aemg.kernels import masked_attention; print([n for n, _ in "
                            "masked_attention.aot_compile(90, dtypes=(torch.bfloat16,))])")
