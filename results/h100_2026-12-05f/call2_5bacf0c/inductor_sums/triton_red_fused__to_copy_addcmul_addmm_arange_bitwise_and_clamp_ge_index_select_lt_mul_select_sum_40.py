
import triton
import triton.language as tl

from torch._inductor.runtime import triton_helpers, triton_heuristics
from torch._inductor.runtime.triton_helpers import libdevice, math as tl_math
from torch._inductor.runtime.hints import AutotuneHint, ReductionHint, TileHint, DeviceProperties
triton_helpers.set_driver_to_gpu()

@triton_heuristics.reduction(
    size_hints={'x': 1, 'r0_': 16},
    reduction_hint=ReductionHint.INNER,
    filename=__file__,
    triton_meta={'signature': {'in_out_ptr0': '*fp32', 'in_ptr0': '*i64', 'out_ptr0': '*fp64', 'out_ptr1': '*fp64', 'ks0': 'i64', 'xnumel': 'constexpr', 'r0_numel': 'i64', 'XBLOCK': 'constexpr', 'R0_BLOCK': 'constexpr'}, 'device': DeviceProperties(type='cuda', index=0, multi_processor_count=132, cc=90, major=9, regs_per_multiprocessor=65536, max_threads_per_multi_processor=2048, max_threads_per_block=1024, warp_size=32), 'constants': {'xnumel': 1}, 'native_matmul': False, 'enable_fp_fusion': True, 'launch_pdl': False, 'disable_ftz': False, 'configs': [{(0,): [['tt.divisibility', 16]], (1,): [['tt.divisibility', 16]], (2,): [['tt.divisibility', 16]], (3,): [['tt.divisibility', 16]]}]},
    inductor_meta={'grid_type': 'Grid1D', 'autotune_hints': set(), 'kernel_name': 'triton_red_fused__to_copy_addcmul_addmm_arange_bitwise_and_clamp_ge_index_select_lt_mul_select_sum_40', 'mutated_arg_names': ['in_out_ptr0'], 'optimize_mem': True, 'no_x_dim': False, 'atomic_add_found': False, 'num_load': 2, 'num_store': 2, 'num_reduction': 1, 'backend_hash': '91D1D1166449D9E2EB66EB9770C9E2C3B0FEB787341F27FEB4D3F0338DA50336', 'assert_indirect_indexing': True, 'autotune_local_cache': True, 'autotune_pointwise': True, 'autotune_remote_cache': None, 'force_disable_caches': False, 'dynamic_scale_rblock': True, 'max_autotune': False, 'max_autotune_pointwise': False, 'min_split_scan_rblock': 256, 'spill_threshold': 16, 'store_cubin': True, 'deterministic': False, 'force_filter_reduction_configs': False, 'mix_order_reduction_allow_multi_stages': False, 'are_deterministic_algorithms_enabled': False, 'tiling_scores': {'r0_': 308}}
)
@triton.jit
def triton_red_fused__to_copy_addcmul_addmm_arange_bitwise_and_clamp_ge_index_select_lt_mul_select_sum_40(in_out_ptr0, in_ptr0, out_ptr0, out_ptr1, ks0, xnumel, r0_numel, XBLOCK : tl.constexpr, R0_BLOCK : tl.constexpr):
    xnumel = 1
    rnumel = r0_numel
    RBLOCK: tl.constexpr = R0_BLOCK
    xoffset = tl.program_id(0).to(tl.int64) * XBLOCK
    xindex = xoffset + tl.arange(0, XBLOCK)[:, None].to(tl.int64)
    xmask = tl.full([XBLOCK], True, tl.int1)[:, None]
    r0_base = tl.arange(0, R0_BLOCK)[None, :].to(tl.int64)
    rbase = r0_base
    _tmp57 = tl.full([XBLOCK, R0_BLOCK], 0, tl.float64)
    for r0_offset in tl.range(0, r0_numel, R0_BLOCK):
        r0_index = r0_offset + r0_base
        r0_mask = r0_index < r0_numel
        roffset = r0_offset
        rindex = r0_index
        r0_0 = r0_index
        tmp0 = tl.load(in_ptr0 + (r0_0), r0_mask, eviction_policy='evict_first', other=0.0)
        tmp43 = tl.load(in_out_ptr0 + (r0_0), r0_mask, eviction_policy='evict_first', other=0.0)
        tmp1 = tl.full([1, 1], 0, tl.int64)
        tmp2 = triton_helpers.maximum(tmp0, tmp1)
        tmp3 = tl.full([1, 1], 7, tl.int32)
        tmp4 = tmp2 + tmp3
        tmp5 = tmp2 < 0
        tmp6 = tl.where(tmp5, tmp4, tmp2)
        tl.device_assert(((0 <= tmp6) & (tmp6 < 7)) | ~(r0_mask), "index out of bounds: 0 <= tmp6 < 7")
        tmp8 = tmp6
        tmp9 = tl.full([1, 1], 3, tl.int64)
        tmp10 = tmp8 < tmp9
        tmp11 = tl.full([1, 1], 1, tl.int64)
        tmp12 = tmp8 < tmp11
        tmp13 = tl.full([1, 1], 2, tl.int64)
        tmp14 = tmp8 < tmp13
        tmp15 = tl.full([1, 1], -58.30503845214844, tl.float32)
        tmp16 = tl.full([1, 1], -79.91567993164062, tl.float32)
        tmp17 = tl.where(tmp14, tmp15, tmp16)
        tmp18 = tl.full([1, 1], -13.715583801269531, tl.float32)
        tmp19 = tl.where(tmp12, tmp18, tmp17)
        tmp20 = tl.full([1, 1], 5, tl.int64)
        tmp21 = tmp8 < tmp20
        tmp22 = tl.full([1, 1], 4, tl.int64)
        tmp23 = tmp8 < tmp22
        tmp24 = tl.full([1, 1], -110.60724639892578, tl.float32)
        tmp25 = tl.full([1, 1], -128.32846069335938, tl.float32)
        tmp26 = tl.where(tmp23, tmp24, tmp25)
        tmp27 = tl.full([1, 1], 6, tl.int64)
        tmp28 = tmp8 < tmp27
        tmp29 = tl.full([1, 1], -87.68555450439453, tl.float32)
        tmp30 = tl.full([1, 1], -124.01795196533203, tl.float32)
        tmp31 = tl.where(tmp28, tmp29, tmp30)
        tmp32 = tl.where(tmp21, tmp26, tmp31)
        tmp33 = tl.where(tmp10, tmp19, tmp32)
        tmp34 = tl.full([1, 1], 1.2464666366577148, tl.float32)
        tmp35 = tl.where(tmp14, tmp34, tmp34)
        tmp36 = tl.where(tmp12, tmp34, tmp35)
        tmp37 = tl.where(tmp23, tmp34, tmp34)
        tmp38 = tl.where(tmp28, tmp34, tmp34)
        tmp39 = tl.where(tmp21, tmp37, tmp38)
        tmp40 = tl.where(tmp10, tmp36, tmp39)
        tmp41 = tl.full([1, 1], 1.0, tl.float32)
        tmp42 = tmp40 * tmp41
        tmp44 = tl.full([1, 1], -0.07712329179048538, tl.float32)
        tmp45 = tmp44 + tmp43
        tmp46 = tmp42 * tmp45
        tmp47 = tmp33 + tmp46
        tmp48 = tmp47.to(tl.float64)
        tmp49 = r0_0
        tmp50 = ks0
        tmp51 = tmp49 < tmp50
        tmp52 = tmp0 >= tmp1
        tmp53 = tmp51 & tmp52
        tmp54 = tmp53.to(tl.float64)
        tmp55 = tmp48 * tmp54
        tmp56 = tl.broadcast_to(tmp55, [XBLOCK, R0_BLOCK])
        tmp58 = _tmp57 + tmp56
        _tmp57 = tl.where(r0_mask, tmp58, _tmp57)
        tl.store(out_ptr0 + (tl.broadcast_to(r0_0, [XBLOCK, R0_BLOCK])), tmp55, r0_mask)
    tmp57 = tl.sum(_tmp57, 1)[:, None]
    tl.store(out_ptr1 + (tl.full([1, 1], 0, tl.int32).broadcast_to(XBLOCK, 1)), tmp57, None)
