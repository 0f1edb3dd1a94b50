"""Ship the pusher's skills from the store ``experiments/pusher.py`` trained them in to the embedded store:
``pusher-x``, ``pusher-y`` (each with the last ``--keep`` transitions of its replay buffer, so that
``skillbank compose pusher-x pusher-y --sampler svgd`` and the certified interval work from the embedded store, at a
few MB instead of 40), ``pusher-xy`` (weights only) and the composite ``pusher-x-y-sum`` (its sampler trained on the
two whole buffers, or its line skills refit on them: ``experiments/pusher.py --refit``), each with its rollouts and
its lineage; ``--names`` ships only those (a new composite's constituents are then the target store's newest line
skills, which must be the ones it was composed from)::

    python experiments/ship_pusher.py ~/skillbank-runs/pusher-store2 --store skills_store --keep 20000
    python experiments/ship_pusher.py ~/skillbank-runs/pusher-v1-store --names pusher-x-y-sum
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import h5py
import torch

from skillbank import Parent, Registry
from skillbank.algos.buffer import ReplayBuffer

LINES, CORNER, COMPOSITE = ("pusher-x", "pusher-y"), "pusher-xy", "pusher-x-y-sum"


def last(buffer: ReplayBuffer, n: int) -> ReplayBuffer:
    """The ``n`` most recent transitions of ``buffer``, oldest first."""
    n = min(n, len(buffer))
    rows = (buffer.position - n + torch.arange(n)) % buffer.capacity
    kept = ReplayBuffer(n, buffer.obs_dim, buffer.act_dim)
    kept.transitions[:] = buffer.transitions[rows]
    kept.size, kept.position = n, 0
    return kept


def weights_sha256(registry: Registry, refs: list[str]) -> list[str]:
    """The checksums of the versions' weights: whether two stores hold the same skills."""
    return [registry.info(ref)["files"]["weights.safetensors"]["sha256"] for ref in refs]


def rollouts_file(source: Registry, ref: str, folder: Path) -> Path:
    """A copy of the version's rollouts file, to register with it elsewhere."""
    path = folder / f"{ref.replace('@', '-')}-rollouts.h5"
    with source.open_data(ref, "rollouts") as f, h5py.File(path, "w") as out:
        for key in f:
            f.copy(f[key], out, key)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path, help="the store experiments/pusher.py wrote")
    parser.add_argument("--store", type=Path, default=Path("skills_store"), help="the store to ship to")
    parser.add_argument("--keep", type=int, default=20_000, help="transitions of each line skill's replay to keep")
    parser.add_argument("--names", nargs="+", choices=(*LINES, CORNER, COMPOSITE), default=(*LINES, CORNER, COMPOSITE))
    args = parser.parse_args()
    source, target = Registry(args.source), Registry(args.store)
    shipped = {line: str(target.resolve(line)) for line in LINES if line not in args.names and target.find(name=line)}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.names:
            ref = str(source.resolve(name))
            skill, info = source.load(ref), source.info(ref)
            replay = None
            if name in LINES:
                whole = source.replay_buffer(ref)
                replay = last(whole, args.keep)
                skill.description["replay_kept"] = f"the last {len(replay):,} of its {len(whole):,} transitions"
            parents = []
            if name == COMPOSITE:
                constituents = skill.description["composition"]["constituents"]
                if weights_sha256(source, constituents) != weights_sha256(target, [shipped[line] for line in LINES]):
                    raise SystemExit(f"{ref} was composed from {constituents}, whose weights are not the shipped ones")
                parents = [
                    Parent(shipped[line], "constituent", {"weight": w}) for line, w in zip(LINES, skill.q.weights)
                ]
            shipped[name] = target.register(
                skill, name, description=info["description"], parents=parents, replay=replay,
                rollouts=rollouts_file(source, ref, Path(tmp)),
            )  # fmt: skip
            print(f"{name}: {ref} -> {shipped[name]}", flush=True)


if __name__ == "__main__":
    main()
