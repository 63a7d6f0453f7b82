"""The benchmark's own task directories (benchmarks/tasks/build_tasks.py): each loads through the
task registry, holds enough rows for the default split sizes, keeps every class the builder
named, and gives no text two labels."""

from collections import Counter
from pathlib import Path

import pytest

from sandbox.tasks import SplitSizes, get_task

TASKS = Path(__file__).resolve().parents[1] / "benchmarks" / "tasks"


@pytest.mark.parametrize(("folder", "n_classes"), [("roget-heads", 10), ("fortune-topics", 9),
                                                   ("wordnet-verbs", 8), ("debian-sections", 8)])
def test_a_benchmark_task_directory_loads_with_its_classes(folder, n_classes):
    spec = get_task(str(TASKS / folder))
    data = spec.load()
    assert len(data.classes) == n_classes and set(data.labels) == set(range(n_classes))
    assert len(data.texts) >= SplitSizes().total
    texts = Counter(data.texts)
    assert texts.most_common(1)[0][1] == 1  # a text in two classes (or twice) was dropped
    assert min(Counter(data.labels).values()) >= 400  # every class can be split class-balanced


def test_the_fine_tune_copy_of_debian_sections_reads_the_same_rows_at_its_own_sizes():
    spec, features = get_task(str(TASKS / "debian-sections-ft")), get_task(str(TASKS / "debian-sections"))
    assert spec.kind == "finetune" and features.kind == "features"
    assert spec.sizes.text() == "300,600,300,300" and spec.sizes_given
    assert spec.load().texts == features.load().texts
