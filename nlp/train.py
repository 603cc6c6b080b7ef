"""Train the shipped sentiment and topic models: ``python -m nlp.train [--data-dir DIR]``.

Deterministic: fixed seeds, sorted inputs, a single-threaded solver, and
coefficients rounded before they are written, so two runs on the same data
write byte-identical files.

Sentiment (3 classes) is trained on

* the bank-domain set ``nlp/data/bank_labelled.jsonl`` (hand-written and
  hand-labelled, fictional bank names, the only source of ``neutral``), given
  a high sample weight because it is the domain we are judged on, and
* a fixed-seed sample of the public binary sets in ``DATA_DIR`` (default
  ``../shared/data`` next to the project; Weibo ``[xx]`` emoticons and
  ``{%…%}`` markup are stripped first because they leak the label).

The topic model is trained on the bank set only (the public sets have no bank
topics), with topic-lexicon hit counts as extra features.

``nlp/data/bank_validation.jsonl`` is never read here: it is the held-out
split that ``yuqing nlp eval`` and ``bench/bench_nlp.py`` report on.
scikit-learn is needed to train only; the shipped models are plain JSON.
"""

from __future__ import annotations

import argparse
import csv
import logging
import random
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from core.settings import Watchlist
from core.vocab import Sentiment, Topic
from nlp import segment
from nlp.evaluate import Example, load_jsonl
from nlp.features import lexicon_features, name_remover, text_features
from nlp.mentions import MentionMatcher
from nlp.model import LinearTextModel, model_dir, rounded, save_model
from nlp.normalize import normalize_for_analysis

log = logging.getLogger(__name__)

SEED = 20261123
MODEL_VERSION = "2026.11-1"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA_DIR = PROJECT_ROOT.parent / "shared" / "data"
BANK_TRAIN = Path(__file__).with_name("data") / "bank_labelled.jsonl"
BANK_VALIDATION = Path(__file__).with_name("data") / "bank_validation.jsonl"

# (file, rows sampled). Public texts are cut to MAX_CHARS: long reviews add
# features, not signal, and bank posts are short.
PUBLIC_SETS: tuple[tuple[str, int], ...] = (
    ("weibo2018_train.csv", 4000),
    ("waimai_10k.csv", 4000),
    ("chnsenticorp_htl_all.csv", 3000),
    ("online_shopping_10_cats.csv", 4000),
    ("weibo_senti_100k_devtest.csv", 4000),
)
MAX_CHARS = 160
BANK_WEIGHT = 25.0
SENTIMENT_C = 4.0
TOPIC_C = 20.0
MIN_DF = 2
MAX_FEATURES = 60000


def load_public(data_dir: Path, seed: int = SEED) -> list[Example]:
    """A fixed-seed sample of the public binary sets (label 0 → negative, 1 → positive).

    Raises ``FileNotFoundError`` with a clear message when ``data_dir`` is missing.
    """
    if not data_dir.is_dir():
        raise FileNotFoundError(
            f"public data directory {data_dir} not found; pass --data-dir "
            "(the CSV files of ../shared/data: text,label)"
        )
    out: list[Example] = []
    for name, n in PUBLIC_SETS:
        path = data_dir / name
        if not path.exists():
            log.warning("skipping missing public set %s", path)
            continue
        with path.open(encoding="utf-8-sig", newline="") as fh:
            rows = [(r["text"], r["label"]) for r in csv.DictReader(fh) if r.get("text")]
        rows.sort()
        random.Random(f"{seed}:{name}").shuffle(rows)
        for text, label in rows[:n]:
            sentiment = Sentiment.POSITIVE if str(label).strip() == "1" else Sentiment.NEGATIVE
            out.append(Example(text=text[:MAX_CHARS], sentiment=sentiment.value))
    return out


# The bank names of the hand-labelled set (the default watchlist's), blanked
# out as the analyzer blanks the configured watchlist's names.
_drop_names = name_remover(
    normalize_for_analysis(n) for n in MentionMatcher(Watchlist()).vocabulary
)


def featurize(text: str) -> Counter[str]:
    """Sentiment features of a raw post (normalised, bank names blanked, as at run time)."""
    norm = _drop_names(normalize_for_analysis(text))
    return text_features(norm, segment.cut_for_analysis(norm))


def topic_featurize(text: str, topic_words: dict[str, tuple[str, ...]]) -> Counter[str]:
    """Topic features: the sentiment features plus topic-lexicon hits."""
    norm = _drop_names(normalize_for_analysis(text))
    feats = text_features(norm, segment.cut_for_analysis(norm))
    feats.update(lexicon_features(norm, topic_words))
    return feats


def fit_linear(
    name: str,
    feats: Sequence[Counter[str]],
    labels: Sequence[str],
    weights: Sequence[float],
    *,
    c: float,
    classes: Sequence[str],
    meta: dict[str, Any],
) -> LinearTextModel:
    """Fit TF-IDF + multinomial logistic regression and export it as a LinearTextModel."""
    import numpy as np
    from sklearn.feature_extraction import DictVectorizer  # type: ignore[import-untyped]
    from sklearn.feature_extraction.text import TfidfTransformer  # type: ignore[import-untyped]
    from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]

    df: Counter[str] = Counter()
    for f in feats:
        df.update(f.keys())
    # Vocabulary: features seen in ≥ MIN_DF posts, the most frequent MAX_FEATURES,
    # ties broken by name so the choice is deterministic.
    vocab = sorted((k for k, v in df.items() if v >= MIN_DF), key=lambda k: (-df[k], k))
    vocab = sorted(vocab[:MAX_FEATURES])
    keep = set(vocab)
    vec = DictVectorizer(sort=True)
    vec.fit([dict.fromkeys(vocab, 1)])
    x = vec.transform([{k: v for k, v in f.items() if k in keep} for f in feats])
    tfidf = TfidfTransformer(sublinear_tf=True, smooth_idf=True)
    x = tfidf.fit_transform(x)
    clf = LogisticRegression(C=c, max_iter=3000, solver="lbfgs", random_state=SEED)
    clf.fit(x, np.asarray(labels), sample_weight=np.asarray(weights))
    order = [list(clf.classes_).index(k) for k in classes]
    coef = clf.coef_[order]
    names = vec.get_feature_names_out()
    weights_out = {}
    for j, feat in enumerate(names):
        col = coef[:, j]
        if float(np.abs(col).max()) < 5e-4:
            continue  # contributes nothing after rounding; keeps the file small
        weights_out[str(feat)] = (round(float(tfidf.idf_[j]), 4), rounded(col))
    return LinearTextModel(
        name=name,
        version=MODEL_VERSION,
        classes=tuple(classes),
        weights=weights_out,
        intercept=rounded(clf.intercept_[order]),
        meta=meta,
    )


def train_sentiment(bank: Sequence[Example], public: Sequence[Example]) -> LinearTextModel:
    """The 3-class sentiment model (bank set weighted ``BANK_WEIGHT``, public set 1)."""
    examples = [*bank, *public]
    weights = [BANK_WEIGHT] * len(bank) + [1.0] * len(public)
    feats = [featurize(e.text) for e in examples]
    meta = {
        "trained_on": {"bank_labelled": len(bank), "public_sample": len(public)},
        "bank_weight": BANK_WEIGHT,
        "C": SENTIMENT_C,
        "seed": SEED,
    }
    return fit_linear(
        "sentiment",
        feats,
        [e.sentiment for e in examples],
        weights,
        c=SENTIMENT_C,
        classes=[s.value for s in Sentiment],
        meta=meta,
    )


def train_topic(
    bank: Sequence[Example], topic_words: dict[str, tuple[str, ...]]
) -> LinearTextModel:
    """The topic model over the taxonomy of DESIGN.md, trained on the bank set."""
    feats = [topic_featurize(e.text, topic_words) for e in bank]
    return fit_linear(
        "topic",
        feats,
        [str(e.topic) for e in bank],
        [1.0] * len(bank),
        c=TOPIC_C,
        classes=[t.value for t in Topic],
        meta={"trained_on": {"bank_labelled": len(bank)}, "C": TOPIC_C, "seed": SEED},
    )


def train_all(data_dir: Path, out_dir: Path) -> list[Path]:
    """Train both models and write them to ``out_dir``; returns the written paths."""
    from nlp.lexicon import load_lexicon

    bank = load_jsonl(BANK_TRAIN)
    public = load_public(data_dir)
    log.info("training sentiment on %d bank + %d public posts", len(bank), len(public))
    sentiment = train_sentiment(bank, public)
    log.info("training topic on %d bank posts", len(bank))
    topic = train_topic(bank, {t.value: w for t, w in load_lexicon().topics.items()})
    return [save_model(sentiment, out_dir), save_model(topic, out_dir)]


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns the process exit code (2 when the data is missing)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--out-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        paths = train_all(args.data_dir, args.out_dir or model_dir())
    except FileNotFoundError as exc:
        log.error("%s", exc)
        return 2
    for path in paths:
        log.info("wrote %s (%.0f kB)", path, path.stat().st_size / 1024)
    return 0


if __name__ == "__main__":
    sys.exit(main())
