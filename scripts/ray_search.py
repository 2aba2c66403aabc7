#!/usr/bin/env python3
"""Capacity search on a Ray cluster: one Ray task per shard, then `simulator search merge`.

Each task runs `simulator search --shard I/N` (docs/search.md) in a temporary directory on the
node Ray picks and returns the shard's `shard.json` through Ray's object store, so workers need
the `simulator` binary and the space file (and any file it names) at the same paths, but no shared
output directory. The driver merges the shard files into OUT; the merged outputs are
byte-identical to an unsharded `simulator search` of the same space.

Usage:
    scripts/ray_search.py --space SPACE.toml --out DIR [--shards N] [--threads T]
                          [--simulator PATH] [--address ADDR] [--quiet]

--address: a running cluster ("auto" finds the local one started with `ray start --head`);
without it, Ray starts a private local instance. Needs `pip install ray` (tested with 2.60.0).
"""

import argparse
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="Run `simulator search` as Ray tasks (one per shard), then merge the shards."
    )
    p.add_argument("--space", required=True, help="the space file (TOML; docs/search.md)")
    p.add_argument("--out", required=True, help="output directory of the merged search")
    p.add_argument("--shards", type=int, default=4, help="number of shards [default: 4]")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="threads (and Ray CPUs) per shard [default: 1]",
    )
    p.add_argument(
        "--simulator",
        default=None,
        help="the simulator binary [default: target/release/simulator of this checkout, "
        "else `simulator` on PATH]",
    )
    p.add_argument(
        "--address",
        default=None,
        help='Ray cluster address ("auto": the local cluster) [default: a private local Ray]',
    )
    p.add_argument("--quiet", action="store_true", help="no summary from the merge")
    args = p.parse_args(argv)
    if args.shards < 1:
        p.error(f"--shards must be at least 1, not {args.shards}")
    if args.threads < 1:
        p.error(f"--threads must be at least 1, not {args.threads}")
    if not os.path.isfile(args.space):
        p.error(f"--space {args.space}: no such file")
    return args


def find_simulator(given):
    if given:
        if not (os.path.isfile(given) and os.access(given, os.X_OK)):
            sys.exit(f"error: --simulator {given} is not an executable file")
        return os.path.abspath(given)
    here = pathlib.Path(__file__).resolve().parent.parent / "target" / "release" / "simulator"
    if here.is_file():
        return str(here)
    found = shutil.which("simulator")
    if found:
        return found
    sys.exit(
        "error: no simulator binary: build it (cargo build --release -p simulator) "
        "or pass --simulator PATH"
    )


def run_shard(simulator, space, index, shards, threads):
    """Runs one shard; returns the content of its shard.json."""
    with tempfile.TemporaryDirectory(prefix=f"servesim-shard{index}-") as d:
        cmd = [
            simulator,
            "search",
            "--quiet",
            "--space",
            space,
            "--shard",
            f"{index}/{shards}",
            "--threads",
            str(threads),
            "--out",
            d,
        ]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(
                f"shard {index}/{shards} failed (exit {done.returncode}): {' '.join(cmd)}\n"
                f"{done.stderr.strip()}"
            )
        return pathlib.Path(d, "shard.json").read_bytes()


def main(argv):
    args = parse_args(argv)
    simulator = find_simulator(args.simulator)
    space = os.path.abspath(args.space)
    try:
        import ray
    except ImportError:
        sys.exit("error: Ray is not installed: pip install ray")

    if args.address:
        ray.init(address=args.address, log_to_driver=False)
    else:
        ray.init(log_to_driver=False)
    try:
        task = ray.remote(num_cpus=args.threads, max_retries=0)(run_shard)
        refs = [
            task.remote(simulator, space, i, args.shards, args.threads)
            for i in range(args.shards)
        ]
        try:
            shard_files = ray.get(refs)
        except ray.exceptions.RayTaskError as e:
            sys.exit(f"error: {e.cause if hasattr(e, 'cause') else e}")
    finally:
        ray.shutdown()

    with tempfile.TemporaryDirectory(prefix="servesim-shards-") as tmp:
        dirs = []
        for i, content in enumerate(shard_files):
            d = pathlib.Path(tmp, str(i))
            d.mkdir()
            (d / "shard.json").write_bytes(content)
            dirs.append(str(d))
        cmd = [simulator, "search", "merge", *dirs, "--out", args.out]
        if args.quiet:
            cmd.append("--quiet")
        return subprocess.run(cmd).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
