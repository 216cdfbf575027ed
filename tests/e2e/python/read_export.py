"""Reads a heeldiary export with the tools analysts use and checks what it holds.

usage: read_export.py FORMAT DIR EXPECTED_ENTRIES EXPECTED_SUBJECTS

csv: Python's csv and DuckDB's read_csv_auto; ndjson: json; parquet: pyarrow (declared types)
and DuckDB; meds: pyarrow (required MEDS columns and types); fhir: every line validated by
fhir.resources (R4 models: structure and types, not terminology). Exits non-zero with the
reason on the first check that fails.
"""
import csv
import glob
import json
import os
import sys


def fail(message):
    print(f"read_export: {message}", file=sys.stderr)
    sys.exit(1)


def check(condition, message):
    if not condition:
        fail(message)


def common(d):
    for name in ("manifest.json", "data-dictionary.json", "data-dictionary.md"):
        check(os.path.exists(os.path.join(d, name)), f"{name} missing")
    dictionary = json.load(open(os.path.join(d, "data-dictionary.json")))
    check(
        any(c.get("ordinal") for c in dictionary["tables"]["entries"]),
        "the dictionary marks the scores as ordinal",
    )


def main():
    fmt, d, entries, subjects = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    common(d)
    manifest = json.load(open(os.path.join(d, "manifest.json")))
    if fmt == "csv":
        import duckdb

        path = os.path.join(d, "entries.csv")
        rows = list(csv.DictReader(open(path, newline="")))
        check(len(rows) == entries, f"csv: {len(rows)} rows, want {entries}")
        check(len({r["subject_id"] for r in rows}) == subjects, "csv: subjects")
        n = duckdb.sql(f"select count(*) from read_csv_auto('{path}')").fetchall()[0][0]
        check(n == entries, f"duckdb csv: {n} rows")
        check(manifest["row_counts"]["entries"] == entries, "manifest row count")
    elif fmt == "ndjson":
        rows = [json.loads(l) for l in open(os.path.join(d, "entries.ndjson")) if l.strip()]
        check(len(rows) == entries, f"ndjson: {len(rows)} rows")
        check(all(isinstance(r["study_day"], int) for r in rows), "ndjson: study_day integers")
    elif fmt == "parquet":
        import duckdb
        import pyarrow as pa
        import pyarrow.parquet as pq

        path = os.path.join(d, "entries.parquet")
        table = pq.read_table(path)
        check(table.num_rows == entries, f"parquet: {table.num_rows} rows")
        schema = table.schema
        check(schema.field("first_step_pain").type == pa.int8(), "first_step_pain int8")
        check(schema.field("subject_id").type == pa.int64(), "subject_id int64")
        check(schema.field("study_day").type == pa.int32(), "study_day int32")
        check(pa.types.is_boolean(schema.field("backfilled").type), "backfilled bool")
        check(pa.types.is_list(schema.field("locations").type), "locations list")
        n = duckdb.sql(f"select count(*) from read_parquet('{path}')").fetchall()[0][0]
        check(n == entries, f"duckdb parquet: {n} rows")
        findings = pq.read_table(os.path.join(d, "findings.parquet"))
        check(pa.types.is_floating(findings.schema.field("foot_score").type), "foot_score float")
    elif fmt == "meds":
        import pyarrow as pa
        import pyarrow.parquet as pq

        data = glob.glob(os.path.join(d, "data", "*.parquet"))
        check(data, "MEDS data/*.parquet")
        table = pq.read_table(data[0])
        schema = table.schema
        check(schema.field("subject_id").type == pa.int64(), "MEDS subject_id int64")
        check(pa.types.is_timestamp(schema.field("time").type), "MEDS time timestamp")
        check(pa.types.is_string(schema.field("code").type), "MEDS code string")
        check(schema.field("numeric_value").type == pa.float32(), "MEDS numeric_value float32")
        check(len(set(table.column("subject_id").to_pylist())) == subjects, "MEDS subjects")
        codes = pq.read_table(os.path.join(d, "metadata", "codes.parquet"))
        check({"code", "description", "parent_codes"} <= set(codes.schema.names), "codes.parquet")
        dataset = json.load(open(os.path.join(d, "metadata", "dataset.json")))
        check("meds_version" in dataset, "dataset.json meds_version")
    elif fmt == "fhir":
        from fhir.resources.observation import Observation
        from fhir.resources.patient import Patient

        check(manifest["output"], "fhir manifest output")
        patients = [l for l in open(os.path.join(d, "Patient.ndjson")) if l.strip()]
        check(len(patients) == subjects, f"{len(patients)} Patient resources")
        for line in patients:
            Patient.parse_raw(line)
        observations = [l for l in open(os.path.join(d, "Observation.ndjson")) if l.strip()]
        check(len(observations) >= entries, f"{len(observations)} Observations")
        for line in observations:
            Observation.parse_raw(line)
        check(any("72514-3" in l for l in observations), "LOINC 72514-3")
    else:
        fail(f"unknown format {fmt}")
    print(f"read_export: {fmt} ok ({entries} entries, {subjects} subjects)")


main()
