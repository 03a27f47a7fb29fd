"""File I/O every stage shares: atomic writes (nothing half-written is ever visible) and one
Parquet/CSV table reader whose errors name the file and what is wrong with it."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from core.errors import InputError


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it is renamed onto `path` (atomic on one
    file system), on failure removed. Readers see the old file or the new one, never a part.

    The temporary name starts with a dot and ends in `.tmp`, so globbing readers skip it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_atomic(path: str | Path, write: Callable[[Path], Any]) -> Path:
    """`write(tmp)` then rename onto `path`; returns `path`."""
    with atomic_path(path) as tmp:
        write(tmp)
    return Path(path)


def write_text_atomic(path: str | Path, text: str) -> Path:
    return write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_table(frame: Any, path: str | Path) -> Path:
    """A DataFrame to Parquet (or CSV when the name ends in `.csv`), atomically, without the index."""
    path = Path(path)
    if path.suffix == ".csv":
        return write_atomic(path, lambda tmp: frame.to_csv(tmp, index=False))
    return write_atomic(path, lambda tmp: frame.to_parquet(tmp, index=False))


def table_format(path: str | Path) -> str | None:
    """`"parquet"`, `"csv"` (also compressed, e.g. `.csv.gz`, or `.txt`) or None, from the file name."""
    name = Path(path).name.lower()
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    if ".csv" in name or name.endswith(".txt"):
        return "csv"
    return None


def read_table(
    path: str | Path,
    *,
    columns: Sequence[str] | None = None,
    what: str = "table",
    csv_options: Mapping[str, Any] | None = None,
    fmt: str | None = None,
) -> Any:
    """A Parquet or CSV file (`fmt`, else by its name; CSV may be compressed) as a DataFrame. A missing, empty,
    truncated, unknown-format or folder path is an `InputError` naming `what` and the path, not a
    raw pyarrow or pandas exception."""
    import pandas as pd

    path = Path(path)
    if not path.exists():
        raise InputError(f"{what} {path}: file not found")
    if path.is_dir():
        raise InputError(f"{what} {path}: is a folder, expected a Parquet or CSV file")
    if path.stat().st_size == 0:
        raise InputError(f"{what} {path}: the file is empty (0 bytes)")
    fmt = fmt or table_format(path)
    if fmt is None:
        raise InputError(f"{what} {path}: neither CSV nor Parquet (by its name: .parquet, .pq, .csv, .csv.gz, .txt)")
    cols = list(columns) if columns is not None else None
    try:
        if fmt == "csv":
            options = {k: v for k, v in (csv_options or {}).items() if v is not None}
            if (csv_options or {}).get("header", 0) is None:
                options["header"] = None
            return pd.read_csv(path, usecols=cols, encoding="utf-8-sig", low_memory=False, **options)
        return pd.read_parquet(path, columns=cols)
    except Exception as exc:
        raise InputError(f"{what} {path}: cannot be read as {'CSV' if fmt == 'csv' else 'Parquet'} ({exc})") from None


Model = TypeVar("Model")


def load_yaml_model(path: str | Path, model: type[Model], what: str, *, empty_ok: bool = False) -> Model:
    """A pydantic `model` from a YAML (or JSON) file: the edge where configuration comes in.

    Every problem is an `InputError` naming `what`, the file and, for a bad value, the field:
    missing file, YAML that does not parse, a top level that is not a mapping (an empty file gives
    the defaults when `empty_ok`), a field that fails validation."""
    import yaml
    from pydantic import ValidationError

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what} {path}: file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise InputError(f"{what} {path}: not valid YAML ({exc})") from None
    if data is None and empty_ok:
        data = {}
    if not isinstance(data, dict):
        raise InputError(f"{what} {path}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        return model.model_validate(data)  # type: ignore[attr-defined]  # any pydantic model
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise InputError(f"{what} {path}: field {where}: {first['msg']}") from None
