"""Default CPU schedules for every TVM-generated kernel, without tuning.

TVM schedules nothing on CPU by default: a legalized PrimFunc is a naive,
single-threaded loop nest. This rule set gives every PrimFunc left after the
oneDNN offload a real schedule:
  - dlight's CPU GEMV and Reduction rules (softmax, layer norm, ...) first;
  - then CPUParallelVectorize for the rest: producers inlined into their
    consumer, leading spatial loops fused and run in parallel across the
    thread budget, the innermost spatial loop vectorised to the target's
    vector width (AVX-512: 16 fp32 lanes) when no reduction is inside it.
Each scheduled PrimFunc is marked "tirx.is_scheduled", which tests read.
"""
from __future__ import annotations

import tvm
from tvm import s_tir, tirx
from tvm.s_tir import dlight as dl
from tvm.s_tir.dlight.analysis import normalize_prim_func
from tvm.s_tir.dlight.base import get_extent
from tvm.s_tir.dlight.cpu.base import CPUScheduleRule
from tvm.target.codegen import llvm_get_vector_width

from ._legalize import COLUMN_REDUCE
from ._schedule_reduction import CPURowReduction, vectorise_spatial


def _vector_lanes(target, dtype_bits: int) -> int:
    bits = llvm_get_vector_width(target)
    if bits <= 0:
        bits = 128
    return max(bits // max(dtype_bits, 8), 1)


class CPUParallelVectorize(CPUScheduleRule):
    """Parallel outer spatial loops, vectorised inner loop, for any PrimFunc."""

    def apply(self, func, target, _tunable):
        if not isinstance(func, tirx.PrimFunc) or not self.is_target_available(target):
            return None
        sch = s_tir.Schedule(func)
        infos = normalize_prim_func(sch)
        if not infos:
            return None
        # Inline every producer that allows it, so one loop nest remains.
        for info in infos[:-1]:
            try:
                sch.compute_inline(info.block_rv)
            except Exception:  # noqa: BLE001 - not inlinable: keep it as its own nest
                pass
        infos = normalize_prim_func(sch)
        if not infos:
            return None
        for info in infos:
            self._schedule_block(sch, info, target)
        return sch

    @staticmethod
    def _schedule_block(sch, info, target):
        kinds = info.dom_kind()
        loops = sch.get_loops(info.block_rv)
        if not kinds or len(loops) != len(kinds):
            return
        n_spatial = len(kinds) - len(kinds.lstrip("S"))
        if n_spatial == 0:
            return
        block = sch.get(info.block_rv)
        lanes = _block_lanes(target, block)
        if n_spatial == len(kinds) and _is_transpose(sch, block, loops, lanes):
            CPUParallelVectorize._vectorise_along_reads(sch, loops, lanes)
            return
        if n_spatial == len(kinds):  # purely spatial: whole vectors inside, the rest parallel
            if all(isinstance(get_extent(sch, lp), int) for lp in loops):
                vectorise_spatial(sch, info.block_rv, loops, lanes, parallel=True)
            else:
                sch.parallel(sch.fuse(*loops) if len(loops) > 1 else loops[0])
            return
        if _is_channel_vector_reduction(sch, info):
            CPUParallelVectorize._vectorise_across_reduction(sch, info.block_rv, loops,
                                                             n_spatial, lanes)
            return
        spatial = loops[:n_spatial]
        fused = sch.fuse(*spatial) if len(spatial) > 1 else spatial[0]
        sch.parallel(fused)

    @staticmethod
    def _vectorise_along_reads(sch, loops, lanes):
        """A transpose: vectorise the second-innermost loop, along which the
        reads are contiguous, in strips of one vector; the innermost loop runs
        inside the strip, so each step reads one whole vector and writes it
        to `lanes` output rows, whose lines stay in L1 while they fill.
          - NCHW -> NHWC with few channels (a model's RGB input): the narrow
            innermost loop is unrolled (2-6x faster than vectorising 3 lanes
            of gathers, measured on (8, 3, 224, 224));
          - a wide transpose ([197, 768] tokens -> [768, 197]): 3x faster than
            vectorising the innermost loop as gathers (104 -> 35 us).
        """
        narrow = get_extent(sch, loops[-1]) < lanes
        outer, vec = sch.split(loops[-2], factors=[None, lanes])
        sch.reorder(outer, loops[-1], vec)
        sch.vectorize(vec)
        if narrow:
            sch.unroll(loops[-1])
        rest = list(loops[:-2]) + [outer]
        sch.parallel(sch.fuse(*rest) if len(rest) > 1 else rest[0])

    @staticmethod
    def _vectorise_across_reduction(sch, block_rv, loops, n_spatial, lanes):
        """Pooling in NHWC: reduce whole channel vectors at a time.

        Loop order becomes [outer spatial (parallel)] [reductions] [channel
        (vectorised)], with the init hoisted out of the reduction loops, so
        each window step is a few vector max/add instructions instead of one
        scalar reduction per output element.
        """
        outer = sch.fuse(*loops[:n_spatial - 1]) if n_spatial > 2 else loops[0]
        inner, reductions = loops[n_spatial - 1], loops[n_spatial:]
        sch.reorder(*reductions, inner)
        sch.parallel(outer)
        vec = _vectorise_loop(sch, sch.get_loops(block_rv)[-1], lanes)
        if vec is not None and vec[0] is not None:  # channel blocks outside the window
            sch.reorder(vec[0], *reductions)
        sch.decompose_reduction(block_rv, reductions[0])


def _vectorise_loop(sch, loop, lanes):
    extent = get_extent(sch, loop)
    if not isinstance(extent, int) or extent < 2:
        return
    if extent > lanes and extent % lanes == 0:
        outer, inner = sch.split(loop, factors=[None, lanes])
        sch.vectorize(inner)
        return outer, inner
    if extent <= lanes:
        sch.vectorize(loop)
        return None, loop
    return None


def _is_transpose(sch, block, loops, lanes) -> bool:
    """No read contiguous along the innermost loop, and some read contiguous
    along the loop outside it, which divides into whole vectors."""
    if len(loops) < 2 or len(block.iter_vars) != len(loops):
        return False
    inner, outer = get_extent(sch, loops[-1]), get_extent(sch, loops[-2])
    if not (isinstance(inner, int) and isinstance(outer, int)):
        return False
    if outer % lanes != 0 or inner < 2:
        return False

    def read_along(var):
        return any(len(r.region) and isinstance(r.region[-1].min, tirx.Var)
                   and r.region[-1].min.same_as(var) for r in block.reads)

    return read_along(block.iter_vars[-2].var) and not read_along(block.iter_vars[-1].var)


def _reads_contiguous_in(block, var) -> bool:
    """True when every read indexes its last axis by exactly `var`."""
    if not block.reads:
        return False
    for region in block.reads:
        if not len(region.region):  # a 0-d buffer: no axis to be contiguous along
            return False
        last = region.region[-1]
        if not (isinstance(last.min, tirx.Var) and last.min.same_as(var)):
            return False
        if not (isinstance(last.extent, (int, tirx.IntImm)) and int(last.extent) == 1):
            return False
    return True


class CPUChannelVectorPooling(CPUParallelVectorize):
    """CPUParallelVectorize, claimed first for PrimFuncs with a window
    reduction over a contiguous channel axis (NHWC pooling, spatial means):
    dlight's Reduction rule would take them and leave them scalar."""

    def apply(self, func, target, tunable):
        if not isinstance(func, tirx.PrimFunc) or not self.is_target_available(target):
            return None
        probe = s_tir.Schedule(func)
        infos = normalize_prim_func(probe)
        if not infos or not any(_is_channel_vector_reduction(probe, i) for i in infos):
            return None
        if any(probe.get(i.block_rv).name_hint == COLUMN_REDUCE for i in infos):
            return None  # CPURowReduction's column schedule also splits the channels

        return super().apply(func, target, tunable)


def _is_channel_vector_reduction(sch, info) -> bool:
    kinds = info.dom_kind()
    n_spatial = len(kinds) - len(kinds.lstrip("S"))
    block = sch.get(info.block_rv)
    # Multi-output reducers (argmax's (index, value)) are left to dlight:
    # vectorised across the spatial lanes, their update came out wrong (ties
    # and NaN took the last index, tests/convert/test_nan.py).
    return (n_spatial >= 2 and len(block.writes) == 1 and set(kinds[n_spatial:]) == {"R"}
            and _reads_contiguous_in(block, block.iter_vars[n_spatial - 1].var))


def default_cpu_schedule() -> tvm.transform.Pass:
    """Parallel loops are split over the thread budget at run time, by the
    parallel launch hook (csrc/kernels/parallel_launch.cpp), so no thread
    count is baked in here."""
    return dl.ApplyDefaultSchedule(CPUChannelVectorPooling(), CPURowReduction(_block_lanes),
                                   dl.cpu.GEMV(), dl.cpu.Reduction(), CPUParallelVectorize())


def _block_lanes(target, block) -> int:
    bits = block.writes[0].source.dtype.bits if block.writes else 32
    return _vector_lanes(target, bits)
