"""keep_freed_memory: the activations of one step reuse the previous step's pages instead of faulting in afresh.

The effect on a real training step (glibc's defaults page-fault LayAlign's step ~240 000 times) is measured by
benchmarks/speed.py; here, that the setting takes hold, keeps a repeated step's memory bounded and can be refused."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

PROBE = """
import json, re, resource, sys
import torch
from layalign.allocator import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "keep" else False
faults, rss = [], []
for _ in range(12):  # a training step's activations, 4 to 28 MB: kept through the forward, freed in the backward
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    saved = [torch.ones(n * 2**18) for n in (4, 20, 12, 28, 8, 16, 24, 4, 20, 12)]
    while saved:
        saved.pop()
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    rss.append(int(re.search(r"VmRSS:\\s+(\\d+)", open("/proc/self/status").read()).group(1)) // 1024)
print(json.dumps({"applied": applied, "faults": faults, "rss_mb": rss}))
"""
GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"


def probe(mode: str, **env: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "LAYALIGN_MALLOC"}
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True,
                         env={**clean, **env})
    return json.loads(out.stdout.splitlines()[-1])


@pytest.mark.skipif(not GLIBC, reason="glibc's malloc only")
def test_a_repeated_step_reuses_its_pages_and_memory_stays_bounded():
    kept = probe("keep")
    assert kept["applied"]
    step_pages = 148 * 2**20 // 4096
    assert kept["faults"][0] > step_pages // 2  # the first step's memory is new
    # the heap settles within a few steps (how soon varies with the address layout); after that, a step faults
    # almost nothing in, and the process stays within one step's memory of its first step
    assert sum(kept["faults"][-6:]) < step_pages // 10
    assert kept["rss_mb"][-1] - kept["rss_mb"][0] < 148

def test_the_user_choice_of_allocator_is_left_alone():
    assert not probe("keep", LAYALIGN_MALLOC="default")["applied"]
    assert not probe("keep", MALLOC_ARENA_MAX="2")["applied"]
