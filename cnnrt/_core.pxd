# Declarations of the C core used by _core.pyx.
from libc.stdint cimport int32_t, int64_t, uint64_t

cdef extern from "cnnrt/common.h":
    ctypedef struct cnn_act:
        int32_t type
        float a
        float b
    void* cnn_aligned_alloc(size_t)
    void cnn_aligned_free(void*)

cdef extern from "cnnrt/hardware.h":
    int cnn_hw_best_isa()
    int cnn_hw_isa_supported(int)
    int cnn_hw_active_isa()
    int cnn_hw_set_active_isa(int)
    const char* cnn_isa_name(int)
    int cnn_hw_num_cpus()
    double cnn_hw_measure_fma_peak(double) nogil

cdef extern from "cnnrt/threadpool.h":
    ctypedef struct cnn_threadpool:
        pass
    cnn_threadpool* cnn_threadpool_create(size_t) nogil
    void cnn_threadpool_destroy(cnn_threadpool*) nogil
    size_t cnn_threadpool_size(const cnn_threadpool*)
    long cnn_threadpool_peak_busy(int reset)

cdef extern from "cnnrt/gemm.h":
    ctypedef struct cnn_gemm_config:
        int isa
        size_t mr, nr, kc, mc, nc
    const cnn_gemm_config* cnn_gemm_config_get(int)
    ctypedef struct cnn_fc_weights:
        pass
    cnn_fc_weights* cnn_fc_weights_create(size_t K, size_t N, const float* w, size_t w_rs, size_t w_cs,
                                          const float* bias, int isa) nogil
    void cnn_fc_weights_destroy(cnn_fc_weights*)
    size_t cnn_fc_weights_bytes(const cnn_fc_weights*)
    size_t cnn_fc_workspace_size(const cnn_fc_weights*, size_t M, size_t nthreads)
    void cnn_fc_run(const cnn_fc_weights*, size_t M, const float* x, size_t x_rs, size_t x_cs, float* y,
                    const float* residual, const cnn_act* act, void* workspace, cnn_threadpool* pool) nogil
    size_t cnn_sgemm_workspace_size(const cnn_gemm_config*, size_t M, size_t N, size_t K, size_t nthreads)

cdef extern from "cnnrt/conv.h":
    ctypedef struct cnn_conv2d_desc:
        size_t in_channels, out_channels, groups
        size_t kernel_h, kernel_w
        size_t stride_h, stride_w
        size_t dilation_h, dilation_w
        size_t pad_top, pad_left, pad_bottom, pad_right
        cnn_act act
    ctypedef struct cnn_conv2d_weights:
        pass
    ctypedef struct cnn_conv2d_plan:
        const cnn_conv2d_weights* w
        size_t batch, in_h, in_w, out_h, out_w
        size_t nthreads
        size_t workspace_bytes
        int algo
        int maxpool2
    int cnn_conv2d_desc_check(const cnn_conv2d_desc*)
    cnn_conv2d_weights* cnn_conv2d_weights_create(const cnn_conv2d_desc*, const float*, const float*, int, int,
                                                  int*) nogil
    void cnn_conv2d_weights_destroy(cnn_conv2d_weights*)
    int cnn_conv2d_weights_algo(const cnn_conv2d_weights*)
    size_t cnn_conv2d_weights_bytes(const cnn_conv2d_weights*)
    int cnn_conv2d_weights_tile(const cnn_conv2d_weights*)
    double cnn_conv2d_weights_probe_error(const cnn_conv2d_weights*)
    int cnn_conv2d_plan_init(cnn_conv2d_plan*, const cnn_conv2d_weights*, size_t, size_t, size_t, size_t)
    int cnn_conv2d_plan_fuse_maxpool2(cnn_conv2d_plan*)
    int cnn_conv2d_expand_dw_ok(const cnn_conv2d_weights*, const cnn_conv2d_weights*, size_t, size_t)
    int cnn_conv2d_plan_fuse_dw(cnn_conv2d_plan*, const cnn_conv2d_weights*)
    void cnn_conv2d_run(const cnn_conv2d_plan*, const float*, float*, const float*, void*, cnn_threadpool*) nogil
    void cnn_conv2d_ref(const cnn_conv2d_desc*, size_t, size_t, size_t, const float*, const float*, const float*,
                        const float*, float*) nogil

cdef extern from "cnnrt/eltwise.h":
    ctypedef struct cnn_eltwise_config:
        int isa
    const cnn_eltwise_config* cnn_eltwise_config_get(int)
    ctypedef struct cnn_pool2d_desc:
        int32_t type
        int32_t count_include_pad
        size_t kernel_h, kernel_w, stride_h, stride_w, dilation_h, dilation_w
        size_t pad_top, pad_left, pad_bottom, pad_right

cdef extern from "cnnrt/plan.h":
    enum:
        CNN_NODE_CONV
        CNN_NODE_FC
        CNN_NODE_MATMUL
        CNN_NODE_POOL2D
        CNN_NODE_GLOBAL_POOL
        CNN_NODE_ACT
        CNN_NODE_BINARY
        CNN_NODE_AFFINE
        CNN_NODE_SOFTMAX
        CNN_NODE_LRN
        CNN_NODE_REDUCE
        CNN_NODE_COPY
        CNN_NODE_FILL
        CNN_NODE_GATHER
        CNN_MAX_DIMS
    ctypedef struct cnn_conv_node:
        cnn_conv2d_plan plan
    ctypedef struct cnn_fc_node:
        const cnn_fc_weights* w
        size_t m, x_rs, x_cs
        cnn_act act
    ctypedef struct cnn_matmul_node:
        const cnn_gemm_config* cfg
        size_t batch, m, n, k
        size_t a_bs, a_rs, a_cs
        size_t b_bs, b_rs, b_cs
        cnn_act act
    ctypedef struct cnn_pool_node:
        const cnn_eltwise_config* cfg
        cnn_pool2d_desc desc
        size_t nc, h, w, oh, ow
    ctypedef struct cnn_global_pool_node:
        const cnn_eltwise_config* cfg
        int32_t type
        size_t nc, hw
    ctypedef struct cnn_act_node:
        const cnn_eltwise_config* cfg
        cnn_act act
        size_t n
    ctypedef struct cnn_binary_node:
        const cnn_eltwise_config* cfg
        int32_t op
        cnn_act act
        size_t ndim
        size_t shape[8]
        ptrdiff_t a_strides[8]
        ptrdiff_t b_strides[8]
    ctypedef struct cnn_affine_node:
        const cnn_eltwise_config* cfg
        size_t n, c, hw
        const float* scale
        const float* shift
        cnn_act act
    ctypedef struct cnn_softmax_node:
        const cnn_eltwise_config* cfg
        int32_t log
        size_t outer, axis, inner
    ctypedef struct cnn_lrn_node:
        size_t n, c, hw, size
        float alpha, beta, bias
    ctypedef struct cnn_reduce_node:
        int32_t type
        size_t outer, axis, inner
    ctypedef struct cnn_copy_node:
        size_t ndim
        size_t shape[8]
        ptrdiff_t x_strides[8]
        ptrdiff_t y_strides[8]
        ptrdiff_t x_offset, y_offset
    ctypedef struct cnn_fill_node:
        size_t n
        float value
        ptrdiff_t y_offset
    ctypedef struct cnn_gather_node:
        size_t outer, axis_in, inner, nidx
        const int64_t* idx
    ctypedef struct cnn_node:
        int32_t kind
        int32_t nin
        int32_t inputs[3]
        int32_t out
        const void* params
    void cnn_plan_execute(const cnn_node*, size_t, float* const*, void*, cnn_threadpool*, uint64_t*) nogil
