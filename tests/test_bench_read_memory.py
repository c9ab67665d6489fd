"""bench/read_memory.py: the peak memory of reading a 16-bit colour PNG, this checkout's reader."""

import re

from bench.read_memory import main


def test_it_reads_the_png_and_prints_the_peak_before_and_after(capsys):
    main(["--side", "64"])
    printed = capsys.readouterr().out
    found = re.fullmatch(r"this checkout: peak (\d+) -> (\d+) MB \(\+(\d+)\), \d+\.\d s\n", printed)
    assert found and abs(int(found[2]) - int(found[1]) - int(found[3])) <= 1, printed  # (each rounded)
