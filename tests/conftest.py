"""Shared pytest fixtures: the real-data sample folder and hypothesis profiles."""

import os
import pathlib

# The package turns on TensorFlow's oneDNN kernels (enhancer_gan/__init__.py);
# test modules may import TensorFlow first, so the same default is set here.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]

# CI runs each property-based test on at least 1,000 inputs; a developer's
# quick run uses fewer. Select with HYPOTHESIS_PROFILE=ci|dev.
settings.register_profile(
    "ci", max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "dev", max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


def shared_data_dir() -> pathlib.Path | None:
    """The real-data samples: $ENHANCER_GAN_SHARED_DATA, else ../shared/data."""
    env = os.environ.get("ENHANCER_GAN_SHARED_DATA")
    path = pathlib.Path(env) if env else ROOT.parent / "shared" / "data"
    return path if path.is_dir() else None


@pytest.fixture
def shared_data() -> pathlib.Path:
    path = shared_data_dir()
    if path is None:
        pytest.skip("real-data samples not found (set ENHANCER_GAN_SHARED_DATA or ../shared/data)")
    return path


CHAIR_ID = "1a6f615e8b1b5ae4dbbc9440457e303e"


def pytest_collection_modifyitems(config, items):
    """Run the tests marked slow first (a stable sort, the same on every xdist worker).

    Most of CI's time is a handful of end-to-end tests of several minutes each;
    started last, one of them keeps a core busy after the other has finished.
    Longest first is the usual remedy for that tail.
    """
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
