"""Simulated source systems: the bank's customers as core banking, wealth management and cards hold them.

A bank never has one clean `customers` table: the same person is a CIF in core banking, a client
reference in wealth management and a card account in the card system, each typed in by someone
else at another time. This module takes a simulated bank's `customers` (the true current facts)
and writes what each system holds:

- identifying fields (first/last name, birth date, phone, email, postcode) drawn from Faker pools
  (seeded), with realistic disagreement: typos and transpositions in names, first/last swapped,
  day/month swapped birth dates, format variants (case, spacing, +44 phones), contact details
  that changed after the record was last updated (a move: new postcode and phone), missing
  fields and duplicate records within one system;
- the contract's attributes each system knows, some of them stale: the income band declared at
  onboarding or card application (`income_band_on`), the risk questionnaire core banking took
  at onboarding while wealth management holds the latest (`risk_assessed_on`);
- the truth: `truth_crosswalk.parquet` (system, record_id -> customer_id) and
  `truth_profile.parquet` (the true current identity and attributes per customer).

Core banking holds every customer (the account is where the bank relationship starts) and its
`cif` is the key the behaviour tables (transactions, holdings, events) use; a duplicate CIF
opened later has no behaviour. Wealth and cards hold a subset.

Identity values come from Faker pools (a few thousand names, postcodes and email domains drawn
once) sampled with numpy, so a million records take seconds rather than the minutes Faker
per row would; the corruption of the few percent of touched values is plain Python.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from core.errors import InputError
from core.io import read_table, write_table

log = logging.getLogger(__name__)

SYSTEMS = ("core_banking", "wealth", "cards")
ID_COLUMNS = {"core_banking": "cif", "wealth": "client_ref", "cards": "card_account"}
IDENTITY_FIELDS = ("first_name", "last_name", "birth_date", "phone", "email", "postcode")
SYSTEM_ATTRIBUTES = {
    "core_banking": (
        "onboard_date",
        "occupation",
        "region",
        "income_band",
        "income_band_on",
        "stated_risk",
        "risk_assessed_on",
        "is_business_owner",
        "payroll_at_bank",
    ),
    "wealth": ("occupation", "income_band", "income_band_on", "stated_risk", "risk_assessed_on"),
    "cards": ("occupation", "region", "income_band", "income_band_on"),
}
CROSSWALK_FILE = "truth_crosswalk.parquet"
PROFILE_FILE = "truth_profile.parquet"
DUPLICATE_CIF_BASE = 900_000_000  # duplicate CIFs are opened later, above every original


@dataclass(frozen=True)
class SourceParams:
    """How messy each system is. Probabilities per record unless said otherwise."""

    coverage: tuple[float, float, float] = (1.0, 0.55, 0.65)  # share of customers each system holds
    duplicate: tuple[float, float, float] = (0.02, 0.03, 0.04)  # a second record in the same system
    name_typo: tuple[float, float, float] = (0.03, 0.08, 0.10)  # per name field
    name_swap: float = 0.02  # first and last name entered the wrong way round
    dob_swap: float = 0.02  # day and month swapped (when both <= 12)
    dob_typo: float = 0.02  # one digit off (day or year)
    missing: tuple[float, float, float] = (0.03, 0.08, 0.10)  # per contact field (phone, email, postcode)
    dob_missing: tuple[float, float, float] = (0.0, 0.04, 0.06)
    format_variant: float = 0.15  # per field: case, spacing, +44
    income_missing: tuple[float, float, float] = (0.12, 0.25, 0.25)
    moved: float = 0.25  # customers who moved (new postcode and phone) at some point
    new_email: float = 0.15  # customers who changed their email address
    income_changed: float = 0.35  # customers whose income band moved since onboarding
    core_stale_risk: float = 0.5  # core banking keeps the onboarding questionnaire (when one was retaken)


# ---------------------------------------------------------------- Faker pools


def _pools(seed: int, n_names: int = 3000, n_postcodes: int = 20000) -> dict[str, np.ndarray]:
    from faker import Faker

    fake = Faker("en_GB")
    fake.seed_instance(seed)
    first = np.unique([fake.first_name() for _ in range(n_names)])
    last = np.unique([fake.last_name() for _ in range(n_names)])
    postcodes = np.unique([fake.postcode() for _ in range(n_postcodes)])
    domains = np.unique([fake.free_email_domain() for _ in range(200)])
    return {"first": first, "last": last, "postcode": postcodes, "domain": domains}


def _zipf_choice(rng: np.random.Generator, pool: np.ndarray, n: int, a: float = 0.6) -> np.ndarray:
    """Common names are common: rank-frequency weights ~ 1 / rank^a (a = 0.6 on 3,000 names puts the
    commonest at about 1.7%, near Smith's share of UK surnames)."""
    w = 1.0 / np.arange(1, len(pool) + 1) ** a
    order = rng.permutation(len(pool))
    return pool[order][rng.choice(len(pool), size=n, p=w / w.sum())]


def _phones(rng: np.random.Generator, n: int) -> np.ndarray:
    digits = rng.integers(0, 10**9, size=n)
    return np.char.add("07", np.char.zfill(digits.astype(str), 9))


def _emails(rng: np.random.Generator, first: np.ndarray, last: np.ndarray, domains: np.ndarray) -> np.ndarray:
    n = len(first)
    style = rng.integers(0, 3, size=n)
    num = rng.integers(1, 99, size=n).astype(str)
    f = np.char.lower(first.astype(str))
    la = np.char.lower(last.astype(str))
    local = np.where(
        style == 0,
        np.char.add(np.char.add(f, "."), la),
        np.where(style == 1, np.char.add(np.char.add(np.char.add(f, "_"), la), num), np.char.add(la, num)),
    )
    local = np.char.replace(np.char.replace(local, " ", ""), "'", "")
    return np.char.add(np.char.add(local, "@"), domains[rng.integers(0, len(domains), size=n)])


def _unique_emails(emails: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An address belongs to one person: a taken one gets digits added, as a mail provider would insist."""
    out = pd.Series(emails.astype(object))
    for _ in range(10):
        taken = out.duplicated(keep="first").to_numpy()
        if not taken.any():
            break
        local, domain = out[taken].str.split("@", n=1).str[0], out[taken].str.split("@", n=1).str[1]
        digits = pd.Series(rng.integers(100, 10_000, size=int(taken.sum())).astype(str), index=local.index)
        out[taken] = local + digits + "@" + domain
    return out.to_numpy(dtype=object)


# ---------------------------------------------------------------- corruption


def _typo(rng: np.random.Generator, s: str) -> str:
    if len(s) < 3:
        return s + s[-1:]
    i = int(rng.integers(1, len(s) - 1))
    kind = int(rng.integers(0, 4))
    letters = "abcdefghijklmnopqrstuvwxyz"
    if kind == 0:  # substitution
        return s[:i] + letters[int(rng.integers(0, 26))] + s[i + 1 :]
    if kind == 1:  # deletion
        return s[:i] + s[i + 1 :]
    if kind == 2:  # insertion (a doubled letter)
        return s[:i] + s[i] + s[i:]
    return s[: i - 1] + s[i] + s[i - 1] + s[i + 1 :]  # adjacent transposition


def _apply(values: np.ndarray, mask: np.ndarray, fn) -> np.ndarray:
    out = values.astype(object).copy()
    for i in np.flatnonzero(mask):
        if out[i] is not None:
            out[i] = fn(out[i])
    return out


def _phone_variant(rng: np.random.Generator, p: str) -> str:
    k = int(rng.integers(0, 3))
    if k == 0:
        return "+44 " + p[1:5] + " " + p[5:]
    if k == 1:
        return p[:5] + " " + p[5:]
    return "(" + p[:5] + ") " + p[5:8] + "-" + p[8:]


def _postcode_variant(rng: np.random.Generator, pc: str) -> str:
    return pc.replace(" ", "") if rng.random() < 0.6 else pc.lower()


def _dob_swap(d: pd.Timestamp) -> pd.Timestamp:
    return d.replace(day=d.month, month=d.day) if d.day <= 12 and d.day != d.month else d


def _dob_typo(rng: np.random.Generator, d: pd.Timestamp) -> pd.Timestamp:
    if rng.random() < 0.5:
        return d + pd.Timedelta(days=int(rng.choice([-1, 1])))
    try:
        return d.replace(year=d.year + int(rng.choice([-10, -1, 1, 10])))
    except ValueError:  # 29 February
        return d + pd.Timedelta(days=1)


# ---------------------------------------------------------------- the build


def _true_profile(customers: pd.DataFrame, pools: dict[str, np.ndarray], rng: np.random.Generator) -> pd.DataFrame:
    n = len(customers)
    first = _zipf_choice(rng, pools["first"], n)
    last = _zipf_choice(rng, pools["last"], n)
    prof = pd.DataFrame(
        {
            "customer_id": customers["customer_id"].to_numpy(np.int64),
            "first_name": first,
            "last_name": last,
            "birth_date": pd.to_datetime(customers["birth_date"]).dt.normalize().to_numpy(),
            "phone": _phones(rng, n),
            "email": _emails(rng, first, last, pools["domain"]),  # made unique with the old ones below
            "postcode": pools["postcode"][rng.integers(0, len(pools["postcode"]), size=n)],
        }
    )
    for col in SYSTEM_ATTRIBUTES["core_banking"]:
        if col in customers.columns:
            prof[col] = customers[col].to_numpy()
    prof["income_band"] = customers["income_band"].astype(str).to_numpy()
    prof["stated_risk"] = customers["stated_risk"].astype(str).to_numpy()
    prof["occupation"] = customers["occupation"].astype(str).to_numpy()
    prof["region"] = customers["region"].astype(str).to_numpy()
    return prof


def _uniform_dates(rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    lo = lo.astype("datetime64[D]").astype(np.int64)
    hi = np.maximum(hi.astype("datetime64[D]").astype(np.int64), lo)
    return (
        (lo + (rng.random(len(lo)) * (hi - lo + 1)).astype(np.int64)).astype("datetime64[D]").astype("datetime64[ns]")
    )


def _shift_band(rng: np.random.Generator, bands: np.ndarray, order: tuple[str, ...]) -> np.ndarray:
    idx = pd.Categorical(bands, categories=order).codes.astype(np.int64)
    step = np.where(rng.random(len(idx)) < 0.5, -1, 1)
    step = np.where(idx == 0, 1, np.where(idx == len(order) - 1, -1, step))
    return np.array(order)[idx + step]


def build_sources(
    customers: pd.DataFrame, as_of: pd.Timestamp, seed: int, params: SourceParams | None = None
) -> tuple[dict[str, pd.DataFrame], pd.DataFrame, pd.DataFrame]:
    """The three systems' tables, the truth crosswalk and the true profile (pure; no I/O)."""
    from features import vocab

    p = params or SourceParams()
    rng = np.random.default_rng([seed, 19])
    pools = _pools(seed)
    truth = _true_profile(customers, pools, rng)
    n = len(truth)
    as_of = pd.Timestamp(as_of).normalize()
    onboard = pd.to_datetime(truth["onboard_date"]).dt.normalize().to_numpy()
    as_of_arr = np.full(n, as_of.to_datetime64()).astype("datetime64[ns]")

    # Life changes after onboarding: old values are what records updated before the change hold.
    moved = rng.random(n) < p.moved
    moved_on = np.where(moved, _uniform_dates(rng, onboard, as_of_arr), np.datetime64("NaT"))
    old_postcode = pools["postcode"][rng.integers(0, len(pools["postcode"]), size=n)]
    old_phone = _phones(rng, n)
    new_mail = rng.random(n) < p.new_email
    mail_on = np.where(new_mail, _uniform_dates(rng, onboard, as_of_arr), np.datetime64("NaT"))
    old_email = _emails(rng, truth["first_name"].to_numpy(), truth["last_name"].to_numpy(), pools["domain"])
    both = _unique_emails(np.concatenate([truth["email"].to_numpy(dtype=object), old_email.astype(object)]), rng)
    truth["email"], old_email = both[:n], both[n:]
    inc_changed = rng.random(n) < p.income_changed
    inc_on = np.where(inc_changed, _uniform_dates(rng, onboard, as_of_arr), np.datetime64("NaT"))
    old_band = _shift_band(rng, truth["income_band"].to_numpy(), vocab.INCOME_BANDS)
    risk_on = pd.to_datetime(truth["risk_assessed_on"]).to_numpy()

    systems: dict[str, pd.DataFrame] = {}
    crosswalk = []
    for k, system in enumerate(SYSTEMS):
        held = np.flatnonzero(rng.random(n) < p.coverage[k])
        dup = held[rng.random(len(held)) < p.duplicate[k]]
        rows = np.concatenate([held, dup])
        is_dup = np.r_[np.zeros(len(held), bool), np.ones(len(dup), bool)]
        m = len(rows)
        # When the record was last touched: core banking sees the customer often, others less.
        recent = {0: 0.7, 1: 0.4, 2: 0.3}[k]
        lo = np.where(rng.random(m) < recent, as_of_arr[rows] - np.timedelta64(365, "D"), onboard[rows])
        lo = np.maximum(lo, onboard[rows])
        updated = _uniform_dates(rng, lo, as_of_arr[rows])
        updated = np.where(is_dup, _uniform_dates(rng, onboard[rows], updated), updated)  # duplicates: older

        def current(col: str, old: np.ndarray, changed_on: np.ndarray, at: np.ndarray, rows=rows) -> np.ndarray:
            stale = ~np.isnat(changed_on[rows]) & (at < changed_on[rows])
            return np.where(stale, old[rows], truth[col].to_numpy()[rows])

        rec = pd.DataFrame(
            {
                "first_name": truth["first_name"].to_numpy()[rows],
                "last_name": truth["last_name"].to_numpy()[rows],
                "birth_date": truth["birth_date"].to_numpy()[rows],
                "phone": current("phone", old_phone, moved_on, updated),
                "email": current("email", old_email, mail_on, updated),
                "postcode": current("postcode", old_postcode, moved_on, updated),
                "updated_on": updated,
            }
        )
        _corrupt(rec, rng, p, k)
        attrs = SYSTEM_ATTRIBUTES[system]
        # The income band as declared: at onboarding (core), at the last review (wealth), at card application.
        declared = onboard[rows] if k == 0 else _uniform_dates(rng, onboard[rows], updated)
        band = current("income_band", old_band, inc_on, declared).astype(object)
        band[rng.random(m) < p.income_missing[k]] = None
        for col in attrs:
            if col == "income_band":
                rec[col] = band
            elif col == "income_band_on":
                rec[col] = np.where(pd.isna(band), np.datetime64("NaT"), declared).astype("datetime64[ns]")
            elif col in ("stated_risk", "risk_assessed_on") and k == 0:
                rec[col] = _core_questionnaire(truth, rows, onboard, risk_on, rng, p, col)
            else:
                rec[col] = truth[col].to_numpy()[rows]
        ids = _record_ids(system, truth["customer_id"].to_numpy()[rows], is_dup, rng)
        rec.insert(0, ID_COLUMNS[system], ids)
        order = rng.permutation(m)  # systems do not list customers in the bank's order
        rec = rec.iloc[order].reset_index(drop=True)
        systems[system] = rec
        crosswalk.append(
            pd.DataFrame(
                {
                    "source_system": system,
                    "record_id": pd.Series(ids[order]).astype(str).to_numpy(),
                    "customer_id": truth["customer_id"].to_numpy()[rows][order],
                }
            )
        )
    return systems, pd.concat(crosswalk, ignore_index=True), truth


def _core_questionnaire(truth, rows, onboard, risk_on, rng, p, col) -> np.ndarray:
    """Core banking keeps the questionnaire taken at onboarding when a newer one exists elsewhere."""
    retaken = ~np.isnat(risk_on[rows]) & (risk_on[rows] > onboard[rows] + np.timedelta64(365, "D"))
    stale = retaken & (rng.random(len(rows)) < p.core_stale_risk)
    if col == "risk_assessed_on":
        return np.where(stale, onboard[rows], risk_on[rows]).astype("datetime64[ns]")
    from features import vocab

    old = _shift_band(rng, truth["stated_risk"].to_numpy()[rows], vocab.RISK_CLASSES)
    return np.where(stale, old, truth["stated_risk"].to_numpy()[rows])


def _record_ids(system: str, cid: np.ndarray, is_dup: np.ndarray, rng: np.random.Generator):
    if system == "core_banking":
        ids = cid.astype(np.int64).copy()
        ids[is_dup] = DUPLICATE_CIF_BASE + np.arange(is_dup.sum())
        return ids
    prefix = {"wealth": "WM", "cards": "CC"}[system]
    nums = rng.choice(10**8, size=len(cid), replace=False)
    return np.char.add(prefix, np.char.zfill(nums.astype(str), 8)).astype(object)


def _corrupt(rec: pd.DataFrame, rng: np.random.Generator, p: SourceParams, k: int) -> None:
    """Typos, swaps, format variants and gaps, in place."""
    m = len(rec)
    for col in ("first_name", "last_name"):
        rec[col] = _apply(rec[col].to_numpy(), rng.random(m) < p.name_typo[k], lambda s: _typo(rng, s))
    swap = rng.random(m) < p.name_swap
    f, la = rec["first_name"].to_numpy().copy(), rec["last_name"].to_numpy().copy()
    rec.loc[swap, "first_name"], rec.loc[swap, "last_name"] = la[swap], f[swap]
    for col in ("first_name", "last_name"):
        rec[col] = _apply(rec[col].to_numpy(), rng.random(m) < p.format_variant / 3, lambda s: s.upper())
    dob = pd.Series(pd.to_datetime(rec["birth_date"]))
    sw = rng.random(m) < p.dob_swap
    dob[sw] = dob[sw].map(_dob_swap)
    ty = rng.random(m) < p.dob_typo
    dob[ty] = dob[ty].map(lambda d: _dob_typo(rng, d))
    dob[rng.random(m) < p.dob_missing[k]] = pd.NaT
    rec["birth_date"] = dob.to_numpy()
    rec["phone"] = _apply(rec["phone"].to_numpy(), rng.random(m) < p.format_variant, lambda s: _phone_variant(rng, s))
    rec["email"] = _apply(rec["email"].to_numpy(), rng.random(m) < p.format_variant / 3, lambda s: s.upper())
    rec["email"] = _apply(rec["email"].to_numpy(), rng.random(m) < p.name_typo[k] / 2, lambda s: _typo(rng, s))
    rec["postcode"] = _apply(
        rec["postcode"].to_numpy(), rng.random(m) < p.format_variant, lambda s: _postcode_variant(rng, s)
    )
    for col in ("phone", "email", "postcode"):
        v = rec[col].to_numpy().astype(object)
        v[rng.random(m) < p.missing[k]] = None
        rec[col] = v


# ---------------------------------------------------------------- files


def _as_of(raw: Path, customers: pd.DataFrame) -> pd.Timestamp:
    market = raw / "market.parquet"
    if market.exists():
        dates = read_table(market, columns=["date"], what="market")["date"]
        return pd.Timestamp(dates.max()) + pd.offsets.MonthEnd(0)
    return pd.Timestamp(pd.to_datetime(customers["onboard_date"]).max())


def write_sources(raw_dir: str | Path, out_dir: str | Path, seed: int, params: SourceParams | None = None) -> dict:
    """Read a simulated bank's `customers.parquet` and write the three systems plus the truth to `out_dir`."""
    raw = Path(raw_dir)
    customers = read_table(raw / "customers.parquet", what="customers")
    if customers.empty:
        raise InputError(f"customers {raw / 'customers.parquet'}: no rows")
    systems, crosswalk, profile = build_sources(customers, _as_of(raw, customers), seed, params)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = {}
    for system, frame in systems.items():
        write_table(frame, out / f"{system}.parquet")
        rows[system] = len(frame)
    write_table(crosswalk, out / CROSSWALK_FILE)
    write_table(profile, out / PROFILE_FILE)
    log.info("source systems for %d customers in %s: %s", len(profile), out, rows)
    return {"out": out, "records": rows, "customers": len(profile)}
