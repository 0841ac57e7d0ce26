"""Mean and spread of Tables 1-3 over repeated runs (one results folder per seed).

  python experiments/summarize_seeds.py \
      --results_dirs=results/mn10_small/seed0,results/mn10_small/seed1,results/mn10_small/seed2 \
      --tables=table1,table2 --output=results/mn10_small/summary.md

For each table, the rows of every folder's `<table>.json` are grouped by
label: mean ± sample std, range and each value; then, for every pair of labels,
the paired difference by folder (seed): its mean, 95% t-interval, n and each
per-seed difference. An interval that contains 0 is reported as unresolved,
never as "no difference".
Writes the markdown and `<output stem>.json`; refuses to replace them without
--overwrite.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

from enhancer_gan.errors import ConfigError, EnhancerGanError  # noqa: E402
from experiments._cli import flags_parser  # noqa: E402

flags.DEFINE_list("results_dirs", [], "Results folders of the table scripts, one per seed.")
flags.DEFINE_list("tables", ["table1", "table2"], "Tables to summarise (table1, table2, table3).")
flags.DEFINE_string("output", None, "Markdown file to write (its .json goes beside it).")
flags.DEFINE_string("title", "Mean and spread over seeds", "Heading of the markdown.")
flags.DEFINE_bool("overwrite", False, "Replace an existing summary.")
FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        print(f"error: unexpected arguments {' '.join(argv[1:])}", file=sys.stderr)
        return 2
    try:
        from enhancer_gan.evaluation import seeds
        from enhancer_gan.io_utils import atomic_write_json, atomic_write_text, check_can_write

        if not FLAGS.output:
            raise ConfigError("--output is required")
        unknown = [t for t in FLAGS.tables if t not in seeds.TABLE_METRICS]
        if unknown or not FLAGS.tables:
            raise ConfigError(
                f"--tables: {', '.join(unknown) or 'none given'}; "
                f"choose from {', '.join(seeds.TABLE_METRICS)}"
            )
        json_path = os.path.splitext(FLAGS.output)[0] + ".json"
        for path in (FLAGS.output, json_path):
            check_can_write(path, FLAGS.overwrite)
        lines = [f"# {FLAGS.title}", ""]
        lines.append("Folders: " + ", ".join(f"`{d}`" for d in FLAGS.results_dirs) + ".")
        lines.append("")
        payload = {"results_dirs": list(FLAGS.results_dirs), "tables": {}}
        for table in FLAGS.tables:
            summaries = seeds.summarize(FLAGS.results_dirs, table)
            comparisons = seeds.compare_all(summaries)
            lines += [f"## {table}: {seeds.TABLE_METRICS[table][1]}", ""]
            lines += [seeds.summary_markdown(table, summaries, comparisons), ""]
            payload["tables"][table] = {
                "summaries": [s.to_dict() for s in summaries],
                "comparisons": [c.to_dict() for c in comparisons],
            }
            for s in summaries:
                print(f"{table} {s.label}: {s.mean:.2f} ± {s.std:.2f} over {s.count}")
            for c in comparisons:
                print(
                    f"{table} {c.a} − {c.b}: {c.mean_difference:+.2f} "
                    f"[{c.ci_low:.2f}, {c.ci_high:.2f}] over {c.n} paired; {c.verdict}"
                )
        parent = os.path.dirname(os.path.abspath(FLAGS.output))
        os.makedirs(parent, exist_ok=True)
        atomic_write_text(FLAGS.output, "\n".join(lines))
        atomic_write_json(json_path, payload)
    except (EnhancerGanError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"Wrote {FLAGS.output} and {json_path}")
    return 0


if __name__ == "__main__":
    app.run(main, flags_parser=flags_parser(FLAGS))
