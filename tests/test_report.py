"""The HTML report of a run (`report`, `Run.report`) and the store's `run_attempts`.

What a person would notice is checked in the page's text: the task graph and
timeline are drawn, the counts (cache reuse, retries) are right, a traceback
holding `<script>` shows as text, nothing is loaded from elsewhere, many
attempts are aggregated; and the command's bad-input paths are one line and
exit 2. tests/test_report_browser.py opens the page in real headless Chromium.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from reflow import Run, report
from reflow.cli import main
from report_support import HOSTILE, failed_run, pipeline


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Run:
    return failed_run(tmp_path_factory.mktemp("report"))


@pytest.fixture(scope="module")
def page(demo: Run, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = demo.report(tmp_path_factory.mktemp("page") / "run.html")
    return path.read_text(encoding="utf-8")


def row(page: str, task: str) -> list[str]:
    """The cells of the tasks table's row of `task`, as text."""
    table = page.split("<section id='tasks'>", 1)[1].split("</table>", 1)[0]
    found = re.search(rf"<tr><td><b>{task}</b>.*?</tr>", table)
    assert found, f"no row of {task} in the tasks table"
    return [re.sub(r"<[^>]+>", "", cell) for cell in re.findall(r"<td[^>]*>(.*?)</td>", found[0])]


# ---------------------------------------------------------------------- the store


def test_run_attempts_keep_every_attempt_with_its_times(demo: Run) -> None:
    rows = {(r.task, r.array_index, r.attempt): r for r in demo.store.run_attempts(demo.run_id)}
    assert sorted(k for k in rows if k[0] == "work") == [
        ("work", 0, 1), ("work", 1, 1), ("work", 2, 1), ("work", 3, 1),
        ("work", 4, 1), ("work", 4, 2), ("work", 5, 1), ("work", 5, 2),
    ]  # fmt: skip
    first, second = rows["work", 4, 1], rows["work", 4, 2]
    assert (first.current, first.state) == (False, "FAILED")
    assert "flag file present" in (first.error_text or "")
    assert (second.current, second.state, second.cached) == (True, "SUCCESS", False)
    assert first.started is not None and first.finished is not None
    assert first.finished <= (second.started or 0.0)
    assert rows["work", 0, 1].cached and rows["split", -1, 1].submitted is None


# ---------------------------------------------------------------------- the page


def test_the_page_draws_the_graph_and_the_timeline(page: str) -> None:
    assert page.startswith("<!DOCTYPE html>")
    assert "<svg id='dag'" in page and "<svg id='timeline'" in page
    graph = page.split("<svg id='dag'", 1)[1].split("</svg>", 1)[0]
    states = dict(re.findall(r"data-task='(\w+)' data-state='(\w+)'", graph))
    assert states == {"split": "SUCCESS", "work": "FAILED", "total": "SKIPPED"}
    assert "split → work (fan-out)" in graph and "work → total (gather)" in graph


def test_the_tasks_table_counts_cache_reuse_and_retries(page: str) -> None:
    # task, instances, states, cache reuse, retried, attempts, elapsed, median run
    work = row(page, "work")
    assert work[1:2] + work[3:6] == ["6", "4/6", "2after 2 ERROR", "8"]  # and why they were
    assert work[2].split() == ["4", "CACHED", "1", "SUCCESS", "1", "FAILED"]
    assert row(page, "total")[1:6] == ["1", "1 SKIPPED", "0/1", "0", "1"]


def test_resources_show_what_was_asked_and_say_memory_is_not_recorded(page: str) -> None:
    resources = page.split("<section id='resources'>", 1)[1].split("</section>", 1)[0]
    work = re.search(r"<tr><td><b>work</b>.*?</tr>", resources)
    assert work
    cells = [re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<td[^>]*>(.*?)</td>", work[0])]
    assert cells[1:5] == ["2", "1G", "00:10:00", "partition=short"]
    assert cells[-1] == "not recorded"


def test_durations_give_a_histogram_with_its_quantiles(page: str) -> None:
    durations = page.split("<section id='durations'>", 1)[1].split("</section>", 1)[0]
    assert durations.count("class='histogram'") == 2  # split and work; total never ran
    assert re.search(r"n 4 · min [^·]+ · median [^·]+ · p95 [^·]+ · max ", durations)


def test_failures_are_grouped_with_their_tracebacks_escaped(page: str) -> None:
    failures = page.split("<section id='failures'>", 1)[1].split("</section>", 1)[0]
    assert "3 failed attempts in 2 groups" in failures
    assert failures.count("<details class='failure'") == 2
    assert "Traceback (most recent call last)" in failures
    assert "work[5] attempt 2, work[5] (retried)" in failures  # the standing failure first
    assert HOSTILE not in page and "<script" not in page
    assert "&lt;script&gt;alert(&#x27;boom&#x27;)&lt;/script&gt;" in failures


def test_the_page_loads_nothing_from_anywhere_else(page: str) -> None:
    assert "default-src 'none'" in page  # the browser itself refuses to fetch anything
    assert not re.search(r"<(link|img|script|iframe|object)\b|\bsrc=|@import", page)
    assert set(re.findall(r"url\(([^)]*)\)", page)) == {"#arrow"}
    assert set(re.findall(r"href=['\"]([^'\"]*)", page)) == set()


def test_many_attempts_are_drawn_as_a_band_without_a_bar_each(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = pipeline(tmp_path / "no-flag").run_local(
        tmp_path / "run", store=tmp_path / "m.db", n=12, on_error="continue"
    )
    few = report.render_report(run.store, run.run_id)
    assert few.count("<g class='band'>") == 2 and few.count("<g class='bars'>") == 2
    monkeypatch.setattr(report, "_BARS_MAX", 5)
    many = report.render_report(run.store, run.run_id)
    assert many.count("<g class='band'>") == 2
    assert many.count("<g class='bars'>") == 1  # split's one attempt; work's 12 only a band


def test_the_band_is_the_mean_number_of_attempts_in_each_slice() -> None:
    n = report._SLICES
    # running all along; queued for half the run then running; still queued at the end;
    # a thousand attempts of a microsecond
    spans = [(0, 1, None, 0.0, 10.0, "SUCCESS", ""), (1, 1, 0.0, 5.0, 10.0, "SUCCESS", "")]
    spans += [(2, 1, 0.0, None, 10.0, "SUBMITTED", "")]
    spans += [(3, 1, None, 2.0, 2.0 + 1e-6, "SUCCESS", "")] * 1000
    queued, running = report._occupancy(spans, 0.0, 10.0)
    assert queued[: n // 2] == [2.0] * (n // 2) and queued[n // 2 :] == [1.0] * (n // 2)
    assert running[-1] == pytest.approx(2.0) and running[0] == pytest.approx(1.0)
    # a thousand attempts of a microsecond kept about nothing busy, not a thousand workers
    assert max(running[: n // 2]) == pytest.approx(1.0 + 1000 * 1e-6 * n / 10.0)


def test_failures_differing_only_in_numbers_are_one_group(tmp_path: Path) -> None:
    wf = pipeline(tmp_path / "flag")
    (tmp_path / "flag").touch()
    run = wf.run_local(tmp_path / "run", store=tmp_path / "m.db", n=8, on_error="continue")
    failures = report.render_report(run.store, run.run_id).split("id='failures'>")[1]
    # items 4, 6 and 7: "flag file present for item N"; item 5 its own message
    assert "4 failed attempts in 2 groups" in failures
    assert "flag file present for item 4  (and the same with other numbers)" in failures
    assert "work[4], work[6], work[7]" in failures


# ---------------------------------------------------------------------- the command


def test_report_command_writes_the_file(
    demo: Run, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "r.html"
    code = main(["report", demo.run_id, "-o", str(out), "--store-path", demo.store.location])
    assert code == 0
    assert capsys.readouterr().out == f"wrote the report of run {demo.run_id} to {out}\n"
    assert "<svg id='timeline'" in out.read_text(encoding="utf-8")


def test_report_without_o_writes_run_id_html_here(
    demo: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    wf = pipeline(tmp_path / "flag")
    assert wf.cli(["report", demo.run_id, "--store-path", demo.store.location]) == 0
    assert (tmp_path / f"{demo.run_id}.html").is_file()
    assert demo.report(tmp_path) == tmp_path / f"{demo.run_id}.html"  # a directory: inside it


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["report", "nope-20260101-0000"], "error: no run 'nope-20260101-0000' in the store"),
        (
            ["report", "RUN", "-o", "{tmp}/missing/dir/r.html"],
            "error: cannot write the report to {tmp}/missing/dir/r.html: No such file or "
            "directory; choose another path with -o",
        ),
        (["report"], "error: the following arguments are required: RUN_ID"),
    ],
)
def test_report_bad_input_is_one_line_and_exit_2(
    demo: Run,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    argv = [a.replace("RUN", demo.run_id).replace("{tmp}", str(tmp_path)) for a in args]
    code = main([*argv, "--store-path", demo.store.location])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(message.replace("{tmp}", str(tmp_path))) and err.count("\n") == 1
    assert not list(tmp_path.rglob("*.html")) and not list(tmp_path.rglob("*.tmp"))


def test_report_of_a_missing_store_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["report", "x-1", "--store-path", str(tmp_path / "none.db")])
    assert code == 2
    assert capsys.readouterr().err.startswith("error: no run 'x-1': there is no store at ")
    assert not (tmp_path / "none.db").exists()
