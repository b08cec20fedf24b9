"""Every case of ``scripts/bad_inputs.py`` (the bad-input table): the exit status it must have, its one-line
message, no traceback, and no output left behind (or the output written, where the input is fine after all).

Cases run in-process through click's CliRunner, with a random-weight bundle; those that need a real process
(signals, a file-size limit, two runs at once, a run killed before) run one. The few long real runs of the
table (a 200,000² sparse raster, interrupting a run) are tested elsewhere (test_inputs.py, test_detect.py).
"""

from __future__ import annotations

import sys
import traceback
from pathlib import Path

import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import bad_inputs as bi  # noqa: E402

from geodrain.cli import cli  # noqa: E402

CASES = {f"{c.command}: {c.name}": c for c in bi.all_cases() if not c.slow}
IN_PROCESS = ("run", "no-onnxruntime")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, random_bundle):
    return bi.Inputs(tmp_path_factory.mktemp("bad_inputs"), random_bundle)


def run_in_process(case: bi.Case, inputs: bi.Inputs, folder: Path, monkeypatch) -> bi.Outcome:
    if case.kind == "no-onnxruntime":
        monkeypatch.setitem(sys.modules, "onnxruntime", None)
    r = CliRunner().invoke(cli, bi.case_args(case, inputs, folder))
    lines = bi.user_lines(r.stdout, r.stderr)
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        lines += traceback.format_exception(type(r.exception), r.exception, r.exception.__traceback__)
        lines.insert(0, "Traceback")
    return bi.Outcome(r.exit_code, lines, 0.0)


@pytest.mark.parametrize("key", sorted(CASES))
def test_bad_input(key, inputs, monkeypatch):
    case = CASES[key]
    folder = inputs.case_dir()
    if case.kind in IN_PROCESS:
        o = run_in_process(case, inputs, folder, monkeypatch)
    else:
        o = bi.run_case(case, inputs, folder, timeout=600)
    out = case.output(inputs, folder) if case.output else None
    left = None if out is None else out.exists()
    problems = bi.verdict(case, o, left)
    assert not problems, (problems, o.lines[-8:])
    assert not [p for p in folder.rglob(".*tmp*")], "a temporary was left behind"
