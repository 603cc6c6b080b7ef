"""A linear text classifier stored as transparent JSON (no pickle).

The file holds the vocabulary, its IDF weights, one coefficient row per class
and the intercepts. Prediction is TF-IDF (sublinear tf, l2-normalised over the
features in the vocabulary) followed by a softmax over the linear scores —
exactly what ``nlp.train`` fits with scikit-learn, re-implemented in plain
Python so that scikit-learn is needed only to *train*, not to run.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
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

    def predict_proba(self, counts: Mapping[str, float]) -> dict[str, float]:
        """Class probabilities (softmax of scores / temperature), summing to 1."""
        logits = [s / self.temperature for s in self.scores(counts)]
        top = max(logits)
        exps = [math.exp(s - top) for s in logits]
        total = sum(exps)
        return {c: e / total for c, e in zip(self.classes, exps, strict=True)}

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


class JointScorer:
    """Scores several models that share a feature space in one pass.

    The analyzer runs the sentiment and topic models on the same features;
    one dictionary lookup per feature and one gathered matrix replace a
    lookup per model (the models' hot path). Results equal each model's own
    :meth:`LinearTextModel.predict_proba`.
    """

    def __init__(self, models: Sequence[LinearTextModel]) -> None:
        self.models = tuple(models)
        vocab = sorted(set().union(*(m.weights for m in self.models)))
        self._index = {f: i for i, f in enumerate(vocab)}
        k = len(self.models)
        widths = [len(m.classes) for m in self.models]
        self._slices = []
        col = k
        for w in widths:
            self._slices.append(slice(col, col + w))
            col += w
        matrix = np.zeros((len(vocab), col), dtype=np.float64)
        for j, model in enumerate(self.models):
            for feat, (idf, coefs) in model.weights.items():
                row = self._index[feat]
                matrix[row, j] = idf
                matrix[row, self._slices[j]] = coefs
        self._matrix = matrix

    def predict_proba(self, counts: Mapping[str, float]) -> list[dict[str, float]]:
        """Class probabilities of every model, in the order given to the constructor."""
        rows = []
        tf = []
        index = self._index
        for feat, count in counts.items():
            i = index.get(feat)
            if i is not None and count > 0:
                rows.append(i)
                tf.append(count)
        k = len(self.models)
        if rows:
            sub = self._matrix[rows]
            # Columns 0…k-1 hold each model's IDF: tf-idf values of every model at once.
            values = (1.0 + np.log(np.asarray(tf, dtype=np.float64)))[:, None] * sub[:, :k]
            norms = np.sqrt((values * values).sum(axis=0))
            norms[norms == 0.0] = 1.0
            values /= norms
            # Each model's rows weight its own coefficient columns: one product per model.
            dots = [values[:, j] @ sub[:, self._slices[j]] for j in range(k)]
        out = []
        for j, model in enumerate(self.models):
            logits = list(model.intercept)
            if rows:
                logits = [b + float(d) for b, d in zip(logits, dots[j].tolist(), strict=True)]
            scaled = [x / model.temperature for x in logits]
            top = max(scaled)
            exps = [math.exp(x - top) for x in scaled]
            total = sum(exps)
            out.append({c: e / total for c, e in zip(model.classes, exps, strict=True)})
        return out
