"""Gradient of fused scaled dot-product attention (clownpiece/ops/attention.py, kernels in
cl_kernels/attention.cl). The forward keeps q, k, v, the masks, the output and each row's log-sum-exp (not
the probabilities); the backward recomputes the probabilities in its kernels. Gradients that the batch
broadcast spread out (a key shared by several heads, a mask shared by the batch) are summed back to the
inputs' shapes."""
from ...ops import attention as _attn
from ..formula import Op, _reduce_to
from ..methods import differentiable


@differentiable()
class ScaledDotProductAttention(Op):
    """Inputs q, k, v, mask_a, mask_b (positional: one gradient edge each; only an additive mask gets one)."""
    half_in_float32 = "same"

    @staticmethod
    def forward(ctx, q, k, v, mask_a=None, mask_b=None, kinds=(0, 0), scale=None, is_causal=False, dropout_p=0.0,
                op="scaled_dot_product_attention"):
        masks = [(m, kind) for m, kind in zip((mask_a, mask_b), kinds) if m is not None]
        out, state = _attn.forward(q, k, v, masks, scale, is_causal, dropout_p, op)
        ctx.save_for_backward(q, k, v, out)
        ctx.state = state  # the problem (with the masks), the log-sum-exps, the dropout counters
        ctx.shapes = [t._shape for t in (q, k, v)] + [None if m is None else m._shape for m in (mask_a, mask_b)]
        ctx.kinds = kinds
        return out

    @staticmethod
    def backward(ctx, grad):
        q, k, v, out = ctx.get_saved_tensors()
        need = ctx.needs_input_grad
        need_mask = [bool(len(need) > 3 + i and need[3 + i]) for i in range(2)]
        for i, kind in enumerate(ctx.kinds):
            if need_mask[i] and kind != _attn.ADD:
                raise RuntimeError("scaled_dot_product_attention: a boolean mask has no gradient; only a float "
                                   "(additive) attn_mask can require grad")
        dq, dk, dv, dscores = _attn.backward(grad, q, k, v, out, ctx.state, any(need_mask))
        grads = [_reduce_to(g, s) for g, s in zip((dq, dk, dv), ctx.shapes[:3])]
        for i in range(2):
            shape = ctx.shapes[3 + i]
            grads.append(_reduce_to(dscores, shape) if need_mask[i] and shape is not None else None)
        return tuple(grads)


def scaled_dot_product_attention(q, k, v, mask_a=None, mask_b=None, kinds=(0, 0), scale=None, is_causal=False,
                                 dropout_p=0.0, op="scaled_dot_product_attention"):
    return ScaledDotProductAttention.record(q, k, v, mask_a, mask_b, kinds=tuple(kinds), scale=scale,
                                            is_causal=is_causal, dropout_p=dropout_p, op=op)
