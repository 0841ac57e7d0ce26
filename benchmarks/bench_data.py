"""Benchmark: the training input pipeline and the binvox decoder.

  python benchmarks/bench_data.py                  # 64^3 voxels, 128x128 views, batch 64
  python benchmarks/bench_data.py --quick          # tiny, seconds (smoke test)

1. Pipeline: `make_pair_dataset` over an in-memory `PairSource` of
   `--num_models` 64^3 grids (packed bits, as the project's voxel cache holds
   them), each paired with 24 PNG views: the real 3D-R2N2 renders
   (137x137 RGBA) from `--views_dir` when present (models cycle through the
   renders there), else 137x137 RGBA PNGs written to a temporary folder.
   One pass over the data set warms the file cache and tf.data's autotuner;
   then `--batches` batches are timed. Also timed: decoding one view alone
   (PNG decode + white composite + antialiased resize) in a single thread,
   which is what each pair costs the pipeline's map.
2. Binvox: `enhancer_gan.voxels.binvox.read_binvox_bytes` on real files
   (ShapeNetCore v2 128^3 solid, 3D-R2N2 32^3, from `--shared_data`) and on
   synthetic 64^3 and 128^3 files of the project's procedural shapes,
   against a straightforward per-run Python decoder (one slice assignment
   per run) timed in the same run; the two must give identical grids.

The pipeline is timed twice: as training runs it (views decoded once into
the memory-mapped cache of `enhancer_gan.data.view_cache`, then gathered a
batch at a time; the one-time decode is timed apart) and straight from the
PNG files (decoded every epoch), for the ratio.

Last line: `pairs_per_s=<number>` (the warm cached pipeline's pairs per second).
"""

from __future__ import annotations

import dataclasses
import io
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402  (puts the repository on sys.path)
import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

_SHARED = os.path.join(os.path.dirname(common.ROOT), "shared", "data")

flags.DEFINE_integer("resolution", 64, "Voxel grid side of the pipeline.")
flags.DEFINE_integer("image_size", 128, "Side of the decoded views.")
flags.DEFINE_integer("batch_size", 64, "Pairs per batch.")
flags.DEFINE_integer("num_models", 512, "Models in the in-memory data set.")
flags.DEFINE_integer("batches", 40, "Batches timed after the warm-up pass.")
flags.DEFINE_integer("views_per_model", 24, "PNG views per model (3D-R2N2 has 24).")
flags.DEFINE_string(
    "views_dir",
    os.path.join(_SHARED, "ShapeNetRendering"),
    "3D-R2N2 ShapeNetRendering root; synthetic PNGs are written when absent.",
)
flags.DEFINE_string("shared_data", _SHARED, "Real data samples for the binvox decoder.")
flags.DEFINE_integer("binvox_repeats", 5, "Timed decodes of each file set.")
flags.DEFINE_bool("quick", False, "Tiny sizes: checks the script end to end in seconds.")
FLAGS = flags.FLAGS


# -- views ----------------------------------------------------------------------


def real_view_paths(views_dir: str, per_model: int) -> list[tuple[str, ...]]:
    """Every model's render paths under a ShapeNetRendering root ([] if none)."""
    out = []
    if not os.path.isdir(views_dir):
        return out
    for synset in sorted(os.listdir(views_dir)):
        synset_dir = os.path.join(views_dir, synset)
        if not os.path.isdir(synset_dir):
            continue
        for model in sorted(os.listdir(synset_dir)):
            rendering = os.path.join(synset_dir, model, "rendering")
            pngs = sorted(
                os.path.join(rendering, f) for f in os.listdir(rendering) if f.endswith(".png")
            )[:per_model]
            if pngs:
                out.append(tuple(pngs))
    return out


def synthetic_view_paths(folder: str, num_models: int, per_model: int) -> list[tuple[str, ...]]:
    """Writes 137x137 RGBA PNGs like the 3D-R2N2 renders: a shaded, antialiased
    object on a transparent background (photographic enough that PNG
    compression, and so decoding, costs about what the real renders cost)."""
    from PIL import Image, ImageDraw, ImageFilter

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:137, 0:137] / 136.0
    out = []
    for m in range(num_models):
        paths = []
        for v in range(per_model):
            mask = Image.new("L", (137, 137), 0)
            draw = ImageDraw.Draw(mask)
            for _ in range(4):
                x0, y0 = rng.integers(20, 70, 2)
                x1, y1 = x0 + rng.integers(20, 60), y0 + rng.integers(20, 60)
                draw.rectangle([x0, y0, x1, y1], fill=255)
            mask = mask.filter(ImageFilter.GaussianBlur(1.0))
            shade = 0.4 + 0.5 * (xx * rng.random() + yy * (1 - rng.random()))
            noise = rng.normal(0, 0.03, (137, 137))
            grey = np.clip((shade + noise) * 255, 0, 255).astype(np.uint8)
            rgba = np.dstack([grey, grey, (grey * 0.9).astype(np.uint8), np.asarray(mask)])
            path = os.path.join(folder, f"m{m:04d}", f"{v:02d}.png")
            os.makedirs(os.path.dirname(path), exist_ok=True)
            Image.fromarray(rgba, "RGBA").save(path)
            paths.append(path)
        out.append(tuple(paths))
    return out


# -- pipeline -------------------------------------------------------------------


def make_source(num_models: int, resolution: int, view_paths):
    """A PairSource of `num_models` packed grids; models cycle through `view_paths`."""
    from enhancer_gan.data.pipeline import PairSource, pack_grids

    rng = np.random.default_rng(0)
    grids = np.zeros((num_models, resolution, resolution, resolution), dtype=bool)
    for g in grids:  # solid boxes: content does not change the pipeline's cost
        lo = rng.integers(0, resolution // 2, 3)
        hi = lo + rng.integers(2, resolution // 2, 3)
        g[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] = True
    paths = tuple(view_paths[i % len(view_paths)] for i in range(num_models))
    return PairSource(pack_grids(grids), resolution, paths)


def bench_pipeline(source, batch_size: int, image_size: int, batches: int) -> dict:
    from enhancer_gan.data.pipeline import make_pair_dataset

    ds = make_pair_dataset(source, batch_size, image_size=image_size)
    it = iter(ds)
    warm = max(1, -(-source.num_models // batch_size))  # one epoch
    start = time.perf_counter()
    for _ in range(warm):
        first = next(it)
    warm_seconds = time.perf_counter() - start
    assert first["voxels"].shape[1] == source.resolution
    start, start_cpu = time.perf_counter(), time.process_time()
    for _ in range(batches):
        batch = next(it)
        batch["voxels"].numpy()  # materialised (it already is; cheap)
    seconds = time.perf_counter() - start
    cpu = time.process_time() - start_cpu
    pairs = batches * batch_size
    return {
        "voxels": f"{source.resolution}^3",
        "image": image_size,
        "batch": batch_size,
        "models": source.num_models,
        "warm-up pass s": warm_seconds,
        "timed pairs": pairs,
        "s": seconds,
        "pairs/s": pairs / seconds,
        "pairs/cpu-s": pairs / cpu,
        "image range ok": bool(-1.0 <= float(batch["image"].numpy().min()) <= 1.0),
    }


def bench_single_view(path: str, image_size: int, repeats: int) -> dict:
    """One view decoded repeatedly in this thread (no tf.data parallelism)."""
    import tensorflow as tf

    from enhancer_gan.data.pipeline import decode_view

    raw = tf.constant(open(path, "rb").read())
    fn = tf.function(lambda raw: decode_view(raw, image_size))
    timing = common.time_calls(lambda: fn(raw).numpy(), repeats=repeats, warmup=2)
    return {
        "what": "decode_view (PNG + composite + resize), one call",
        "ms": 1e3 * timing.median,
        "cpu ms": 1e3 * timing.cpu_median,
        "views/cpu-s": 1 / timing.cpu_median,
    }


# -- binvox ---------------------------------------------------------------------


def reference_decode(raw: bytes) -> np.ndarray:
    """A straightforward binvox decoder: header line by line, then one Python
    iteration (and one slice assignment) per (value, count) run.

    Returns: [D, D, D] bool in the project's (x, y, z) order.
    """
    stream = io.BytesIO(raw)
    dim = None
    while True:
        line = stream.readline().strip()
        if line.startswith(b"dim"):
            dim = int(line.split()[1])
        if line == b"data":
            break
    data = stream.read()
    flat = np.zeros(dim**3, dtype=bool)
    position = 0
    for i in range(0, len(data), 2):
        value, count = data[i], data[i + 1]
        if value:
            flat[position : position + count] = True
        position += count
    return flat.reshape(dim, dim, dim).transpose(0, 2, 1)


def binvox_file_sets(shared: str, quick: bool) -> list[tuple[str, list[bytes]]]:
    """(name, [file bytes]) per set: real files if present, synthetic shapes."""
    from enhancer_gan.data.synthetic import make_shape
    from enhancer_gan.voxels.binvox import binvox_bytes

    sets = []
    real = [
        (
            "ShapeNetCore v2 solid 128^3 (real)",
            "ShapeNetCore.v2",
            "models/model_normalized.solid.binvox",
        ),
        ("3D-R2N2 ShapeNetVox32 32^3 (real)", "ShapeNetVox32", "model.binvox"),
    ]
    for name, folder, leaf in real:
        root = os.path.join(shared, folder)
        files = []
        if os.path.isdir(root):
            for synset in sorted(os.listdir(root)):
                for model in sorted(os.listdir(os.path.join(root, synset))):
                    path = os.path.join(root, synset, model, leaf)
                    if os.path.isfile(path):
                        with open(path, "rb") as f:
                            files.append(f.read())
        if files:
            sets.append((name, files[:2] if quick else files))
    rng = np.random.default_rng(0)
    categories = ("chair", "table", "airplane", "car")
    for res in (32,) if quick else (64, 128):
        files = [binvox_bytes(make_shape(c, rng, resolution=res)) for c in categories]
        sets.append((f"synthetic shapes {res}^3", files))
    return sets


def bench_binvox(sets, repeats: int) -> list[dict]:
    from enhancer_gan.voxels.binvox import read_binvox_bytes

    rows = []
    for name, files in sets:
        for raw in files:  # the two decoders must agree exactly
            if not np.array_equal(read_binvox_bytes(raw).grid, reference_decode(raw)):
                raise AssertionError(f"{name}: project and reference decoders disagree")
        project = common.time_calls(
            lambda files=files: [read_binvox_bytes(r) for r in files], repeats=repeats
        )
        reference = common.time_calls(
            lambda files=files: [reference_decode(r) for r in files], repeats=max(1, repeats // 2)
        )
        dim = read_binvox_bytes(files[0]).dim
        runs = np.mean([len(r) for r in files]) / 2  # roughly: 2 bytes per run
        rows.append(
            {
                "files": name,
                "n": len(files),
                "~runs/file": runs,
                "project ms/file": 1e3 * project.median / len(files),
                "reference ms/file": 1e3 * reference.median / len(files),
                "speed-up": reference.median / project.median,
                "project Mvoxel/s": len(files) * dim**3 / project.median / 1e6,
            }
        )
    return rows


def main(argv):
    del argv
    if FLAGS.quick:
        resolution, image_size, batch_size = 32, 128, 8
        num_models, batches, per_model, repeats = 16, 4, 4, 2
    else:
        resolution, image_size, batch_size = FLAGS.resolution, FLAGS.image_size, FLAGS.batch_size
        num_models, batches, per_model = FLAGS.num_models, FLAGS.batches, FLAGS.views_per_model
        repeats = FLAGS.binvox_repeats
    common.print_machine()

    with tempfile.TemporaryDirectory(prefix="bench_data_") as tmp:
        view_paths = real_view_paths(FLAGS.views_dir, per_model)
        views_kind = f"real 3D-R2N2 renders ({len(view_paths)} models, cycled)"
        if not view_paths:
            view_paths = synthetic_view_paths(tmp, min(num_models, 16), per_model)
            views_kind = f"synthetic 137x137 RGBA PNGs ({len(view_paths)} models, cycled)"
        print(f"views: {views_kind}", flush=True)
        source = make_source(num_models, resolution, view_paths)
        from_png = bench_pipeline(source, batch_size, image_size, batches)
        from_png["views"] = "PNG files, decoded every time"
        # The training loop's path: views decoded once into a memory-mapped
        # cache (view_cache.decoded_views), then only gathered.
        from enhancer_gan.data.view_cache import decoded_views

        start = time.perf_counter()
        views = decoded_views(source.view_paths, image_size, tmp, progress=False)
        build_seconds = time.perf_counter() - start
        cached = dataclasses.replace(source, views=views)
        pipeline = bench_pipeline(cached, batch_size, image_size, batches)
        pipeline["views"] = "decoded-view cache (memory-mapped)"
        single = bench_single_view(view_paths[0][0], image_size, repeats=20 if FLAGS.quick else 200)
    common.print_table("pipeline (warm), make_pair_dataset", [pipeline, from_png])
    print(
        f"view cache: {len(views):,} views decoded once in {build_seconds:.1f} s "
        f"({len(views) / build_seconds:.0f} views/s, {views.nbytes / 2**20:.0f} MiB); "
        f"cached/PNG pipeline speed-up {pipeline['pairs/s'] / from_png['pairs/s']:.1f}x"
    )
    common.print_table("one view, one thread", [single])

    print("\nmeasuring the binvox decoders ...", flush=True)
    common.print_table(
        "binvox: read_binvox_bytes vs per-run Python reference (identical grids checked)",
        bench_binvox(binvox_file_sets(FLAGS.shared_data, FLAGS.quick), repeats),
    )
    common.final_line("pairs_per_s", pipeline["pairs/s"])


if __name__ == "__main__":
    app.run(main)
