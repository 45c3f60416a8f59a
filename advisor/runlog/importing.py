"""Importing runs into a log from a path: a CSV file, run folders, or LoRA .safetensors files.

What was imported and what was skipped (with the reason) comes back as an ImportReport;
one bad row or file never stops the others.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import kohya
from .csvio import read_csv
from .folders import is_run_dir, run_dirs
from .store import RunLog


@dataclass
class ImportReport:
    """What one import did: runs written, and what was skipped with the reason."""
    path: str
    kind: str                                               # csv | run_folder | runs_folder | kohya | folder
    imported: list[str] = field(default_factory=list)       # run ids
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (where, why)

    @property
    def ok(self) -> bool:
        return not self.skipped

    def summary(self) -> str:
        text = f"imported {len(self.imported)} run(s) from {self.path} ({self.kind})"
        if self.skipped:
            text += f"; skipped {len(self.skipped)}"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "kind": self.kind, "imported": list(self.imported),
                "skipped": [{"where": w, "why": y} for w, y in self.skipped]}


def import_csv(log: RunLog, path: Path) -> ImportReport:
    """Bad rows are reported by line number and skipped; the good ones go in one transaction."""
    report = ImportReport(str(path), "csv")
    records = {}
    for line, record, error in read_csv(path):
        if error:
            report.skipped.append((f"line {line}", error))
        else:
            records[record.run_id] = record  # a repeated id: the later row wins
    log.upsert_many(records.values())
    report.imported.extend(records)
    return report


def import_path(log: RunLog, path: Path) -> ImportReport:
    """Import a CSV file, a run folder, a runs folder or a folder of .safetensors LoRAs."""
    if not path.exists():
        raise ValueError(f"{str(path)!r} does not exist")
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix == ".csv":
            return import_csv(log, path)
        if suffix == ".safetensors":
            report = ImportReport(str(path), "kohya")
            _import_lora_files(log, [path], report)
            return report
        raise ValueError(f"{str(path)!r}: expected a .csv file, a .safetensors file or a folder")
    if is_run_dir(path):
        record = log.ingest_run_dir(path)
        return ImportReport(str(path), "run_folder", [record.run_id])
    return _import_folder(log, path)


def _import_folder(log: RunLog, path: Path) -> ImportReport:
    """A folder of run folders, of LoRA files (at any depth), or of both."""
    found_runs = list(run_dirs(path))
    # LoRA files inside our own run folders are our outputs, not someone else's runs.
    lora_files = sorted(p for p in path.rglob("*.safetensors")
                        if p.is_file() and not any(d in p.parents for d in found_runs))
    if not found_runs and not lora_files:
        raise ValueError(f"{str(path)!r} holds no run folders and no .safetensors files")
    kind = ("runs_folder" if found_runs and not lora_files
            else "kohya" if lora_files and not found_runs else "folder")
    report = ImportReport(str(path), kind)
    if found_runs:
        log.ingest_runs_folder(path, report.skipped)
        # folders unchanged since the last ingest are already indexed: they count too
        failed = {where for where, _ in report.skipped}
        report.imported.extend(d.name for d in found_runs if str(d) not in failed)
    _import_lora_files(log, lora_files, report)
    return report


def _import_lora_files(log: RunLog, files: list[Path], report: ImportReport) -> None:
    records = []
    for file in files:
        try:
            records.append(kohya.import_file(file))
        except (ValueError, OSError) as e:
            report.skipped.append((file.name, str(e)))
    log.upsert_many(records)
    report.imported.extend(r.run_id for r in records)

