"""bench/results.json: a re-run benchmark replaces its own figures, keeps the others'."""

from pathlib import Path

from bench.results import Result, read_results, write_results


def _figure(name: str, value: float, source: str) -> Result:
    return Result(name=name, value=value, unit="", goal=None, better="higher", source=source)


def test_a_rerun_module_replaces_all_its_figures_and_keeps_the_others(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    write_results(
        [
            _figure("f1_old_file", 0.8, "bench_nlp"),  # a file the module no longer scores
            _figure("f1", 0.8, "bench_nlp"),
            _figure("store_rate", 100.0, "bench_store"),
        ],
        path,
    )
    write_results([_figure("f1", 0.9, "bench_nlp")], path, rerun=frozenset({"bench_nlp"}))
    got = {r.name: r for r in read_results(path)}
    assert set(got) == {"f1", "store_rate"}
    assert got["f1"].value == 0.9 and got["store_rate"].value == 100.0
    # Without a rerun (a module that failed, or --only another one) nothing is dropped.
    write_results([_figure("f1", 0.95, "bench_nlp")], path)
    assert {r.name for r in read_results(path)} == {"f1", "store_rate"}
