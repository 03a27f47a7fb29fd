"""The frame the service builds from a request scores exactly like the feature table's rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.slow


def _frame(ids: np.ndarray, columns: dict[str, np.ndarray]) -> pd.DataFrame:
    """The request as a feature frame (was `serving.service._frame`, which only this test used):
    a few rows as one object block, bigger batches as typed columns."""
    if len(ids) <= 32:
        block = np.empty((len(ids), len(columns) + 1), dtype=object)
        block[:, 0] = ids
        for j, values in enumerate(columns.values(), start=1):
            block[:, j] = values
        return pd.DataFrame(block, columns=["customer_id", *columns], copy=False)
    return pd.DataFrame({"customer_id": ids, **columns}, copy=False)


@pytest.mark.parametrize("n", [1, 32, 33, 300])
def test_request_frames_score_like_the_feature_table(use_serving_env, latest, request_rows, n):
    from features.registry import FEATURES
    from serving.schemas import customer_model, customers_to_columns, score_request_model
    from training.registry import load_champion
    from training.scoring import score_columns, score_frame

    models = {task: load_champion(task)[0] for task in ("tier", "churn", "risk")}
    rows = latest.head(n).reset_index(drop=True)
    request = score_request_model(customer_model(FEATURES), 1000).model_validate({"customers": request_rows(rows)})
    ids, columns = customers_to_columns(request.customers, FEATURES)
    for explain in (0, 2):
        expected = score_frame(rows, models, explain=explain)
        got = score_frame(_frame(ids, columns), models, explain=explain)
        pd.testing.assert_frame_equal(got, expected, check_dtype=False, check_exact=True)
        # The service's path: the request's column arrays straight into score_frame's core.
        direct = pd.DataFrame({"customer_id": ids, **score_columns(columns, len(ids), models, explain=explain)})
        pd.testing.assert_frame_equal(direct, expected, check_dtype=False, check_exact=True)
