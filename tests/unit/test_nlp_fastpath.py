"""The analyzer's fast paths give exactly what the plain library calls give.

Each shortcut taken for speed (segmentation, OpenCC skip, phrase scans,
joint scoring, the PII pre-check) is checked here against the slow, obvious
form on the shipped bank texts plus edge cases.
"""

import json
import os
import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import jieba  # type: ignore[import-untyped]
import pytest

from nlp import segment
from nlp.features import (
    PhraseSet,
    TopicCues,
    mixed_features,
    name_remover,
    split_features,
    text_features,
)
from nlp.lexicon import load_lexicon
from nlp.model import JointScorer, load_model
from nlp.normalize import _T2S_PHRASE_CHARS, normalize_for_analysis, to_simplified
from nlp.pii import mask_pii
from nlp.train import BANK_TRAIN, BANK_VALIDATION, BANK_VALIDATION_INDEPENDENT

if TYPE_CHECKING:
    from nlp.analyzer import Analyzer

EDGE_CASES = [
    "",
    " ",
    "abc def 3.5% 澜海app闪退 2026年",
    "a\r\nb\tc",
    "澜海银行-滨江支行 #话题# 100元",
    "ＡＢＣ１２３ 全角",
    "繁體中文測試 😀 emoji",
    "回覆@小王 別找藉口了",
    "u盾丢了，e贷还能用吗？lpr下调",
    "一点都不满意！！！真是太'好'了，排队三小时",
    "全角空格\u3000之后，不间断\u00a0空格，换行\u2028之后\x85再\x0b竖排",
    "……！！？？  ——  「」",
]


def _bank_texts() -> list[str]:
    texts = []
    for path in (BANK_TRAIN, BANK_VALIDATION, BANK_VALIDATION_INDEPENDENT):
        with path.open(encoding="utf-8") as fh:
            texts += [json.loads(line)["text"] for line in fh if line.strip()]
    return texts + EDGE_CASES


TEXTS = _bank_texts()


# Scripts and symbols jieba-rs and jieba might split differently.
SEGMENT_EDGE_CASES = [
    "\x00ab",
    "a  b",
    "\ufeff澜海",
    "ⅱ澜海",
    "e-mail: a.b@c.d 100%",
    "C++ C# .NET",
    "3.14159和2,000元",
    "工单号：LH20240518-0372\n客户诉求：全额还款",
    "日本語のテキスト 한국어 ไทย",
    "🏦🏦银行",
]


def test_cut_for_analysis_equals_jieba() -> None:
    """jieba-rs (the shipped, HMM-off cut) gives jieba's words on the analysis dictionary."""
    tokenizer = segment._analysis_reference()
    texts = [
        json.loads(line)["text"]
        for path in sorted(Path(segment.__file__).parent.joinpath("data").glob("*.jsonl"))
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    assert len(texts) > 9000
    for text in texts + EDGE_CASES + SEGMENT_EDGE_CASES:
        for form in (text, normalize_for_analysis(text)):
            assert segment._analysis_rs.cut(form, False) == tokenizer.lcut(form, HMM=False), form


def test_cut_for_analysis_uses_the_documented_hmm_setting() -> None:
    text = "澜海银行的客户经理很耐心"
    assert segment.cut_for_analysis(text) == segment._analysis_reference().lcut(
        text, HMM=segment.ANALYSIS_HMM
    )
    assert isinstance(jieba.Tokenizer(), jieba.Tokenizer)  # jieba itself still importable


def test_to_simplified_shortcut_equals_opencc() -> None:
    import opencc

    converter = opencc.OpenCC("t2s")
    for text in [*TEXTS, "回覆", "藉口", "深沈", "瞭解", "乾淨", "著作", "後來", "髮型"]:
        assert to_simplified(text) == converter.convert(text), text


def test_simplified_text_is_not_converted() -> None:
    text = "澜海银行的客户经理很耐心"
    assert to_simplified(text) is text


@pytest.mark.skipif(
    shutil.which("opencc_dict") is None
    and not (Path(__import__("opencc").__file__).parent / "clib" / "bin" / "opencc_dict").exists(),
    reason="opencc_dict tool not shipped with this OpenCC wheel",
)
def test_phrase_only_characters_match_the_opencc_dictionary(tmp_path: Path) -> None:
    """Re-derive the characters t2s changes only inside phrases from TSPhrases.ocd2."""
    import opencc

    from nlp.normalize import _t2s

    clib = Path(opencc.__file__).parent / "clib"
    tool = shutil.which("opencc_dict") or str(clib / "bin" / "opencc_dict")
    env = {**os.environ, "LD_LIBRARY_PATH": str(clib / "lib64")}

    def dump(name: str) -> list[str]:
        out = tmp_path / f"{name}.txt"
        source = clib / "share" / "opencc" / f"{name}.ocd2"
        subprocess.run(
            [tool, "-i", str(source), "-o", str(out), "-f", "ocd2", "-t", "text"],
            check=True,
            env=env,
        )
        return out.read_text(encoding="utf-8").splitlines()

    converter, triggers = _t2s()
    for name in ("TSCharacters", "TSCharactersExt"):
        for line in dump(name):
            key, _, value = line.partition("\t")
            if value.split(" ")[0] != key:
                assert set(key) <= triggers, key
    changed_in_phrases: set[str] = set()
    for line in dump("TSPhrases"):
        key, _, value = line.partition("\t")
        value = value.split(" ")[0]
        if len(key) != len(value):
            changed_in_phrases.update(key)
        else:
            changed_in_phrases.update(a for a, b in zip(key, value, strict=True) if a != b)
    alone_unchanged = {c for c in changed_in_phrases if converter.convert(c) == c}
    assert alone_unchanged == set(_T2S_PHRASE_CHARS)
    assert changed_in_phrases <= triggers


def test_phrase_set_equals_substring_tests() -> None:
    lex = load_lexicon()
    phrases = [w for s in lex.signals for w in s.words] + list(lex.denials)
    matcher = PhraseSet(phrases)
    for text in TEXTS:
        norm = normalize_for_analysis(text)
        assert matcher.found(norm) == {p for p in phrases if p in norm}


def test_topic_cues_equal_counting_each_word() -> None:
    topic_words = load_lexicon().cue_words()
    cues = TopicCues(topic_words)
    for text in TEXTS:
        norm = normalize_for_analysis(text)
        naive = Counter(
            {
                "l:" + topic: sum(1 for w in words if w in norm)
                for topic, words in topic_words.items()
            }
        )
        assert cues.counts(norm) == +naive


def test_joint_scorer_fast_path_equals_each_model() -> None:
    sentiment, topic = load_model("sentiment"), load_model("topic")
    scorer = JointScorer([sentiment, topic])
    drop = name_remover(["澜海银行", "澜海"])
    cues = TopicCues(load_lexicon().cue_words())
    for text in TEXTS[::3]:
        norm = drop(normalize_for_analysis(text))
        words = segment.cut_for_analysis(norm)
        named, grams = split_features(norm, words)
        named.update(cues.counts(norm))
        full = text_features(norm, words)
        full.update(cues.counts(norm))
        got = scorer.predict_arrays(named, grams)
        for probs, model in zip(got, (sentiment, topic), strict=True):
            want = model.predict_proba(full)
            assert [round(p, 9) for p in probs] == [round(want[c], 9) for c in model.classes]
        mixed = mixed_features(norm, words)
        mixed.update(cues.counts(norm))
        assert mixed == named + grams
        for fast, slow in zip(scorer.predict_mixed(mixed), got, strict=True):
            # Same features, summed in another order: equal up to float rounding.
            assert [round(p, 12) for p in fast] == [round(p, 12) for p in slow]


def test_text_features_are_the_split_features_with_prefixes() -> None:
    named, grams = split_features("不耐心", ["不", "耐心"])
    assert grams == Counter({"不": 1, "耐": 1, "心": 1, "不耐": 1, "耐心": 1, "不耐心": 1})
    assert text_features("不耐心", ["不", "耐心"]) == named + Counter(
        {"c:" + g: n for g, n in grams.items()}
    )


@pytest.mark.parametrize(
    "text",
    [
        "澜海银行的客户经理很耐心",
        "ＡＰＰ闪退",  # full-width letters are still folded, as before the pre-check
        "电话１３８１２３４５６７８",
        "邮箱ａｂｃ＠ｅｘａｍｐｌｅ．ｃｏｍ",
        "",
    ],
)
def test_pii_precheck_changes_nothing(text: str) -> None:
    from nlp import pii

    slow = text.translate(pii._FULL_WIDTH)
    slow = pii._PHONE.sub(lambda m: f"{m.group(1)}****{m.group(3)}", slow)
    slow = pii._LANDLINE.sub(lambda m: f"{m.group(1)}-****{m.group(3)}", slow)
    slow = pii._ID_CARD.sub(pii._keep_edges, slow)
    slow = pii._DIGIT_RUN.sub(pii._keep_edges, slow)
    slow = pii._EMAIL.sub(lambda m: f"{m.group(1)}***{m.group(2)}", slow)
    assert mask_pii(text) == slow


def test_normalize_folded_shortcut_equals_line_by_line() -> None:
    import random

    from nlp.normalize import _SPACES, normalize_folded, strip_markup

    def slow(folded: str) -> str:
        text = strip_markup(folded).lower()
        lines = (_SPACES.sub(" ", line).strip() for line in text.splitlines())
        return "\n".join(line for line in lines if line)

    pieces = ["澜海", "a", " ", "  ", "\t", "\n", "\r", "\x0b", "\x85", "\u2028", "\u3000"]
    pieces += ["\u00a0", "@小王", "#维权#", "  b "]
    rng = random.Random(3)
    for _ in range(5000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 8)))
        assert normalize_folded(text) == slow(text), repr(text)


def test_analysis_dictionary_is_jiebas_with_the_bank_words_pruned() -> None:
    """The dictionary read from the files equals jieba's own load of them, pruned."""
    from importlib import resources

    loaded = jieba.Tokenizer()
    loaded.initialize()
    with resources.as_file(resources.files("nlp") / "data" / "bank_dict.txt") as path:
        loaded.load_userdict(str(path))
    expected = {w: f for w, f in loaded.FREQ.items() if f >= segment.ANALYSIS_MIN_FREQ}
    freq = segment.analysis_dictionary()
    assert freq == expected
    bank_words = [
        line.split()[0]
        for line in (resources.files("nlp") / "data" / "bank_dict.txt")
        .read_text(encoding="utf-8")
        .splitlines()
        if line.strip()
    ]
    assert all(freq.get(w) for w in bank_words)
    reference = segment._analysis_reference()
    assert reference.total == sum(freq.values())
    # Every word's prefixes are in jieba's table, as its DAG walk needs.
    assert all(w[:i] in reference.FREQ for w in list(freq)[:5000] for i in range(1, len(w)))


def test_a_dictionary_entry_without_frequency_is_refused_with_its_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bank-dictionary word without a frequency would get one guessed from load
    order; the loader names the file and line instead."""
    from importlib import resources

    package = tmp_path / "fakepkg"
    package.mkdir()
    (package / "words.txt").write_text("理财 2000 n\n挤兑\n", encoding="utf-8")
    real_files = resources.files
    monkeypatch.setattr(
        resources, "files", lambda name: package if name == "fakepkg" else real_files(name)
    )
    with pytest.raises(ValueError, match=r"fakepkg/words.txt:2: expected .*挤兑"):
        segment._read_dictionary("fakepkg", "words.txt")


def test_fold_width_is_nfkc() -> None:
    import random
    import unicodedata

    from nlp.normalize import fold_width

    pool = [chr(c) for c in range(0xFF00, 0xFFEF)] + [chr(c) for c in range(0x300, 0x36F)]
    pool += ["\u3000", " ", "A", "a", "中", "\uf900", "\u2460", "\u00bd", "\u1100", "\u1161"]
    rng = random.Random(1)
    texts = TEXTS + [
        "".join(rng.choice(pool) for _ in range(rng.randint(0, 10))) for _ in range(5000)
    ]
    for text in texts:
        assert fold_width(text) == unicodedata.normalize("NFKC", text), repr(text)


def test_analyzer_sees_exactly_the_training_features() -> None:
    """The analyzer's one-pass path scores a post as training's featurizers describe it."""
    from core.settings import Watchlist
    from nlp.analyzer import Analyzer
    from nlp.train import featurize, topic_featurize

    analyzer = Analyzer(Watchlist())
    sentiment, topic = load_model("sentiment"), load_model("topic")
    cues = TopicCues(load_lexicon().cue_words())
    for text in TEXTS[::2]:
        if not normalize_for_analysis(text):
            continue
        got = analyzer.analyze(text)
        s = sentiment.predict_proba(featurize(text))
        t = topic.predict_proba(topic_featurize(text, cues))
        assert got.sentiment_score == round(s["positive"] + 0.5 * s["neutral"], 4), text
        assert got.topic_confidence == round(max(t.values()), 4), text


def _shipped_labelled_texts() -> list[str]:
    """Every text of every shipped labelled file (``nlp/data/*.jsonl``)."""
    texts = []
    for path in sorted((Path(__file__).parents[2] / "nlp" / "data").glob("*.jsonl")):
        with path.open(encoding="utf-8") as fh:
            texts += [json.loads(line)["text"] for line in fh if line.strip()]
    return texts


def _assert_close(batch: list[list[list[float]]], single: list[list[list[float]]]) -> None:
    assert len(batch) == len(single)
    for got, want in zip(batch, single, strict=True):
        assert [len(p) for p in got] == [len(p) for p in want]
        for g, w in zip(got, want, strict=True):
            assert max(abs(a - b) for a, b in zip(g, w, strict=True)) <= 1e-9, (got, want)


def test_predict_mixed_many_equals_predict_mixed() -> None:
    sentiment, topic = load_model("sentiment"), load_model("topic")
    drop = name_remover(["澜海银行", "澜海"])
    cues = TopicCues(load_lexicon().cue_words())
    posts = []
    for text in _shipped_labelled_texts() + EDGE_CASES:
        norm = normalize_for_analysis(text)
        model_text = drop(norm)
        posts.append(mixed_features(model_text, segment.cut_for_analysis(model_text)))
        posts[-1].update(cues.counts(norm))
    assert len(posts) > 500 and any(not p for p in posts)  # an empty text is among them
    repeated = Counter({"w:排队": 3, "排队": 4, "排": 5, "l:service_quality": 2, "w:很": 1})
    unknown = Counter({"w:从未见过的词xyz": 2, "x:not-a-feature": 1, "🙃🙃🙃": 7})
    edge = [Counter(), repeated, unknown, Counter(), posts[0], Counter()]
    batches: list[list[Counter[str]]] = [
        posts,
        edge,
        [Counter()],
        [unknown],
        [Counter(), Counter()],
    ]
    # The second scorer has three models (one twice, in another order), so the
    # batch path is checked for another number of models and column layout.
    for scorer in (
        JointScorer([sentiment, topic]),
        JointScorer([topic, sentiment, topic]),
    ):
        assert scorer.predict_mixed_many([]) == []
        for batch in batches:
            _assert_close(
                scorer.predict_mixed_many(batch), [scorer.predict_mixed(p) for p in batch]
            )
        # No known feature: each model's softmax of its intercepts.
        got = scorer.predict_mixed_many([unknown])[0]
        for probs, model in zip(got, scorer.models, strict=True):
            want = model.predict_proba({})
            assert probs == pytest.approx([want[c] for c in model.classes], abs=1e-12)


@pytest.fixture(scope="module")
def analyzer() -> "Analyzer":
    from core.settings import Watchlist
    from nlp.analyzer import Analyzer

    return Analyzer(Watchlist())


def test_analyze_many_equals_analyze(analyzer: "Analyzer") -> None:
    texts = _shipped_labelled_texts() + EDGE_CASES
    plain = [("", t) for t in texts]
    # Titles: the start of another post on every other post (an empty text with a title too).
    titled = [(texts[i - 1][:12] if i % 2 else "", t) for i, t in enumerate(texts)]
    titled.append(("只有标题，澜海银行要倒闭了", ""))
    for items in (plain, titled):
        want = [analyzer.analyze(text, title) for title, text in items]
        assert analyzer.analyze_many(items) == want
        assert analyzer.analyze_many(items[:40], chunk=7) == want[:40]  # chunk boundaries
    assert analyzer.analyze_many([]) == []
