"""tools/atomic_out.py: the target is the old file or the whole new one, never partial (CTest: tools_atomic_out)."""
import os
import signal
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from atomic_out import atomic_path, write_text_atomic  # noqa: E402


class AtomicOut(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="sc-atomic-py-")
        self.path = os.path.join(self.dir, "golden.json")
        write_text_atomic(self.path, "old")

    def tearDown(self):
        for f in os.listdir(self.dir):
            os.unlink(os.path.join(self.dir, f))
        os.rmdir(self.dir)

    def test_success_replaces(self):
        write_text_atomic(self.path, "new\n")
        with open(self.path) as f:
            self.assertEqual(f.read(), "new\n")
        self.assertEqual(os.listdir(self.dir), ["golden.json"])

    def test_failure_keeps_old_and_removes_temp(self):
        with self.assertRaises(RuntimeError):
            with atomic_path(self.path) as tmp:
                with open(tmp, "w") as f:
                    f.write("partial")
                raise RuntimeError("writer failed")
        with open(self.path) as f:
            self.assertEqual(f.read(), "old")
        self.assertEqual(os.listdir(self.dir), ["golden.json"])

    def test_killed_writer_leaves_old_or_new(self):
        size = 4 << 20
        mid = 0
        for delay in (0.05, 0.1, 0.2, 0.3, 0.45):
            pid = os.fork()
            if pid == 0:
                i = 0
                while True:
                    write_text_atomic(self.path, ("A" if i % 2 else "B") * size)
                    i += 1
            time.sleep(delay)
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            with open(self.path) as f:
                got = f.read()
            self.assertTrue(got == "old" or (len(got) == size and got in ("A" * size, "B" * size)),
                            "partial file of %d bytes" % len(got))
            for f in os.listdir(self.dir):
                if f != "golden.json":
                    self.assertTrue(f.startswith("golden.json.tmp."), f)
                    mid += 1
                    os.unlink(os.path.join(self.dir, f))
        self.assertGreater(mid, 0, "no kill landed mid-write: the test proved nothing")


if __name__ == "__main__":
    unittest.main()
