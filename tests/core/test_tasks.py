"""The task contract: names, score columns and eligibility declared once."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.errors import InputError
from core.tasks import CHURN_MIN_AUM, TASK_NAMES, TASKS, check_tasks, is_score_column, task
from training.spec import BUILTIN_TASKS, TASKS_DIR


def test_every_task_has_a_spec_and_one_name_list():
    assert BUILTIN_TASKS == TASK_NAMES
    assert sorted(p.stem for p in TASKS_DIR.glob("*.yaml")) == sorted(TASK_NAMES)


def test_score_columns_follow_the_naming_rule():
    assert task("churn").score_columns() == ["churn_proba"]
    assert task("tier").score_columns() == ["tier_proba_mass", "tier_proba_affluent", "tier_proba_hnw"]
    assert task("tier").classes_of(["customer_id", "tier_proba_hnw", "tier_proba_mass"]) == ["hnw", "mass"]
    assert is_score_column("upgrade_proba") and is_score_column("risk_proba_aggressive")
    assert not is_score_column("aum") and not is_score_column("tier")


def test_unknown_tasks_are_input_errors():
    with pytest.raises(InputError, match="unknown task 'value'"):
        task("value")
    with pytest.raises(InputError, match=r"--tasks: unknown task\(s\) \['x'\]"):
        check_tasks(["churn", "x"], "--tasks")


def test_churn_eligibility_is_the_labels_minimum_aum():
    from features.config import LabelConfig

    assert LabelConfig().churn_min_aum == CHURN_MIN_AUM
    frame = pd.DataFrame({"aum": [0.0, CHURN_MIN_AUM, np.nan, 5e5]})
    assert TASKS["churn"].eligibility.mask(frame).tolist() == [False, True, False, True]
    assert TASKS["tier"].eligibility.mask(frame).all()
