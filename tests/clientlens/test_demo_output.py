"""The demo's closing "Where everything is" table: every value starts in one column after its label."""

from __future__ import annotations

from clientlens.commands.demo import where_lines


def test_every_label_is_followed_by_a_gap_even_the_longest():
    summary = {
        "home": "/h",
        "models": {"tier": "clientlens-tier v1", "churn": "clientlens-churn v2"},
        "reclassify_report": "/h/demo/reclassify/report.html",  # 17 characters: ran into its value before
        "seconds": {"simulate": 1.7, "train tier": 59.2},
        "cpu_seconds": {"simulate": 1.7},
    }
    lines = where_lines(summary)
    assert lines[0] == "Where everything is:"
    body = lines[1:]
    values = ["/h", "clientlens-tier v1 (alias champion)", "clientlens-churn v2 (alias champion)",
              "/h/demo/reclassify/report.html", "simulate 1.7, train tier 59.2", "simulate 1.7"]  # fmt: skip
    starts = {line.index(value) for line, value in zip(body, values, strict=True)}
    assert len(starts) == 1, body  # one column
    column = starts.pop()
    labels = [line[:column].rstrip() for line in body]
    assert labels == ["  home", "  model tier", "  model churn", "  reclassify_report", "  seconds", "  cpu seconds"]
    assert all(line[len(label) : len(label) + 2] == "  " for line, label in zip(body, labels, strict=True))
