"""Train the shipped sentiment, topic and crisis models: ``python -m nlp.train [--data-dir DIR]``.

Deterministic: fixed seeds, sorted inputs, a single-threaded solver, and
coefficients rounded before they are written, so two runs on the same data
write byte-identical files.

Sentiment (3 classes) is trained on

* the hand-labelled bank files ``TRAIN_FILES`` (fictional bank names, the
  only source of ``neutral``; see ``nlp/data/LABELLING.md``), weighted
  ``BANK_WEIGHT`` because they are the domain we are judged on, and
* a fixed-seed sample of the public binary sets in ``DATA_DIR`` (default
  ``../shared/data`` next to the project; Weibo ``[xx]`` emoticons and
  ``{%…%}`` markup are stripped first because they leak the label).

The topic model (the taxonomy of DESIGN.md) and the crisis model (``none``
or the critical signal a post is about) are trained on the bank files only,
with lexicon cue counts (topic words, signal triggers) as extra features. The crisis model's
thresholds on P(critical) — to raise a signal alone, and to confirm the
lexicon's — are chosen together on cross-fitted posts: the most precise pair
that reaches the recall target (:func:`critical_thresholds`).

Calibration: each model's probabilities are temperature-scaled. The
temperature is fitted (least negative log-likelihood on a fixed grid) on
*cross-fitted* logits of the bank training posts: each post is scored by a
model trained without the file it comes from (public data always in), and
each file has its own author, so every post is scored as new authors' text
is at run time; it is kept only if it also lowers the cross-fitted ECE. So
the calibration split is never trained on by the model that scores it, and
the shipped model still learns from every bank post. The temperature and the before/after
log-loss and ECE go into the model file's ``meta.calibration``.

The validation files ``VALIDATION_FILES`` are never read here (the team's
held-out split, a later noisier file, and files written blind, each scored
once with one round's models; the comments above each constant say which
round and how blind). They are what ``yuqing nlp eval`` and
``bench/bench_nlp.py`` report on; a test checks that the training and
validation files are pairwise disjoint.
scikit-learn is needed to train only; the shipped models are plain JSON.
"""

from __future__ import annotations

import argparse
import csv
import logging
import math
import os
import random
import sys
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from core.settings import Watchlist
from core.vocab import Sentiment, Topic
from nlp import segment
from nlp.evaluate import Example, class_report, expected_calibration_error, load_jsonl
from nlp.features import TopicCues, name_remover, text_features
from nlp.lexicon import Lexicon, load_lexicon
from nlp.mentions import MentionMatcher
from nlp.model import LinearTextModel, model_dir, rounded, save_model, softmax
from nlp.normalize import normalize_for_analysis

log = logging.getLogger(__name__)

SEED = 20261123
MODEL_VERSION = "2026.11-2"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA_DIR = PROJECT_ROOT.parent / "shared" / "data"
BANK_TRAIN = Path(__file__).with_name("data") / "bank_labelled.jsonl"
# Written and labelled later by other authors, each without sight of the other
# bank files, the lexicon or the models (see docs/nlp.md): more wording for
# the crisis signals, neutral questions and unmarked sarcasm (extra); posts
# that share a crisis's words or theme but are not one (hard).
BANK_TRAIN_EXTRA = Path(__file__).with_name("data") / "bank_labelled_extra.jsonl"
BANK_TRAIN_HARD = Path(__file__).with_name("data") / "bank_labelled_hard.jsonl"
# Contrast pairs written blind: the same situation as one customer's own problem
# (not critical) and as many people's / spreading / a real threat (critical).
BANK_TRAIN_CONTRAST = Path(__file__).with_name("data") / "bank_labelled_contrast.jsonl"
# One-liners (6–25 characters), written blind: a bare rumour is critical too.
BANK_TRAIN_SHORT = Path(__file__).with_name("data") / "bank_labelled_short.jsonl"
# Written blind from a brief naming the holdout file's main error (neutral
# questions, notices and flat news on worrying subjects read as negative).
BANK_TRAIN_NEUTRAL = Path(__file__).with_name("data") / "bank_labelled_neutral.jsonl"
# Three more written blind on 2026-12-07 (third round), each by its own author: look-alikes of
# the seven crises (resolved, another bank's, only asked about, one customer's,
# notices, jokes, figures of speech) beside understated real ones (lookalike);
# the author's tone against the subject's (tone: neutral questions and notices
# on worrying subjects, praise in negative words, politely worded complaints);
# and a week of text as five platforms write it (stream: Weibo, forums,
# complaint tickets, app reviews, news).
BANK_TRAIN_LOOKALIKE = Path(__file__).with_name("data") / "bank_labelled_lookalike.jsonl"
BANK_TRAIN_TONE = Path(__file__).with_name("data") / "bank_labelled_tone.jsonl"
BANK_TRAIN_STREAM = Path(__file__).with_name("data") / "bank_labelled_stream.jsonl"
# Pairs written blind after that round: one short claim asserted about the bank
# (critical) beside the same claim asked, doubted, denied, over, joked about or
# told of another bank (not). The earlier files held nearly only the asked form
# of bare rumours, so "澜海银行要倒闭了" itself had read as harmless (P 0.02).
BANK_TRAIN_PAIRS = Path(__file__).with_name("data") / "bank_labelled_pairs.jsonl"
# Written blind in the fourth round (2026-12-07), from a brief naming the crisis
# model's false alarms by kind (a matter over, another bank's, only asked about,
# one customer's, everyday words that look scary) beside subtle real crises.
BANK_TRAIN_SCOPE = Path(__file__).with_name("data") / "bank_labelled_scope.jsonl"
# Written blind in the fifth round, after the audit file's misses (three long
# posts, each with the crisis in one sentence): 240 posts of 128–355
# characters, real crises told in passing beside long harmless stories.
BANK_TRAIN_LONG = Path(__file__).with_name("data") / "bank_labelled_long.jsonl"
# Written blind in the sixth round, from a brief naming the topic model's most
# frequent confusions on the validation files (fraud vs the app, marketing vs
# other, service vs deposits, rumours vs deposits, legal vs rumours vs other):
# posts that share words across a boundary but whose main subject is one side.
BANK_TRAIN_TOPICS = Path(__file__).with_name("data") / "bank_labelled_topics.jsonl"
# Written blind in the sixth round as a validation file (110 long posts, to decide
# whether the crisis model reads long posts whole or sentence by sentence), scored
# once, then moved here in the seventh: the only other long-post file was one
# author's, so cross-fitting held out every long post a model could learn from.
BANK_TRAIN_VERDICT = Path(__file__).with_name("data") / "bank_labelled_verdict.jsonl"
# Written blind in the eighth round, after the sentinel and longform files' single
# looks: everyday banking situations across all twelve topics (everyday), and
# long texts of several voices or items — threads with replies, group chats, news
# roundups, tickets with the bank's reply — with a crisis sometimes in one reply
# or one item only (threads).
BANK_TRAIN_EVERYDAY = Path(__file__).with_name("data") / "bank_labelled_everyday.jsonl"
BANK_TRAIN_THREADS = Path(__file__).with_name("data") / "bank_labelled_threads.jsonl"
# Written blind in the ninth round, each by its own author from the guide alone,
# after a second labeller's agreement showed the models' misses are not the
# labels' (docs/nlp.md): texts of several voices or items (voices); the boundary
# of neutral and negative, the commonest sentiment confusion cross-fitted
# (tenor); the topic boundaries confused most cross-fitted (subjects); attitude
# not on the surface — praise after trouble, irony, negated praise (turns); and a
# provincial city's quarter of ordinary posts (quarter).
BANK_TRAIN_VOICES = Path(__file__).with_name("data") / "bank_labelled_voices.jsonl"
BANK_TRAIN_TENOR = Path(__file__).with_name("data") / "bank_labelled_tenor.jsonl"
BANK_TRAIN_SUBJECTS = Path(__file__).with_name("data") / "bank_labelled_subjects.jsonl"
BANK_TRAIN_TURNS = Path(__file__).with_name("data") / "bank_labelled_turns.jsonl"
BANK_TRAIN_QUARTER = Path(__file__).with_name("data") / "bank_labelled_quarter.jsonl"
# Written blind in the ninth round after a unit test's plain crisis post
# (…集体维权) fell below the confirm threshold: most of the lexicon's standard
# crisis words (集体维权, 上访, 群诉, 董事长失联, 轻生 …) were in no critical
# training post, so the crisis model could not confirm them. Crises in the
# standard words of reporters and customers, and the same words in posts that
# are not crises (asked about, denied, another bank, figures of speech).
BANK_TRAIN_PLAIN = Path(__file__).with_name("data") / "bank_labelled_plain.jsonl"
TRAIN_FILES = (
    BANK_TRAIN,
    BANK_TRAIN_EXTRA,
    BANK_TRAIN_HARD,
    BANK_TRAIN_CONTRAST,
    BANK_TRAIN_SHORT,
    BANK_TRAIN_NEUTRAL,
    BANK_TRAIN_LOOKALIKE,
    BANK_TRAIN_TONE,
    BANK_TRAIN_STREAM,
    BANK_TRAIN_PAIRS,
    BANK_TRAIN_SCOPE,
    BANK_TRAIN_LONG,
    BANK_TRAIN_TOPICS,
    BANK_TRAIN_VERDICT,
    BANK_TRAIN_EVERYDAY,
    BANK_TRAIN_THREADS,
    BANK_TRAIN_VOICES,
    BANK_TRAIN_TENOR,
    BANK_TRAIN_SUBJECTS,
    BANK_TRAIN_TURNS,
    BANK_TRAIN_QUARTER,
    BANK_TRAIN_PLAIN,
)
BANK_VALIDATION = Path(__file__).with_name("data") / "bank_validation.jsonl"
BANK_VALIDATION_INDEPENDENT = Path(__file__).with_name("data") / "bank_validation_independent.jsonl"
# Written blind (no sight of any other bank file, the lexicon or the models),
# labelled as written, and first scored after the crisis model was trained.
BANK_VALIDATION_FRESH = Path(__file__).with_name("data") / "bank_validation_fresh.jsonl"
# Written blind like the fresh file, then left unread (by people and models)
# until the models of 2026-12-07 were final: scored once, never tuned on.
BANK_VALIDATION_HOLDOUT = Path(__file__).with_name("data") / "bank_validation_holdout.jsonl"
# Written blind after the holdout file's errors were read (its neutral posts
# read as negative shaped the brief of bank_labelled_neutral.jsonl); scored once,
# after the models trained with that file were final.
BANK_VALIDATION_BLIND = Path(__file__).with_name("data") / "bank_validation_blind.jsonl"
# Written blind before any change of that round (in parallel with the lookalike,
# tone and stream training files), left unread until the models trained with
# those were final, and scored once.
BANK_VALIDATION_SEALED = Path(__file__).with_name("data") / "bank_validation_sealed.jsonl"
# Written blind after the sealed file was scored (its author saw only the other
# files' names), in parallel with the pairs training file; left unread until the
# models trained with that file were final, and scored once.
BANK_VALIDATION_FINAL = Path(__file__).with_name("data") / "bank_validation_final.jsonl"
# Written blind at the start of the fourth round, before the scope training file
# and in parallel with it (its author saw the labelling guide only, no file
# names); left unread until the models trained with that file were final, and
# scored once.
BANK_VALIDATION_AUDIT = Path(__file__).with_name("data") / "bank_validation_audit.jsonl"
# Written blind at the start of the fifth round (the guide only), in parallel
# with the long-posts training file; left unread until the models of that round
# (long file, sentence reading, negation scope) were final, and scored once;
# one post, a training post word for word, was removed after (199 left).
BANK_VALIDATION_UNSEEN = Path(__file__).with_name("data") / "bank_validation_unseen.jsonl"
# Written blind at the start of the sixth round (the guide only), in parallel with
# the topics training file and the verdict file; a week's ordinary mix, left
# unread until that round's models were final and scored once; scored again
# with the seventh round's models (its errors still unread).
BANK_VALIDATION_CONFIRM = Path(__file__).with_name("data") / "bank_validation_confirm.jsonl"
# Written blind at the start of the seventh round (the guide only), each by its
# own author, while the verdict file moved into training; left unread until that
# round's models were final, and scored once. Sentinel: a fortnight's mix, asked
# for everyday situations beyond the usual crises; longform: 120 long posts.
BANK_VALIDATION_SENTINEL = Path(__file__).with_name("data") / "bank_validation_sentinel.jsonl"
BANK_VALIDATION_LONGFORM = Path(__file__).with_name("data") / "bank_validation_longform.jsonl"
# Written blind at the start of the eighth round (the guide only), each by its own
# author, in parallel with that round's training files; left unread until its
# models were final, and scored once. Ledger: a month's mix; forum: 130 long
# texts of several voices or items.
BANK_VALIDATION_LEDGER = Path(__file__).with_name("data") / "bank_validation_ledger.jsonl"
BANK_VALIDATION_FORUM = Path(__file__).with_name("data") / "bank_validation_forum.jsonl"
# Written blind at the start of the ninth round (the guide only), each by its own
# author, in parallel with that round's training files; left unread until its
# models were final, and scored once. Chorus: 160 texts of several voices or items
# and 40 short posts; month: a month's mix.
BANK_VALIDATION_CHORUS = Path(__file__).with_name("data") / "bank_validation_chorus.jsonl"
BANK_VALIDATION_MONTH = Path(__file__).with_name("data") / "bank_validation_month.jsonl"
# Written blind in the tenth round, each by its own author, to decide the crisis
# recall target (0.95 or 0.96); left unread and scored once with each. Relay:
# 140 texts of several voices or items and 60 short posts; season: a season's mix.
BANK_VALIDATION_RELAY = Path(__file__).with_name("data") / "bank_validation_relay.jsonl"
BANK_VALIDATION_SEASON = Path(__file__).with_name("data") / "bank_validation_season.jsonl"
VALIDATION_FILES = (
    BANK_VALIDATION,
    BANK_VALIDATION_INDEPENDENT,
    BANK_VALIDATION_FRESH,
    BANK_VALIDATION_HOLDOUT,
    BANK_VALIDATION_BLIND,
    BANK_VALIDATION_SEALED,
    BANK_VALIDATION_FINAL,
    BANK_VALIDATION_AUDIT,
    BANK_VALIDATION_UNSEEN,
    BANK_VALIDATION_CONFIRM,
    BANK_VALIDATION_SENTINEL,
    BANK_VALIDATION_LONGFORM,
    BANK_VALIDATION_LEDGER,
    BANK_VALIDATION_FORUM,
    BANK_VALIDATION_CHORUS,
    BANK_VALIDATION_MONTH,
    BANK_VALIDATION_RELAY,
    BANK_VALIDATION_SEASON,
)
# A second labeller's labels of some validation files (same texts, same order,
# labelled from the guide alone without seeing the first labels or any model):
# how far two readers agree bounds what a model can be asked to reach there.
SECOND_LABELS_DIR = Path(__file__).with_name("data") / "second_labels"

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
# The bank posts' weight against the public sample in the sentiment model.
# 25 when there were 352 bank posts; with 1,120 the cross-fitted macro-F1 is
# 0.808 at 25, 0.798 at 12 and 0.789 at 8, but at 25 the bank sentences the
# tests hold it to (客户经理很耐心 → positive, the issue's own example) fail:
# char n-grams such as 客户 learn "negative" from the crisis posts. 12 is the
# largest tried that gets them all right (the validation files were not used).
BANK_WEIGHT = 12.0
# Sentiment macro-F1 on the 2,920 bank posts cross-fitted by source file
# (BANK_WEIGHT 12): C = 4 0.818, 2 0.823, 1 0.826, 0.5 0.829 — but at 0.5
# 一点都不满意 reads as praise (the same order with random folds). At weight 16
# or 20, 很不耐心 reads as praise. Topic (C 10/20/40: 0.819/0.820/0.818) and
# crisis (C 5/10/20: F2 0.904/0.906/0.906), measured with random folds, are
# flat, so they stay.
SENTIMENT_C = 1.0
TOPIC_C = 20.0
CRISIS_C = 10.0
CRISIS_NONE = "none"
# The crisis rule's operating point: the thresholds are the most precise ones
# whose recall on the cross-fitted training posts reaches it. The goal
# is 0.95; aimed at exactly 0.95, new authors' long texts fell below it (forum
# 0.945, longform 0.909), so the target keeps a point in hand (tenth round,
# decided on two blind files: 2 crises missed instead of 3, precision ≥ 0.9).
CRITICAL_RECALL_TARGET = 0.96
MIN_DF = 2
# Chosen by the cross-fitted macro-F1 of the sentiment model on the bank
# training posts (meta.calibration.cv_macro_f1, never the validation files),
# measured with the unpruned jieba dictionary: 7k 0.754, 10k 0.763, 15k 0.753,
# 30k 0.734 (10k with the pruned one: 0.766). Fewer features also load and score faster.
MAX_FEATURES = 10000
# Feature kinds the sentiment model keeps whatever their frequency rank (still
# ≥ MIN_DF posts): negated words and cue flags are what makes 不耐心 differ from
# 耐心, and each is rarer than the word itself, so the cut would drop them first
# (with 1,720 bank posts n:耐心 fell out and 很不耐心 read as praise). Cross-fitted
# sentiment macro-F1 0.802 → 0.805; the topic and crisis models keep the plain cut.
SENTIMENT_ALWAYS_KEPT = ("n:", "s:", "f:")
# Temperatures tried when calibrating: 0.20, 0.21, … 5.00.
TEMPERATURE_GRID = tuple(round(0.2 + 0.01 * i, 2) for i in range(481))


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
# out as the analyzer blanks the configured watchlist's bank names.
_drop_names = name_remover(
    normalize_for_analysis(n) for n in MentionMatcher(Watchlist()).bank_names
)


def featurize(text: str) -> Counter[str]:
    """Sentiment features of a raw post (normalised, bank names blanked, as at run time)."""
    norm = _drop_names(normalize_for_analysis(text))
    return text_features(norm, segment.cut_for_analysis(norm))


def topic_featurize(text: str, cues: TopicCues) -> Counter[str]:
    """Topic and crisis features: the sentiment features plus lexicon cue hits (``l:``).

    The hits are counted on the text before the bank's names are blanked, as
    the analyzer does (one lexicon scan serves topic cues and signals there).
    """
    norm = normalize_for_analysis(text)
    model_text = _drop_names(norm)
    feats = text_features(model_text, segment.cut_for_analysis(model_text))
    feats.update(cues.counts(norm))
    return feats


def fit_temperature(logits: Sequence[Sequence[float]], gold: Sequence[int]) -> float:
    """The temperature of ``TEMPERATURE_GRID`` with the least mean negative log-likelihood.

    Ties go to the smaller temperature (grid order); 1.0 when there are no posts.
    """
    if not logits:
        return 1.0
    best_t, best_nll = 1.0, math.inf
    for t in TEMPERATURE_GRID:
        nll = _nll(logits, gold, t)
        if nll < best_nll - 1e-12:
            best_t, best_nll = t, nll
    return best_t


def _nll(logits: Sequence[Sequence[float]], gold: Sequence[int], t: float) -> float:
    return -sum(
        math.log(max(softmax(row, t)[g], 1e-12)) for row, g in zip(logits, gold, strict=True)
    ) / len(logits)


def cross_fitted_logits(
    fit: Callable[[Sequence[int]], LinearTextModel],
    feats: Sequence[Counter[str]],
    sources: Sequence[str],
) -> list[list[float]]:
    """Logits of every bank training post from a model trained without its source file.

    ``fit(indices)`` trains a model on the posts at ``indices`` (plus whatever
    else the caller always trains on); ``sources[i]`` is the file post ``i``
    came from (``Example.source``). Each file has its own author, so a held-out
    file reads as a new author's text does at run time: random folds let a
    post be scored by a model that learned its author's habits from the same
    file, and their figures were more optimistic than every blind file's
    (docs/nlp.md). Raises ``ValueError`` with fewer than two sources.
    """
    groups = sorted(set(sources))
    if len(groups) < 2:
        raise ValueError(f"cross-fitting needs posts from two or more files, got {groups}")
    logits: list[list[float]] = [[] for _ in sources]

    def fit_without(group: str) -> LinearTextModel:
        return fit([i for i, src in enumerate(sources) if src != group])

    # The folds are independent fits, each deterministic, so they run side by
    # side (the solver's numpy and scipy work releases the GIL) and are read
    # back in file order: the same logits as one after another. On two cores
    # this alone took a full training from 5.7 to 5.3 min; FeatureTable did the rest.
    with ThreadPoolExecutor(max_workers=min(len(groups), os.cpu_count() or 1)) as pool:
        for group, model in zip(groups, pool.map(fit_without, groups), strict=True):
            for i, src in enumerate(sources):
                if src == group:
                    logits[i] = model.scores(feats[i])
    return logits


def calibrate(
    logits: Sequence[Sequence[float]],
    labels: Sequence[str],
    classes: Sequence[str],
    *,
    folds: int,
) -> tuple[float, dict[str, Any]]:
    """Fit a temperature on cross-fitted ``logits``; returns it and a report for ``meta``
    (``folds``: how many source files they were cross-fitted over).

    The temperature of least log-loss is kept only if it also lowers the
    cross-fitted ECE; otherwise the model ships at temperature 1. Log-loss
    rewards sharpness as well as calibration, and with a few hundred bank
    posts the fold models (each trained without one file) are weaker than the
    shipped model, so a temperature that only wins on log-loss tends to
    soften probabilities that were about right (it did for sentiment:
    cross-fitted ECE 0.030 → 0.043 at T = 1.25).
    """
    gold = [list(classes).index(label) for label in labels]
    fitted = fit_temperature(logits, gold)

    def ece(t: float) -> float:
        probas = [softmax(row, t) for row in logits]
        top = [max(range(len(p)), key=p.__getitem__) for p in probas]
        return expected_calibration_error(
            [p[k] for p, k in zip(probas, top, strict=True)],
            [k == g for k, g in zip(top, gold, strict=True)],
        )

    ece_before, ece_fitted = ece(1.0), ece(fitted)
    temperature = fitted if ece_fitted < ece_before else 1.0
    cross_fitted = class_report(
        labels, [classes[max(range(len(row)), key=row.__getitem__)] for row in logits], classes
    )
    report = {
        "method": "temperature scaling on logits of the bank training posts cross-fitted "
        "by source file, kept only if it lowers both log-loss and ECE",
        # How the model does on bank posts it did not see (label unaffected by temperature):
        # a model-selection figure that never touches the validation files.
        "cv_accuracy": round(cross_fitted.accuracy, 4),
        "cv_macro_f1": round(cross_fitted.macro_f1, 4),
        "folds": folds,
        "posts": len(logits),
        "fitted_temperature": fitted,
        "temperature": temperature,
        "nll_before": round(_nll(logits, gold, 1.0), 4),
        "nll_after": round(_nll(logits, gold, temperature), 4),
        "ece_before": round(ece_before, 4),
        "ece_fitted": round(ece_fitted, 4),
        "ece_after": round(ece(temperature), 4),
    }
    return temperature, report


class FeatureTable:
    """Posts' feature counts as one sparse matrix (one row per post, columns in name order).

    Built once per training set, so each cross-fitting fold selects its rows
    and columns instead of counting and vectorising the same dictionaries
    again (that was most of a fold's time). Counts are stored as given
    (``DictVectorizer``), so a feature a post names counts as present.
    """

    def __init__(self, feats: Sequence[Mapping[str, float]]) -> None:
        from sklearn.feature_extraction import DictVectorizer  # type: ignore[import-untyped]

        vec = DictVectorizer(sort=True)
        self.matrix = vec.fit_transform(feats)
        self.names: list[str] = [str(n) for n in vec.get_feature_names_out()]

    def __len__(self) -> int:
        return int(self.matrix.shape[0])


def fit_linear(
    name: str,
    table: FeatureTable,
    rows: Sequence[int],
    labels: Sequence[str],
    weights: Sequence[float],
    *,
    c: float,
    classes: Sequence[str],
    meta: dict[str, Any],
    always_kept: tuple[str, ...] = (),
) -> LinearTextModel:
    """Fit TF-IDF + multinomial logistic regression on the posts at ``rows`` of
    ``table`` (``labels`` and ``weights`` in the same order) and export it as a
    LinearTextModel.

    The vocabulary is every feature seen in ≥ ``MIN_DF`` of those posts, cut to
    the ``MAX_FEATURES`` most frequent (ties broken by name, so the choice is
    deterministic), plus those beyond the cut whose names start with one of
    ``always_kept``.
    """
    import numpy as np
    from sklearn.feature_extraction.text import TfidfTransformer  # type: ignore[import-untyped]
    from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]

    counts = table.matrix[np.asarray(rows, dtype=np.intp)]
    df = np.bincount(counts.indices, minlength=counts.shape[1])
    frequent = np.flatnonzero(df >= MIN_DF)
    # Most posts first; columns are in name order, so lexsort's tie-break is the name.
    ranked = frequent[np.lexsort((frequent, -df[frequent]))]
    chosen = list(ranked[:MAX_FEATURES])
    if always_kept:
        chosen += [j for j in ranked[MAX_FEATURES:] if table.names[j].startswith(always_kept)]
    columns = np.sort(np.asarray(chosen, dtype=np.intp))
    x = counts[:, columns]
    x.sort_indices()
    tfidf = TfidfTransformer(sublinear_tf=True, smooth_idf=True)
    x = tfidf.fit_transform(x)
    clf = LogisticRegression(C=c, max_iter=3000, solver="lbfgs", random_state=SEED)
    clf.fit(x, np.asarray(labels), sample_weight=np.asarray(weights))
    order = [list(clf.classes_).index(k) for k in classes]
    coef = clf.coef_[order]
    names = [table.names[j] for j in columns]
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
    """The 3-class sentiment model (bank set weighted ``BANK_WEIGHT``, public set 1), calibrated."""
    bank_feats = [featurize(e.text) for e in bank]
    table = FeatureTable(bank_feats + [featurize(e.text) for e in public])
    public_rows = list(range(len(bank), len(table)))
    classes = [s.value for s in Sentiment]

    def fit(indices: Sequence[int], meta: dict[str, Any] | None = None) -> LinearTextModel:
        return fit_linear(
            "sentiment",
            table,
            [*indices, *public_rows],
            [bank[i].sentiment for i in indices] + [e.sentiment for e in public],
            [BANK_WEIGHT] * len(indices) + [1.0] * len(public),
            c=SENTIMENT_C,
            classes=classes,
            meta=meta or {},
            always_kept=SENTIMENT_ALWAYS_KEPT,
        )

    model = fit(
        range(len(bank)),
        {
            "trained_on": {"bank_labelled": len(bank), "public_sample": len(public)},
            "bank_weight": BANK_WEIGHT,
            "C": SENTIMENT_C,
            "seed": SEED,
        },
    )
    logits = cross_fitted_logits(fit, bank_feats, [e.source for e in bank])
    temperature, report = calibrate(
        logits, [e.sentiment for e in bank], classes, folds=len({e.source for e in bank})
    )
    model.temperature = temperature
    model.meta["calibration"] = report
    return model


def _train_bank_model(
    name: str,
    bank: Sequence[Example],
    feats: Sequence[Counter[str]],
    labels: Sequence[str],
    c: float,
    classes: Sequence[str],
) -> tuple[LinearTextModel, list[list[float]]]:
    """A model trained on the bank posts alone (weight 1 each), calibrated on their
    cross-fitted logits; returns it and those logits."""

    table = FeatureTable(feats)

    def fit(indices: Sequence[int], meta: dict[str, Any] | None = None) -> LinearTextModel:
        return fit_linear(
            name,
            table,
            indices,
            [labels[i] for i in indices],
            [1.0] * len(indices),
            c=c,
            classes=classes,
            meta=meta or {},
        )

    model = fit(
        range(len(bank)), {"trained_on": {"bank_labelled": len(bank)}, "C": c, "seed": SEED}
    )
    logits = cross_fitted_logits(fit, feats, [e.source for e in bank])
    model.temperature, model.meta["calibration"] = calibrate(
        logits, labels, classes, folds=len({e.source for e in bank})
    )
    return model, logits


def topic_features(
    bank: Sequence[Example], cue_words: dict[str, tuple[str, ...]]
) -> list[Counter[str]]:
    """The topic (and crisis) model's features of every bank post (:func:`topic_featurize`);
    ``cue_words`` is ``Lexicon.cue_words()``."""
    cues = TopicCues(cue_words)
    return [topic_featurize(e.text, cues) for e in bank]


def train_topic(bank: Sequence[Example], feats: Sequence[Counter[str]]) -> LinearTextModel:
    """The topic model over the taxonomy of DESIGN.md, trained on the bank set, calibrated.

    ``feats`` are :func:`topic_features` of ``bank``.
    """
    labels = [str(e.topic) for e in bank]
    model, _ = _train_bank_model("topic", bank, feats, labels, TOPIC_C, [t.value for t in Topic])
    return model


def _recall_precision(flags: Sequence[bool], gold: Sequence[bool]) -> tuple[float, float]:
    """Recall and precision of ``flags`` against ``gold`` (0.0 for an empty denominator)."""
    tp = sum(1 for f, g in zip(flags, gold, strict=True) if f and g)
    return tp / max(1, sum(gold)), tp / max(1, sum(flags))


def critical_flags(
    p_critical: Sequence[float],
    lexicon: Sequence[bool],
    blocked: Sequence[bool],
    threshold: float,
    confirm: float,
) -> list[bool]:
    """The analyzer's critical rule on precomputed inputs, one flag per post.

    A post is critical when the lexicon's verdict (``Lexicon.critical_in``) is
    confirmed by the crisis model, P(critical) ≥ ``confirm``, or when the
    model alone is sure enough, P(critical) ≥ ``threshold``, on a post that is
    not ``blocked`` (a denial, or praise: the analyzer never raises a model
    signal on either).
    """
    return [
        (lex and p >= confirm) or (p >= threshold and not b)
        for p, lex, b in zip(p_critical, lexicon, blocked, strict=True)
    ]


def critical_thresholds(
    p_critical: Sequence[float],
    gold: Sequence[bool],
    lexicon: Sequence[bool],
    blocked: Sequence[bool],
    recall_target: float = CRITICAL_RECALL_TARGET,
) -> tuple[float, float, float]:
    """The ``(threshold, confirm, f2)`` of :func:`critical_flags` at the operating point.

    Among the rules whose recall reaches ``recall_target``, the one with the
    best precision: a monitor that misses a bank-run rumour fails, a false
    alarm costs an analyst a minute, and the bank names the recall it needs.
    When no rule reaches the target, the one with the best F2 (recall weighs
    4× precision). ``threshold`` runs over 0.05, 0.06, … 0.95 and ``confirm``
    over 0.00, 0.01, … ``threshold``. On a tie the higher ``threshold`` wins
    (fewer model alarms off the training distribution) and then the lower
    ``confirm`` (a lexicon hit is overruled only as far as the data demands).
    ``f2`` is the chosen rule's. ``(0.5, 0.0, 0.0)`` when no post is critical.
    """
    best = (0.5, 0.0, 0.0)
    best_key = (False, -1.0)
    for i in range(5, 96):
        t = i / 100
        for j in range(i, -1, -1):
            v = j / 100
            recall, precision = _recall_precision(
                critical_flags(p_critical, lexicon, blocked, t, v), gold
            )
            if not recall:
                continue
            f2 = 5 * precision * recall / (4 * precision + recall)
            meets = recall >= recall_target - 1e-12
            # Rounded so float noise cannot break a tie the wrong way.
            key = (meets, round(precision if meets else f2, 12))
            if key >= best_key:
                best, best_key = (t, v, f2), key
    return best


def train_crisis(
    bank: Sequence[Example],
    feats: Sequence[Counter[str]],
    signal_names: Sequence[str],
    lexicon: Lexicon,
) -> LinearTextModel:
    """The crisis model: ``none`` or the critical signal a post is about.

    Same features as the topic model (``feats``: :func:`topic_features` of
    ``bank``; the analyzer scores both in one pass), trained on the bank set.
    ``meta.critical_threshold`` (the model raises a signal alone) and
    ``meta.confirm_threshold`` (it confirms the lexicon's) are chosen together
    by :func:`critical_thresholds` (the most precise rule reaching
    ``CRITICAL_RECALL_TARGET``) on probabilities of the training posts
    cross-fitted by source file, so they never see the validation files; a post's
    "praise" there is its gold label. Raises ``ValueError`` naming the post
    when a critical post has no known signal.
    """
    labels = []
    for e in bank:
        if e.critical and e.signal not in signal_names:
            raise ValueError(
                f"critical training post needs a signal of {list(signal_names)}, "
                f"got {e.signal!r}: {e.text[:40]}"
            )
        labels.append(str(e.signal) if e.critical else CRISIS_NONE)
    classes = [CRISIS_NONE, *signal_names]
    model, logits = _train_bank_model("crisis", bank, feats, labels, CRISIS_C, classes)
    p_critical = [1.0 - softmax(row, model.temperature)[0] for row in logits]
    gold = [label != CRISIS_NONE for label in labels]
    norms = [normalize_for_analysis(e.text) for e in bank]
    by_lexicon = [lexicon.critical_in(n) for n in norms]
    blocked = [
        e.sentiment == Sentiment.POSITIVE.value or any(d in n for d in lexicon.denials)
        for e, n in zip(bank, norms, strict=True)
    ]
    threshold, confirm, f2 = critical_thresholds(p_critical, gold, by_lexicon, blocked)

    def rp(t: float, v: float) -> list[float]:
        flags = critical_flags(p_critical, by_lexicon, blocked, t, v)
        return [round(x, 4) for x in _recall_precision(flags, gold)]

    model.meta["calibration"]["critical_threshold"] = {
        "threshold": threshold,
        "confirm_threshold": confirm,
        "recall_target": CRITICAL_RECALL_TARGET,
        "cv_f2": round(f2, 4),
        "cv_recall_precision": rp(threshold, confirm),
        # What the lexicon's verdict alone and the rule without confirmation give.
        "cv_lexicon_alone": [round(x, 4) for x in _recall_precision(by_lexicon, gold)],
        "cv_unconfirmed_lexicon": rp(threshold, 0.0),
        # The cross-fitted trade-off, for whoever moves the threshold
        # (confirm kept at min(confirm, threshold)): [recall, precision].
        "cv_curve": {f"{t / 10:.1f}": rp(t / 10, min(confirm, t / 10)) for t in range(1, 10)},
    }
    model.meta["critical_threshold"] = threshold
    model.meta["confirm_threshold"] = confirm
    return model


def load_bank() -> list[Example]:
    """The hand-labelled bank training posts of every file in ``TRAIN_FILES``."""
    return [e for path in TRAIN_FILES for e in load_jsonl(path)]


def train_all(data_dir: Path, out_dir: Path) -> list[Path]:
    """Train the three models and write them to ``out_dir``; returns the written paths."""

    bank = load_bank()
    public = load_public(data_dir)
    lexicon = load_lexicon()
    topic_feats = topic_features(bank, lexicon.cue_words())
    log.info("training sentiment on %d bank + %d public posts", len(bank), len(public))
    sentiment = train_sentiment(bank, public)
    log.info("sentiment calibration: %s", sentiment.meta["calibration"])
    log.info("training topic on %d bank posts", len(bank))
    topic = train_topic(bank, topic_feats)
    log.info("topic calibration: %s", topic.meta["calibration"])
    critical = [s.name for s in lexicon.signals if s.critical]
    crisis = train_crisis(bank, topic_feats, critical, lexicon)
    log.info("crisis calibration: %s", crisis.meta["calibration"])
    # The solver's floats depend on these: `make train` reproduces the shipped
    # files byte for byte only with the same versions (the slow test says which).
    versions = training_versions()
    for model in (sentiment, topic, crisis):
        model.meta["trained_with"] = versions
    return [save_model(m, out_dir) for m in (sentiment, topic, crisis)]


def training_versions() -> dict[str, str]:
    """Versions of the numeric libraries training runs on (``meta.trained_with``)."""
    from importlib.metadata import version

    return {name: version(name) for name in ("numpy", "scikit-learn", "scipy")}


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
