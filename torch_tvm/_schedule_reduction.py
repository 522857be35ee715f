"""Default CPU schedule for PrimFuncs with reductions (norms, softmax, mean, sum).

dlight's CPU Reduction rule keeps every accumulator scalar and serial, and it
parallelises the output's leading loops with every reduction computed under
them, so a GroupNorm recomputes its whole group once per channel. This rule
instead:
  - rows: when every reduction's rows are the output's leading loops
    (softmax, layer_norm, rms_norm, a mean over the last axis), those loops
    run in parallel and each block is computed per row under them;
  - otherwise (group_norm, a spatial mean feeding per-channel ops) each block
    is its own loop nest, computed once;
  - every reduction is vectorised: its (fused) reduction loop is split by the
    vector width and `rfactor`ed, so the lanes accumulate in a vector and are
    combined once at the end;
  - when the rows are too few to fill the threads (GroupNorm with one group:
    one row of 200k elements), the reduction is also split into chunks that
    run in parallel and are combined after (a second rfactor);
  - spatial blocks are vectorised on their innermost (fused) loops.
Accumulation order changes (lanes, then chunks, are summed pairwise at the
end), as in ATen's and inductor's vectorised reductions.
"""
from __future__ import annotations

import logging

from tvm import s_tir, tirx
from tvm.s_tir.dlight.analysis import normalize_prim_func
from tvm.s_tir.dlight.base import get_extent
from tvm.s_tir.dlight.cpu.base import CPUScheduleRule

from ._legalize import COLUMN_REDUCE

_LOG = logging.getLogger("torch_tvm.schedule")

# Rows fewer than this (per thread) get their reductions split across threads.
_MIN_ROWS_PER_THREAD = 2
# A reduction shorter than this is left to a plain (unrolled) loop.
_MIN_SPLIT_LENGTH = 4096
# Chunks a split reduction is cut into (the parallel launch spreads them).
_CHUNKS = 16


def _extent(sch, loop):
    e = get_extent(sch, loop)
    return e if isinstance(e, int) else None


def _product(values):
    out = 1
    for v in values:
        out *= v
    return out


def _threads(target) -> int:
    cores = target.attrs.get("num-cores") if hasattr(target, "attrs") else None
    try:
        return max(int(cores), 1)
    except (TypeError, ValueError):
        return 1


class CPURowReduction(CPUScheduleRule):
    """Parallel, vectorised reductions; see the module docstring."""

    def __init__(self, lanes_fn):
        self._lanes = lanes_fn

    def apply(self, func, target, _tunable):
        if not isinstance(func, tirx.PrimFunc) or not self.is_target_available(target):
            return None
        sch = s_tir.Schedule(func)
        infos = normalize_prim_func(sch)
        if not infos or all(i.is_injective() for i in infos):
            return None
        if any(len(sch.get(i.block_rv).writes) != 1 for i in infos):
            return None  # tuple reductions (argmax): leave to the next rule
        _inline_single_use(sch)
        infos = normalize_prim_func(sch)
        if not infos:
            return None
        lanes = self._lanes(target, sch.get(infos[-1].block_rv))
        threads = _threads(target)
        try:
            rows = self._schedule_rows(sch.copy(), infos, lanes)
            if rows is not None:
                return rows
            self._schedule_separately(sch, infos, lanes, threads)
        except Exception:  # noqa: BLE001 - a shape this rule cannot take: next rule
            _LOG.debug("CPURowReduction declined %s", func.attrs, exc_info=True)
            return None
        return sch

    # -- rows shared with the output ------------------------------------
    def _schedule_rows(self, sch, infos, lanes):
        """`sch` scheduled per row, or None when this layout does not apply
        (`sch` is a copy: the caller falls back to the original)."""
        last = infos[-1]
        if not last.is_injective():
            return None
        out_loops = sch.get_loops(last.block_rv)
        out_extents = [_extent(sch, lp) for lp in out_loops]
        if None in out_extents:
            return None
        depth = None
        for info in infos[:-1]:
            if info.is_injective():
                continue
            kinds = info.dom_kind()
            n_s = len(kinds) - len(kinds.lstrip("S"))
            if set(kinds[n_s:]) != {"R"}:
                return None
            rows = _product([_extent(sch, lp) or 0 for lp in sch.get_loops(info.block_rv)[:n_s]])
            d = _prefix_with_product(out_extents, rows)
            if d is None or (depth is not None and d != depth):
                return None
            depth = d
        if not depth or depth >= len(out_loops):
            return None
        if _product(out_extents[:depth]) < _MIN_ROWS_PER_THREAD:
            return None  # one row: split the reductions instead
        # compute_at may refuse (a block reading another row): then None
        if self._rows_under(sch, infos, depth, lanes) is None:
            return None
        for info in infos:
            if info.is_injective():
                vectorise_spatial(sch, info.block_rv, sch.get_loops(info.block_rv)[1:], lanes)
        return sch

    @staticmethod
    def _rows_under(sch, infos, depth, lanes):
        """rfactor each reduction into vector lanes while it is still its own
        loop nest (rfactor needs that), then compute every block per row."""
        rfs = []
        for info in infos[:-1]:
            if not info.is_injective():
                rf = _rfactor_lanes(sch, info.block_rv, lanes)
                if rf is not None:
                    rfs.append(rf)
        loops = sch.get_loops(infos[-1].block_rv)
        row = sch.fuse(*loops[:depth]) if depth > 1 else loops[0]
        root = _root(sch)
        try:
            for block in reversed(sch.get_child_blocks(root)[:-1]):
                sch.compute_at(block, row, preserve_unit_loops=False)
        except Exception:  # noqa: BLE001
            return None
        sch.parallel(row)  # before decompose_reduction: parallel wants whole blocks
        for rf in rfs:
            _vectorise_rf(sch, rf)
        return row

    # -- each block its own nest ----------------------------------------
    def _schedule_separately(self, sch, infos, lanes, threads):
        for info in infos:
            kinds = info.dom_kind()
            loops = sch.get_loops(info.block_rv)
            n_s = len(kinds) - len(kinds.lstrip("S"))
            if info.is_injective():
                vectorise_spatial(sch, info.block_rv, loops, lanes, parallel=True)
                continue
            if set(kinds[n_s:]) != {"R"}:
                raise ValueError("interleaved spatial/reduction loops")
            if sch.get(info.block_rv).name_hint == COLUMN_REDUCE:
                _schedule_column(sch, info.block_rv, lanes)
                continue
            rows = _product([_extent(sch, lp) for lp in loops[:n_s]]) if n_s else 1
            length = _product([_extent(sch, lp) for lp in loops[n_s:]])
            if rows < threads * _MIN_ROWS_PER_THREAD and length >= _MIN_SPLIT_LENGTH:
                _split_reduction_across_threads(sch, info.block_rv, n_s, lanes)
            else:
                if n_s:
                    row = sch.fuse(*loops[:n_s]) if n_s > 1 else loops[0]
                    sch.parallel(row)
                rf = _rfactor_lanes(sch, info.block_rv, lanes)
                if rf is not None:
                    _vectorise_rf(sch, rf)


def _schedule_column(sch, block, lanes):
    """out[o, i] = sum_k x[o, k, i] (_legalize's column reduction): the inner
    axis i stays innermost and vectorised, k runs outside it, so every load is
    a contiguous vector and the accumulator is one vector per lane group.
    Outer rows and vector groups run in parallel."""
    *outer, i, k = sch.get_loops(block)  # a unit outer loop is normalised away
    inner = _extent(sch, i)
    if inner is not None and inner % lanes == 0 and inner >= lanes:
        i0, i1 = sch.split(i, factors=[None, lanes])
        sch.reorder(*outer, i0, k, i1)
        sch.parallel(sch.fuse(*outer, i0) if outer else i0)
        sch.vectorize(i1)  # before decompose_reduction, which vectorize() then refuses
        init = sch.decompose_reduction(block, k)
        sch.vectorize(sch.get_loops(init)[-1])
    else:
        sch.reorder(*outer, k, i)
        if outer:
            sch.parallel(sch.fuse(*outer) if len(outer) > 1 else outer[0])


def _prefix_with_product(extents, target):
    acc = 1
    for i, e in enumerate(extents):
        acc *= e
        if acc == target:
            return i + 1
        if acc > target:
            return None
    return None


def _inline_single_use(sch):
    """Inline spatial producers read by one block only (the +x / *2 epilogue
    goes into the normalise block; exp(x - max) read by two blocks stays)."""
    root = _root(sch)
    changed = True
    while changed:
        changed = False
        blocks = sch.get_child_blocks(root)
        for block in blocks[:-1]:
            stmt = sch.get(block)
            if any(iv.iter_type != tirx.IterVar.DataPar for iv in stmt.iter_vars):
                continue
            if len(sch.get_consumers(block)) != 1:
                continue
            try:
                sch.compute_inline(block)
                changed = True
                break
            except Exception:  # noqa: BLE001 - not inlinable
                continue
        if not changed:
            blocks = sch.get_child_blocks(root)
            if len(blocks) > 1:
                last = blocks[-1]
                stmt = sch.get(last)
                if all(iv.iter_type == tirx.IterVar.DataPar for iv in stmt.iter_vars):
                    try:
                        sch.reverse_compute_inline(last)
                        changed = True
                    except Exception:  # noqa: BLE001
                        pass


def vectorise_spatial(sch, block, loops, lanes, parallel=False):
    """Fuse the innermost loops until their length is a multiple of the
    vector width, split off a vector, vectorise it; the rest in parallel.
    When no suffix divides (a [.., 197, 197] attention tensor), only the
    innermost loop is vectorised, as whole vectors plus a remainder loop
    (loop_partition): a predicated vector loop would be scalarised by TVM."""
    loops = list(loops)
    if not loops:
        return
    extents = [_extent(sch, lp) for lp in loops]
    if None in extents:
        return
    # Loops may be fused only as far as every read stays contiguous (or
    # broadcast) along the fused index: a slice, a pad or a transpose read
    # through a fused index becomes a gather.
    lowest = len(loops) - _contiguous_suffix(sch, block, loops)
    acc, start = 1, len(loops)
    for i in range(len(loops) - 1, lowest - 1, -1):
        acc *= extents[i]
        start = i
        if acc % lanes == 0:
            break
    if acc % lanes:  # no suffix divides: the innermost loop alone
        start, acc = len(loops) - 1, extents[-1]
    inner = sch.fuse(*loops[start:]) if len(loops) - start > 1 else loops[start]
    rest = loops[:start]
    if parallel and rest:  # before loop_partition: parallel wants plain blocks
        sch.parallel(sch.fuse(*rest) if len(rest) > 1 else rest[0])
    if acc % lanes == 0:
        outer, vec = sch.split(inner, factors=[None, lanes])
        sch.vectorize(vec)
        if parallel and not rest:
            sch.parallel(outer)
    elif acc > lanes:
        body, _tail = sch.loop_partition(inner, factors=[acc - acc % lanes, None])
        outer, vec = sch.split(body, factors=[None, lanes])
        sch.vectorize(vec)
        if parallel and not rest:
            sch.parallel(outer)
    elif acc >= 2:
        sch.vectorize(inner)


def _contiguous_suffix(sch, block, loops) -> int:
    """How many innermost loops can be fused with every read contiguous or
    broadcast along the fused index: each read indexes its trailing axes with
    exactly those loops' iter vars over its whole extent, or does not use them."""
    stmt = sch.get(block)
    ivs = [iv.var for iv in stmt.iter_vars]
    if len(ivs) != len(loops) or any(
            iv.iter_type != tirx.IterVar.DataPar for iv in stmt.iter_vars):
        return len(loops)  # loops not 1:1 with iter vars (computed at a row): as before
    extents = [_extent(sch, lp) for lp in loops]
    best = 1
    for k in range(2, len(loops) + 1):
        fused = ivs[-k:]
        for region in stmt.reads:
            idx = [r.min for r in region.region]
            used = [any(_uses(e, v) for v in fused) for e in idx]
            if not any(used):
                continue  # broadcast along the fused loops
            shape = [int(d) if isinstance(d, (int, tirx.IntImm)) else None
                     for d in region.source.shape]
            if len(idx) < k or any(used[:-k]) or any(
                    not idx[len(idx) - k + j].same_as(fused[j])
                    or shape[len(idx) - k + j] != extents[len(loops) - k + j]
                    for j in range(k)):
                return best
        best = k
    return best


def _uses(expr, var) -> bool:
    return any(v.same_as(var) for v in tirx.analysis.undefined_vars(expr))


def _root(sch):
    return sch.get_sblock("root") if hasattr(sch, "get_sblock") else sch.get_block("root")


def _rfactor_lanes(sch, block, lanes):
    """Fuse the block's reduction loops, split off `lanes`, rfactor them: the
    rf block accumulates a vector of partial results (ki is spatial in it).
    Returns the rf block, or None when the reduction is too short."""
    loops = sch.get_loops(block)
    stmt = sch.get(block)
    n_red = sum(1 for iv in stmt.iter_vars if iv.iter_type == tirx.IterVar.CommReduce)
    red = loops[len(loops) - n_red:]
    extents = [_extent(sch, lp) for lp in red]
    length = _product(extents) if None not in extents else 0
    # rfactor drops the predicate of a non-divisible split (its reads would
    # run past the row), so only whole vectors: _legalize splits reductions
    # into a multiple-of-16 body and a short tail for this.
    if length < 2 * lanes or length % lanes:
        return None
    k = sch.fuse(*red) if len(red) > 1 else red[0]
    _, ki = sch.split(k, factors=[None, lanes])
    # lanes as the innermost axis of the partial-result buffer: contiguous
    return sch.rfactor(ki, factor_axis=len(stmt.writes[0].source.shape))


def _vectorise_rf(sch, rf):
    """Lane loop innermost and vectorised, the init hoisted out of the
    reduction loop. compute_at regenerates the rf block's loops in its own
    order, so the two are found by the iter vars they drive."""
    lane = reduce = None
    for loop in sch.get_loops(rf):
        kind = _driven_kind(sch, rf, loop)
        if kind == "S" and lane is None:
            lane = loop
        elif kind == "R" and reduce is None:
            reduce = loop
    if lane is None or reduce is None:
        raise ValueError("rfactor block without lane and reduction loops")
    sch.reorder(reduce, lane)
    sch.vectorize(lane)
    sch.decompose_reduction(rf, reduce)


def _find_realize(stmt, name):
    """The realize of the block called `name` inside `stmt`, or None."""
    if hasattr(stmt, "iter_values"):
        if stmt.block.name_hint == name:
            return stmt
        return _find_realize(stmt.block.body, name)
    if hasattr(stmt, "seq"):
        for child in stmt.seq:
            found = _find_realize(child, name)
            if found is not None:
                return found
        return None
    body = getattr(stmt, "body", None)
    return _find_realize(body, name) if body is not None else None


def _driven_kind(sch, block, loop):
    """'S' or 'R' for the kind of the block iter var that `loop` drives
    (the rf block's lane var is its first, spatial, iter var), None if none."""
    loop_var = sch.get(loop).loop_var
    stmt = sch.get(block)
    node = _find_realize(sch.get(loop), stmt.name_hint)
    if node is None:
        return None
    for idx, (iv, value) in enumerate(zip(stmt.iter_vars, node.iter_values)):
        if any(v.same_as(loop_var) for v in tirx.analysis.undefined_vars(value)):
            if iv.iter_type == tirx.IterVar.CommReduce:
                return "R"
            return "S" if idx == 0 else None
    return None


def _split_reduction_across_threads(sch, block, n_s, lanes):
    """Few rows, long reductions: chunks of each row reduce in parallel into
    vector partials, which are combined after."""
    loops = sch.get_loops(block)
    red = loops[n_s:]
    k = sch.fuse(*red) if len(red) > 1 else red[0]
    kt, km, ki = sch.split(k, factors=[_CHUNKS, None, lanes])
    rf1 = sch.rfactor(kt, factor_axis=0)          # rf1[kt, rows...] = sum over km, ki
    rf1_loops = sch.get_loops(rf1)
    # rf1 loops: rows..., kt, km, ki -> rfactor the lanes too
    rf2 = sch.rfactor(rf1_loops[-1], factor_axis=0)
    rf2_loops = sch.get_loops(rf2)
    # rf2 loops: rows..., kt, km, ki (ki spatial now)
    par = rf2_loops[:n_s + 1]
    sch.parallel(sch.fuse(*par) if len(par) > 1 else par[0])
    rf2_loops = sch.get_loops(rf2)
    sch.vectorize(rf2_loops[-1])
    sch.decompose_reduction(rf2, rf2_loops[-2])
