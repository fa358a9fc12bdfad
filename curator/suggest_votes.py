"""The k-NN half of label suggestions, kept warm between refreshes.

A `VoteState` holds, for one clustering run and one embedding space, a fixed sample of each
group's members (the queries) and, per query, its nearest labelled items found so far. A refresh
reads only the items whose labels changed since the last one (from `event_items`), searches the
queries against the newly labelled items alone and merges the result into each query's list; an
item that lost its label is dropped, and only the queries that had it among their neighbours are
searched again. So a refresh after one decision costs a search over that decision's items, not
over every labelled item: at 3,000 groups it went from ~20 s to well under a second
(docs/benchmarks.md).

The state is saved in the project folder (`suggest/`, one file per run and space, replaced
atomically) whenever it changed, so the first call of the next process loads it and folds in only
the label changes since, instead of searching every member against every labelled item again
(17-30 s at 3,000 groups, more at 1M). A saved state is used only while its key holds: the same
run and the same vector store; when only the run's groups changed (a split, a merge, their undo)
the state follows them (`regroup`): the queries of groups gone are dropped and those of the new
groups sampled as a fresh build would and searched alone.

Labelled items are searched at a fixed share (`rate`, chosen when the state is built so that at
most `LABELLED_CAP` items are searched; an item is in or out by a hash of its id), so a state
that is updated gives the same neighbours as one built afresh at the same rate (up to the few
neighbours a large build's search through cells may miss: `curator/suggest_search.py`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from curator.catalog import Catalog

log = logging.getLogger(__name__)

K = 10
"""Labelled neighbours per member."""

KERNEL_WIDTH = 0.05
"""A neighbour's vote is exp(-(gap in cosine to the member's nearest labelled item) / this)."""

LABELLED_CAP = 50_000
"""Most labelled items searched when a state is built (a fixed share by id hash beyond)."""

_GOLDEN = 0.6180339887498949

SAVE_DIR = "suggest"
"""Folder of the project holding saved vote states."""

_SAVE_FORMAT = 1

KEEP_SAVED = 4
"""Saved states kept (the newest; one per run and space)."""


def state_key(run_id: int, space: str, group_ids: list[int], store_stamp: tuple[int, int]
              ) -> tuple:
    """What a state is valid for: the run, its active groups in the space, the vector store."""
    digest = hashlib.blake2b(np.asarray(sorted(group_ids), np.int64).tobytes(),
                             digest_size=16).hexdigest()
    return (_SAVE_FORMAT, int(run_id), space, digest, *map(int, store_stamp))


def same_base(a: tuple, b: tuple) -> bool:
    """Whether two state keys name the same run, space and vector store (groups aside)."""
    return len(a) == len(b) and a[:3] == b[:3] and a[4:] == b[4:]


def state_path(root: Path, run_id: int, space: str) -> Path:
    from curator.stores import space_slug

    return Path(root) / SAVE_DIR / f"run-{int(run_id)}-{space_slug(space)}.npz"


def sampled(item_ids: np.ndarray, rate: float) -> np.ndarray:
    """Mask of the items searched at this share: by a hash of the id, so stable across calls."""
    if rate >= 1.0:
        return np.ones(len(item_ids), bool)
    return np.modf(np.asarray(item_ids, np.float64) * _GOLDEN)[0] < rate


def unit_rows(X: np.ndarray) -> np.ndarray:
    X = np.ascontiguousarray(X, np.float32)
    n = np.linalg.norm(X, axis=1, keepdims=True)
    return np.divide(X, n, out=np.zeros_like(X), where=n > 0)


@dataclass
class VoteState:
    """Queries of one run in one space and their nearest labelled items.

    Attributes:
        key: what the state was built for (`state_key`: run, active groups, vector store).
        group_by_item: the run's group of each item id (-1 when none), dense by id.
        q_ids, q_group: item and group of each query row; Q: the queries' unit vectors.
        rate: share of labelled items searched.
        label_by_item: the label id of each labelled item (-1 when none), dense by id.
        srch_ids, srch_vecs: the labelled items searched and their unit vectors (the first
            `n_srch` rows of growing buffers; the vectors of a loaded state are read from the
            store only when a refresh needs them).
        top_sims, top_ids: per query, the kk nearest searched items (best first; -1 = none).
        last_event: the newest event folded in.
        groups: the run's active groups in the space the queries were sampled from.
        dirty: changed since it was last saved.
    """

    key: tuple
    group_by_item: np.ndarray
    q_ids: np.ndarray
    q_group: np.ndarray
    Q: np.ndarray | None
    rate: float
    label_by_item: np.ndarray
    srch_ids: np.ndarray
    srch_vecs: np.ndarray
    top_sims: np.ndarray
    top_ids: np.ndarray
    last_event: int
    n_srch: int = 0
    lock: Any = None
    dirty: bool = True
    store: Any = None
    groups: np.ndarray | None = None

    @property
    def per_group(self) -> int:
        """Queries sampled per group (the neighbour lists hold K + 4 per group)."""
        return (self.top_ids.shape[1] - K) // 4

    @classmethod
    def build(cls, catalog: Catalog, key: tuple, store: Any, item_ids: np.ndarray,
              group_of: np.ndarray, samples: dict[int, np.ndarray], kk: int) -> VoteState:
        """Sample queries, read every labelled item and search them all (the one full search)."""
        gids = sorted(samples)
        q_ids = np.concatenate([samples[g] for g in gids]) if gids else np.empty(0, np.int64)
        q_group = np.repeat(np.asarray(gids, np.int64), [len(samples[g]) for g in gids])
        found, Q = store.lookup(q_ids)
        q_group = q_group[np.isin(q_ids, found)]
        q_ids = found
        last = int(catalog.db.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()[0])
        lab = np.array(catalog.db.execute(
            "SELECT item_id, label_id FROM item_labels WHERE state = 'labelled' AND label_id IS "
            "NOT NULL ORDER BY item_id").fetchall(), np.int64).reshape(-1, 2)
        rate = min(1.0, LABELLED_CAP / max(1, len(lab)))
        group_by_item = _dense(item_ids, group_of)
        label_by_item = _dense(lab[:, 0], lab[:, 1])
        state = cls(key, group_by_item, q_ids, q_group, unit_rows(Q), rate, label_by_item,
                    np.empty(0, np.int64), np.empty((0, Q.shape[1]), np.float32),
                    np.full((len(Q), kk), -np.inf, np.float32), np.full((len(Q), kk), -1, np.int64),
                    last, lock=threading.Lock())
        state._add_searched(store, lab[sampled(lab[:, 0], rate), 0])
        return state

    # --- updates -------------------------------------------------------------------------

    def regroup(self, catalog: Catalog, run_id: int, key: tuple, space_groups: list[int],
                store: Any) -> bool:
        """Follow a split, a merge or their undo: drop the queries of groups gone, sample the
        new groups' members as a fresh build would and search them alone.

        Returns:
            False when the run's items changed as well (then the state must be built afresh).
        """
        if self.groups is None:  # built without its group list: cannot tell what moved
            return False
        new = np.asarray(sorted(space_groups), np.int64)
        removed = np.setdiff1d(self.groups, new)
        added = np.setdiff1d(new, self.groups)
        rows = np.array(catalog.db.execute(
            "SELECT item_id, group_id FROM assignments WHERE run_id = ? AND group_id IN "
            "(SELECT value FROM json_each(?)) ORDER BY item_id",
            [run_id, json.dumps(added.tolist())]).fetchall(), np.int64).reshape(-1, 2)
        gbi = self.group_by_item
        leaving = np.flatnonzero(np.isin(gbi, removed))
        if not np.array_equal(leaving, rows[:, 0]):
            return False  # items came or went, not only moved between groups
        Q = self.queries(store)
        gbi[rows[:, 0]] = rows[:, 1]
        new_ids, new_groups = _sample_like_a_build(gbi, rows[:, 0], rows[:, 1], self.per_group)
        found, X = store.lookup(new_ids)
        new_groups = new_groups[np.isin(new_ids, found)]
        keep = ~np.isin(self.q_group, removed)
        kk = self.top_ids.shape[1]
        n_old = int(keep.sum())
        self.q_ids = np.concatenate([self.q_ids[keep], found])
        self.q_group = np.concatenate([self.q_group[keep], new_groups])
        self.Q = np.concatenate([Q[keep], unit_rows(X).reshape(len(found), Q.shape[1])])
        self.top_sims = np.concatenate([self.top_sims[keep],
                                        np.full((len(found), kk), -np.inf, np.float32)])
        self.top_ids = np.concatenate([self.top_ids[keep], np.full((len(found), kk), -1)])
        self.groups, self.key, self.dirty = new, key, True
        if len(found):
            self._read_vectors(store)
            self._search_rows(np.arange(n_old, n_old + len(found)))
        return True

    def refresh(self, catalog: Catalog, store: Any) -> None:
        """Fold in the label changes since `last_event`."""
        last = int(catalog.db.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()[0])
        if last == self.last_event:
            return
        if last < self.last_event:  # the catalog was restored from a copy older than the state
            raise ValueError("the catalog's history is older than the state")
        rows = np.array(catalog.db.execute(
            "SELECT t.item_id, CASE WHEN l.state = 'labelled' AND l.label_id IS NOT NULL "
            "THEN l.label_id ELSE -1 END FROM (SELECT DISTINCT item_id FROM event_items "
            "WHERE event_id > ?) t LEFT JOIN item_labels l ON l.item_id = t.item_id "
            "ORDER BY t.item_id", [self.last_event]).fetchall(), np.int64).reshape(-1, 2)
        self.last_event = last
        self.dirty = True
        if not len(rows):
            return
        touched, label = rows[:, 0], rows[:, 1]
        if touched.max() >= len(self.label_by_item):
            grown = np.full(int(touched.max()) + 1, -1, np.int64)
            grown[: len(self.label_by_item)] = self.label_by_item
            self.label_by_item = grown
        self.label_by_item[touched] = label
        now = label >= 0
        searched = np.isin(touched, self.srch_ids[: self.n_srch])
        gone = touched[~now & searched]
        new = touched[now & sampled(touched, self.rate) & ~searched]
        if len(gone) or len(new):
            self._read_vectors(store)
        redo = self._remove_searched(gone)
        self._add_searched(store, new, skip=redo)
        if redo.any():
            self._search_rows(np.flatnonzero(redo))

    def queries(self, store: Any) -> np.ndarray:
        """The queries' unit vectors (a loaded state reads them from the store when first
        needed: a vote needs only the neighbour lists)."""
        if self.Q is None:
            store = store or self.store
            found, Q = store.lookup(self.q_ids)
            if len(found) != len(self.q_ids):  # the key pins the store: a damaged save
                raise ValueError("saved suggestion state does not match the vector store")
            self.Q = unit_rows(Q)
        return self.Q

    def _read_vectors(self, store: Any) -> None:
        """Read the searched items' vectors from the store (a loaded state has only their ids)."""
        if self.srch_vecs is not None:
            return
        n = self.n_srch
        found, X = store.lookup(self.srch_ids[:n])
        if len(found) != n:  # the key pins the store, so this means a damaged save
            raise ValueError("saved suggestion state does not match the vector store")
        self.srch_vecs = np.zeros((len(self.srch_ids), X.shape[1]), np.float32)
        self.srch_vecs[:n] = unit_rows(X)

    def _append(self, ids: np.ndarray, X: np.ndarray) -> None:
        """Append searched items into buffers that double when full (no copy per refresh)."""
        n, need = self.n_srch, self.n_srch + len(ids)
        if need > len(self.srch_ids):
            cap = max(need, 2 * len(self.srch_ids), 1024)
            ids_buf = np.full(cap, -1, np.int64)
            vec_buf = np.zeros((cap, X.shape[1]), np.float32)
            ids_buf[:n], vec_buf[:n] = self.srch_ids[:n], self.srch_vecs[:n]
            self.srch_ids, self.srch_vecs = ids_buf, vec_buf
        self.srch_ids[n:need], self.srch_vecs[n:need] = ids, X
        self.n_srch = need

    def _remove_searched(self, gone: np.ndarray) -> np.ndarray:
        """Drop items that lost their label; returns the mask of queries to search again."""
        if not len(gone):
            return np.zeros(len(self.q_group), bool)
        n = self.n_srch
        keep = ~np.isin(self.srch_ids[:n], gone)
        self.n_srch = int(keep.sum())
        self.srch_ids[: self.n_srch] = self.srch_ids[:n][keep]
        self.srch_vecs[: self.n_srch] = self.srch_vecs[:n][keep]
        hit = np.isin(self.top_ids, gone)
        return hit.any(axis=1)

    def _add_searched(self, store: Any, new: np.ndarray, skip: np.ndarray | None = None) -> None:
        """Search the queries (all but `skip`) against newly labelled items and merge."""
        if not len(new):
            return
        found, X = store.lookup(np.sort(new))
        if not len(found):
            return
        X = unit_rows(X)
        self._append(found, X)
        rows = np.arange(len(self.q_group)) if skip is None else np.flatnonzero(~skip)
        if not len(rows):
            return
        kk = self.top_ids.shape[1]
        Q = self.queries(store)
        rows = rows[_may_enter(Q[rows], X, self.top_sims[rows, -1])]
        if not len(rows):
            return
        sims, pos = _search(Q[rows], X, kk)
        # Only queries whose list the new items enter change (most lie far from one decision).
        enter = sims[:, 0] > self.top_sims[rows, -1]
        rows, sims, pos = rows[enter], sims[enter], pos[enter]
        if not len(rows):
            return
        ids_new = np.where(pos >= 0, found[np.clip(pos, 0, None)], -1)
        sims_all = np.concatenate([self.top_sims[rows], sims], axis=1)
        ids_all = np.concatenate([self.top_ids[rows], ids_new], axis=1)
        best = np.argsort(-sims_all, axis=1, kind="stable")[:, :kk]
        self.top_sims[rows] = np.take_along_axis(sims_all, best, axis=1)
        self.top_ids[rows] = np.take_along_axis(ids_all, best, axis=1)

    def _search_rows(self, rows: np.ndarray) -> None:
        """Search these queries again against every searched item (after removals)."""
        kk = self.top_ids.shape[1]
        sims, pos = _search(self.queries(None)[rows], self.srch_vecs[: self.n_srch], kk)
        self.top_sims[rows] = sims
        self.top_ids[rows] = np.where(pos >= 0, self.srch_ids[np.clip(pos, 0, None)], -1)

    # --- saved between processes ----------------------------------------------------------

    def save(self, path: Path) -> None:
        """Write the state (not its vectors: the store has them) and rename it into place."""
        n = self.n_srch
        arrays = {
            "key": np.frombuffer(json.dumps(list(self.key)).encode(), np.uint8),
            "meta": np.array([self.last_event, n], np.int64), "rate": np.array([self.rate]),
            "group_by_item": _narrow(self.group_by_item), "q_ids": self.q_ids,
            "q_group": _narrow(self.q_group), "label_by_item": _narrow(self.label_by_item),
            "srch_ids": self.srch_ids[:n], "top_sims": self.top_sims,
            "top_ids": _narrow(self.top_ids),
            "groups": self.groups if self.groups is not None else np.empty(0, np.int64)}
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
        try:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        self.dirty = False
        # States of older runs are rebuilt if ever asked for again: keep the newest few.
        saved = sorted(path.parent.glob("run-*.npz"), key=lambda f: f.stat().st_mtime_ns)
        for old in saved[:-KEEP_SAVED]:
            old.unlink(missing_ok=True)

    @classmethod
    def load(cls, path: Path, key: tuple, store: Any) -> VoteState | None:
        """The state saved at `path` if it was saved for `key`'s run and vector store (its
        groups may differ: see `regroup`), else None."""
        try:
            with np.load(path) as z:
                saved_key = tuple(json.loads(z["key"].tobytes()))
                if not same_base(saved_key, key):
                    return None
                last, n = (int(v) for v in z["meta"])
                top_ids = z["top_ids"].astype(np.int64)
                return cls(saved_key, z["group_by_item"].astype(np.int64),
                           z["q_ids"].astype(np.int64), z["q_group"].astype(np.int64), None,
                           float(z["rate"][0]),
                           z["label_by_item"].astype(np.int64), z["srch_ids"].copy(), None,
                           z["top_sims"].copy(), top_ids, last, n_srch=n,
                           lock=threading.Lock(), dirty=False, store=store,
                           groups=z["groups"].astype(np.int64))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            log.warning("ignoring the saved suggestion state %s (%s); building it again", path, exc)
            return None

    # --- the vote ------------------------------------------------------------------------

    def votes(self, label_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(group ids, (groups, labels) vote shares): each query's K nearest labelled items of
        another group and a live label vote for it, weighted by a kernel on the gap to the
        nearest one; a group's own members never vote for it."""
        gids, row_of_query = np.unique(self.q_group, return_inverse=True)
        ids = self.top_ids
        valid = ids >= 0
        lab = _at(self.label_by_item, ids)
        # Live labels by id, dense: the label's column, or -1 for a label no longer live.
        column = np.full(int(max(label_ids.max(initial=0), lab.max(initial=0))) + 2, -1, np.int64)
        column[label_ids] = np.arange(len(label_ids))
        li = column[lab]  # lab -1 reads the last slot, always -1
        valid &= li >= 0
        valid &= _at(self.group_by_item, ids) != self.q_group[:, None]
        valid &= np.cumsum(valid, axis=1) <= K
        sims = np.where(valid, self.top_sims, -np.inf)
        first = sims.max(axis=1, initial=-np.inf)
        weight = np.exp(np.where(valid, sims - np.where(np.isfinite(first), first, 0)[:, None],
                                 -np.inf) / KERNEL_WIDTH)
        n_lab = max(len(label_ids), 1)
        flat = row_of_query[:, None] * n_lab + li
        votes = np.bincount(flat[valid], weights=weight[valid], minlength=len(gids) * n_lab)
        votes = votes.astype(np.float64).reshape(len(gids), n_lab)
        total = votes.sum(axis=1, keepdims=True)
        return gids, np.divide(votes, total, out=np.zeros_like(votes), where=total > 0)

    def centroids(self) -> tuple[np.ndarray, np.ndarray]:
        """(group ids, unit mean of each group's query vectors): for the zero-shot match."""
        gids, inv = np.unique(self.q_group, return_inverse=True)
        Q = self.queries(None)
        sums = np.zeros((len(gids), Q.shape[1]), np.float64)
        np.add.at(sums, inv, Q)
        return gids, unit_rows(sums.astype(np.float32))


def _sample_like_a_build(group_by_item: np.ndarray, ids: np.ndarray, groups: np.ndarray,
                         per_group: int) -> tuple[np.ndarray, np.ndarray]:
    """The members a fresh build samples for these groups (`curator.suggest._members_sample`:
    the first `per_group` of each group in one fixed shuffle of all the run's items in the
    space), as (item ids, group of each), by group then id."""
    everyone = np.flatnonzero(group_by_item >= 0)  # the run's items in the space, by id
    order = np.random.default_rng(0).permutation(len(everyone))
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    mine = rank[np.searchsorted(everyone, ids)]
    by = np.lexsort((mine, groups))
    g, i = groups[by], ids[by]
    start = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
    within = np.arange(len(g)) - np.repeat(start, np.diff(np.r_[start, len(g)]))
    take = within < per_group
    g, i = g[take], i[take]
    by = np.lexsort((i, g))
    return i[by], g[by]


def _narrow(a: np.ndarray) -> np.ndarray:
    """int32 on disk where the values fit (they do for any catalog below 2**31 items)."""
    if a.dtype == np.int64 and (not a.size or (a.min() >= -1 and a.max() < 2**31)):
        return a.astype(np.int32)
    return a


def _dense(ids: np.ndarray, values: np.ndarray) -> np.ndarray:
    """An array by item id: values at ids, -1 elsewhere (catalog ids are dense from 1)."""
    out = np.full(int(ids.max(initial=0)) + 1, -1, np.int64)
    out[ids] = values
    return out


def _at(dense: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """dense[ids], -1 for ids that are -1 or beyond its end."""
    ok = (ids >= 0) & (ids < len(dense))
    return np.where(ok, dense[np.where(ok, ids, 0)], -1)


def _may_enter(Q: np.ndarray, X: np.ndarray, worst: np.ndarray) -> np.ndarray:
    """Mask of queries some row of X could be nearer to than `worst`, by a bound, not a search.

    X lies in a cap of angular radius r around its mean direction c; a query at angle a from c
    is then at angle >= a - r from every row (the triangle inequality on the sphere), so its
    cosine to any row is at most cos(max(0, a - r)). One decision's items are a tight cap, so
    most queries are ruled out with one product each instead of one per item.
    """
    c = X.sum(axis=0)
    c /= max(float(np.linalg.norm(c)), 1e-12)
    radius = np.arccos(np.clip(float((X @ c).min()), -1.0, 1.0))
    angle = np.arccos(np.clip(Q @ c, -1.0, 1.0))
    bound = np.cos(np.maximum(angle - radius, 0.0))
    return bound + 1e-4 >= worst


def _search(Q: np.ndarray, X: np.ndarray, kk: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-kk inner products of each query row among X's rows, padded to kk columns: exact,
    or through cells when the search is large (`curator/suggest_search.py`)."""
    from curator.suggest_search import search

    return search(Q, X, kk)
