"""The lab's own files, damaged or of the wrong shape: a sweep's summary.json and an ablation's
ablation.json are each one line naming the file, as the course's files are."""

import pytest
from helpers import damaged, one_line, run_cli

from mnist_lib.config import UserError
from mnist_lib.files import read_json, write_json
from mnist_lib.lab.experiments.ablate import load_ablation
from mnist_lib.lab.experiments.report import design_table, results_table
from mnist_lib.lab.experiments.sweep import load_summary
from mnist_lib.lab.paths import RESULTS_DIR

SUMMARY = RESULTS_DIR / "sweep-net" / "summary.json"
ABLATION = RESULTS_DIR / "ablate" / "ablation.json"


@pytest.mark.parametrize(
    ("valid", "load"),
    [(SUMMARY, load_summary), (ABLATION, load_ablation)],
    ids=["summary", "ablation"],
)
def test_a_damaged_lab_file_is_named(tmp_path, valid, load):
    """Each damaged copy of ``valid``, in a folder of its own, read by ``load`` of that folder."""
    for data in damaged(valid.read_bytes()):
        (tmp_path / valid.name).write_bytes(data)
        with pytest.raises(UserError) as error:
            load(tmp_path)
        one_line(error, tmp_path / valid.name)


@pytest.mark.parametrize("wrong", [[], {"recipe": 3}, "recipe"], ids=["a-list", "a-number", "text"])
def test_an_ablation_of_the_wrong_shape_is_named(tmp_path, wrong):
    write_json(tmp_path / "ablation.json", wrong)
    with pytest.raises(UserError, match="is not an ablation's results") as error:
        load_ablation(tmp_path)
    one_line(error, tmp_path / "ablation.json")


@pytest.mark.parametrize(
    "change",
    [
        lambda s: [s],
        lambda s: {k: v for k, v in s.items() if k != "final"},
        lambda s: s | {"runs": 5},
        lambda s: s | {"runs": [3]},
        lambda s: s | {"final": "x"},
        lambda s: s | {"params": None},
    ],
    ids=["a-list", "no-final", "runs-a-number", "run-a-number", "final-text", "params-none"],
)
def test_a_summary_of_the_wrong_shape_is_named_by_the_tables(tmp_path, change):
    write_json(tmp_path / "summary.json", change(read_json(SUMMARY)))
    with pytest.raises(UserError, match="is not a sweep's summary") as error:
        results_table([tmp_path])
    one_line(error, tmp_path / "summary.json")


def test_a_design_row_of_the_wrong_shape_is_named(tmp_path):
    (tmp_path / "pick").mkdir()
    summary = read_json(SUMMARY) | {"split": "val", "config": 3}
    write_json(tmp_path / "pick" / "summary.json", summary)
    with pytest.raises(UserError, match="is not a sweep's summary") as error:
        design_table(tmp_path)
    one_line(error, tmp_path / "pick" / "summary.json")


@pytest.mark.parametrize("command", ["seeds", "ablate"])
def test_a_sweep_whose_folder_cannot_be_made_is_one_line(command):
    result = run_cli(
        command, "--seeds", "0", "--out", "/proc/self/a/b", "--device", "cpu", lab=True
    )
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "cannot create /proc/self/a/b" in result.stderr
