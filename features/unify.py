"""One customer, one profile: link source-system records, keep the freshest facts, complete what is missing.

Pipeline (`unify`):

1. `load_sources` reads one Parquet file per configured system, checks it (readable, id column
   present, ids present and unique within the system, identifying columns present) and stacks
   the records with standardised identifying fields (`standardise`). Nothing is written before
   every file passed.
2. `link` runs Splink (DuckDB backend) as a dedupe over all records, so duplicates within a
   system and matches across systems are found alike: blocking rules generate candidate pairs,
   u probabilities come from random sampling, m probabilities from EM on two blocking passes,
   pairs above `predict_threshold` are scored and clustered (connected components) at
   `match_threshold`. The same settings run on Splink's Spark backend (docs/UNIFY.md).
3. Each cluster becomes one `customer_id`: the lowest core-banking CIF in it (the CIF is the key
   of the behaviour tables), or a new id above every CIF for a cluster core banking lacks.
4. `golden_records` picks every field's value by survivorship (`FieldRule`: most recent value
   by the field's as-of date, or most trusted system; the other breaks ties), flags stale facts
   with their age, and `complete_income_band` fills a band no system holds from salary inflows
   (a classifier trained on the customers whose band is known), marked `income_band_imputed`.
5. `evaluate` (simulated data: a `truth_crosswalk.parquet` beside the sources) scores the links
   pairwise against the truth and against the naive exact name + birth date rule, and the
   completion against the most-common-value baseline; `features.unify_report` writes the HTML.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from core.errors import InputError
from core.io import load_yaml_model, read_table

log = logging.getLogger(__name__)

IDENTITY = ("first_name", "last_name", "birth_date", "phone", "email", "postcode")
CONTRACT_FIELDS = (
    "birth_date",
    "onboard_date",
    "occupation",
    "region",
    "income_band",
    "stated_risk",
    "risk_assessed_on",
    "is_business_owner",
    "payroll_at_bank",
)


# ---------------------------------------------------------------- config


class SystemConfig(BaseModel):
    """One source system: its file, its record id column and how far it is trusted (0..1)."""

    model_config = ConfigDict(extra="forbid")
    file: str
    id_column: str
    trust: float = Field(0.5, ge=0.0, le=1.0)
    holds_behaviour_key: bool = False  # its ids key the behaviour tables (core banking's CIF)


class FieldRule(BaseModel):
    """Survivorship for one field: which candidate value wins."""

    model_config = ConfigDict(extra="forbid")
    # recency: newest as-of date wins (trust breaks ties); trust: most trusted system wins (recency
    # breaks ties); vote: the value most records agree on (trust, then recency break ties).
    policy: Literal["recency", "trust", "vote"] = "recency"
    as_of: str = "updated_on"  # the column saying when the value was last true
    trust: dict[str, float] = Field(default_factory=dict)  # per-system override of SystemConfig.trust
    stale_after_days: int | None = None  # flag the survivor when older than this


def _default_systems() -> dict[str, SystemConfig]:
    return {
        "core_banking": SystemConfig(file="core_banking.parquet", id_column="cif", trust=0.9, holds_behaviour_key=True),
        "wealth": SystemConfig(file="wealth.parquet", id_column="client_ref", trust=0.7),
        "cards": SystemConfig(file="cards.parquet", id_column="card_account", trust=0.5),
    }


def _default_fields() -> dict[str, FieldRule]:
    kyc = FieldRule(policy="trust")  # verified at onboarding
    vote = FieldRule(policy="vote")  # a typo is rarely repeated in two systems
    return {
        "first_name": vote,
        "last_name": vote,
        "birth_date": vote,
        "onboard_date": kyc,
        "phone": FieldRule(),
        "email": FieldRule(),
        "postcode": FieldRule(),
        "occupation": FieldRule(),
        "region": FieldRule(),
        "income_band": FieldRule(as_of="income_band_on", stale_after_days=3 * 365),
        "stated_risk": FieldRule(as_of="risk_assessed_on", trust={"wealth": 1.0}, stale_after_days=3 * 365),
        "risk_assessed_on": FieldRule(as_of="risk_assessed_on", trust={"wealth": 1.0}),
        "is_business_owner": kyc,
        "payroll_at_bank": kyc,
    }


class UnifyConfig(BaseModel):
    """Everything `clientlens unify` can be told (YAML via `--config`)."""

    model_config = ConfigDict(extra="forbid")
    systems: dict[str, SystemConfig] = Field(default_factory=_default_systems)
    fields: dict[str, FieldRule] = Field(default_factory=_default_fields)
    predict_threshold: float = Field(0.2, gt=0.0, lt=1.0)  # pairs kept for clustering and the report
    match_threshold: float = Field(0.9, gt=0.0, lt=1.0)  # clustered together at or above
    u_max_pairs: float = Field(2e6, gt=0)
    em_max_pairs: float = Field(1e6, gt=0)
    seed: int = 7
    as_of: date | None = None  # staleness is measured at this date (default: the newest updated_on)
    duckdb_threads: int = Field(2, ge=1)
    duckdb_memory_limit: str = "6GB"


def load_config(path: str | Path | None) -> UnifyConfig:
    """The config from YAML (None: the defaults); a bad file or field is an InputError naming it."""
    return UnifyConfig() if path is None else load_yaml_model(path, UnifyConfig, "config", empty_ok=True)


# ---------------------------------------------------------------- loading


def _standard_name(s: pd.Series) -> pd.Series:
    out = s.astype("string").str.lower().str.replace(r"[^a-z]", "", regex=True)
    return out.mask(out == "")


def _standard_phone(s: pd.Series) -> pd.Series:
    d = s.astype("string").str.replace(r"\D", "", regex=True)
    d = d.mask(d.str.startswith("44", na=False), "0" + d.str.slice(2))
    return d.mask(d.str.len() < 7)


def _standard_postcode(s: pd.Series) -> pd.Series:
    # One spelling, with the space before the inward code that Splink's sector/district levels parse.
    out = s.astype("string").str.upper().str.replace(r"[^A-Z0-9]", "", regex=True)
    out = out.str.slice(0, -3) + " " + out.str.slice(-3)
    return out.mask(out.str.len() < 5)


def _standard_email(s: pd.Series) -> pd.Series:
    out = s.astype("string").str.strip().str.lower()
    return out.mask(~out.str.contains("@", na=False))


def standardise(records: pd.DataFrame) -> pd.DataFrame:
    """The identifying fields as Splink compares them: letters only, digits only, one case."""
    out = pd.DataFrame({"unique_id": records["unique_id"]})
    out["first_name"] = _standard_name(records["first_name"])
    out["last_name"] = _standard_name(records["last_name"])
    dob = pd.to_datetime(records["birth_date"], errors="coerce")
    out["birth_date"] = dob.dt.strftime("%Y-%m-%d").astype("string")
    out["phone"] = _standard_phone(records["phone"]) if "phone" in records else pd.NA
    out["email"] = _standard_email(records["email"]) if "email" in records else pd.NA
    out["postcode"] = _standard_postcode(records["postcode"]) if "postcode" in records else pd.NA
    return out


@dataclass
class Sources:
    """All systems' records stacked: `unique_id` = "<system>:<record id>"."""

    records: pd.DataFrame
    rows: dict[str, int]
    max_cif: int
    columns: dict[str, list[str]] = field(default_factory=dict)  # what each system's file holds


def load_sources(sources_dir: str | Path, config: UnifyConfig) -> Sources:
    """Read and check every system's file; InputError (file, column, rule) before anything is written."""
    base = Path(sources_dir)
    if not base.is_dir():
        raise InputError(f"sources {base}: not a folder")
    frames, rows, max_cif, columns = [], {}, -1, {}
    for system, sc in config.systems.items():
        path = base / sc.file
        df = read_table(path, what=f"source system {system}")
        if sc.id_column not in df.columns:
            raise InputError(
                f"{path}: rule 'id column present' fails: column '{sc.id_column}' is missing "
                f"(columns found: {', '.join(map(str, df.columns))})"
            )
        ids = df[sc.id_column]
        if ids.isna().any():
            raise InputError(f"{path}: rule 'record id not null' fails for {int(ids.isna().sum())} rows")
        dup = ids.duplicated(keep=False)
        if dup.any():
            examples = ", ".join(map(str, ids[dup].drop_duplicates().head(5)))
            raise InputError(
                f"{path}: rule 'record ids unique within a system' fails: {int(dup.sum())} rows share "
                f"{ids[dup].nunique()} ids in '{sc.id_column}', e.g. {examples}"
            )
        missing = [c for c in ("first_name", "last_name", "birth_date", "updated_on") if c not in df.columns]
        if missing:
            raise InputError(f"{path}: rule 'identifying columns present' fails: missing {', '.join(missing)}")
        if sc.holds_behaviour_key:
            if not pd.api.types.is_integer_dtype(ids):
                raise InputError(f"{path}: rule 'behaviour key is an integer' fails for column '{sc.id_column}'")
            max_cif = max(max_cif, int(ids.max()) if len(ids) else -1)
        df = df.rename(columns={sc.id_column: "record_id"})
        df.insert(0, "source_system", system)
        df["record_id"] = df["record_id"].astype(str)
        df["unique_id"] = system + ":" + df["record_id"]
        df["behaviour_key"] = ids.astype("int64").to_numpy() if sc.holds_behaviour_key else -1
        df["updated_on"] = pd.to_datetime(df["updated_on"], errors="coerce")
        frames.append(df)
        rows[system] = len(df)
        columns[system] = list(df.columns)
    records = pd.concat(frames, ignore_index=True, sort=False)
    return Sources(records, rows, max_cif, columns)


# ---------------------------------------------------------------- linkage


@dataclass
class Linkage:
    """Splink's output: clusters, the scored pairs above `predict_threshold`, the trained model."""

    clusters: pd.Series  # unique_id -> cluster label
    edges: pd.DataFrame  # unique_id_l, unique_id_r, match_probability, match_weight
    model: dict[str, Any]
    seconds: dict[str, float] = field(default_factory=dict)


def splink_settings(config: UnifyConfig):
    """The model: comparisons per identifying field and the blocking rules for prediction."""
    import splink.comparison_library as cl
    from splink import SettingsCreator, block_on

    return SettingsCreator(
        link_type="dedupe_only",
        unique_id_column_name="unique_id",
        comparisons=[
            cl.NameComparison("first_name"),
            cl.NameComparison("last_name").configure(term_frequency_adjustments=True),
            cl.DateOfBirthComparison("birth_date", input_is_string=True),
            cl.ExactMatch("phone"),
            cl.EmailComparison("email"),
            cl.PostcodeComparison("postcode"),
        ],
        blocking_rules_to_generate_predictions=[
            block_on("first_name", "last_name"),
            block_on("birth_date", "substr(first_name, 1, 1)"),
            block_on("birth_date", "substr(last_name, 1, 1)"),
            block_on("phone"),
            block_on("email"),
            block_on("postcode", "substr(first_name, 1, 1)"),
        ],
        retain_intermediate_calculation_columns=False,
        retain_matching_columns=False,
    )


def link(std: pd.DataFrame, config: UnifyConfig) -> Linkage:
    """Train the Splink model on these records, score candidate pairs and cluster them."""
    import duckdb
    from splink import DuckDBAPI, Linker, block_on

    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    if not log.isEnabledFor(logging.DEBUG):
        # Splink warns about every level EM cannot see in a sample (e.g. a rare postcode level); noise here.
        logging.getLogger("splink").setLevel(logging.ERROR)
    con = duckdb.connect()
    con.execute(f"SET threads = {config.duckdb_threads}")
    con.execute(f"SET memory_limit = '{config.duckdb_memory_limit}'")
    db = DuckDBAPI(connection=con)
    sdf = db.register(std, dataset_display_name="records")
    linker = Linker(sdf, splink_settings(config), log_level=None)
    linker.training.estimate_probability_two_random_records_match(
        [block_on("first_name", "last_name", "birth_date"), block_on("email")], recall=0.8
    )
    linker.training.estimate_u_using_random_sampling(max_pairs=config.u_max_pairs, seed=config.seed)
    for rule in (block_on("birth_date"), block_on("email")):
        linker.training.estimate_parameters_using_expectation_maximisation(
            rule, estimate_without_term_frequencies=True, max_pairs=config.em_max_pairs
        )
    seconds["train"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    pred = linker.inference.predict(threshold_match_probability=config.predict_threshold, warning_mode="never")
    edges = con.execute(
        f"SELECT unique_id_l, unique_id_r, match_probability, match_weight FROM {pred.physical_name}"
    ).df()
    seconds["predict"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    clustered = linker.clustering.cluster_pairwise_predictions_at_threshold(
        pred, threshold_match_probability=config.match_threshold
    )
    cl = con.execute(f"SELECT unique_id, cluster_id FROM {clustered.physical_name}").df()
    seconds["cluster"] = time.perf_counter() - t0
    model = linker.misc.save_model_to_json()
    con.close()
    clusters = cl.set_index("unique_id")["cluster_id"].reindex(std["unique_id"].to_numpy())
    # Records no pair reached stay on their own.
    clusters = clusters.fillna(pd.Series(clusters.index, index=clusters.index))
    return Linkage(clusters.astype(str), edges, model, seconds)


def match_weights(model: dict[str, Any]) -> pd.DataFrame:
    """Partial match weight log2(m/u) per comparison level of the trained model."""
    rows = []
    for comp in model["comparisons"]:
        for level in comp["comparison_levels"]:
            if level.get("is_null_level"):
                continue
            m, u = level.get("m_probability"), level.get("u_probability")
            if m is None or u is None or m <= 0 or u <= 0:
                continue
            rows.append(
                {
                    "comparison": comp["output_column_name"],
                    "level": level.get("label_for_charts", level["sql_condition"]),
                    "m": m,
                    "u": u,
                    "weight": math.log2(m / u),
                }
            )
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- customers


def behaviour_keys(raw_dir: Path) -> np.ndarray:
    """Every customer_id the behaviour tables (transactions, holdings, events) in `raw_dir` use."""
    import duckdb

    paths = [str(raw_dir / f"{t}.parquet") for t in ("transactions", "holdings", "events")]
    paths = [p for p in paths if Path(p).exists()]
    if not paths:
        return np.array([], dtype=np.int64)
    con = duckdb.connect()
    try:
        union = " UNION ".join(f"SELECT DISTINCT customer_id FROM read_parquet('{p}')" for p in paths)
        return con.execute(union).df()["customer_id"].to_numpy(np.int64)
    except duckdb.Error as exc:
        raise InputError(f"behaviour tables in {raw_dir}: unreadable ({exc})") from None
    finally:
        con.close()


def split_anchored_clusters(
    records: pd.DataFrame, linkage: Linkage, anchors: np.ndarray, threshold: float
) -> tuple[pd.Series, int]:
    """Keep at most one CIF with behaviour per cluster (two such CIFs are two customers the bank
    already tells apart; merging them would orphan one's transactions).

    Inside each offending cluster the links are re-joined strongest first (union-find) and a link
    that would put two anchored CIFs together is skipped. Returns the new labels and how many
    clusters were split."""
    clusters = linkage.clusters.copy()
    uid = records["unique_id"].to_numpy()
    anchored = pd.Series(np.isin(records["behaviour_key"].to_numpy(), anchors), index=uid)
    per_cluster = anchored.groupby(clusters.reindex(uid).to_numpy()).sum()
    bad = per_cluster.index[per_cluster > 1]
    if len(bad) == 0:
        return clusters, 0
    members = clusters[clusters.isin(bad)]
    parent = {u: u for u in members.index}
    has_anchor = {u: bool(anchored[u]) for u in members.index}

    def find(u: str) -> str:
        while parent[u] != u:
            parent[u] = parent[parent[u]]
            u = parent[u]
        return u

    e = linkage.edges
    e = e[e["unique_id_l"].isin(parent.keys()) & e["unique_id_r"].isin(parent.keys())]
    e = e[e["match_probability"] >= threshold].sort_values("match_probability", ascending=False)
    for left, right in zip(e["unique_id_l"], e["unique_id_r"], strict=True):
        a, b = find(left), find(right)
        if a == b or (has_anchor[a] and has_anchor[b]):
            continue
        parent[b] = a
        has_anchor[a] = has_anchor[a] or has_anchor[b]
    for u in members.index:
        clusters[u] = f"split:{find(u)}"
    return clusters, len(bad)


def assign_customer_ids(records: pd.DataFrame, clusters: pd.Series, max_cif: int) -> pd.Series:
    """A cluster's id is its lowest behaviour key (CIF); clusters without one get new ids above every CIF."""
    label = clusters.reindex(records["unique_id"].to_numpy()).to_numpy()
    key = records["behaviour_key"].to_numpy()
    frame = pd.DataFrame({"cluster": label, "key": np.where(key >= 0, key, np.iinfo(np.int64).max)})
    lowest = frame.groupby("cluster", sort=True)["key"].min()
    orphan = lowest == np.iinfo(np.int64).max
    lowest[orphan] = max_cif + 1 + np.arange(int(orphan.sum()))
    return pd.Series(lowest.reindex(label).to_numpy().astype(np.int64), index=records.index, name="customer_id")


def _survivor(candidates: pd.DataFrame, rule: FieldRule, trust: dict[str, float]) -> pd.DataFrame:
    """The winning row per customer among candidates (customer_id, source_system, value, as_of)."""
    c = candidates.copy()
    weights = {**trust, **rule.trust}
    c["trust"] = c["source_system"].map(weights).fillna(0.0).astype(float)
    c["as_of_key"] = c["as_of"].fillna(pd.Timestamp("1900-01-01"))
    if rule.policy == "vote":
        c["votes"] = c.groupby(["customer_id", "value"], sort=False)["trust"].transform("size")
        keys = ["votes", "trust", "as_of_key"]
    elif rule.policy == "trust":
        keys = ["trust", "as_of_key"]
    else:
        keys = ["as_of_key", "trust"]
    c = c.sort_values(["customer_id", *keys], ascending=[True] + [False] * len(keys), kind="stable")
    return c.drop_duplicates("customer_id", keep="first").set_index("customer_id")


_CLEAN = {
    "first_name": lambda s: _standard_name(s).str.title(),
    "last_name": lambda s: _standard_name(s).str.title(),
    "phone": _standard_phone,
    "email": _standard_email,
    "postcode": _standard_postcode,
}


def golden_records(records: pd.DataFrame, customer_id: pd.Series, config: UnifyConfig, as_of: pd.Timestamp):
    """One row per customer: every configured field by survivorship, its age, where it came from."""
    trust = {s: sc.trust for s, sc in config.systems.items()}
    recs = records.assign(customer_id=customer_id.to_numpy())
    ids = np.sort(recs["customer_id"].unique())
    out = pd.DataFrame(index=pd.Index(ids, name="customer_id"))
    grouped = recs.groupby("customer_id")
    out["n_source_records"] = grouped.size()
    systems = sorted(recs["source_system"].unique())
    bit = recs["source_system"].map({name: 1 << k for k, name in enumerate(systems)})
    held = pd.DataFrame({"customer_id": recs["customer_id"], "bit": bit}).drop_duplicates()
    mask = held.groupby("customer_id")["bit"].sum()
    names = {m: "+".join(n for k, n in enumerate(systems) if m >> k & 1) for m in range(1, 1 << len(systems))}
    out["source_systems"] = mask.map(names).reindex(ids)
    for name, rule in config.fields.items():
        if name not in recs.columns:
            continue
        value = recs[name]
        if name in _CLEAN:  # survivorship compares (and the profile keeps) one spelling per value
            value = _CLEAN[name](value)
        as_of_col = rule.as_of if rule.as_of in recs.columns else "updated_on"
        cand = pd.DataFrame(
            {
                "customer_id": recs["customer_id"].to_numpy(),
                "source_system": recs["source_system"].to_numpy(),
                "value": value.to_numpy(),
                "as_of": pd.to_datetime(recs[as_of_col], errors="coerce").to_numpy(),
            }
        )
        cand = cand[pd.notna(cand["value"])]
        won = _survivor(cand, rule, trust)
        values = won["value"].reindex(ids)
        out[name] = (
            values.astype(object).where(values.notna(), None).to_numpy() if name in _CLEAN else values.to_numpy()
        )
        out[f"{name}_from"] = won["source_system"].reindex(ids).to_numpy()
        if rule.stale_after_days is not None:
            age = (as_of - pd.to_datetime(won["as_of"].reindex(ids))).dt.days
            out[f"{name}_age_days"] = age.astype("Int64").to_numpy()
            out[f"{name}_stale"] = (age > rule.stale_after_days).fillna(False).to_numpy()
    if "income_band_age_days" in out and "income_band_on" not in out:
        out["income_band_on"] = pd.to_datetime(as_of - pd.to_timedelta(out["income_band_age_days"], unit="D"))
    return out.reset_index()


def behaviour_features(raw_dir: Path, customer_ids: np.ndarray) -> pd.DataFrame:
    """Salary and inflow per active month from `transactions.parquet` (DuckDB, bounded memory)."""
    import duckdb

    path = raw_dir / "transactions.parquet"
    if not path.exists():
        raise InputError(f"transactions {path}: file not found (needed to complete income bands from behaviour)")
    con = duckdb.connect()
    try:
        frame = con.execute(
            """
            SELECT customer_id,
                   count(DISTINCT date_trunc('month', ts)) AS months,
                   sum(CASE WHEN category = 'salary' THEN amount ELSE 0 END) AS salary,
                   count(DISTINCT CASE WHEN category = 'salary' THEN date_trunc('month', ts) END) AS salary_months,
                   sum(CASE WHEN direction = 'in' THEN amount ELSE 0 END) AS inflow,
                   sum(CASE WHEN direction = 'out' THEN amount ELSE 0 END) AS outflow
            FROM read_parquet(?) GROUP BY customer_id
            """,
            [str(path)],
        ).df()
    except duckdb.Error as exc:
        raise InputError(f"transactions {path}: unreadable for income completion ({exc})") from None
    finally:
        con.close()
    frame = frame.set_index("customer_id").reindex(customer_ids)
    months = frame["months"].clip(lower=1)
    feats = pd.DataFrame(index=frame.index)
    feats["salary_per_month"] = np.log1p((frame["salary"] / frame["salary_months"].clip(lower=1)).fillna(0))
    feats["salary_share_months"] = (frame["salary_months"] / months).fillna(0)
    feats["inflow_per_month"] = np.log1p((frame["inflow"] / months).fillna(0))
    feats["outflow_per_month"] = np.log1p((frame["outflow"] / months).fillna(0))
    return feats


def complete_income_band(golden: pd.DataFrame, feats: pd.DataFrame | None, seed: int) -> pd.DataFrame:
    """Fill a missing income band: a classifier on behaviour (when given) or the most common band."""
    g = golden.copy()
    missing = g["income_band"].isna().to_numpy()
    g["income_band_imputed"] = missing
    if not missing.any():
        return g
    known = ~missing
    mode = g.loc[known, "income_band"].mode()
    fallback = mode.iloc[0] if len(mode) else None
    if feats is None or known.sum() < 50:
        g.loc[missing, "income_band"] = fallback
        return g
    from lightgbm import LGBMClassifier

    x = feats.reindex(g["customer_id"].to_numpy()).reset_index(drop=True)
    if "occupation" in g:
        x["occupation"] = pd.Categorical(g["occupation"].astype(str)).codes
    # Fresh labels teach current behaviour better than bands declared years ago.
    train = known & ~g.get("income_band_stale", pd.Series(False, index=g.index)).to_numpy(bool)
    if train.sum() < 50:
        train = known
    # One thread: the machine is shared and a few features on 10^5 rows train in seconds anyway.
    model = LGBMClassifier(
        n_estimators=150,
        learning_rate=0.05,
        num_leaves=15,
        min_child_samples=20,
        random_state=seed,
        n_jobs=1,
        verbose=-1,
    )
    model.fit(x[train], g.loc[train, "income_band"].astype(str))
    g.loc[missing, "income_band"] = model.predict(x[missing])
    g.loc[missing, "income_band_from"] = "imputed"
    return g


def _fill_required(golden: pd.DataFrame) -> pd.DataFrame:
    """Contract fields still empty (no system holds them): most common value / median, marked imputed."""
    g = golden
    for name in CONTRACT_FIELDS:
        if name not in g or name in ("risk_assessed_on", "income_band"):
            continue
        gap = g[name].isna()
        if not gap.any():
            continue
        if pd.api.types.is_datetime64_any_dtype(g[name]):
            g.loc[gap, name] = g[name].median()
        else:
            g.loc[gap, name] = g[name].mode().iloc[0]
        g[f"{name}_imputed"] = gap.to_numpy()
    return g


def to_contract(golden: pd.DataFrame) -> pd.DataFrame:
    """The golden records in the raw contract's `customers` shape (plus the extra profile columns)."""
    from features.contract import validate_frame

    g = _fill_required(golden.copy())
    for name in ("birth_date", "onboard_date", "risk_assessed_on", "income_band_on"):
        if name in g:
            g[name] = pd.to_datetime(g[name]).astype("datetime64[ns]")
    for name in ("is_business_owner", "payroll_at_bank"):
        if name in g:
            g[name] = g[name].astype(bool)
    if "birth_date" in g and "onboard_date" in g:
        # A surviving birth date typo can fall after onboarding; keep the contract's rule and say so.
        bad = (g["birth_date"] >= g["onboard_date"]).to_numpy()
        g["birth_date_conflict"] = bad
        g.loc[bad, "birth_date"] = g.loc[bad, "onboard_date"] - pd.DateOffset(years=18)
    missing = [c for c in CONTRACT_FIELDS if c not in g]
    if missing:
        raise InputError(f"sources: no system holds the contract field(s) {', '.join(missing)} (rule 'column present')")
    validate_frame("customers", g)  # raises InputError naming the broken rule
    return g


# ---------------------------------------------------------------- evaluation


def pairwise_scores(predicted: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Pairwise precision/recall/F1 of a clustering against true entity labels (same record order)."""
    frame = pd.DataFrame({"p": pd.factorize(predicted)[0], "t": pd.factorize(truth)[0]})

    def pairs(counts: pd.Series) -> float:
        c = counts.to_numpy(dtype=np.float64)
        return float((c * (c - 1) / 2).sum())

    tp = pairs(frame.groupby(["p", "t"]).size())
    pred = pairs(frame.groupby("p").size())
    true = pairs(frame.groupby("t").size())
    precision = tp / pred if pred else 1.0
    recall = tp / true if true else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "true_pairs": true, "predicted_pairs": pred}


def naive_clusters(std: pd.DataFrame) -> np.ndarray:
    """The naive rule: exact (standardised) first name + last name + birth date; a gap is its own cluster."""
    key = std["first_name"].astype(str) + "|" + std["last_name"].astype(str) + "|" + std["birth_date"].astype(str)
    incomplete = std[["first_name", "last_name", "birth_date"]].isna().any(axis=1)
    return np.where(incomplete, "solo:" + std["unique_id"].astype(str), key).astype(str)


def evaluate(
    sources_dir: Path, records: pd.DataFrame, std: pd.DataFrame, linkage: Linkage, golden: pd.DataFrame
) -> dict[str, Any] | None:
    """Scores against the simulator's truth, when it is there (None otherwise)."""
    from features.sources import CROSSWALK_FILE, PROFILE_FILE

    cw_path = sources_dir / CROSSWALK_FILE
    if not cw_path.exists():
        return None
    cw = read_table(cw_path, what="truth crosswalk")
    cw_id = cw["source_system"].astype(str) + ":" + cw["record_id"].astype(str)
    truth_of = pd.Series(cw["customer_id"].to_numpy(), index=cw_id.to_numpy())
    t = truth_of.reindex(records["unique_id"].to_numpy()).to_numpy()
    if pd.isna(t).any():
        raise InputError(f"{cw_path}: rule 'every source record in the crosswalk' fails for {int(pd.isna(t).sum())}")
    splink = pairwise_scores(linkage.clusters.reindex(records["unique_id"].to_numpy()).to_numpy(), t)
    naive = pairwise_scores(naive_clusters(std), t)
    result: dict[str, Any] = {"linkage": splink, "naive": naive, "f1_gain_over_naive": splink["f1"] - naive["f1"]}
    prof_path = sources_dir / PROFILE_FILE
    if prof_path.exists():
        result["golden"] = _golden_accuracy(read_table(prof_path, what="truth profile"), records, golden, t)
    return result


def _golden_accuracy(profile: pd.DataFrame, records: pd.DataFrame, golden: pd.DataFrame, truth_ids: np.ndarray):
    """Per field: golden value == true current value, for customers mapped to their majority true id."""
    rec = pd.DataFrame({"customer_id": records["customer_id"].to_numpy(), "t": truth_ids})
    counts = rec.groupby(["customer_id", "t"]).size().rename("n").reset_index()
    counts = counts.sort_values(["customer_id", "n"], ascending=[True, False], kind="stable")
    major = counts.drop_duplicates("customer_id").set_index("customer_id")["t"]
    g = golden.set_index("customer_id")
    prof = profile.set_index("customer_id").reindex(major.to_numpy())
    out: dict[str, Any] = {}
    norm = {
        "first_name": _standard_name,
        "last_name": _standard_name,
        "phone": _standard_phone,
        "email": _standard_email,
        "postcode": _standard_postcode,
    }
    # Baseline: what the customer's own core-banking record (the CIF the profile is keyed by) says.
    core = records[records["behaviour_key"] == records["customer_id"]].drop_duplicates("customer_id")
    core = core.set_index("customer_id").reindex(major.index)
    baseline: dict[str, float] = {}
    for name in ("first_name", "last_name", "birth_date", "phone", "email", "postcode", "income_band", "stated_risk"):
        if name not in g or name not in prof:
            continue
        if name in core:
            baseline[name] = _agreement(core[name], prof[name], name, norm)
        out[name] = _agreement(g.loc[major.index, name], prof[name], name, norm)
    out["core_banking_only"] = baseline
    if "income_band_imputed" in g:
        imp = g.loc[major.index, "income_band_imputed"].to_numpy(bool)
        if imp.any():
            want = prof["income_band"].astype(str).to_numpy()
            got = g.loc[major.index, "income_band"].astype(str).to_numpy()
            known = ~imp
            mode = pd.Series(got[known]).mode().iloc[0]
            out["completion"] = {
                "imputed": int(imp.sum()),
                "accuracy": float(np.mean(got[imp] == want[imp])),
                "most_common_baseline": float(np.mean(want[imp] == mode)),
                "most_common_value": mode,
            }
    return out


def _agreement(got: pd.Series, want: pd.Series, name: str, norm: dict) -> float:
    """Share of rows where the two values agree (a missing value never agrees)."""
    if name in norm:
        got, want = norm[name](got), norm[name](want)
    elif name == "birth_date":
        got, want = pd.to_datetime(got), pd.to_datetime(want)
    else:
        got, want = got.astype("string"), want.astype("string")
    got_v, want_v = got.to_numpy(dtype=object), want.to_numpy(dtype=object)
    ok = ~pd.isna(got_v) & ~pd.isna(want_v)
    eq = np.zeros(len(got_v), dtype=bool)
    eq[ok] = got_v[ok] == want_v[ok]
    return float(eq.mean())


# ---------------------------------------------------------------- the command


@dataclass
class UnifyResult:
    customers: pd.DataFrame
    crosswalk: pd.DataFrame
    records: pd.DataFrame
    linkage: Linkage
    metrics: dict[str, Any] | None
    as_of: pd.Timestamp
    seconds: dict[str, float]
    rows: dict[str, int]
    columns: dict[str, list[str]]
    split_clusters: int = 0  # clusters split to keep one CIF with behaviour each


def unify_frames(sources_dir: str | Path, config: UnifyConfig, raw_dir: str | Path | None = None) -> UnifyResult:
    """Everything but writing: load, link, golden records, completion, evaluation."""
    base = Path(sources_dir)
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    src = load_sources(base, config)
    std = standardise(src.records)
    seconds["load"] = time.perf_counter() - t0
    linkage = link(std, config)
    seconds.update(linkage.seconds)
    t0 = time.perf_counter()
    records = src.records
    splits = 0
    if raw_dir is not None:
        linkage.clusters, splits = split_anchored_clusters(
            records, linkage, behaviour_keys(Path(raw_dir)), config.match_threshold
        )
    records["customer_id"] = assign_customer_ids(records, linkage.clusters, src.max_cif).to_numpy()
    as_of = pd.Timestamp(config.as_of) if config.as_of else pd.Timestamp(records["updated_on"].max()).normalize()
    golden = golden_records(records, records["customer_id"], config, as_of)
    feats = None
    if raw_dir is not None and "income_band" in golden:
        feats = behaviour_features(Path(raw_dir), golden["customer_id"].to_numpy())
    if "income_band" in golden:
        golden = complete_income_band(golden, feats, config.seed)
    customers = to_contract(golden)
    customers["link_confidence"] = _cluster_confidence(records, linkage, customers["customer_id"].to_numpy())
    seconds["golden"] = time.perf_counter() - t0
    crosswalk = records[["source_system", "record_id", "customer_id"]].copy()
    crosswalk["cluster_size"] = crosswalk.groupby("customer_id")["record_id"].transform("size").to_numpy()
    metrics = evaluate(base, records, std, linkage, customers)
    return UnifyResult(customers, crosswalk, records, linkage, metrics, as_of, seconds, src.rows, src.columns, splits)


def _cluster_confidence(records: pd.DataFrame, linkage: Linkage, ids: np.ndarray) -> np.ndarray:
    """Per customer: the weakest link probability inside its cluster (1.0 for a single record)."""
    cid = pd.Series(records["customer_id"].to_numpy(), index=records["unique_id"].to_numpy())
    e = linkage.edges
    if e.empty:
        return np.ones(len(ids))
    left, right = cid.reindex(e["unique_id_l"]).to_numpy(), cid.reindex(e["unique_id_r"]).to_numpy()
    inside = e[(left == right) & (e["match_probability"] >= 0)].assign(customer_id=left[left == right])
    weakest = inside.groupby("customer_id")["match_probability"].min()
    return weakest.reindex(ids).fillna(1.0).to_numpy()


def unify(
    sources_dir: str | Path,
    out_dir: str | Path,
    config: UnifyConfig | None = None,
    raw_dir: str | Path | None = None,
) -> dict[str, Any]:
    """`clientlens unify`: write customers.parquet, crosswalk.parquet and unify_report.html to `out_dir`."""
    from core.io import write_table, write_text_atomic
    from features.unify_report import render_report

    config = config or UnifyConfig()
    result = unify_frames(sources_dir, config, raw_dir)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    html = render_report(result, config)
    write_table(result.crosswalk, out / "crosswalk.parquet")
    write_table(result.customers, out / "customers.parquet")
    report = write_text_atomic(out / "unify_report.html", html)
    n = len(result.customers)
    sizes = result.crosswalk.groupby("customer_id").size()
    summary: dict[str, Any] = {
        "out": out.resolve(),
        "records": result.rows,
        "customers": n,
        "clusters": {
            "multi_record": int((sizes > 1).sum()),
            "largest": int(sizes.max()),
            "split_to_keep_one_cif_with_behaviour": result.split_clusters,
        },
        "imputed_income_band": int(result.customers.get("income_band_imputed", pd.Series(dtype=bool)).sum()),
        "stale_income_band": int(result.customers.get("income_band_stale", pd.Series(dtype=bool)).sum()),
        "seconds": {k: round(v, 2) for k, v in result.seconds.items()},
        "report": report.resolve(),
    }
    if result.metrics is not None:
        m = result.metrics
        summary["f1"] = round(m["linkage"]["f1"], 4)
        summary["naive_f1"] = round(m["naive"]["f1"], 4)
        summary["precision"] = round(m["linkage"]["precision"], 4)
        summary["recall"] = round(m["linkage"]["recall"], 4)
        if "golden" in m:
            summary["golden_accuracy"] = {k: round(v, 4) for k, v in m["golden"].items() if isinstance(v, float)}
            if "completion" in m["golden"]:
                summary["completion"] = m["golden"]["completion"]
    return summary
