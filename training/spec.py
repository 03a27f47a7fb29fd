"""Task specs: one typed description of a training task (DESIGN §6, §11).

A spec names the source table, the id, the target, the feature columns, the split and the
tuning budget. YAML is read only here, at the edge (`load_spec`); everything downstream
receives a validated `TaskSpec`. Built-in tasks (`tier`, `churn`, `risk`) are specs in
`training/tasks/` whose source is resolved against the feature folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from core.errors import InputError
from core.settings import Settings
from core.tasks import AGGRESSIVE, STATED_CONSERVATIVE, TASK_NAMES

TASKS_DIR = Path(__file__).parent / "tasks"
SPECS_DIR = Path(__file__).parent / "specs"
BUILTIN_TASKS = TASK_NAMES  # each has its spec in tasks/<name>.yaml

# Where real public data lives: `../shared/data` beside the repository. Specs point at it
# with a path relative to the spec file; CLIENTLENS_SHARED_DATA (Settings.shared_data) moves the whole root.
_SHARED_MARKER = "shared/data/"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TargetSpec(_Strict):
    """What to predict: a column, or a pandas expression over the source columns."""

    column: str | None = None
    expr: str | None = None
    kind: Literal["binary", "multiclass", "ordinal", "regression"] = Field(
        description="`ordinal`: ordered `classes` (low to high) scored by ONE booster trained on 'top class vs "
        "the rest' (`positive`, default the last class) and an ordinal calibrator (proportional odds) that "
        "splits its score into every class; monotone constraints and boost_from_baseline apply as for binary."
    )
    positive: str | int | float | bool | None = Field(
        default=None,
        description="Binary: the value of `column` that counts as the positive class. Ordinal: the top class.",
    )
    classes: list[str] | None = Field(
        default=None,
        description="Multiclass: class order (ordinal tasks list them low to high). Binary: the names of the "
        "[negative, positive] classes (default ['0', '1']), e.g. [not_aggressive, aggressive].",
    )

    @model_validator(mode="after")
    def _one_source(self) -> TargetSpec:
        if (self.column is None) == (self.expr is None):
            raise ValueError("give exactly one of target.column or target.expr")
        if self.kind == "binary" and self.classes is not None:
            if len(self.classes) != 2 or len(set(self.classes)) != 2:
                raise ValueError("a binary target.classes names two distinct classes: [negative, positive]")
            if isinstance(self.positive, str) and self.classes[1] != self.positive:
                raise ValueError(
                    f"binary target.classes lists the positive class last: expected "
                    f"[..., {self.positive!r}], got {self.classes}"
                )
        if self.kind == "ordinal":
            if not self.classes or len(self.classes) < 3 or len(set(self.classes)) != len(self.classes):
                raise ValueError("an ordinal target lists three or more distinct classes, low to high")
            if self.positive is not None and self.positive != self.classes[-1]:
                raise ValueError(f"an ordinal target's positive class is its top class {self.classes[-1]!r}")
        return self

    @property
    def top_class(self) -> str | None:
        """Ordinal: the class the booster scores against the rest (the last one)."""
        return self.classes[-1] if self.kind == "ordinal" and self.classes else None

    @property
    def name(self) -> str:
        return self.column or "target"


class SplitSpec(_Strict):
    """random: stratified shuffle; group: whole groups go to one side; time: out-of-time.

    For `time`, the last distinct value of `time_column` is the test set, the one before it
    the validation set, and everything earlier trains. Otherwise `test_size` of the rows
    (or groups) is the test set and `valid_size` of the rest validates.
    """

    kind: Literal["random", "group", "time"] = "random"
    test_size: float = Field(default=0.2, gt=0, lt=1)
    valid_size: float = Field(default=0.2, gt=0, lt=1)
    time_column: str | None = None

    @model_validator(mode="after")
    def _time_needs_column(self) -> SplitSpec:
        if self.kind == "time" and not self.time_column:
            raise ValueError("split.kind 'time' needs split.time_column")
        return self


class TuningSpec(_Strict):
    trials: int = Field(default=25, ge=1)
    timeout: float | None = Field(default=120.0, gt=0, description="Seconds for the whole study.")
    early_stopping_rounds: int = Field(default=50, ge=5)
    max_rounds: int = Field(default=2000, ge=10)
    cv_folds: int = Field(
        default=5,
        ge=1,
        description="Folds for the tuning objective over the non-test rows: stratified k-fold for a random split, "
        "whole groups per fold for a group split, out-of-time folds (each of the last k periods validated on the "
        "periods before it) for a time split. 1, or a table above `cv_max_rows`, tunes on the one train/valid split.",
    )
    cv_max_rows: int = Field(
        default=50_000,
        ge=0,
        description="Cross-validate the tuning objective only when the non-test rows are at most this many "
        "(k folds cost k fits per trial; a large table's single validation split is already precise).",
    )
    cv_repeats: int = Field(
        default=1,
        ge=1,
        le=10,
        description="Repeated k-fold: the random or group folds drawn this many times (each repeat its own "
        "assignment), the objective the mean over all of them. For tiny tables (German credit, 1,000 rows), "
        "where one 5-fold estimate is itself noisy; ignored for out-of-time folds.",
    )
    final: Literal["refit", "folds"] = Field(
        default="refit",
        description="The final booster: `refit` trains the chosen parameters on every non-test row; `folds` "
        "averages the best trial's fold boosters (k x repeats models, each on (k-1)/k of the non-test rows, "
        "merged into one booster), steadier on small tables. `folds` needs cross-validation (else: refit).",
    )
    plain_margin: float = Field(
        default=0.0,
        ge=0.0,
        description="Keep the plain LightGBM (trial 0) unless the best trial beats it by more than this on the "
        "tuning objective (AUC for binary targets): the best of many noisy fold scores is optimistic.",
    )
    space: dict[
        Literal[
            "learning_rate",
            "num_leaves",
            "min_child_samples",
            "feature_fraction",
            "bagging_fraction",
            "lambda_l1",
            "lambda_l2",
            "min_sum_hessian_in_leaf",
            "path_smooth",
            "cat_smooth",
            "cat_l2",
            "min_data_per_group",
            "extra_trees",
        ],
        tuple[float, float],
    ] = Field(
        default_factory=dict,
        description="Overrides of the search bounds, e.g. num_leaves: [3, 15]. The last six "
        "(training.tune.OPTIONAL_SPACE) are searched only when named here; extra_trees: [0, 1].",
    )
    metric: Literal["roc_auc", "log_loss"] | None = Field(
        default=None,
        description="What a trial and a fold are scored on (early stopping, pruning, the study's choice). Default: "
        "the target kind's (roc_auc for binary and ordinal, log_loss for multiclass). log_loss is a proper scoring rule: it "
        "penalises overconfident probabilities that roc_auc, a ranking metric, leaves free.",
    )
    monotone: dict[str, Literal[-1, 0, 1]] = Field(
        default_factory=dict,
        description="Monotone constraints (LightGBM `monotone_constraints`) by numeric feature: +1 = the score may "
        "only rise with the feature, -1 only fall; unlisted features are free. Binary and regression targets only "
        "(in a multiclass model every class would get the same direction).",
    )


class BaselineSpec(_Strict):
    """The stated baseline, trained and scored on the same split as the model.

    - `logistic`: standardised numeric features (median-imputed) + one-hot categoricals.
    - `persistence`: predict `column` (e.g. future tier = current tier).
    - `heuristic`: score = mean percentile rank of `columns` (sign -1 for `negative`); turned
      into probabilities by binning the score on the training rows.
    - `prior`: the training class distribution / mean.
    """

    kind: Literal["logistic", "persistence", "heuristic", "prior"] = "logistic"
    column: str | None = None
    columns: list[str] = Field(default_factory=list)
    negative: list[str] = Field(default_factory=list)
    bins: int = Field(default=20, ge=2)


class HiddenAggressiveSpec(_Strict):
    """Latent risk evaluation: among customers rated `stated_value`, find those whose truth is `truth_value`."""

    stated_column: str = "stated_risk"
    stated_value: str = STATED_CONSERVATIVE
    positive_class: str = AGGRESSIVE
    truth_column: str = "latent_risk"
    flag_share: float = Field(default=0.05, gt=0, lt=1, description="Share of stated-conservatives flagged.")


class RiskPosteriorSpec(_Strict):
    """Ordinal risk target: the classes from a latent-appetite measurement model (`training.appetite`)
    instead of the ordinal calibrator. Every column must be a model feature."""

    stated_column: str = "stated_risk"
    stated_age_days: str | None = Field(default="stated_risk_age_days", description="Days since the questionnaire.")
    profile: list[str] = Field(default_factory=list, description="Prior of the appetite: the profile questions.")
    measures: list[str] = Field(default_factory=list, description="Count features measuring the appetite (log1p).")
    covariates: list[str] = Field(default_factory=list, description="Engagement covariates of the measures (log1p).")
    label_where_positive: str | None = Field(
        default=None,
        description="A revealed label enters the fit only where this column (a feature or keep_column) is > 0 at T.",
    )
    correlated_residuals: bool = Field(
        default=False,
        description="One residual covariance across the measures instead of independent noise (measured, #12).",
    )


class UpgradeSpec(_Strict):
    """Tier evaluation: score 'future tier above current tier' from the class probabilities."""

    current_column: str = "tier"


class ReadSpec(_Strict):
    """How to read a CSV source that is not a headed, comma-separated file (e.g. UCI's `german.data`)."""

    format: Literal["csv", "parquet"] | None = Field(default=None, description="Default: from the file name.")
    sep: str = Field(default=",", description="Field separator; `whitespace` for runs of spaces.")
    header: bool = True
    names: list[str] | None = Field(default=None, description="Column names, required when `header` is false.")
    na_values: list[str] = Field(default_factory=list, description="Extra strings that mean missing.")

    @model_validator(mode="after")
    def _names(self) -> ReadSpec:
        if not self.header and not self.names:
            raise ValueError("read.header false needs read.names")
        if self.names is not None and len(set(self.names)) != len(self.names):
            raise ValueError("read.names repeats a name")
        return self

    def csv_options(self) -> dict:
        return {
            "sep": r"\s+" if self.sep == "whitespace" else self.sep,
            "header": 0 if self.header else None,
            "names": self.names,
            "na_values": self.na_values or None,
        }


class TaskSpec(_Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_\-]*$")
    description: str = ""
    source: str
    read: ReadSpec = Field(default_factory=ReadSpec)
    id: str | None = None
    target: TargetSpec
    where: str | None = Field(default=None, description="pandas query selecting the rows of the task.")
    features: list[str] | None = None
    categorical: list[str] = Field(default_factory=list)
    numeric: list[str] = Field(
        default_factory=list,
        description="Columns to read as numbers although the file holds text in them (e.g. Telco's TotalCharges, "
        "blank for new customers): values that are not numbers become missing, counted in the log.",
    )
    drop: list[str] = Field(default_factory=list)
    group: str | None = None
    weight: str | None = None
    split: SplitSpec = Field(default_factory=SplitSpec)
    tuning: TuningSpec = Field(default_factory=TuningSpec)
    baseline: BaselineSpec = Field(default_factory=BaselineSpec)
    calibration: Literal["sigmoid", "isotonic", "temperature"] = "sigmoid"
    primary_metric: str | None = None
    upgrade: UpgradeSpec | None = None
    hidden_aggressive: HiddenAggressiveSpec | None = None
    risk_posterior: RiskPosteriorSpec | None = None
    churn_driver: bool = Field(
        default=False,
        description="Evaluate `churn_driver` (training.segments.DriverConfig) against the simulator's "
        "`truth.churn_cause` when a truth table is given.",
    )
    keep_columns: list[str] = Field(
        default_factory=list,
        description="Non-feature columns carried into the holdout for evaluation (e.g. current tier).",
    )
    boost_from_baseline: bool = Field(
        default=False,
        description="Binary or ordinal target with a `heuristic` baseline: boost FROM the heuristic instead of from a "
        "constant. Each row starts at the logit of the heuristic's score (mean percentile rank of "
        "`baseline.columns`, ranks against the training rows; LightGBM `init_score`) and the trees learn "
        "corrections to it; early stopping still uses the validation rows. The model carries the training "
        "rows' rank tables (`training.model.RankPrior`), so scoring and serving add the same starting score. "
        "The baseline's columns must be numeric model features. For a target the heuristic encodes better "
        "than the labelled rows can teach (the latent risk model: DESIGN §6, training/tasks/risk.yaml). "
        "Multiclass target with a `persistence` baseline: each row starts at log P(future class | current "
        "`baseline.column`), the training transition matrix (`training.model.TransitionPrior`; the column must "
        "be a categorical model feature), so the trees learn only the change (the tier task).",
    )
    prior_strength: float = Field(
        default=1.0,
        gt=0.0,
        le=1.0,
        description="Multiclass `boost_from_baseline` only: the starting score is this times log P(future | "
        "current), a tempered transition prior (1 = the table itself). Below 1 the rows that stay keep enough "
        "gradient for the trees to rank them (the tier task: 0.5, docs/decisions/tier-model.md).",
    )
    # Set by the loader: the folder `source` is relative to.
    base_dir: str | None = None

    @model_validator(mode="after")
    def _check(self) -> TaskSpec:
        if self.split.kind == "group" and not self.group:
            raise ValueError("split.kind 'group' needs `group`")
        if self.target.kind == "binary" and self.target.column and self.target.positive is None:
            raise ValueError("a binary target.column needs target.positive (the value that counts as 1)")
        if self.tuning.monotone and self.target.kind == "multiclass":
            raise ValueError("tuning.monotone needs a binary or regression target")
        if self.tuning.metric is not None and self.target.kind == "regression":
            raise ValueError("tuning.metric needs a classification target (regression tunes on rmse)")
        if self.tuning.metric == "roc_auc" and self.target.kind == "multiclass":
            raise ValueError("tuning.metric roc_auc needs a binary (or ordinal) target")
        if self.boost_from_baseline and self.target.kind == "multiclass":
            # multiclass: start from persistence's transition table (training.model.TransitionPrior)
            if self.baseline.kind != "persistence" or not self.baseline.column:
                raise ValueError("boost_from_baseline with a multiclass target needs a `persistence` baseline.column")
            if self.features is not None and self.baseline.column not in self.features:
                raise ValueError(
                    f"boost_from_baseline: baseline.column {self.baseline.column!r} must be a model feature"
                )
        elif self.boost_from_baseline:
            if self.target.kind not in ("binary", "ordinal"):
                raise ValueError("boost_from_baseline needs a binary, ordinal or multiclass target")
            if self.baseline.kind != "heuristic" or not (self.baseline.columns or self.baseline.negative):
                raise ValueError("boost_from_baseline needs a `heuristic` baseline with columns")
            cols = [*self.baseline.columns, *self.baseline.negative]
            if len(set(cols)) != len(cols):
                raise ValueError(f"boost_from_baseline: baseline columns repeat: {cols}")
            if self.features is not None:
                absent = [c for c in cols if c not in self.features or c in self.drop]
                if absent:
                    raise ValueError(f"boost_from_baseline: baseline columns {absent} must be model `features`")
        if self.tuning.monotone and self.features is not None:
            unknown = sorted(set(self.tuning.monotone) - set(self.features))
            if unknown:
                raise ValueError(f"tuning.monotone names {unknown}, which are not in `features`")
        return self

    @property
    def model_name(self) -> str:
        return f"clientlens-{self.name}"

    @property
    def metric(self) -> str:
        """The headline metric used for promotion."""
        if self.primary_metric:
            return self.primary_metric
        return {"binary": "roc_auc", "multiclass": "log_loss", "ordinal": "log_loss", "regression": "rmse"}[
            self.target.kind
        ]

    def source_path(self) -> Path:
        return resolve_source(self.source, Path(self.base_dir) if self.base_dir else Path.cwd())


LOWER_IS_BETTER = {"log_loss", "brier", "rmse", "ece"}


def resolve_source(source: str, base_dir: Path, settings: Settings | None = None) -> Path:
    """Resolve `source` against `base_dir`; `CLIENTLENS_SHARED_DATA` replaces everything up to `shared/data/`."""
    root = (settings or Settings()).shared_data
    norm = source.replace("\\", "/")
    if root and _SHARED_MARKER in norm:
        return Path(root) / norm.split(_SHARED_MARKER, 1)[1]
    path = Path(source)
    return path if path.is_absolute() else (base_dir / path).resolve()


def _fmt_validation(exc: ValidationError, where: str) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(spec)"
        parts.append(f"{loc}: {err['msg']}")
    return f"bad task spec {where}: " + "; ".join(parts)


def spec_from_dict(data: dict, *, base_dir: Path, where: str = "") -> TaskSpec:
    if not isinstance(data, dict):
        raise InputError(f"bad task spec {where}: expected a mapping of fields, got {type(data).__name__}")
    try:
        return TaskSpec.model_validate({**data, "base_dir": str(base_dir)})
    except ValidationError as exc:
        raise InputError(_fmt_validation(exc, where)) from None


def load_spec(path: str | Path, *, base_dir: Path | None = None) -> TaskSpec:
    """Read a YAML spec. `source` is relative to the spec file unless `base_dir` says otherwise."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise InputError(f"task spec {path}: file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise InputError(f"task spec {path}: not valid YAML ({exc})") from None
    return spec_from_dict(data, base_dir=base_dir or path.parent.resolve(), where=str(path))


def builtin_spec(task: str, features_dir: str | Path) -> TaskSpec:
    """The built-in spec for `task` with its source (`panel.parquet`) in `features_dir`."""
    if task not in BUILTIN_TASKS:
        raise InputError(f"unknown task {task!r}: choose one of {', '.join(BUILTIN_TASKS)} or use --spec FILE")
    return load_spec(TASKS_DIR / f"{task}.yaml", base_dir=Path(features_dir).resolve())
