"""Exact, vectorised prediction of fitted scikit-learn ``HistGradientBoostingRegressor`` models on
small batches (pure numpy, no I/O).

Why: the label-free estimate of a regression push (monitor/estimation.py) predicts four boosted
models of 150 trees each. scikit-learn predicts tree after tree from Python (150 calls, each
checking its input) and validates the frame per call: on a 100-row push that was about 40 % of the
request's CPU. Here every tree walks all rows at once, one level of all trees per numpy step, and
the leaves are added tree after tree in scikit-learn's order, so every prediction is bit-identical
to ``model.predict`` (checked by tests/monitor/test_tree_predict.py on numeric, missing and
categorical inputs).

``fast(model)`` wraps a fitted regressor; anything it does not cover (another estimator, a frame
whose columns differ from the fit's) goes to the model's own ``predict``. The wrapper pickles as
the plain model, so persisted estimators (monitor/estimators.py) keep their format.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

BLOCK_ROWS = 4_096  # rows per block: 150 trees x 4,096 rows x 8 B = 4.9 MB per working array
WALK_MAX_ROWS = 1_000  # larger batches without a table: scikit-learn's own predict


class FastRegressor:
    """A fitted ``HistGradientBoostingRegressor`` predicting all its trees at once."""

    def __init__(self, model: Any) -> None:
        self.model = model
        trees = [iteration[0] for iteration in model._predictors]
        sizes = np.array([len(tree.nodes) for tree in trees])
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.intp)
        nodes = np.concatenate([tree.nodes for tree in trees])
        per_node_offset = np.repeat(offsets, sizes)
        self.roots = offsets
        self.feature = nodes["feature_idx"].astype(np.intp)
        self.threshold = nodes["num_threshold"].astype(np.float64)
        self.missing_left = nodes["missing_go_to_left"].astype(bool)
        self.leaf = nodes["is_leaf"].astype(bool)
        self.left = nodes["left"].astype(np.intp) + per_node_offset
        self.right = nodes["right"].astype(np.intp) + per_node_offset
        self.value = nodes["value"].astype(np.float64)
        self.depth = int(nodes["depth"].max()) + 1
        width = int(model.n_features_in_)
        # _walk: which copy of the data a node reads (missing as -inf: left; as NaN: right) and its
        # children as one array (2 j: right, 2 j + 1: left), so a step is two gathers and a compare.
        self.read = np.where(self.missing_left, self.feature, self.feature + width)
        self.children = np.stack([self.right, self.left], axis=1).reshape(-1)
        self.categorical = nodes["is_categorical"].astype(bool)
        self.baseline = np.asarray(model._baseline_prediction, dtype=np.float64).reshape(-1)[0]
        self.names = list(getattr(model, "feature_names_in_", [])) or None
        self.table = None if self.categorical.any() else self._build_table(nodes, sizes, width)
        if self.categorical.any():
            bitset_offsets = np.concatenate(
                [[0], np.cumsum([len(tree.raw_left_cat_bitsets) for tree in trees])[:-1]]).astype(np.intp)
            self.bitset = nodes["bitset_idx"].astype(np.intp) + np.repeat(bitset_offsets, sizes)
            self.left_bitsets = np.concatenate([tree.raw_left_cat_bitsets for tree in trees])
            known, f_idx_map = model._bin_mapper.make_known_categories_bitsets()
            self.known_bitsets, self.f_idx_map = np.asarray(known), np.asarray(f_idx_map, dtype=np.intp)

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return _plain, (self.model,)  # stored as the scikit-learn model it wraps

    def predict(self, X: Any) -> np.ndarray:
        if isinstance(X, np.ndarray) and self.takes_array(X):
            data = X  # the caller checked the columns once for several models (``predict_array``)
        elif self.model._preprocessor is not None:
            data = self.model._preprocess_X(X, reset=False)  # its own encoding and checks
        elif self._plain_frame(X) and (self.table is not None or len(X) <= WALK_MAX_ROWS):
            data = X  # converted block by block: no copy of the whole batch
        else:
            # Without a table (many features per tree) the numpy walk costs more per row than
            # scikit-learn's compiled loop: it only wins on small batches, where sklearn's per-call
            # overhead (150 calls, input checks) dominates.
            return self.model.predict(X)
        # Rows in blocks: the (trees x rows) arrays stay a few MB whatever the batch size.
        blocks = []
        for start in range(0, max(1, len(data)), BLOCK_ROWS):
            block = data[start:start + BLOCK_ROWS]
            if isinstance(block, pd.DataFrame):
                block = block.to_numpy(dtype=np.float64)
            blocks.append(self._predict_block(block))
        return np.concatenate(blocks)

    def _predict_block(self, data: np.ndarray) -> np.ndarray:
        if self.table is not None:
            leaves = self._lookup(data)
        elif self.categorical.any():
            leaves = self._walk_general(data)
        else:
            leaves = self._walk(data)
        # Tree after tree, as scikit-learn adds them (0 + baseline, then each tree's leaf): a
        # cumulative sum down the trees runs the same additions in the same order.
        stacked = np.empty((len(leaves) + 1, data.shape[0]), dtype=np.float64)
        stacked[0] = 0.0
        stacked[0] += self.baseline
        stacked[1:] = leaves
        if stacked.shape[1] < 2:  # one row: the cumulative sum runs the same additions in order
            return np.cumsum(stacked, axis=0)[-1]  # squared / absolute error: the identity link
        # Two or more rows: a reduction over the outer axis of a C-ordered array adds row after row
        # (numpy sums pairwise only along the contiguous axis): that order, a twentieth of the time.
        return np.add.reduce(stacked, axis=0)

    # --- the table of cells -----------------------------------------------------------------------
    # A tree's numeric splits on feature f cut its axis at that tree's thresholds: a row's leaf only
    # depends on which interval (or "missing") it falls in on each feature the tree uses. The cells
    # (products of intervals) are few for shallow trees on few features, so each tree's leaf value
    # is tabulated per cell once (by walking a representative row of every cell), and a batch is
    # then one binary search per feature (against the thresholds of all trees) plus gathers.
    MAX_CELLS = 400_000  # 3.2 MB of leaf values per model; beyond it the walk is used

    def _build_table(self, nodes: np.ndarray, sizes: np.ndarray, width: int) -> Any:
        trees = len(sizes)
        tree_of = np.repeat(np.arange(trees), sizes)
        split = ~self.leaf
        per_tree: list[dict[int, np.ndarray]] = [{} for _ in range(trees)]
        for t, f, thr in zip(tree_of[split], self.feature[split], self.threshold[split], strict=True):
            per_tree[t].setdefault(int(f), []).append(thr)  # type: ignore[arg-type]
        per_tree = [{f: np.unique(np.asarray(v, dtype=np.float64)) for f, v in cuts.items()}
                    for cuts in per_tree]
        # Per tree and feature: len(cuts) + 1 intervals and a "missing" bin; unused features: 1 bin.
        bins = np.ones((trees, width), dtype=np.intp)
        for t, cuts in enumerate(per_tree):
            for f, values in cuts.items():
                bins[t, f] = len(values) + 2
        cells = bins.prod(axis=1)
        if int(cells.sum()) > self.MAX_CELLS:
            return None
        strides = np.ones((trees, width), dtype=np.intp)
        for f in range(width - 2, -1, -1):
            strides[:, f] = strides[:, f + 1] * bins[:, f + 1]
        offsets = np.concatenate([[0], np.cumsum(cells)[:-1]]).astype(np.intp)
        # Global cut points per feature (every tree's), and for each tree the bin of each global bin.
        maps, globals_ = [], []
        for f in range(width):
            union = np.unique(np.concatenate([cuts[f] for cuts in per_tree if f in cuts] or [np.empty(0)]))
            globals_.append(union)
            # global bins: 0..len(union) by searchsorted(side=left), then len(union) + 1 = missing
            mapping = np.zeros((trees, len(union) + 2), dtype=np.intp)
            reps = np.append(union, np.inf)
            for t, cuts in enumerate(per_tree):
                if f in cuts:
                    mapping[t, :-1] = np.searchsorted(cuts[f], reps, side="left")
                    mapping[t, -1] = len(cuts[f]) + 1
            maps.append(mapping * strides[:, f:f + 1])
        # A representative row of every cell of every tree, walked once to the leaf it reaches.
        reps_rows, roots = [], []
        for t, cuts in enumerate(per_tree):
            grids = []
            for f in range(width):
                if f not in cuts:
                    grids.append(np.zeros(1))
                    continue
                values = cuts[f]
                last = np.nextafter(values[-1], np.inf) if np.isfinite(values[-1]) else values[-1]
                grids.append(np.concatenate([values, [last, np.nan]]))  # intervals, then missing
            mesh = np.stack(np.meshgrid(*grids, indexing="ij"), axis=-1).reshape(-1, width)
            reps_rows.append(mesh)
            roots.append(np.full(len(mesh), self.roots[t], dtype=np.intp))
        data = np.concatenate(reps_rows)
        leaves = self._leaves(data, np.concatenate(roots), np.arange(len(data), dtype=np.intp))
        return offsets, maps, globals_, self.value[leaves]

    def _lookup(self, data: np.ndarray) -> np.ndarray:
        offsets, maps, globals_, values = self.table
        cell = None
        for f, (mapping, cuts) in enumerate(zip(maps, globals_, strict=True)):
            column = data[:, f]
            code = np.searchsorted(cuts, column, side="left")
            code[np.isnan(column)] = len(cuts) + 1
            part = mapping.take(code, axis=1)  # take: a third faster than fancy indexing here
            if cell is None:
                cell = part
                cell += offsets[:, None]
            else:
                cell += part
        if cell is None:  # a model without features
            cell = np.broadcast_to(offsets[:, None], (len(offsets), data.shape[0])).copy()
        return values.take(cell)

    def _walk(self, data: np.ndarray) -> np.ndarray:
        """Leaf values, (trees, rows): every tree walks every row."""
        n, trees = data.shape[0], len(self.roots)
        return self.value[self._leaves(data, np.repeat(self.roots, n),
                                       np.tile(np.arange(n, dtype=np.intp), trees))].reshape(trees, n)

    def _leaves(self, data: np.ndarray, roots: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """The leaf each walker (a root and a row of ``data``) ends at, numeric splits only. A missing
        value goes where the node learned: the data is kept twice, missing as -inf (so
        ``value <= threshold`` sends it left) and as NaN (the comparison is False: right); each node
        reads the copy of its side. A walker at a leaf leaves the arrays, so a level costs what is
        still walking."""
        width = data.shape[1]
        both = np.concatenate([np.where(np.isnan(data), -np.inf, data), data], axis=1).reshape(-1)
        out = roots.copy()
        walking = np.flatnonzero(~self.leaf[roots])
        node, row_base = roots[walking], rows[walking] * (2 * width)
        while walking.size:
            go_left = both[row_base + self.read[node]] <= self.threshold[node]
            node = self.children[2 * node + go_left]
            at_leaf = self.leaf[node]
            out[walking[at_leaf]] = node[at_leaf]
            more = ~at_leaf
            walking, node, row_base = walking[more], node[more], row_base[more]
        return out

    def _walk_general(self, data: np.ndarray) -> np.ndarray:
        n = data.shape[0]
        node = np.repeat(self.roots[:, None], n, axis=1)  # (trees, rows): each tree's current node
        rows = np.arange(n)[None, :]
        for _ in range(self.depth):
            leaf = self.leaf[node]
            if leaf.all():
                break
            value = data[rows, self.feature[node]]
            missing = np.isnan(value)
            with np.errstate(invalid="ignore"):
                go_left = np.where(missing, self.missing_left[node], value <= self.threshold[node])
            go_left = self._categorical(node, value, missing, go_left)
            node = np.where(leaf, node, np.where(go_left, self.left[node], self.right[node]))
        return self.value[node]

    def _categorical(self, node: np.ndarray, value: np.ndarray, missing: np.ndarray,
                     go_left: np.ndarray) -> np.ndarray:
        cat = self.categorical[node] & ~missing
        if not cat.any():
            return go_left
        code = np.where(cat & (value >= 0), value, 0).astype(np.uint8).astype(np.intp)
        word, bit = code // 32, (code % 32).astype(np.uint32)
        in_left = (self.left_bitsets[self.bitset[node], word] >> bit) & 1
        in_known = (self.known_bitsets[self.f_idx_map[self.feature[node]], word] >> bit) & 1
        cat_left = np.where(value < 0, self.missing_left[node],
                            (in_left == 1) | ((in_known == 0) & self.missing_left[node]))
        return np.where(cat, cat_left, go_left)

    def takes_array(self, X: np.ndarray) -> bool:
        """A float64 array of the fit's width that the table covers: predicted without a frame."""
        return (self.table is not None and self.model._preprocessor is None and X.ndim == 2
                and X.dtype == np.float64 and X.shape[1] == self.model.n_features_in_)

    def _plain_frame(self, X: Any) -> bool:
        """A frame with the fit's columns, all numeric: what scikit-learn would turn into float64."""
        if not isinstance(X, pd.DataFrame) or self.names is None or list(X.columns) != self.names:
            return False
        return all(pd.api.types.is_float_dtype(t) or pd.api.types.is_integer_dtype(t) for t in X.dtypes)


def _plain(model: Any) -> Any:
    return model


def fast(model: Any) -> Any:
    """``model`` wrapped when it is a fitted single-output ``HistGradientBoostingRegressor`` with the
    squared or absolute error loss; otherwise ``model`` itself."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    if isinstance(model, FastRegressor) or not isinstance(model, HistGradientBoostingRegressor):
        return model
    if getattr(model, "n_trees_per_iteration_", None) != 1 or model.loss not in ("squared_error",
                                                                                    "absolute_error"):
        return model
    try:
        return FastRegressor(model)
    except (AttributeError, KeyError, ValueError):  # another scikit-learn layout: its own predict
        return model


def as_array_for(models: list[Any], X: Any) -> Any:
    """``X`` as one float64 array when every model is a ``FastRegressor`` that takes it (their fit's
    columns, numeric), so several models predicting one frame check and convert it once; else ``X``."""
    if not models or not all(isinstance(m, FastRegressor) for m in models):
        return X
    first = models[0]
    if not first._plain_frame(X) or any(m.names != first.names for m in models):
        return X
    array = X.to_numpy(dtype=np.float64)
    return array if all(m.takes_array(array) for m in models) else X


def speed_up(estimator: Any) -> Any:
    """Wrap the boosted loss models of a label-free regression estimator in place (a no-op for
    others); returns it."""
    for loss_model in (getattr(estimator, "losses", None) or {}).values():
        loss_model.folds = [fast(model) for model in loss_model.folds]  # the cross-fitted loss models
        loss_model.scatter = fast(loss_model.scatter)
    return estimator
