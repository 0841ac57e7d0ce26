"""Every flag preset under experiments/configs/ starts and trains on the real samples.

Presets rot silently: a data kind that cannot give the preset's resolution
(3D-R2N2's 32^3 grids for a 64^3 model), a renamed flag, a data layout that
moved. Each preset here is parsed by experiments/train.py's own flag parser
(whatever flags the file holds):
`test_every_preset_parses_to_the_values_in_its_file` checks every field of
the resulting ExperimentConfig against the file's lines, read independently.
The presets are then trained for 2 steps on ../shared/data, overriding only what makes it small: steps, width, batch, image size and the
run and cache folders (`SMALL`). Training runs in this process (TensorFlow
loads once); `test_gen_chair_from_the_command_line` runs the real script
once as a subprocess to prove the command-line path.

The shared samples hold chairs only, and exactly one chair
(1a6f615e8b1b5ae4dbbc9440457e303e) is in both ShapeNetCore v2 and the
3D-R2N2 renders: the generation presets of the other four categories have
no pair there. For those the test checks that loading their data fails with
the one-line "no model of <category>" error, and that their configuration is
gen_chair's but for the category and run folder, so gen_chair's run covers
their code path. The archive preset trains on one class (bathtub): rendering
views of all 3,991 ModelNet10 training grids would take minutes.
"""

import importlib.util
import pathlib
import re
import subprocess
import sys
import time

import pytest
from absl import flags

from enhancer_gan.config import ExperimentConfig

ROOT = pathlib.Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "experiments" / "configs"
PRESETS = sorted(p.name for p in CONFIGS.glob("*.cfg"))
# The prefix of tests/test_tables.py's run_script: scripts loaded this way
# drop each other's flags before defining theirs.
_SCRIPT_PREFIX = "_enhancer_gan_script_"
SMALL = ["--num_steps=2", "--width_multiplier=0.03125", "--batch_size=2", "--image_size=32"]
# Generation presets whose category has no pair in the shared samples.
NO_SAMPLE_PAIRS = {f"gen_{c}.cfg": c for c in ("airplane", "car", "table", "sofa")}


def _train_script():
    for name in list(flags.FLAGS):
        if (flags.FLAGS.find_module_defining_flag(name) or "").startswith(_SCRIPT_PREFIX):
            delattr(flags.FLAGS, name)
    module_name = _SCRIPT_PREFIX + "train"
    spec = importlib.util.spec_from_file_location(module_name, ROOT / "experiments" / "train.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def resolve(preset: str, shared_data: pathlib.Path, tmp_path: pathlib.Path, *extra: str):
    """The preset's ExperimentConfig, made small, through train.py's flag parser."""
    script = _train_script()
    argv = ["train.py", f"--flagfile={CONFIGS / preset}"]
    script.flags_parser(script.FLAGS)(argv)  # the preset's own flags first
    overrides = [*SMALL, f"--run_dir={tmp_path / 'run'}", f"--cache_dir={tmp_path / 'cache'}"]
    kind, data_dir = script.FLAGS.dataset, script.FLAGS.data_dir
    if kind in ("r2n2", "r2n2_v2", "shapenet_v2", "modelnet"):
        overrides.append(f"--data_dir={shared_data}")
    elif data_dir.startswith("../shared/data"):  # the samples, wherever they are
        overrides.append(f"--data_dir={shared_data}{data_dir[len('../shared/data') :]}")
    if kind == "archive":
        overrides.append("--categories=bathtub")
    script.FLAGS.unparse_flags()
    script.flags_parser(script.FLAGS)([*argv, *overrides, *extra])
    return script.config_from_flags()


# Flags of train.py that are no ExperimentConfig field: checked on FLAGS itself.
SCRIPT_ONLY_FLAGS = {
    "dry_run",
    "evaluate_generation",
    "evaluation_samples",
    "restart_if_damaged",
    "strategy",
}
# Flags whose field has another name; every other flag names its field.
FIELD_OF_FLAG = {
    "dataset": "data.kind",
    "generator_steps": "train.generator_steps_per_discriminator_step",
}


def read_flagfile(path: pathlib.Path) -> dict[str, str]:
    """{flag: raw value} of a flag file, nested files included.

    Written here, not absl's: the test reads the files its own way and checks
    that train.py's parser understood them the same. A bare boolean --flag
    reads "true", --noflag "false"; paths in --flagfile are relative to the
    checkout; a later line wins over an earlier one.
    """
    flags_set: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        assert line.startswith("--"), f"{path.name}: {line!r}"
        name, _, value = line[2:].partition("=")
        if name == "flagfile":
            flags_set.update(read_flagfile(ROOT / value))
        elif "=" in line:
            flags_set[name] = value
        elif name.startswith("no"):
            flags_set[name[2:]] = "false"
        else:
            flags_set[name] = "true"
    return flags_set


def _expected_value(name: str, raw: str, default):
    """The raw flag text as the type of the field's (or flag's) default."""
    if isinstance(default, bool):
        assert raw.lower() in ("true", "false"), (name, raw)
        return raw.lower() == "true"
    if isinstance(default, tuple):
        return tuple(raw.split(",")) if raw else ()
    return type(default)(raw)


def _set_field(expected: dict, path: str, name: str, raw: str) -> None:
    *sections, field = path.split(".")
    target = expected
    for section in sections:
        target = target[section]
    target[field] = _expected_value(name, raw, target[field])


def test_every_preset_parses_to_the_values_in_its_file(monkeypatch):
    """Each preset through train.py's flag parser and config builder is its file's values.

    The expected configuration is the dataclass defaults with each flag the
    file sets (after its nested --flagfile) written over them: a flag the
    parser drops, a nested file not followed, a flag wired to the wrong
    field or a default that differs from the dataclass's all fail.
    """
    monkeypatch.chdir(ROOT)  # presets name other presets relative to the checkout
    assert len(PRESETS) >= 11, PRESETS
    for name in ("demo.cfg", "mn10_small.cfg", "gen_chair.cfg", "features_7cat.cfg"):
        assert name in PRESETS
    fields = {
        f"{section}.{field}"
        for section, values in ExperimentConfig().to_dict().items()
        if isinstance(values, dict)
        for field in values
    }
    for preset in PRESETS:
        in_file = read_flagfile(CONFIGS / preset)
        assert "run_dir" in in_file, preset  # every preset names its run folder
        argv = ["train.py", f"--flagfile={CONFIGS / preset}"]
        given = dict(in_file)
        if in_file.get("dataset", "synthetic") != "synthetic" and "data_dir" not in in_file:
            # The ShapeNet presets leave the data root to the command line.
            given["data_dir"] = "/data/ShapeNet"
            argv.append("--data_dir=/data/ShapeNet")
        script = _train_script()
        script.flags_parser(script.FLAGS)(argv)
        config = script.config_from_flags()
        expected = ExperimentConfig().to_dict()
        for flag, raw in given.items():
            if flag in SCRIPT_ONLY_FLAGS:
                default = script.FLAGS[flag].default
                got = script.FLAGS[flag].value
                assert got == _expected_value(flag, raw, default), (preset, flag, got)
                continue
            if flag == "run_dir":
                expected["run_dir"] = raw
                continue
            path = FIELD_OF_FLAG.get(flag) or next(
                (f for f in fields if f.split(".")[1] == flag), None
            )
            assert path, f"{preset}: --{flag} maps to no config field; add it to FIELD_OF_FLAG"
            _set_field(expected, path, flag, raw)
        got = config.to_dict()
        for section in ("model", "data", "train"):
            assert got[section] == expected[section], (preset, section)
        assert got["run_dir"] == expected["run_dir"], preset
        assert got == expected, preset
    # The nesting is real: the layer-2 preset is features_7cat but for two flags.
    base = read_flagfile(CONFIGS / "features_7cat.cfg")
    layer2 = read_flagfile(CONFIGS / "features_7cat_layer2.cfg")
    assert {k for k in layer2 if layer2[k] != base.get(k)} == {"enhancer_layer", "run_dir"}


@pytest.mark.parametrize("preset", [p for p in PRESETS if p not in NO_SAMPLE_PAIRS])
def test_preset_trains_two_steps(preset, shared_data, tmp_path, monkeypatch):
    from enhancer_gan.training.loop import train

    monkeypatch.chdir(ROOT)  # presets name other presets and data relative to the checkout
    config = resolve(preset, shared_data, tmp_path)
    lines = []
    start = time.time()
    result = train(config, progress=False, log=lines.append)
    assert result.step == 2 and not result.interrupted, lines
    assert (tmp_path / "run" / "config.json").exists()
    if config.data.kind == "r2n2_v2":
        assert config.model.resolution == 64  # the paper's grids
        (summary,) = [line for line in lines if "ShapeNetCore.v2" in line]
        assert "1 models (chair 1)" in summary and "7 without renders" in summary
        if len(config.data.categories) == 7:  # six categories empty: one line, not an error
            assert re.search(r"no models for airplane \(02691156\), car .*watercraft", summary)
    print(f"{preset}: {time.time() - start:.1f} s")


@pytest.mark.parametrize("preset", sorted(NO_SAMPLE_PAIRS))
def test_generation_presets_without_sample_pairs(preset, shared_data, tmp_path, monkeypatch):
    from enhancer_gan.data.datasets import load_shapes
    from enhancer_gan.errors import DataError

    monkeypatch.chdir(ROOT)
    config = resolve(preset, shared_data, tmp_path)
    chair = resolve("gen_chair.cfg", shared_data, tmp_path)
    category = NO_SAMPLE_PAIRS[preset]
    assert config.data.categories == (category,)
    as_dict, chair_dict = config.to_dict(), chair.to_dict()
    for d in (as_dict, chair_dict):
        d["data"]["categories"] = d["run_dir"] = None
    assert as_dict == chair_dict
    with pytest.raises(DataError, match=f"no model of {category} \\("):
        load_shapes(config.data, 64, cache_dir=str(tmp_path / "cache"), log=lambda *_: None)


def test_r2n2_at_64_is_refused_when_flags_are_parsed(shared_data, tmp_path, monkeypatch):
    from enhancer_gan.errors import ConfigError

    monkeypatch.chdir(ROOT)
    with pytest.raises(ConfigError, match="32\\^3 grids only.*--dataset=r2n2_v2"):
        resolve("gen_chair.cfg", shared_data, tmp_path, "--dataset=r2n2")
    assert not (tmp_path / "run").exists()
    config = resolve("gen_chair.cfg", shared_data, tmp_path, "--dataset=r2n2", "--resolution=32")
    assert isinstance(config, ExperimentConfig) and config.data.kind == "r2n2"


def test_gen_chair_from_the_command_line(shared_data, tmp_path):
    run_dir = tmp_path / "run"
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "experiments" / "train.py"),
            "--flagfile=experiments/configs/gen_chair.cfg",
            f"--data_dir={shared_data}",
            *SMALL,
            f"--run_dir={run_dir}",
            f"--cache_dir={tmp_path / 'cache'}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Finished at step 2" in result.stdout
    assert "1 models (chair 1)" in result.stdout
    config = ExperimentConfig.load(run_dir / "config.json")
    assert config.data.kind == "r2n2_v2" and config.model.resolution == 64
