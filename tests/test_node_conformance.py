"""Conformance: the ONNX backend node test cases shipped with the onnx package, run through cnnrt.

Selection: every case (`onnx.backend.test.case.node.collect_testcases()`) whose nodes all have op types in
cnnrt.onnx_import.SUPPORTED_OPS and whose first input is float32 (the other inputs are float32, or integer / bool
tensors: shapes, axes, indices, flags). Those are "the float32 cases of the ops cnnrt supports"; each must pass, or be
listed in OUT_OF_SCOPE with the reason.

How a case runs. Node tests feed every node input at run time; cnnrt runs models whose weights and shape arguments
are constants. So each case is first run with its float32 inputs fed at run time and its integer/bool inputs
embedded as initializers (the form exporters write). If cnnrt refuses that at load *only* because an input must be
constant (Conv weights, BatchNormalization statistics, Clip bounds, a Pad value ...: UnsupportedModelError whose
every reason says "must be constant"), the case runs again with every input but the first embedded as an initializer.
A numerical mismatch never falls back.

Tolerance: |got - expected| <= ATOL + RTOL * |expected| with RTOL = 1e-4, ATOL = 1e-5. The expected outputs are
numpy's (mostly float32, some computed in float64) results; cnnrt's kernels reorder sums (GEMM blocking, SIMD lanes)
and use polynomial exp/tanh approximations good to a few float32 ulp, so agreement is to ~1e-6 relative on these small
inputs; 1e-4 leaves a margin of 100x while still catching any wrong index, padding or broadcast (those give O(1)
errors). ATOL covers outputs that are ~0 by cancellation. TOLERANCE lists the cases whose expected data is itself
less precise. Output dtypes and shapes must match exactly.
"""
import collections
import warnings

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

import cnnrt
from cnnrt.onnx_import import SUPPORTED_OPS

RTOL, ATOL = 1e-4, 1e-5
TOLERANCE = {
    # the expected value is written out by hand with 4 significant digits (0.1511 for 0.15105554)
    "test_averagepool_2d_ceil_last_window_starts_on_pad": (1e-3, 1e-7),
}

# ---- out of scope, with the reason (data) ------------------------------------------------------------------------
R_CONST_ONLY = ("op that cnnrt evaluates only on constants / shapes (shape arithmetic), here applied to run-time "
                "data: refused at load")
R_CAST = "Cast of run-time data to a type other than float32 (only float32 tensors flow at run time)"
R_POOL3D = "3-D pooling (cnnrt pools 1-D and 2-D)"
R_INDICES = "MaxPool's Indices output"
R_BN_TRAIN = "BatchNormalization in training mode (batch statistics)"
R_DROPOUT_TRAIN = "Dropout in training mode with a non-zero ratio (random)"
R_EMPTY = "zero-size input tensor (cnnrt refuses empty inputs)"


def _oos(reason, *names):
    return {n: reason for n in names}


OUT_OF_SCOPE = {
    **_oos(R_CAST,
           "test_cast_FLOAT_to_FLOAT16", "test_cast_FLOAT_to_DOUBLE", "test_cast_FLOAT_to_BFLOAT16",
           "test_cast_FLOAT_to_FLOAT8E4M3FN", "test_cast_FLOAT_to_FLOAT8E4M3FNUZ", "test_cast_FLOAT_to_FLOAT8E5M2",
           "test_cast_FLOAT_to_FLOAT8E5M2FNUZ", "test_cast_FLOAT_to_UINT4", "test_cast_FLOAT_to_INT4",
           "test_cast_FLOAT_to_FLOAT4E2M1", "test_cast_FLOAT_to_UINT2", "test_cast_FLOAT_to_INT2",
           "test_cast_no_saturate_FLOAT_to_FLOAT8E4M3FN", "test_cast_no_saturate_FLOAT_to_FLOAT8E4M3FNUZ",
           "test_cast_no_saturate_FLOAT_to_FLOAT8E5M2", "test_cast_no_saturate_FLOAT_to_FLOAT8E5M2FNUZ",
           "test_cast_e8m0_FLOAT_to_FLOAT8E8M0"),
    **_oos(R_POOL3D,
           "test_averagepool_3d_default", "test_averagepool_3d_dilations_small",
           "test_averagepool_3d_dilations_large_count_include_pad_is_0_ceil_mode_is_True",
           "test_averagepool_3d_dilations_large_count_include_pad_is_0_ceil_mode_is_False",
           "test_averagepool_3d_dilations_large_count_include_pad_is_1_ceil_mode_is_True",
           "test_averagepool_3d_dilations_large_count_include_pad_is_1_ceil_mode_is_False",
           "test_maxpool_3d_default", "test_maxpool_3d_dilations", "test_maxpool_3d_dilations_use_ref_impl",
           "test_maxpool_3d_dilations_use_ref_impl_large"),
    **_oos(R_INDICES, "test_maxpool_with_argmax_2d_precomputed_pads",
           "test_maxpool_with_argmax_2d_precomputed_strides"),
    **_oos(R_BN_TRAIN, "test_batchnorm_example_training_mode", "test_batchnorm_epsilon_training_mode"),
    **_oos(R_DROPOUT_TRAIN, "test_training_dropout_default", "test_training_dropout_default_mask",
           "test_training_dropout", "test_training_dropout_mask"),
    **_oos(R_EMPTY, "test_reduce_max_empty_set", "test_reduce_sum_empty_set",
           "test_reduce_sum_empty_set_non_reduced_axis_zero", "test_reduce_sum_square_empty_set_expanded",
           "test_reshape_allowzero_reordered", "test_split_zero_size_splits_opset13",
           "test_split_zero_size_splits_opset18"),
    **_oos(R_CONST_ONLY,
           "test_clip_default_max_expanded", "test_clip_default_min_expanded", "test_clip_example_expanded",
           "test_clip_expanded", "test_clip_inbounds_expanded", "test_clip_min_greater_than_max_expanded",
           "test_clip_outbounds_expanded", "test_clip_splitbounds_expanded", "test_range_float_type_positive_delta",
           "test_abs", "test_ceil", "test_ceil_example", "test_exp", "test_exp_example", "test_expand_dim_changed",
           "test_expand_dim_unchanged", "test_flexattention_diff_head_sizes_expanded_ver26",
           "test_flexattention_expanded_ver26", "test_flexattention_gqa_expanded_ver26",
           "test_flexattention_prob_mod_expanded_ver26", "test_flexattention_relative_positional_expanded_ver26",
           "test_flexattention_scaled_expanded_ver26", "test_flexattention_score_mod_expanded_ver26",
           "test_flexattention_soft_cap_expanded_ver26", "test_floor", "test_floor_example", "test_greater",
           "test_greater_bcast", "test_greater_equal_bcast_expanded", "test_greater_equal_expanded",
           "test_group_normalization_epsilon_expanded", "test_group_normalization_example_expanded",
           "test_layer_normalization_2d_axis0_expanded", "test_layer_normalization_2d_axis0_expanded_ver18",
           "test_layer_normalization_2d_axis1_expanded", "test_layer_normalization_2d_axis1_expanded_ver18",
           "test_layer_normalization_2d_axis_negative_1_expanded",
           "test_layer_normalization_2d_axis_negative_1_expanded_ver18",
           "test_layer_normalization_2d_axis_negative_2_expanded",
           "test_layer_normalization_2d_axis_negative_2_expanded_ver18",
           "test_layer_normalization_3d_axis0_epsilon_expanded",
           "test_layer_normalization_3d_axis0_epsilon_expanded_ver18",
           "test_layer_normalization_3d_axis1_epsilon_expanded",
           "test_layer_normalization_3d_axis1_epsilon_expanded_ver18",
           "test_layer_normalization_3d_axis2_epsilon_expanded",
           "test_layer_normalization_3d_axis2_epsilon_expanded_ver18",
           "test_layer_normalization_3d_axis_negative_1_epsilon_expanded",
           "test_layer_normalization_3d_axis_negative_1_epsilon_expanded_ver18",
           "test_layer_normalization_3d_axis_negative_2_epsilon_expanded",
           "test_layer_normalization_3d_axis_negative_2_epsilon_expanded_ver18",
           "test_layer_normalization_3d_axis_negative_3_epsilon_expanded",
           "test_layer_normalization_3d_axis_negative_3_epsilon_expanded_ver18",
           "test_layer_normalization_4d_axis0_expanded", "test_layer_normalization_4d_axis0_expanded_ver18",
           "test_layer_normalization_4d_axis1_expanded", "test_layer_normalization_4d_axis1_expanded_ver18",
           "test_layer_normalization_4d_axis2_expanded", "test_layer_normalization_4d_axis2_expanded_ver18",
           "test_layer_normalization_4d_axis3_expanded", "test_layer_normalization_4d_axis3_expanded_ver18",
           "test_layer_normalization_4d_axis_negative_1_expanded",
           "test_layer_normalization_4d_axis_negative_1_expanded_ver18",
           "test_layer_normalization_4d_axis_negative_2_expanded",
           "test_layer_normalization_4d_axis_negative_2_expanded_ver18",
           "test_layer_normalization_4d_axis_negative_3_expanded",
           "test_layer_normalization_4d_axis_negative_3_expanded_ver18",
           "test_layer_normalization_4d_axis_negative_4_expanded",
           "test_layer_normalization_4d_axis_negative_4_expanded_ver18",
           "test_layer_normalization_default_axis_expanded", "test_layer_normalization_default_axis_expanded_ver18",
           "test_less", "test_less_bcast", "test_less_equal_bcast_expanded", "test_less_equal_expanded", "test_log",
           "test_log_example", "test_logsoftmax_axis_0_expanded", "test_logsoftmax_axis_0_expanded_ver18",
           "test_logsoftmax_axis_1_expanded", "test_logsoftmax_axis_1_expanded_ver18",
           "test_logsoftmax_axis_2_expanded", "test_logsoftmax_axis_2_expanded_ver18",
           "test_logsoftmax_default_axis_expanded", "test_logsoftmax_default_axis_expanded_ver18",
           "test_logsoftmax_example_1_expanded", "test_logsoftmax_example_1_expanded_ver18",
           "test_logsoftmax_large_number_expanded", "test_logsoftmax_large_number_expanded_ver18",
           "test_logsoftmax_negative_axis_expanded", "test_logsoftmax_negative_axis_expanded_ver18",
           "test_mod_float32_mixed_sign_fmod_0", "test_mod_float_edge_cases_fmod_0_float32",
           "test_mod_mixed_sign_float32", "test_mvn_expanded", "test_mvn_expanded_ver18", "test_neg",
           "test_neg_example", "test_reciprocal", "test_reciprocal_example",
           "test_reduce_l1_default_axes_keepdims_example_expanded",
           "test_reduce_l1_default_axes_keepdims_random_expanded", "test_reduce_l1_do_not_keepdims_example_expanded",
           "test_reduce_l1_do_not_keepdims_random_expanded", "test_reduce_l1_empty_set_expanded",
           "test_reduce_l1_keep_dims_example_expanded", "test_reduce_l1_keep_dims_random_expanded",
           "test_reduce_l1_negative_axes_keep_dims_example_expanded",
           "test_reduce_l1_negative_axes_keep_dims_random_expanded", "test_reduce_log_sum_asc_axes_expanded",
           "test_reduce_log_sum_default_expanded", "test_reduce_log_sum_desc_axes_expanded",
           "test_reduce_log_sum_empty_set_expanded", "test_reduce_log_sum_negative_axes_expanded",
           "test_reduce_prod_default_axes_keepdims_example", "test_reduce_prod_default_axes_keepdims_random",
           "test_reduce_prod_do_not_keepdims_example", "test_reduce_prod_do_not_keepdims_random",
           "test_reduce_prod_empty_set", "test_reduce_prod_keepdims_example", "test_reduce_prod_keepdims_random",
           "test_reduce_prod_negative_axes_keepdims_example", "test_reduce_prod_negative_axes_keepdims_random",
           "test_rms_normalization_2d_axis0_expanded", "test_rms_normalization_2d_axis1_expanded",
           "test_rms_normalization_2d_axis_negative_1_expanded", "test_rms_normalization_2d_axis_negative_2_expanded",
           "test_rms_normalization_3d_axis0_epsilon_expanded", "test_rms_normalization_3d_axis1_epsilon_expanded",
           "test_rms_normalization_3d_axis2_epsilon_expanded",
           "test_rms_normalization_3d_axis_negative_1_epsilon_expanded",
           "test_rms_normalization_3d_axis_negative_2_epsilon_expanded",
           "test_rms_normalization_3d_axis_negative_3_epsilon_expanded", "test_rms_normalization_4d_axis0_expanded",
           "test_rms_normalization_4d_axis1_expanded", "test_rms_normalization_4d_axis2_expanded",
           "test_rms_normalization_4d_axis3_expanded", "test_rms_normalization_4d_axis_negative_1_expanded",
           "test_rms_normalization_4d_axis_negative_2_expanded", "test_rms_normalization_4d_axis_negative_3_expanded",
           "test_rms_normalization_4d_axis_negative_4_expanded", "test_rms_normalization_default_axis_expanded",
           "test_softmax_axis_0_expanded", "test_softmax_axis_0_expanded_ver18", "test_softmax_axis_1_expanded",
           "test_softmax_axis_1_expanded_ver18", "test_softmax_axis_2_expanded", "test_softmax_axis_2_expanded_ver18",
           "test_softmax_default_axis_expanded", "test_softmax_default_axis_expanded_ver18",
           "test_softmax_example_expanded", "test_softmax_example_expanded_ver18",
           "test_softmax_large_number_expanded", "test_softmax_large_number_expanded_ver18",
           "test_softmax_negative_axis_expanded", "test_softmax_negative_axis_expanded_ver18", "test_sqrt",
           "test_sqrt_example", "test_tile", "test_tile_precomputed",
           ),
}


# ---- the cases ---------------------------------------------------------------------------------------------------
def _array(a):
    return numpy_helper.to_array(a) if isinstance(a, onnx.TensorProto) else np.asarray(a)


def _ops(model):
    return {(n.domain, n.op_type) for n in model.graph.node}


def _selected():
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        from onnx.backend.test.case.node import collect_testcases

        cases = collect_testcases(None)
    sel = {}
    for c in cases:
        if not all(d in ("", "ai.onnx") and o in SUPPORTED_OPS for d, o in _ops(c.model)):
            continue
        ins, outs = c.data_sets[0]
        if not all(isinstance(a, (np.ndarray, np.generic, onnx.TensorProto)) for a in list(ins) + list(outs)):
            continue  # sequences, optionals
        ins = [_array(a) for a in ins]
        if not ins or ins[0].dtype != np.float32:
            continue
        if any(a.dtype != np.float32 and a.dtype.kind not in "iub" for a in ins):
            continue
        sel[c.name] = c
    return sel


CASES = _selected()


def _with_initializers(model, inputs, embed):
    m = onnx.ModelProto()
    m.CopyFrom(model)
    feeds = {}
    vis = list(m.graph.input)
    for k, (vi, a) in enumerate(zip(vis, inputs)):
        if k in embed:
            m.graph.initializer.append(numpy_helper.from_array(a, vi.name))
        else:
            feeds[vi.name] = a
    return m, feeds


def _only_needs_constants(err):
    return isinstance(err, cnnrt.UnsupportedModelError) and all("must be constant" in why
                                                                for _, _, why in err.unsupported)


def run_case(case):
    """Returns (outputs, form) or raises cnnrt's error."""
    ins, _ = case.data_sets[0]
    ins = [_array(a) for a in ins]
    non_float = {k for k, a in enumerate(ins) if a.dtype != np.float32}
    try:
        m, feeds = _with_initializers(case.model, ins, non_float)
        return cnnrt.Session(m, num_threads=1).run(feeds), "run-time inputs"
    except cnnrt.UnsupportedModelError as e:
        if not _only_needs_constants(e):
            raise
    m, feeds = _with_initializers(case.model, ins, set(range(1, len(ins))))
    return cnnrt.Session(m, num_threads=1).run(feeds), "constant weights"


def compare(case, got):
    _, outs = case.data_sets[0]
    rtol, atol = TOLERANCE.get(case.name, (RTOL, ATOL))
    assert len(got) == len(outs)
    for g, e in zip(got, outs):
        e = _array(e)
        assert g.shape == e.shape, f"shape {g.shape} != expected {e.shape}"
        assert g.dtype == e.dtype, f"dtype {g.dtype} != expected {e.dtype}"
        if e.dtype.kind == "f":
            np.testing.assert_allclose(g.astype(np.float64), e.astype(np.float64), rtol=rtol, atol=atol,
                                       equal_nan=True)
        else:
            np.testing.assert_array_equal(g, e)


RESULTS = collections.Counter()


@pytest.mark.parametrize("name", sorted(CASES))
def test_node_case(name):
    case = CASES[name]
    if name in OUT_OF_SCOPE:
        # out of scope: cnnrt must refuse it with its own error (never a silently wrong result)
        try:
            got, _ = run_case(case)
        except (cnnrt.CnnrtError, ValueError) as e:
            RESULTS["out of scope"] += 1
            pytest.skip(f"out of scope: {OUT_OF_SCOPE[name]} ({type(e).__name__})")
        compare(case, got)  # it ran: then it must be right (and can leave OUT_OF_SCOPE)
        RESULTS["out of scope, passes"] += 1
        return
    got, form = run_case(case)
    compare(case, got)
    RESULTS["passed (" + form + ")"] += 1


def test_out_of_scope_list_is_current():
    """Every OUT_OF_SCOPE entry names a selected case (no stale entries), and the counts add up."""
    stale = sorted(set(OUT_OF_SCOPE) - set(CASES))
    assert not stale, f"OUT_OF_SCOPE names cases that are not selected: {stale}"
    n_oos = sum(1 for n in CASES if n in OUT_OF_SCOPE)
    by_reason = collections.Counter(OUT_OF_SCOPE[n] for n in CASES if n in OUT_OF_SCOPE)
    summary = {"selected": len(CASES), "run": len(CASES) - n_oos, "out of scope": n_oos}
    print(f"\nONNX node conformance: {summary}")
    for reason, k in by_reason.most_common():
        print(f"  {k:4d}  {reason}")
    if RESULTS:
        print(f"  results of this session: {dict(RESULTS)}")
    assert len(CASES) > 300 and len(CASES) - n_oos > 250
