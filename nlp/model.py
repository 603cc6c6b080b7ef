"""A linear text classifier stored as transparent JSON (no pickle).

The file holds the vocabulary, its IDF weights, one coefficient row per class
and the intercepts. Prediction is TF-IDF (sublinear tf, l2-normalised over the
features in the vocabulary) followed by a softmax over the linear scores —
exactly what ``nlp.train`` fits with scikit-learn, re-implemented in plain
Python so that scikit-learn is needed only to *train*, not to run.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = "yuqing-linear-1"


class LinearTextModel:
    """Multinomial linear model over sparse TF-IDF features.

    ``weights[feature]`` is ``(idf, (coef_class_0, coef_class_1, …))``. At
    prediction time the coefficients live in one numpy matrix, so scoring a
    post is a single gather-and-dot instead of a Python loop per class.
    """

    def __init__(
        self,
        *,
        name: str,
        version: str,
        classes: tuple[str, ...],
        weights: Mapping[str, tuple[float, tuple[float, ...]]],
        intercept: tuple[float, ...],
        temperature: float = 1.0,
        meta: Mapping[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.version = version
        self.classes = classes
        self.weights = weights
        self.intercept = intercept
        self.temperature = temperature
        self.meta = dict(meta or {})
        self.digest = ""  # first 8 hex digits of the file's SHA-256, set by load_model
        self._index = {f: i for i, f in enumerate(weights)}
        self._idf = np.array([w[0] for w in weights.values()], dtype=np.float64)
        self._coef = np.array([w[1] for w in weights.values()], dtype=np.float64).reshape(
            len(weights), len(classes)
        )
        self._intercept = np.array(intercept, dtype=np.float64)

    def scores(self, counts: Mapping[str, float]) -> list[float]:
        """Linear scores (logits before temperature) per class for raw feature counts."""
        rows = []
        tf = []
        index = self._index
        for feat, count in counts.items():
            i = index.get(feat)
            if i is not None and count > 0:
                rows.append(i)
                tf.append(count)
        if not rows:
            return [float(x) for x in self._intercept]
        idx = np.array(rows, dtype=np.intp)
        values = (1.0 + np.log(np.array(tf, dtype=np.float64))) * self._idf[idx]
        values /= math.sqrt(float(values @ values))
        return [float(x) for x in self._intercept + values @ self._coef[idx]]

    def predict_proba(
        self, counts: Mapping[str, float], *, temperature: float | None = None
    ) -> dict[str, float]:
        """Class probabilities (softmax of scores / temperature), summing to 1.

        ``temperature`` overrides the calibrated one (``1.0``: the raw model,
        to measure what calibration changed).
        """
        proba = softmax(self.scores(counts), temperature or self.temperature)
        return dict(zip(self.classes, proba, strict=True))

    # -- persistence ---------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """The JSON-ready form (features sorted, so the file is byte-stable)."""
        feats = sorted(self.weights)
        return {
            "format": FORMAT,
            "name": self.name,
            "version": self.version,
            "classes": list(self.classes),
            "temperature": self.temperature,
            "intercept": list(self.intercept),
            "meta": dict(self.meta),
            "features": feats,
            "idf": [self.weights[f][0] for f in feats],
            "coef": [list(self.weights[f][1]) for f in feats],
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> LinearTextModel:
        """Build from :meth:`to_json` output. Raises ``ValueError`` on another format."""
        if raw.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} model: format={raw.get('format')!r}")
        classes = tuple(raw["classes"])
        weights = {
            f: (float(idf), tuple(float(c) for c in coefs))
            for f, idf, coefs in zip(raw["features"], raw["idf"], raw["coef"], strict=True)
        }
        return cls(
            name=str(raw["name"]),
            version=str(raw["version"]),
            classes=classes,
            weights=weights,
            intercept=tuple(float(x) for x in raw["intercept"]),
            temperature=float(raw.get("temperature", 1.0)),
            meta=raw.get("meta") or {},
        )


def softmax(logits: Sequence[float], temperature: float = 1.0) -> list[float]:
    """Softmax of ``logits / temperature`` (max-shifted, so large logits cannot overflow)."""
    top = max(logits)
    exps = [math.exp((x - top) / temperature) for x in logits]
    total = sum(exps)
    return [e / total for e in exps]


def _softmax_rows(logits: np.ndarray, temperature: float) -> np.ndarray:
    """:func:`softmax` of each row of a (posts × classes) array, computed in place."""
    logits -= logits.max(axis=1, keepdims=True)
    logits /= temperature
    np.exp(logits, out=logits)
    logits /= logits.sum(axis=1, keepdims=True)
    return logits


def model_dir() -> Path:
    """Where the shipped models live (``nlp/data/models``)."""
    return Path(str(resources.files("nlp") / "data" / "models"))


def load_model(name: str, directory: Path | None = None) -> LinearTextModel:
    """Load ``<name>.json`` from ``directory`` (default: the shipped models).

    Raises ``FileNotFoundError`` when the model was never trained
    (run ``python -m nlp.train``).
    """
    path = (directory or model_dir()) / f"{name}.json"
    data = path.read_bytes()
    model = LinearTextModel.from_json(json.loads(data))
    # The file's hash joins the version string: a retrained file can never
    # pass for the old one in stored analyses even if nobody bumps the version.
    model.digest = hashlib.sha256(data).hexdigest()[:8]
    return model


def save_model(model: LinearTextModel, directory: Path) -> Path:
    """Write ``<name>.json`` compactly (one line per feature) and return its path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{model.name}.json"
    raw = model.to_json()
    head = {k: v for k, v in raw.items() if k not in ("features", "idf", "coef")}
    lines = [json.dumps(head, ensure_ascii=False, sort_keys=True)[:-1] + ', "features": [']
    rows = [json.dumps(f, ensure_ascii=False) for f in raw["features"]]
    lines.append(",\n".join(rows))
    lines.append('], "idf": ' + json.dumps(raw["idf"]))
    lines.append(', "coef": ' + json.dumps(raw["coef"], separators=(",", ":")) + "}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def rounded(values: Sequence[float], digits: int = 4) -> tuple[float, ...]:
    """Round coefficients for a small, stable file (4 decimals change no prediction here)."""
    return tuple(round(float(v), digits) for v in values)


GRAM_PREFIX = "c:"


class JointScorer:
    """Scores several models that share a feature space in one pass.

    The analyzer runs the sentiment and topic models on the same features:
    one lookup per feature and one gathered matrix replace a lookup per
    model. Per feature (row) the matrix holds each model's IDF² (for the l2
    norm) and IDF × coefficient (so a post's logits are one vector-matrix
    product divided by the norm). Character n-grams (``c:<gram>``) are looked
    up without their prefix (see ``nlp.features.split_features``). Row 0 is
    all zeros and every unknown feature maps to it, so the lookup needs no
    branch. Rows are ordered most common feature first (lowest IDF), which
    keeps the rows a post touches close together in memory. Results equal
    each model's own :meth:`LinearTextModel.predict_proba` up to float rounding.
    """

    def __init__(self, models: Sequence[LinearTextModel]) -> None:
        self.models = tuple(models)
        lowest_idf: dict[str, float] = {}
        for model in self.models:
            for feat, (feat_idf, _) in model.weights.items():
                lowest_idf[feat] = min(feat_idf, lowest_idf.get(feat, feat_idf))
        vocab = sorted(lowest_idf, key=lambda f: (lowest_idf[f], f))
        index = {f: i for i, f in enumerate(vocab, start=1)}
        cut = len(GRAM_PREFIX)
        self._grams = {f[cut:]: i for f, i in index.items() if f.startswith(GRAM_PREFIX)}
        self._named = {f: i for f, i in index.items() if not f.startswith(GRAM_PREFIX)}
        # Both in one dictionary for predict_mixed: a gram never contains ":".
        self._mixed = {**self._grams, **self._named}
        k = len(self.models)
        self._slices: list[slice] = []
        col = k
        for model in self.models:
            self._slices.append(slice(col, col + len(model.classes)))
            col += len(model.classes)
        matrix = np.zeros((len(vocab) + 1, col), dtype=np.float64)
        for j, model in enumerate(self.models):
            rows = np.array([index[f] for f in model.weights], dtype=np.intp)
            idf = np.array([w[0] for w in model.weights.values()], dtype=np.float64)
            coef = np.array([w[1] for w in model.weights.values()], dtype=np.float64)
            matrix[rows, j] = idf * idf
            matrix[rows, self._slices[j]] = idf[:, None] * coef.reshape(len(rows), -1)
        self._matrix = matrix
        self._intercepts = [tuple(float(b) for b in m.intercept) for m in self.models]
        self._temperatures = [float(m.temperature) for m in self.models]
        self._heads = list(zip(self._slices, self._intercepts, self._temperatures, strict=True))

    def predict_arrays(
        self, named: Mapping[str, float], grams: Mapping[str, float]
    ) -> list[list[float]]:
        """Class probabilities of every model, each in its model's class order.

        ``named`` holds full feature names (``w:…``, ``n:…``, ``l:…``),
        ``grams`` character n-grams without the ``c:`` prefix. Counts must be
        positive (as ``Counter`` gives them); :meth:`predict_proba` filters.
        """
        zero = itertools.repeat(0)
        return self._predict(
            itertools.chain(map(self._grams.get, grams, zero), map(self._named.get, named, zero)),
            [*grams.values(), *named.values()],
        )

    def predict_mixed(self, counts: Mapping[str, float]) -> list[list[float]]:
        """:meth:`predict_arrays` of ``nlp.features.mixed_features`` output (one mapping)."""
        return self._predict(map(self._mixed.get, counts, itertools.repeat(0)), counts.values())

    def pushes(
        self, counts: Mapping[str, float], model: int, towards: int, away: int
    ) -> list[float]:
        """Per feature of ``counts`` (``mixed_features`` output, in its order), how much
        it moves model ``model``'s logit of class ``towards`` above class ``away``:
        (1 + log count) × IDF × (coefficient difference), before the post's l2
        norm (the same for every feature, so the order is the explanation).
        Features the model does not know give 0."""
        n = len(counts)
        if not n:
            return []
        sub = self._matrix[
            np.fromiter(map(self._mixed.get, counts, itertools.repeat(0)), dtype=np.intp, count=n)
        ]
        first = self._slices[model].start
        diff = sub[:, first + towards] - sub[:, first + away]
        diff *= 1.0 + np.log(np.fromiter(counts.values(), dtype=np.float64, count=n))
        return diff.tolist()  # type: ignore[no-any-return]

    def _predict(self, rows: Iterable[int], counts: Collection[float]) -> list[list[float]]:
        """Probabilities per model from the matrix rows of a post's features and their counts.

        Plain Python after one gather and one product: on a single post numpy's
        per-call cost is larger than the math of the softmax.
        """
        n = len(counts)
        if not n:
            return [softmax(b, t) for _, b, t in self._heads]
        sub = self._matrix.take(np.fromiter(rows, dtype=np.intp, count=n), axis=0)
        if max(counts) == 1:
            # Every feature once (about a third of posts): tf weights are all 1, one column sum.
            dots = sub.sum(axis=0).tolist()
            squares = dots
        else:
            weight = np.fromiter(counts, dtype=np.float64, count=n)
            np.log(weight, out=weight)
            weight += 1.0  # sublinear tf: 1 + log(count)
            dots = (weight @ sub).tolist()
            weight *= weight
            squares = (weight @ sub[:, : len(self.models)]).tolist()
        out = []
        for j, (columns, intercept, temperature) in enumerate(self._heads):
            norm = math.sqrt(squares[j]) or 1.0
            # softmax() inlined: (b + d / norm) / T, max-shifted.
            logits = [
                (b + d / norm) / temperature for b, d in zip(intercept, dots[columns], strict=True)
            ]
            top = max(logits)
            exps = [math.exp(x - top) for x in logits]
            total = sum(exps)
            out.append([e / total for e in exps])
        return out

    def predict_mixed_many(self, batch: Sequence[Mapping[str, float]]) -> list[list[list[float]]]:
        """:meth:`predict_mixed` of every mapping in ``batch``, in input order, in one numpy pass.

        ``result[i][j]`` is model ``j``'s class probabilities (temperature
        applied) for ``batch[i]``, equal to ``predict_mixed(batch[i])`` up to
        float rounding (sums run in another order; the tests hold it to
        1e-9). A mapping with no feature, or none the models know, gets each
        model's softmax of its intercepts. Counts must be positive, as for
        :meth:`predict_mixed`. Memory grows with the total number of features
        × the matrix width, so callers pass bounded chunks (the analyzer: 512).
        """
        n_posts = len(batch)
        if not n_posts:
            return []
        sizes = np.fromiter(map(len, batch), dtype=np.intp, count=n_posts)
        total = int(sizes.sum())
        sums = np.zeros((n_posts, self._matrix.shape[1]), dtype=np.float64)
        if total:
            zero = itertools.repeat(0)  # unknown features -> the all-zero row 0
            lookup = self._mixed.get
            rows = np.fromiter(
                itertools.chain.from_iterable(map(lookup, counts, zero) for counts in batch),
                dtype=np.intp,
                count=total,
            )
            tf = np.fromiter(
                itertools.chain.from_iterable(counts.values() for counts in batch),
                dtype=np.float64,
                count=total,
            )
            sub = self._matrix[rows]
            repeated = np.flatnonzero(tf != 1.0)
            if repeated.size:
                # Sublinear tf 1 + log(count): a count of 1 weighs exactly 1, so
                # only the rows of repeated features are scaled (few in most posts).
                weight = np.log(tf[repeated])
                weight += 1.0
                k = len(self.models)
                sub[repeated, :k] *= (weight * weight)[:, None]
                sub[repeated, k:] *= weight[:, None]
            # reduceat gives an empty segment the row at its start (and fails on
            # one at the very end), so only posts with features are reduced:
            # their starts strictly increase, and each segment then ends exactly
            # where the next post with features starts.
            filled = sizes > 0
            starts = (np.cumsum(sizes) - sizes)[filled]
            sums[filled] = np.add.reduceat(sub, starts, axis=0)
        return self._proba_many(sums)

    def _proba_many(self, sums: np.ndarray) -> list[list[list[float]]]:
        """Per post and model, class probabilities from summed matrix rows (posts × columns).

        The array form of the loop at the end of :meth:`_predict` (which stays
        plain Python: on one post numpy's per-call cost is ≈ 4× the math).
        """
        k = len(self.models)
        norms = np.sqrt(sums[:, :k])
        norms[norms == 0.0] = 1.0  # no known feature: logits are the intercepts, as in _predict
        per_model = []
        for j, (columns, intercept) in enumerate(zip(self._slices, self._intercepts, strict=True)):
            logits = sums[:, columns] / norms[:, j, None]
            logits += np.asarray(intercept, dtype=np.float64)
            per_model.append(_softmax_rows(logits, self._temperatures[j]).tolist())
        return [list(post) for post in zip(*per_model, strict=True)]

    def predict_proba(self, counts: Mapping[str, float]) -> list[dict[str, float]]:
        """Class probabilities of every model for named counts (``c:`` grams included)."""
        cut = len(GRAM_PREFIX)
        named = {f: c for f, c in counts.items() if c > 0 and not f.startswith(GRAM_PREFIX)}
        grams = {f[cut:]: c for f, c in counts.items() if c > 0 and f.startswith(GRAM_PREFIX)}
        return [
            dict(zip(model.classes, proba, strict=True))
            for model, proba in zip(self.models, self.predict_arrays(named, grams), strict=True)
        ]
