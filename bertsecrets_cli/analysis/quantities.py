"""Attention quantities beyond raw weights, from one example's maps: row normalisation, rollout and flow.

Rollout and flow follow Abnar and Zuidema (2020, "Quantifying Attention Flow in Transformers"): each
layer's attention, averaged over heads, is mixed with the identity for the residual connection,
A_l = 0.5 * W_l + 0.5 * I (rows renormalised), and

* rollout_l = A_l @ A_{l-1} @ ... @ A_1: how much of input token k reaches position i after layer l;
* flow_l[i, k] = the maximum flow from node i of layer l to input token k in the layered graph whose
  edges (l, i) -> (l-1, j) have capacity A_l[i, j]. It solves L * T * T max-flow problems per example,
  which is why ``extract`` offers it only for short inputs. ``flow`` returns the raw values (rows sum to
  more than 1); stores keep them row-normalised under ``flow``, as the authors' ``compute_flows`` divides
  each row by its sum (samiraabnar/attention_flow, attention_graph_util.py line 84), and raw as ``flow_raw``.

On a causal decoder's lower-triangular maps both read the same way: every edge goes from a position to itself or an
earlier one, so no path leads from position i to a later input k, and rollout and flow are lower-triangular
(exactly 0 above the diagonal); input 0 (the sink) is reachable from every position through every layer.

Pure numpy/scipy: no torch, no HDF5.
"""

from __future__ import annotations

import numpy as np

# capacities become integers for scipy's max-flow: 2**24 levels keep a relative error below 1e-7 per edge
FLOW_SCALE = 1 << 24


def row_normalise(maps: np.ndarray) -> np.ndarray:
    """Rows divided by their sum, so that norms compare with weights; an all-zero row stays zero."""
    m = np.asarray(maps, dtype=np.float32)
    total = m.sum(-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, m / np.where(total > 0, total, 1), 0).astype(np.float32)


def residual_attention(weights: np.ndarray) -> np.ndarray:
    """[L, H, T, T] weights -> [L, T, T]: the head mean mixed half and half with the identity (the residual)."""
    w = np.asarray(weights, dtype=np.float64).mean(1)
    T = w.shape[-1]
    a = 0.5 * w + 0.5 * np.eye(T)[None]
    return a / a.sum(-1, keepdims=True)


def rollout(weights: np.ndarray) -> np.ndarray:
    """[L, H, T, T] weights of one example -> [L, T, T] attention rollout after each layer (rows sum to 1)."""
    a = residual_attention(weights)
    out = np.empty_like(a)
    acc = np.eye(a.shape[-1])
    for layer in range(a.shape[0]):
        acc = a[layer] @ acc
        out[layer] = acc
    return out.astype(np.float32)


def flow(weights: np.ndarray) -> np.ndarray:
    """[L, H, T, T] weights of one example -> [L, T, T] attention flow (costly: L * T^2 max-flow problems).

    Node (l, i) is position i after layer l (l = 0: the input tokens), numbered l * T + i.
    """
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import maximum_flow

    a = residual_attention(weights)
    L, T, _ = a.shape
    out = np.zeros((L, T, T), dtype=np.float32)
    for top in range(1, L + 1):
        # the graph of layers 0..top: edges from (l, i) down to (l - 1, j)
        n = (top + 1) * T
        rows, cols, caps = [], [], []
        for layer in range(1, top + 1):
            cap = np.rint(a[layer - 1] * FLOW_SCALE).astype(np.int64)
            i, j = np.nonzero(cap)
            rows.append(layer * T + i)
            cols.append((layer - 1) * T + j)
            caps.append(cap[i, j])
        graph = csr_matrix((np.concatenate(caps).astype(np.int32), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))
        for i in range(T):
            for k in range(T):
                out[top - 1, i, k] = maximum_flow(graph, top * T + i, k).flow_value / FLOW_SCALE
    return out
