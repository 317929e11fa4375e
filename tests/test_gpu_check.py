"""bench/gpu_check.sh can only run on a GPU; its CPU-side logic is checked here: it runs dry, and every
training command it would run composes to a valid config."""

import os
import shlex
import subprocess
from pathlib import Path

from interfere.config import compose, sections

REPO = Path(__file__).resolve().parents[1]


def test_gpu_check_runs_dry_and_its_training_commands_are_valid():
    proc = subprocess.run(["bash", str(REPO / "bench/gpu_check.sh")], env={**os.environ, "DRY_RUN": "1"},
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    commands = [shlex.split(line[2:]) for line in proc.stdout.splitlines() if line.startswith("+ ")]
    assert len(commands) == 7  # nvidia-smi, tests, throughput, training, loss check, torchrun, report
    trains = [c for c in commands if "train.py" in c]
    assert len(trains) == 2
    for cmd in trains:
        name = cmd[cmd.index("--config-name") + 1]
        overrides = cmd[cmd.index("--config-name") + 2 :]
        data, model, train = sections(compose(name, overrides))
        assert name == "exp/life32" and model.n_layers == 8 and train.steps in (200, 20)
    assert any("-m" in c and "pytest" in c and "device" in c for c in commands)
    assert any(c[c.index("-m") + 1:c.index("-m") + 3] == ["interfere", "report"] for c in commands if "-m" in c)
