import os

# Under pytest-xdist two workers share the cores: threads that reach a barrier sleep instead of spinning while their
# partner waits for a core (src/interfere/openmp.py). Set before torch loads OpenMP, which reads it once.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest  # noqa: E402
import torch  # noqa: E402

from interfere.config import compose
from interfere.train.loop import train

torch.set_num_threads(2)


def smoke_cfg(tmp_path, *overrides: str):
    """The tiny config, writing its checkpoints and logs under ``tmp_path``."""
    return compose("exp/life_smoke", [
        f"train.ckpt_dir={tmp_path}/checkpoints", f"train.log_dir={tmp_path}/runs", *overrides,
    ])


@pytest.fixture(name="smoke_cfg")
def smoke_cfg_fixture():
    return smoke_cfg


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A tiny model trained once per test session (seconds): its result dict from `train`."""
    tmp = tmp_path_factory.mktemp("tiny")
    return train(smoke_cfg(tmp, "train.run_id=tiny", "train.steps=60", "train.final_eval=false"))


@pytest.fixture(scope="session")
def tiny_window_run(tmp_path_factory):
    """A tiny size-free model (model.positions=window) trained for a few steps: its result dict."""
    tmp = tmp_path_factory.mktemp("tiny_window")
    return train(smoke_cfg(tmp, "train.run_id=tiny_window", "train.steps=10", "train.final_eval=false",
                           "model.positions=window"))
