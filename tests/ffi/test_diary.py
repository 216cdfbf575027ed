"""The generated Python binding of heeldiary-ffi, used as an app would use the Kotlin or Swift one.

Run by .ci/run after it builds the library and generates the bindings:

    HEELDIARY_FFI_BINDINGS=target/bindings/python HEELDIARY_SERVER=target/debug/heeldiary-server \
        python3 -m unittest discover -s tests/ffi -v

HEELDIARY_FFI_BINDINGS is the folder holding the generated module with the library beside it;
HEELDIARY_SERVER is the heeldiary-server binary, started here on a free port.
"""

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.environ.get("HEELDIARY_FFI_BINDINGS", "target/bindings/python"))

import heeldiary_ffi as hd  # noqa: E402  (the path is set just above)

SERVER = os.environ.get("HEELDIARY_SERVER", "target/debug/heeldiary-server")
KEY = b"0123456789abcdef0123456789abcdef"


class Server:
    """A real heeldiary-server on a free port, over SQLite files in a temporary folder."""

    def __init__(self):
        self.data = tempfile.TemporaryDirectory()
        self.process = subprocess.Popen(
            [SERVER, "serve", "--listen", "127.0.0.1:0", "--data", self.data.name],
            stdout=subprocess.PIPE,
            env={**os.environ, "RUST_LOG": "warn"},
            text=True,
        )
        first = self.process.stdout.readline().strip()
        self.url = first.rsplit(" ", 1)[-1]
        assert self.url.startswith("http"), f"unexpected first line from the server: {first!r}"

    def admin(self, *args):
        out = subprocess.run(
            [SERVER, "admin", *args, "--json", "--data", self.data.name],
            check=True,
            capture_output=True,
            text=True,
        )
        return json.loads(out.stdout)

    def stop(self):
        self.process.kill()
        self.process.wait()
        self.process.stdout.close()
        self.data.cleanup()


class DiaryTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.addCleanup(self.dir.cleanup)

    def path(self, name):
        return os.path.join(self.dir.name, name)

    def test_log_refuse_edit_and_trends(self):
        diary = hd.Diary.open(self.path("a.db"), None)
        ids = [
            diary.log(hd.EntryInput(day=f"2026-11-0{d}", first_step_pain=7, heel_tender=True))
            for d in (1, 2, 3)
        ]
        self.assertEqual(len(set(ids)), 3)

        with self.assertRaises(hd.FfiError.Invalid) as refused:
            diary.log(hd.EntryInput(day="2026-11-04", first_step_pain=11))
        self.assertEqual(refused.exception.field, "first_step_pain")
        self.assertIn("between 0 and 10", refused.exception.reason)
        self.assertEqual(len(diary.list(hd.ListFilter())), 3, "nothing written")

        edited = diary.edit(
            ids[0],
            hd.EntryPatch(values=hd.EntryInput(first_step_pain=3), clear=[hd.EntryField.HEEL_TENDER]),
        )
        self.assertEqual(edited.first_step_pain, 3)
        self.assertIsNone(edited.heel_tender)
        history = diary.history(ids[0])
        self.assertEqual(len(history), 2)
        self.assertIn(
            ("first_step_pain", "7", False),
            [(c.field, c.value_json, c.current) for c in history[0].changes],
        )

        report = diary.trends(30, "2026-11-03")
        self.assertEqual(report.to, "2026-11-03")
        self.assertEqual(report.adherence.days_logged, 3)
        self.assertTrue(report.pattern.summary)
        self.assertIn("first_step_pain", [t.measure for t in report.trends])
        self.assertEqual(json.loads(report.report_json)["window"]["to"], "2026-11-03")

        diary.delete(ids[1])
        with self.assertRaises(hd.FfiError.NotFound):
            diary.get(ids[1])
        self.assertEqual(len(diary.list(hd.ListFilter())), 2)
        self.assertEqual(len(diary.list(hd.ListFilter(include_deleted=True))), 3)

    def test_import_export_round_trip_and_a_bad_line_named(self):
        diary = hd.Diary.open(self.path("a.db"), None)
        diary.log(hd.EntryInput(day="2026-11-01", locations=[hd.Location.HEEL_BOTTOM], numbness=hd.Severity.ABSENT))
        text = diary.export_ndjson()
        self.assertIn('"numbness":"none"', text)
        other = hd.Diary.open(self.path("b.db"), None)
        self.assertEqual(other.import_ndjson(text), 1)
        self.assertEqual(other.export_ndjson(), text)
        with self.assertRaises(hd.FfiError.InvalidLine) as refused:
            other.import_ndjson('{"day":"2026-11-02"}\n{"day":"2026-11-03","side":"middle"}\n')
        self.assertEqual((refused.exception.line, refused.exception.field), (2, "side"))

    def test_an_encrypted_diary_needs_its_key(self):
        path = self.path("secret.db")
        diary = hd.Diary.open(path, KEY)
        diary.log(hd.EntryInput(day="2026-11-01", note="secret-heel-note"))
        self.assertTrue(diary.status().encrypted)
        del diary
        with open(path, "rb") as f:
            self.assertNotIn(b"secret-heel-note", f.read())
        with self.assertRaises(hd.FfiError.WrongKey):
            hd.Diary.open(path, b"another key of sixteen bytes or more")
        with self.assertRaises(hd.FfiError.KeyRequired):
            hd.Diary.open(path, None)
        self.assertEqual(len(hd.Diary.open(path, KEY).list(hd.ListFilter())), 1)

    def test_enrol_sync_and_see_the_entries_on_a_second_device(self):
        server = Server()
        self.addCleanup(server.stop)
        patient = server.admin("add-patient")
        phone = hd.Diary.open(self.path("phone.db"), KEY)
        with self.assertRaises(hd.FfiError.NotEnrolled):
            asyncio.run(phone.sync())
        ids = [phone.log(hd.EntryInput(day=f"2026-11-0{d}", rest_pain=d)) for d in (1, 2, 3)]
        enrolment = asyncio.run(phone.enroll(server.url, patient["code"], "phone"))
        self.assertEqual(enrolment.patient_id, patient["patient_id"])
        self.assertEqual(asyncio.run(phone.sync()).pushed, 3)

        code = server.admin("new-code", "--patient", patient["patient_id"])["code"]
        tablet = hd.Diary.open(self.path("tablet.db"), None)
        asyncio.run(tablet.enroll(server.url, code, None))
        self.assertEqual(asyncio.run(tablet.sync()).pulled, 3)
        self.assertEqual(sorted(e.id for e in tablet.list(hd.ListFilter())), sorted(ids))
        self.assertEqual(tablet.status().pending, 0)

        with self.assertRaises(hd.FfiError.AlreadyEnrolled):
            asyncio.run(tablet.enroll(server.url, code, None))
        with self.assertRaises(hd.FfiError.ServerRefused) as refused:
            asyncio.run(hd.Diary.open(self.path("third.db"), None).enroll(server.url, code, None))
        self.assertGreaterEqual(refused.exception.status, 400)


if __name__ == "__main__":
    unittest.main()
