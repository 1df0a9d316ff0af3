"""Results of a sweep: result files on disk, the CSV (one row per run), the Markdown tables.

* :func:`write_result` / :func:`load_results`: one JSON file per run under
  ``<out>/runs/<key>.json``, written atomically (temporary file, then ``os.replace``), so
  an interrupted sweep never leaves a half-written result that a resume would trust.
  A run's file records ``data_fingerprint`` (:func:`mmenv.datasets.base.data_fingerprint`
  of the data it ran on); :func:`load_results` refuses to hand back a finished run whose
  data set has other contents now (:func:`check_finished_data`), so neither a re-run of
  ``mmenv compare`` nor one of ``mmenv bench`` reuses a result of data that changed.
* :func:`results_rows` / :func:`write_csv`: columns ``dataset, learner, policy,
  sample_order, seed, status, fused_accuracy, fused_map, fused_macro_f1,
  <modality>_<metric>..., reward_sum, steps, wall_time_s, error, key``.
* :func:`markdown_tables`: per data set, mean ± std over the seeds that finished
  (``ok`` runs; diverged and failed ones are counted, not averaged) of accuracy, MAP and
  macro-F1, fused and per modality, in percent; std is the sample standard deviation
  (n - 1), blank for a single seed (:mod:`mmenv.results`, shared by every table).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from mmenv.atomic import atomic_write_text
from mmenv.results import mean_std, std_note, summarise

__all__ = ["write_result", "read_result", "load_results", "check_finished_data", "results_rows", "write_csv", "markdown_tables",
           "group_results", "mean_std", "METRICS", "FINISHED"]

METRICS = ("accuracy", "map", "macro_f1")
METRIC_LABELS = {"accuracy": "Acc", "map": "MAP", "macro_f1": "F1"}
FINISHED = ("ok", "diverged")   # statuses a resume does not run again


# ---------------------------------------------------------------------- result files
def write_result(runs_dir: str | Path, result: dict[str, Any]) -> Path:
    """Write ``result`` to ``runs_dir/<key>.json`` atomically."""
    runs_dir = Path(runs_dir)
    runs_dir.mkdir(parents=True, exist_ok=True)
    path = runs_dir / f"{result['key']}.json"
    atomic_write_text(path, json.dumps(result, indent=1, default=str))
    return path


def read_result(path: str | Path) -> dict[str, Any] | None:
    """A result file's dict, or None when it is unreadable (then the run counts as missing)."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) and "key" in data and "status" in data else None


def load_results(runs_dir: str | Path, keys: Iterable[str] | None = None,
                 check_data: bool = True) -> dict[str, dict[str, Any]]:
    """Result dicts by key (only ``keys`` when given).

    With ``check_data`` (the default: what a resume reads) the finished runs among them
    must have been run on the data their data set holds now (:func:`check_finished_data`).
    """
    runs_dir = Path(runs_dir)
    wanted = None if keys is None else set(keys)
    out: dict[str, dict[str, Any]] = {}
    if not runs_dir.is_dir():
        return out
    for path in sorted(runs_dir.glob("*.json")):
        if wanted is not None and path.stem not in wanted:
            continue
        data = read_result(path)
        if data is not None:
            out[data["key"]] = data
    if check_data:
        check_finished_data(out, runs_dir)
    return out


#: Fingerprints of data sets built by :func:`check_finished_data` in this process, by
#: ``(dataset, dataset_kwargs)``: ``(signature of the files behind them, fingerprint)``.
_FINGERPRINTS: dict[str, tuple[tuple, str]] = {}


def _stat_key(path: Path) -> tuple:
    try:
        st = path.stat()
    except OSError:
        return (str(path), None)
    return (str(path), st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _files_signature(kwargs: Mapping[str, Any], sources: Sequence[Path]) -> tuple:
    """Change stamps of the files a data set was built from: those its splits read
    (``sources``) and every file named by, or lying directly in a folder named by, a
    string keyword argument (feature files and label lists read into memory)."""
    parts: list[tuple] = [_stat_key(Path(s)) for s in sources]
    for value in sorted(str(v) for v in kwargs.values() if isinstance(v, str)):
        path = Path(value)
        try:
            if path.is_file():
                parts.append(_stat_key(path))
            elif path.is_dir():
                parts.extend(_stat_key(p) for p in sorted(path.iterdir()) if p.is_file())
        except OSError:
            parts.append((value, None))
    return tuple(parts)


def _current_fingerprint(name: str, kwargs: Mapping[str, Any]) -> str:
    """The fingerprint of data set ``name`` built with ``kwargs`` now; built once per process
    while the files behind it keep their change stamps."""
    from mmenv.datasets import make_dataset
    from mmenv.datasets.base import data_fingerprint, data_sources

    ident = json.dumps([name, kwargs], sort_keys=True, default=str)
    memo = _FINGERPRINTS.get(ident)
    if memo is not None:
        signature, sources = memo[0]
        if _files_signature(kwargs, sources) == signature:
            return memo[1]
    dataset = make_dataset(name, **kwargs)
    sources = data_sources(dataset)
    fingerprint = data_fingerprint(dataset)
    _FINGERPRINTS[ident] = ((_files_signature(kwargs, sources), sources), fingerprint)
    return fingerprint


def check_finished_data(results: Mapping[str, dict[str, Any]], runs_dir: str | Path = "runs") -> None:
    """Refuse finished runs whose data changed since they ran.

    Every finished result (``ok`` / ``diverged``) that records a ``data_fingerprint`` is compared
    with the fingerprint of its data set built now from the run's spec (once per distinct data
    set and keyword arguments, and once per process while the files behind it are unchanged:
    a benchmark's stages reuse it); a difference raises
    :class:`~mmenv.checkpoint.DataMismatchError` naming the run's file, the data set's files and
    the fixes (restore the data, another ``--out``, or ``--force``). Results written before the
    fingerprint was recorded, and failed runs (run again anyway), are not checked. A re-run over
    changed data therefore refuses rather than mixing results of two versions of the data.
    """
    from mmenv.checkpoint import data_mismatch_error
    from mmenv.datasets import make_dataset
    from mmenv.datasets.base import FINGERPRINT_VERSION

    for key, result in results.items():
        saved = result.get("data_fingerprint")
        spec = result.get("spec")
        if (result.get("status") not in FINISHED or not isinstance(saved, str) or not isinstance(spec, dict)
                or not saved.startswith(FINGERPRINT_VERSION)):
            continue
        name, kwargs = spec.get("dataset"), dict(spec.get("dataset_kwargs") or {})
        if not isinstance(name, str):  # a run record without a data-set name has nothing to check
            continue
        now = _current_fingerprint(name, kwargs)
        if now != saved:
            raise data_mismatch_error(
                make_dataset(name, **kwargs), saved, now, what=f"finished run {Path(runs_dir) / (key + '.json')}",
                fix="restore the data, write into another --out, or pass --force to run everything again on the "
                    "new data")


# ---------------------------------------------------------------------- CSV
def results_rows(results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One flat row per run (metrics as fractions in [0, 1], blank when the run has none)."""
    rows = []
    for r in results:
        row: dict[str, Any] = {k: r.get(k) for k in ("dataset", "learner", "policy", "sample_order", "seed", "status")}
        test = r.get("test") or {}
        who_list = ["fused", *r.get("modalities", [])]
        for who in who_list:
            for metric in METRICS:
                value = (test.get(who) or {}).get(metric)
                row[f"{who}_{metric}"] = "" if value is None else value
        row["reward_sum"] = "" if r.get("reward_sum") is None else r["reward_sum"]
        row["steps"] = r.get("steps", 0)
        row["wall_time_s"] = round(float(r.get("wall_time_s") or 0.0), 3)
        row["error"] = r.get("error", "")
        row["key"] = r.get("key", "")
        rows.append(row)
    return rows


#: The bookkeeping columns of a comparison's results.csv, kept last whatever the order the
#: per-modality columns came in.
RESULT_TAIL = ("reward_sum", "steps", "wall_time_s", "error", "key")


def write_csv(path: str | Path, rows: Sequence[dict[str, Any]], last: Sequence[str] = ()) -> Path:
    """CSV (written atomically) with the union of the rows' columns in first-seen order (per-modality
    columns differ between data sets), the columns named in ``last`` moved to the end; missing
    cells are empty. No rows: an empty file."""
    fields: list[str] = []
    for row in rows:
        fields += [k for k in row if k not in fields]
    tail = [c for c in last if c in fields]
    fields = [c for c in fields if c not in tail] + tail
    buffer = io.StringIO(newline="")
    if fields:
        writer = csv.DictWriter(buffer, fieldnames=fields, restval="")
        writer.writeheader()
        writer.writerows(rows)
    return atomic_write_text(path, buffer.getvalue())


# ---------------------------------------------------------------------- tables
def group_results(results: Sequence[dict[str, Any]], order: Mapping[str, Sequence[str]] | None = None
                  ) -> dict[tuple[str, str, str], list[dict[str, Any]]]:
    """Results grouped by (dataset, learner, policy), in grid order when ``order`` is given."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for r in results:
        groups.setdefault((r["dataset"], r["learner"], r["policy"]), []).append(r)

    def rank(key):
        if not order:
            return (0, 0, 0)
        return tuple(list(order[axis]).index(v) if v in order[axis] else len(order[axis])
                     for axis, v in zip(("datasets", "learners", "policies"), key))

    return dict(sorted(groups.items(), key=lambda kv: (rank(kv[0]), kv[0])))


def _cell(values: Sequence[float]) -> str:
    # Percent first, then the summary: the same numbers as summarising the fractions and scaling.
    return summarise([100.0 * v for v in values]).format(digits=2)


def markdown_tables(results: Sequence[dict[str, Any]], order: Mapping[str, Sequence[str]] | None = None,
                    metrics: Sequence[str] = METRICS) -> str:
    """One Markdown table per data set: rows (learner, policy), columns fused and per-modality metrics."""
    groups = group_results(results, order)
    by_dataset: dict[str, list[tuple[tuple[str, str, str], list[dict]]]] = {}
    for key, runs in groups.items():
        by_dataset.setdefault(key[0], []).append((key, runs))
    blocks = []
    for dataset, items in by_dataset.items():
        modalities: list[str] = []
        for _, runs in items:
            for r in runs:
                modalities += [m for m in r.get("modalities", []) if m not in modalities]
        whos = ["fused", *modalities]
        header = ["learner", "policy", "runs"] + [f"{who} {METRIC_LABELS.get(m, m)}" for who in whos for m in metrics]
        lines = [f"### {dataset}" + (f" (modalities: {', '.join(modalities)})" if modalities else ""), "",
                 "| " + " | ".join(header) + " |", "|" + "|".join(["---"] * 3 + ["---:"] * (len(header) - 3)) + "|"]
        notes = []
        for (_ds, learner, policy), runs in items:
            ok = [r for r in runs if r["status"] == "ok"]
            counts = f"{len(ok)}/{len(runs)}"
            bad = [r for r in runs if r["status"] != "ok"]
            if bad:
                kinds = sorted({r["status"] for r in bad})
                counts += " (" + ", ".join(f"{sum(r['status'] == k for r in bad)} {k}" for k in kinds) + ")"
                first = next((r for r in bad if r.get("error")), None)
                if first is not None:
                    notes.append(f"- {learner} / {policy} seed {first['seed']}: {first['status']}: "
                                 f"{first['error'].splitlines()[0][:200]}")
            cells = []
            for who in whos:
                for metric in metrics:
                    vals = [r["test"][who][metric] for r in ok
                            if r.get("test") and who in r["test"] and r["test"][who].get(metric) is not None]
                    cells.append(_cell(vals))
            lines.append("| " + " | ".join([learner, policy, counts, *cells]) + " |")
        if notes:
            lines += ["", "Runs that did not finish:", *notes]
        blocks.append("\n".join(lines))
    if not blocks:
        return "(no results)"
    legend = (f"Test metrics in percent, mean ± std; {std_note('N')} that finished "
              "(N is the first number of 'runs' = finished/total).")
    return legend + "\n\n" + "\n\n".join(blocks)
