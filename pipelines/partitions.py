"""Scans over the partitions of a Dask DataFrame: the shared machinery of dedup and lookahead.

A *scan* carries a small state across partitions, forwards ("the last row of each key so far")
or backwards ("the first rows of each key still to come"). Each partition contributes a small
*summary*, computed in parallel; the states are the exclusive prefix folds of those summaries
under an **associative** ``combine``, computed by a parallel prefix scan of depth
``O(log P)`` (:func:`prefix_scan`); then each partition is computed from its own rows and its
state. :func:`scan_partitions` builds all of that as one graph layer of ``O(P)`` tasks, built in
``O(P)`` time, on top of the input's expression, and returns a Dask DataFrame.

Memory, and the two policies of the dask config key ``dask-flows.scan.hold-partitions``: with a
shallow scan Dask computes all the summaries early, and a partition shared by its summary and its
kernel would be held in between (all of them, at once).

- ``False`` (the default, *recompute*): each summary reads its own *recomputed copy* of its
  partition (the partition-wise tasks back to the data sources, with the earlier scans' small
  states shared), released as soon as the summary is taken; the kernel then reads the partition
  again when its state is ready. Memory stays bounded (a few partitions per worker); the price is
  computing every partition-wise task before a scan twice (a re-read per summary, and the earlier
  scans' kernels again). Partitions that are data in the graph (``from_pandas``) are not
  recomputed.
- ``True`` (*hold*): each summary reads the partition itself, so every partition is computed once,
  and Dask may hold up to all partitions between their summaries and their kernels: for inputs
  that fit in the cluster's memory with room to spare.

The policy is the config's value when the graph is optimized (``dask.compute``,
``Client.compute``: on the client, before the graph goes to the scheduler), so a caller chooses it
with ``dask.config.set({"dask-flows.scan.hold-partitions": True})`` around its compute; the graph
built earlier does not depend on it. :func:`with_hold_partitions` fixes it into collections
instead (no global config: for runs in several threads at once). Results are the same under both.

The functions build Dask graphs and compute nothing.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import dask
import dask.dataframe as dd
from dask._task_spec import Alias, DataNode, GraphNode, Task, TaskRef, convert_legacy_graph
from dask.base import collections_to_expr, tokenize
from dask.dataframe.dask_expr._collection import new_collection
from dask.dataframe.dask_expr._expr import Expr, Fused
from dask.dataframe.dask_expr.io.io import FromPandas

__all__ = [
    "HOLD_PARTITIONS", "Call", "Scan", "Slot", "count_scans", "graph_depth", "hold_partitions",
    "prefix_scan", "scan_partitions", "task_graph", "with_hold_partitions",
]

#: Summaries folded by one task of the prefix scan (the tree's fan-in).
RADIX = 4

#: The dask config key of the memory policy: False (recompute, the default) or True (hold).
HOLD_PARTITIONS = "dask-flows.scan.hold-partitions"


def hold_partitions() -> bool:
    """The policy the dask config chooses now: whether summaries read the partitions themselves.

    Examples
    --------
    >>> hold_partitions()
    False
    >>> with dask.config.set({HOLD_PARTITIONS: True}):
    ...     hold_partitions()
    True
    """
    value = dask.config.get(HOLD_PARTITIONS, default=False)
    if not isinstance(value, bool):
        raise ValueError(f"dask config {HOLD_PARTITIONS}: expected true or false, got {value!r}")
    return value


class Slot(enum.Enum):
    """Placeholders in a :class:`Call`'s arguments, filled in per partition."""

    PARTITION = "partition"  # the input partition (a pandas object)
    STATE = "state"  # the scan's state for the partition (kernels only)
    INDEX = "index"  # the partition's number, 0..P-1
    IS_LAST = "is_last"  # whether it is the last partition


@dataclass(frozen=True)
class Call:
    """A function and its arguments, some of them :class:`Slot` placeholders.

    Examples
    --------
    >>> Call(divmod, Slot.INDEX, 3).bind({Slot.INDEX: 7})
    (<built-in function divmod>, (7, 3))
    """

    func: Callable[..., Any]
    args: tuple[Any, ...]

    def __init__(self, func: Callable[..., Any], *args: Any) -> None:
        object.__setattr__(self, "func", func)
        object.__setattr__(self, "args", args)

    def bind(self, slots: Mapping[Slot, Any]) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        """The function and its arguments with the placeholders replaced."""
        return self.func, tuple(slots[a] if isinstance(a, Slot) else a for a in self.args)


@dataclass(frozen=True)
class Scan:
    """A scan over partitions: summarize each, prefix-fold the summaries, run the kernel.

    ``summary`` is called with ``PARTITION`` (and ``INDEX``, ``IS_LAST``) slots; ``kernel`` with
    ``PARTITION``, ``STATE``, ``INDEX``, ``IS_LAST``. ``combine(a, b)`` must be associative; in
    both directions ``a`` stands for earlier partitions than ``b`` (see :func:`prefix_scan`).
    """

    name: str  # the output tasks' name prefix
    summary: Call
    combine: Callable[[Any, Any], Any]
    initial: Any
    kernel: Call
    reverse: bool = False  # backward scan: the state of p folds the partitions after p


def prefix_scan(
    summaries: Sequence[Hashable],
    combine: Callable[[Any, Any], Any],
    initial: Any,
    name: str,
    reverse: bool = False,
    radix: int = RADIX,
) -> tuple[dict[Hashable, GraphNode], list[Hashable]]:
    """Tasks computing the exclusive prefix folds of the values at the keys ``summaries``.

    Forwards, ``state[0] = initial`` and ``state[p] = combine(state[p - 1], summary[p - 1])``;
    backwards (``reverse``), ``state[P - 1] = initial`` and
    ``state[p] = combine(summary[p + 1], state[p + 1])``. ``combine`` must be associative: the
    tasks fold aligned blocks of ``radix ** k`` summaries in a tree (depth ``log_radix P``), and
    state ``p`` folds the state at ``p`` with its lowest non-zero base-``radix`` digit cleared
    with at most ``radix - 1`` blocks, so the longest chain is at most ``2 log_radix P + 1``
    tasks and there are fewer than ``P + P / (radix - 1)`` tasks. A forward state depends on
    earlier partitions only (a backward one on later ones).

    Returns
    -------
    tasks : dict
        The new tasks, keyed ``(f"{name}-block{k}", l)`` and ``(name, p)``.
    states : list
        The key of each partition's state, in partition order.

    Examples
    --------
    >>> import operator
    >>> from dask._task_spec import Alias, DataNode, execute_graph
    >>> leaves = {("x", i): DataNode(("x", i), v) for i, v in enumerate([1, 2, 3, 4])}
    >>> tasks, states = prefix_scan(list(leaves), operator.add, 0, "sum")
    >>> results = execute_graph({**leaves, **tasks})
    >>> [results[k] for k in states]
    [0, 1, 3, 6]
    >>> tasks, states = prefix_scan(list(leaves), operator.add, 0, "rsum", reverse=True)
    >>> [execute_graph({**leaves, **tasks})[k] for k in states]
    [9, 7, 4, 0]
    """
    if radix < 2:
        raise ValueError(f"radix must be at least 2, got {radix}")
    order = list(reversed(summaries)) if reverse else list(summaries)
    if reverse:
        combine = _Flipped(combine)
    n = len(order)
    tasks: dict[Hashable, GraphNode] = {}
    levels = [order]  # levels[k][l]: the key of the fold of order[l * radix**k : (l + 1) * radix**k]
    size = radix
    while size <= n - 1:  # states need the blocks inside [0, n - 1) only
        below = levels[-1]
        keys = [(f"{name}-block{len(levels)}", i) for i in range((n - 1) // size)]
        for i, key in enumerate(keys):
            refs = [TaskRef(k) for k in below[i * radix:(i + 1) * radix]]
            tasks[key] = Task(key, _fold, combine, *refs)
        levels.append(keys)
        size *= radix
    states: list[Hashable] = []
    for p in range(n):
        key = (name, p)
        if p == 0:
            tasks[key] = DataNode(key, initial)
        else:
            level, step = 0, 1
            while (p // step) % radix == 0:
                level, step = level + 1, step * radix
            base = p - (p // step) % radix * step
            blocks = levels[level][base // step:p // step]
            tasks[key] = Task(key, _fold, combine, TaskRef(states[base]), *map(TaskRef, blocks))
        states.append(key)
    return tasks, states[::-1] if reverse else states


class _Flipped:
    """``combine`` with its arguments swapped (a backward scan folds from the end)."""

    def __init__(self, combine: Callable[[Any, Any], Any]) -> None:
        self.combine = combine

    def __call__(self, acc: Any, value: Any) -> Any:  # acc: later partitions, value: earlier
        return self.combine(value, acc)

    def __dask_tokenize__(self) -> Any:
        return ("flipped", tokenize(self.combine))


def _fold(combine: Callable[[Any, Any], Any], first: Any, *rest: Any) -> Any:
    """``combine(...combine(combine(first, rest[0]), rest[1])..., rest[-1])``."""
    for value in rest:
        first = combine(first, value)
    return first


class _ScanExpr(Expr):
    """One layer: the summaries, the prefix scan and the kernels of a :class:`Scan`.

    ``hold`` is the memory policy (see the module's docstring): None (recompute) or a fixed bool.
    Lowering (when the graph is optimized, on the client) turns None into True where the config
    asks to hold: the scheduler, which builds the tasks, may not share the client's config.
    Lowering rebuilds the expressions above (dask recomputes their metadata), so only then.
    """

    _parameters = ["frame", "scan", "meta", "keep_divisions", "hold"]
    _defaults = {"hold": None}

    @functools.cached_property
    def _name(self) -> str:
        return f"{self.scan.name}-{self.deterministic_token}"

    @functools.cached_property
    def _meta(self) -> Any:
        return self.operand("meta")

    def _lower(self) -> _ScanExpr | None:
        if self.hold is not None or not hold_partitions():  # None: recompute, the default
            return None
        return _ScanExpr(self.frame, self.scan, self.operand("meta"), self.keep_divisions, True)

    def _divisions(self) -> tuple[Any, ...]:
        if self.keep_divisions:
            return self.frame.divisions
        return (None,) * (self.frame.npartitions + 1)

    @functools.cached_property
    def _scan_names(self) -> tuple[str, str]:
        """The names of the summary and state tasks.

        They depend on the input and the scan only: steps that share them (e.g. lookaheads that
        differ in features only) share their tasks.
        """
        scan: Scan = self.scan
        token = tokenize(self.frame._name, scan.summary, scan.combine, scan.initial, scan.reverse)
        return f"{scan.name}-summary-{token}", f"{scan.name}-state-{token}"

    def _state_key(self, index: int) -> tuple[str, int]:
        n = self.frame.npartitions
        return self._scan_names[1], n - 1 - index if self.scan.reverse else index

    def _kernel_task(self, key: Hashable, index: int, part: Hashable) -> Task:
        slots = {**_slots(part, index, self.frame.npartitions),
                 Slot.STATE: TaskRef(self._state_key(index))}
        func, args = self.scan.kernel.bind(slots)
        return Task(key, func, *args)

    def _layer(self) -> dict[Hashable, GraphNode]:
        scan: Scan = self.scan
        n = self.frame.npartitions
        summary_name, state_name = self._scan_names
        tasks: dict[Hashable, GraphNode] = {}
        copies = None if self.hold else _Copies(self._name, tasks)
        for i in range(n):
            # recompute: the summary reads its own copy of the partition, so that the partition
            # is not held from its summary until its kernel (the prefix scan lets Dask compute
            # all summaries first); hold: it reads the partition
            part = (copies and copies.of(self.frame, i)) or (self.frame._name, i)
            key = (summary_name, i)
            func, args = scan.summary.bind(_slots(part, i, n))
            tasks[key] = Task(key, func, *args)
        scan_tasks, states = prefix_scan(
            [(summary_name, i) for i in range(n)], scan.combine, scan.initial, state_name,
            reverse=scan.reverse,
        )
        assert states == [self._state_key(i) for i in range(n)]
        tasks.update(scan_tasks)
        for i in range(n):
            tasks[(self._name, i)] = self._kernel_task((self._name, i), i, (self.frame._name, i))
        return tasks


class _Copies:
    """Recomputed copies of partitions of expressions, for the summaries of one scan (``owner``).

    A copy recomputes partition-wise tasks back to the data sources and shares the small ones
    (scan states), so that computing it holds no partition of the original's. The copies of each
    scan are its own: a copy shared by two scans would be held from one's summary until the
    other's.
    """

    def __init__(self, owner: str, tasks: dict[Hashable, GraphNode]) -> None:
        self.owner, self.tasks = owner, tasks
        self.keys: dict[Hashable, Hashable | None] = {}  # original key -> its copy's
        self.added: list[Hashable] = []  # originals copied, in order (to undo a failed copy)

    def of(self, expr: Expr, index: int) -> Hashable | None:
        """The key of a copy of partition ``index`` of ``expr`` (its tasks added); the original
        where it is data in the graph; None where it is not a partition-wise task."""
        original = (expr._name, index)
        if original not in self.keys:
            mark = len(self.added)
            self.keys[original] = None
            copy = self._copy(expr, index, (_recompute_name(self.owner, expr._name), index))
            if copy is None:  # undo the copies made on the way
                for done in self.added[mark:]:
                    self.tasks.pop(self.keys[done], None)
                    self.keys[done] = None
                del self.added[mark:]
            elif isinstance(copy, GraphNode):
                self.tasks[copy.key] = copy
                self.keys[original] = copy.key
                self.added.append(original)
            else:  # the original itself
                self.keys[original] = copy
        return self.keys[original]

    def _copy(self, expr: Expr, index: int, key: Hashable) -> Any:
        if isinstance(expr, _ScanExpr):
            part = self.of(expr.frame, index)
            return None if part is None else expr._kernel_task(key, index, part)
        if _holds_data(expr):  # data in the graph: nothing to recompute
            return (expr._name, index)
        try:
            task = expr._task(key, index)
        except (NotImplementedError, AttributeError, TypeError):
            return None
        if isinstance(task, (DataNode, Alias)):
            return None
        by_name = {dep._name: dep for dep in expr.dependencies()}
        subs = {}
        for dep_key in task.dependencies:
            dep = by_name.get(dep_key[0]) if isinstance(dep_key, tuple) else None
            copy = None if dep is None else self.of(dep, dep_key[1])
            if copy is None:
                return None
            subs[dep_key] = copy
        return task.substitute(subs, key=key) if subs else task


@functools.lru_cache(maxsize=256)
def _recompute_name(owner: str, name: str) -> str:
    return f"recompute-{tokenize(owner, name)}"


def _holds_data(expr: Expr) -> bool:
    """Whether ``expr``'s partitions are data in the graph (``from_pandas``): nothing to recompute."""
    return any(isinstance(e, FromPandas) for e in (expr.exprs if isinstance(expr, Fused) else [expr]))


def _slots(part: Hashable, index: int, n: int) -> dict[Slot, Any]:
    return {Slot.PARTITION: TaskRef(part), Slot.INDEX: index, Slot.IS_LAST: index == n - 1}


def scan_partitions(
    df: dd.DataFrame, scan: Scan, meta: Any = None, keep_divisions: bool = True
) -> dd.DataFrame:
    """Run ``scan`` over ``df``'s partitions: one output partition per input partition (lazy).

    The graph is one layer over ``df``'s expression: ``P`` summary tasks, the prefix scan
    (:func:`prefix_scan`) and ``P`` kernel tasks. The steps here never reorder rows, so ``df``'s
    divisions still hold when each output partition holds the rows of its input partition; a
    kernel that moves rows to a later partition needs ``keep_divisions=False`` (unknown
    divisions).

    Examples
    --------
    >>> import operator, pandas as pd, dask.dataframe as dd
    >>> ddf = dd.from_pandas(pd.DataFrame({"x": range(6)}), npartitions=3)
    >>> def add_offset(part, offset):  # x + the sum of x over earlier partitions
    ...     return part + offset
    >>> cumulative = Scan("offset", Call(lambda part: int(part["x"].sum()), Slot.PARTITION),
    ...                   operator.add, 0, Call(add_offset, Slot.PARTITION, Slot.STATE))
    >>> scan_partitions(ddf, cumulative).compute()["x"].tolist()
    [0, 1, 3, 4, 10, 11]
    """
    if not isinstance(df, dd.DataFrame):
        raise TypeError(f"expected a dask DataFrame, got {type(df).__name__}")
    return new_collection(_ScanExpr(df.expr, scan, df._meta if meta is None else meta,
                                    bool(keep_divisions)))


def task_graph(*collections: Any) -> dict[Hashable, GraphNode]:
    """The graph ``dask.compute(*collections)`` runs: optimized, with its tasks as ``GraphNode``.

    Examples
    --------
    >>> import pandas as pd, dask.dataframe as dd
    >>> ddf = dd.from_pandas(pd.DataFrame({"x": range(8)}), npartitions=4)
    >>> len(task_graph(ddf + 1))  # 4 partitions of data, 4 tasks adding 1, 1 concatenating
    9
    """
    from dask._expr import FinalizeCompute

    expr = FinalizeCompute(collections_to_expr(list(collections))).optimize()
    return convert_legacy_graph(dict(expr.__dask_graph__()))


def with_hold_partitions(*collections: Any, hold: bool) -> list[Any]:
    """The collections with the memory policy of their scans fixed to ``hold`` (where not fixed
    yet): computing them no longer reads the dask config, which is one dict for all threads.

    Collections that are not Dask DataFrame expressions come back as they are; a scan shared by
    several collections stays shared.

    Examples
    --------
    >>> import operator, pandas as pd, dask.dataframe as dd
    >>> ddf = dd.from_pandas(pd.DataFrame({"x": range(6)}), npartitions=3)
    >>> def add_offset(part, offset):
    ...     return part + offset
    >>> total = Scan("offset", Call(lambda part: int(part["x"].sum()), Slot.PARTITION),
    ...              operator.add, 0, Call(add_offset, Slot.PARTITION, Slot.STATE))
    >>> out = scan_partitions(ddf, total)
    >>> held, count = with_hold_partitions(out, out.x.sum(), hold=True)
    >>> any(str(key[0]).startswith("recompute") for key in task_graph(held, count))
    False
    >>> held.compute()["x"].tolist(), int(count.compute())
    ([0, 1, 3, 4, 10, 11], 29)
    """
    fixed: dict[str, Expr] = {}

    def fix(expr: Expr) -> Expr:
        if expr._name not in fixed:
            operands = [fix(o) if isinstance(o, Expr) else o for o in expr.operands]
            if isinstance(expr, _ScanExpr) and expr.hold is None:
                operands[expr._parameters.index("hold")] = bool(hold)
            new = expr
            if any(a is not b for a, b in zip(operands, expr.operands)):
                new = type(expr)(*operands)
                if "_meta" in expr.__dict__:  # the same metadata: not emulated again (user functions)
                    new.__dict__.setdefault("_meta", expr.__dict__["_meta"])
            fixed[expr._name] = new
        return fixed[expr._name]

    return [new_collection(fix(c.expr)) if isinstance(getattr(c, "expr", None), Expr) else c
            for c in collections]


def count_scans(*collections: Any) -> int:
    """How many scan layers (:func:`scan_partitions`) the collections' expressions contain.

    A layer shared by several collections counts once.

    Examples
    --------
    >>> import operator, pandas as pd, dask.dataframe as dd
    >>> ddf = dd.from_pandas(pd.DataFrame({"x": range(6)}), npartitions=3)
    >>> total = Scan("total", Call(len, Slot.PARTITION), operator.add, 0,
    ...              Call(lambda part, state: part, Slot.PARTITION, Slot.STATE))
    >>> once = scan_partitions(ddf, total)
    >>> count_scans(ddf), count_scans(once), count_scans(once, scan_partitions(once, total))
    (0, 1, 2)
    """
    expr = collections_to_expr(list(collections))
    return sum(isinstance(node, _ScanExpr) for node in expr.walk())


def graph_depth(*collections: Any) -> int:
    """The longest chain of dependent tasks of ``dask.compute(*collections)`` (optimized).

    Data embedded in the graph and aliases count for nothing, every other task for one.

    Examples
    --------
    >>> import pandas as pd, dask.dataframe as dd
    >>> ddf = dd.from_pandas(pd.DataFrame({"x": range(8)}), npartitions=4)
    >>> graph_depth(ddf + 1)  # add 1, concatenate the partitions
    2
    >>> graph_depth(ddf + 1, (ddf + 1).x.sum())  # add 1, select x, sum per partition, sum those
    4
    """
    graph = task_graph(*collections)
    depth: dict[Hashable, int] = {}
    for root in graph:
        stack = [root]
        while stack:  # iterative depth-first: graphs are deeper than Python's recursion limit
            key = stack[-1]
            if key in depth:
                stack.pop()
                continue
            deps = [d for d in graph[key].dependencies if d in graph]
            todo = [d for d in deps if d not in depth]
            if todo:
                stack.extend(todo)
                continue
            stack.pop()
            own = 0 if isinstance(graph[key], (Alias, DataNode)) else 1
            depth[key] = own + max((depth[d] for d in deps), default=0)
    return max(depth.values(), default=0)
