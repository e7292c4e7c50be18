"""The catalogue of bad inputs: each one, through the `critix` command, gets exit code 2 and one readable message
naming the problem (no traceback). docs/reliability.md lists every case with its message; a test keeps the two
in sync. Regenerate the table with `.venv/bin/python tests/reliability/test_bad_inputs.py`.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from critix.cli import main
from critix.train import checkpoint

HERE = Path(__file__).resolve().parent
DOC = HERE.parents[1] / "docs" / "reliability.md"
CONFIG = HERE / "data" / "config_sac_pendulum.json"
S = ["--no-progress"]

# (id, what is wrong, argv; "{run}" is a run folder prepared by the case's setup, expected part of the message)
CLI_CASES: list[tuple[str, str, list[str], str]] = [
    ("env-unknown", "environment id with a typo", ["train", "sac", "--env", "Pendulum-v9"],
     "unknown environment id 'Pendulum-v9'. Did you mean Pendulum-v1"),
    ("env-discrete", "discrete-action env for a continuous-action algorithm", ["train", "sac", "--env", "CartPole-v1"],
     "sac needs a continuous (Box) action space"),
    ("env-module-missing", "module:EnvName-v0 id whose module cannot be imported",
     ["train", "sac", "--env", "no_such_module_xyz:MyEnv-v0"],
     "cannot import module 'no_such_module_xyz' (ModuleNotFoundError: No module named 'no_such_module_xyz')"),
    ("env-kwargs-malformed", "--env-kwargs item without '='", ["train", "sac", "--env-kwargs", "gravity"],
     "env_kwargs items must be KEY=VALUE"),
    ("env-kwargs-unknown", "--env-kwargs the env does not take", ["train", "sac", "--env-kwargs", "colour=1", *S],
     "Pendulum-v1 does not take the env kwargs colour"),
    ("env-kwargs-jax", "--env-kwargs for a compiled JAX env", ["train", "ppo", "--env", "gymnax:CartPole-v1",
                                                              "--env-kwargs", "a=1"], "drop --env-kwargs"),
    ("algo-unknown", "algorithm that does not exist", ["train", "ppo9"], "unknown algorithm 'ppo9'"),
    ("gamma-high", "gamma above 1", ["train", "td3", "--gamma", "1.5"], "gamma must be in [0, 1], got 1.5"),
    ("gamma-nan", "gamma NaN", ["train", "sac", "--gamma", "nan"], "gamma must be a finite number, got nan"),
    ("tau-zero", "target_tau 0", ["train", "sac", "--target-tau", "0"], "target_tau must be in (0, 1], got 0"),
    ("tau-high", "target_tau above 1", ["train", "ddpg", "--target-tau", "1.5"], "target_tau must be in (0, 1]"),
    ("batch-zero", "batch_size 0", ["train", "sac", "--batch-size", "0"], "batch_size must be >= 1"),
    ("batch-over-buffer", "batch_size larger than buffer_size", ["train", "sac", "--batch-size", "512",
                                                                 "--buffer-size", "100"],
     "buffer_size (100) must be >= batch_size (512); raise --buffer-size or lower --batch-size"),
    ("lr-zero", "learning rate 0", ["train", "sac", "--actor-lr", "0"], "actor_lr must be > 0"),
    ("lr-inf", "learning rate Inf", ["train", "td3", "--critic-lr", "inf"], "critic_lr must be a finite number"),
    ("utd-zero", "utd_ratio 0", ["train", "sac", "--utd-ratio", "0"], "utd_ratio must be in (0, 1000]"),
    ("utd-huge", "utd_ratio 1e9", ["train", "sac", "--utd-ratio", "1e9"], "utd_ratio must be in (0, 1000]"),
    ("hidden-zero", "a hidden layer of size 0", ["train", "sac", "--hidden-sizes", "0"],
     "hidden_sizes must be non-empty, each in [1, 65536]"),
    ("hidden-huge", "a hidden layer of 10^8 units", ["train", "sac", "--hidden-sizes", "100000000"],
     "hidden_sizes must be non-empty, each in [1, 65536]"),
    ("activation-unknown", "activation that does not exist", ["train", "sac", "--activation", "swish"],
     "activation must be one of ['elu', 'gelu', 'relu', 'silu', 'tanh'], got 'swish'"),
    ("head-unknown", "critic head that does not exist", ["train", "sac", "--critic-head", "gauss"],
     "unknown critic head 'gauss'"),
    ("dropout-one", "critic_dropout 1", ["train", "sac", "--critic-dropout", "1.0"], "critic_dropout must be in [0, 1)"),
    ("alpha-zero", "init_alpha 0", ["train", "sac", "--init-alpha", "0"], "init_alpha must be > 0"),
    ("critics-zero", "num_critics 0", ["train", "sac", "--num-critics", "0"], "num_critics must be >= 1"),
    ("learning-starts-negative", "learning_starts -5", ["train", "sac", "--learning-starts", "-5"],
     "learning_starts must be >= 0"),
    ("policy-delay-zero", "TD3 policy_delay 0", ["train", "td3", "--policy-delay", "0"], "policy_delay must be >= 1"),
    ("noise-negative", "TD3 target_noise -0.1", ["train", "td3", "--target-noise", "-0.1"],
     "target_noise must be >= 0"),
    ("steps-zero", "steps 0", ["train", "sac", "--steps", "0"], "steps must be >= 1"),
    ("steps-text", "steps not a number", ["train", "sac", "--steps", "abc"], "Error parsing --steps"),
    ("seeds-zero", "num_seeds 0", ["train", "sac", "--num-seeds", "0"], "num_seeds must be >= 1"),
    ("envs-zero", "num_envs 0", ["train", "sac", "--num-envs", "0"], "num_envs must be >= 1"),
    ("chunk-negative", "chunk_size -1", ["train", "sac", "--chunk-size", "-1"], "chunk_size must be >= 0"),
    ("eval-episodes-zero", "eval_episodes 0", ["train", "sac", "--eval-episodes", "0"], "eval_episodes must be >= 1"),
    ("seed-negative", "seed -1", ["train", "sac", "--seed", "-1"], "seed must be >= 0"),
    ("seed-huge", "seed 2^31", ["train", "sac", "--seed", str(2**31)], "seed must be in [0, 2**31)"),
    ("too-many-envs", "200 seeds x 100 envs", ["train", "sac", "--num-seeds", "200", "--num-envs", "100"],
     "num_seeds * num_envs must be <= 10000"),
    ("steps-below-envs", "fewer steps than envs", ["train", "sac", "--steps", "5", "--num-envs", "10"],
     "steps (5) must be >= num_envs (10)"),
    ("on-nan-unknown", "--on-nan with an unknown policy", ["train", "sac", "--on-nan", "maybe"],
     "invalid choice 'maybe' for argument '--on-nan'"),
    ("vectorization-unknown", "unknown vectorization", ["train", "sac", "--vectorization", "threads", "--steps", "300"],
     "vectorization must be 'auto', 'sync' or 'async', got 'threads'"),
    ("buffer-below-batch", "a run too short to fill one batch", ["train", "sac", "--steps", "100", *S],
     "the replay buffer holds 100 transitions (min of buffer_size and steps), fewer than batch_size=256"),
    ("buffer-too-big", "replay buffers larger than the machine's memory",
     ["train", "sac", "--steps", "100000000000", "--buffer-size", "100000000000", *S], "the replay buffers need"),
    ("overlap-on-policy", "--overlap-updates for an on-policy agent", ["train", "ppo", "--overlap-updates"],
     "--overlap-updates overlaps an off-policy host loop's updates with its env steps; ppo is on-policy"),
    ("overlap-compiled", "--overlap-updates for a compiled run",
     ["train", "dqn", "--env", "gymnax:CartPole-v1", "--overlap-updates"], "gymnax:CartPole-v1 runs compiled"),
    ("resume-missing", "--resume of a folder that does not exist", ["train", "sac", "--resume", "/nonexistent/run"],
     "config.json is missing or malformed"),
    ("eval-missing", "eval of a folder that does not exist", ["eval", "/nonexistent/run"],
     "config.json is missing or malformed"),
    ("resume-other-algo", "--resume of a SAC run as TD3", ["train", "td3", "--resume", "{run}"],
     "is a sac run; use `critix train sac --resume ...`"),
    ("eval-no-checkpoint", "eval of a run with no checkpoint", ["eval", "{run}"], "has no complete checkpoint"),
]


def _config(run: Path, edit: Callable[[dict], None] | None = None) -> None:
    data = json.loads(CONFIG.read_text())
    if edit:
        edit(data)
    run.mkdir(parents=True, exist_ok=True)
    (run / "config.json").write_text(json.dumps(data))


def _checkpoint(run: Path, corrupt: Callable[[Path], None]) -> None:
    _config(run)
    ckpt = checkpoint.save(run / "checkpoints", 100, {"w": np.zeros(3, np.float32)}, {})
    corrupt(ckpt)


def _edit_meta(**changes: object) -> Callable[[Path], None]:
    def edit(ckpt: Path) -> None:
        meta = json.loads((ckpt / checkpoint.META_FILE).read_text())
        meta.update(changes)
        (ckpt / checkpoint.META_FILE).write_text(json.dumps(meta))
    return edit


def _truncate(ckpt: Path) -> None:
    state = ckpt / checkpoint.STATE_FILE
    state.write_bytes(state.read_bytes()[:40])


def _flip(ckpt: Path) -> None:
    state = ckpt / checkpoint.STATE_FILE
    raw = bytearray(state.read_bytes())
    raw[-1] ^= 0x10
    state.write_bytes(bytes(raw))


def _sweep(text: str) -> Callable[[Path], None]:
    """Setup of a `critix sweep` case: the folder holds sweep.yaml with `text` (the sweep folder is RUN/out)."""
    def write(run: Path) -> None:
        run.mkdir(parents=True, exist_ok=True)
        (run / "sweep.yaml").write_text(text)
    return write


def _other_sweep(run: Path) -> None:
    """A sweep folder RUN/out planned from SWEEP_OK, and sweep.yaml with a different budget."""
    from critix.sweep import spec

    _sweep(SWEEP_OK)(run)
    spec.plan(spec.build_spec(spec.parse_yaml(SWEEP_OK, "sweep.yaml"), "sweep.yaml"), run / "out")
    (run / "sweep.yaml").write_text(SWEEP_OK.replace("steps: 1000", "steps: 2000"))


SWEEP_OK = "algo: sac\nenv: Pendulum-v1\nsteps: 1000\nseeds: [0, 1]\ngrid: {actor_lr: [1e-4, 3e-4]}\n"
SWEEP_BASE = "algo: sac\nenv: Pendulum-v1\nsteps: 1000\nseeds: [0, 1]\n"
SWEEP_ARGV = ["sweep", "{run}/sweep.yaml", "--out", "{run}/out"]

# (id, what is wrong, setup of the run folder, argv, expected part of the message)
FILE_CASES: list[tuple[str, str, Callable[[Path], None], list[str], str]] = [
    ("config-not-json", "config.json is not JSON", lambda r: (r.mkdir(), (r / "config.json").write_text("{oops")),
     ["eval", "{run}"], "config.json is missing or malformed"),
    ("config-unknown-field", "config.json has a field critix does not know",
     lambda r: _config(r, lambda d: d["agent"].update(bogus=1)), ["eval", "{run}"], "config has unknown fields ['bogus']"),
    ("config-wrong-type", "config.json has gamma as a string",
     lambda r: _config(r, lambda d: d["agent"].update(gamma="0.99")), ["eval", "{run}"],
     "invalid config: gamma must be a finite number, got '0.99' (str)"),
    ("config-algo-not-string", "config.json has a number as algo",
     lambda r: _config(r, lambda d: d.update(algo=42)), ["eval", "{run}"], "algo must be a string, got 42"),
    ("config-algo-unknown", "config.json names an unknown algorithm",
     lambda r: _config(r, lambda d: d.update(algo="ppo9")), ["eval", "{run}"], "unknown algorithm 'ppo9'"),
    ("config-bad-range", "config.json has target_tau 0",
     lambda r: _config(r, lambda d: d["agent"].update(target_tau=0.0)), ["eval", "{run}"],
     "invalid config: target_tau must be in (0, 1], got 0.0"),
    ("ckpt-truncated", "checkpoint state file truncated", lambda r: _checkpoint(r, _truncate), ["eval", "{run}"],
     "state.safetensors is corrupt (40 bytes, expected"),
    ("ckpt-bit-flip", "checkpoint state file with one bit flipped", lambda r: _checkpoint(r, _flip), ["eval", "{run}"],
     "checksum mismatch"),
    ("ckpt-meta-edited", "checkpoint meta.json edited by hand", lambda r: _checkpoint(r, _edit_meta(step=7)),
     ["eval", "{run}"], "meta.json does not match its checksum"),
    ("ckpt-newer-format", "checkpoint from a newer critix",
     lambda r: _checkpoint(r, _edit_meta(format_version=3, critix_version="0.9.0")), ["eval", "{run}"],
     "written by critix 0.9.0; this critix 0.1.0 reads formats 1-2. Upgrade critix to 0.9.0 or newer"),
    ("ckpt-older-format", "checkpoint from a format critix no longer reads",
     lambda r: _checkpoint(r, _edit_meta(format_version=0, critix_version="0.0.1")), ["eval", "{run}"],
     "Load it with critix 0.0.1"),
    ("ckpt-meta-not-object", "checkpoint meta.json holds a list",
     lambda r: _checkpoint(r, lambda c: (c / checkpoint.META_FILE).write_text("[1, 2]")), ["eval", "{run}"],
     "meta.json must hold a JSON object, got list"),
    ("ckpt-meta-binary", "checkpoint meta.json is binary (e.g. a pickle)",
     lambda r: _checkpoint(r, lambda c: (c / checkpoint.META_FILE).write_bytes(b"\x80\x04K\x01.")), ["eval", "{run}"],
     "has an unreadable meta.json"),
    ("ckpt-wrong-config", "checkpoint of a different network than config.json",
     lambda r: _checkpoint(r, lambda c: None), ["eval", "{run}"], "does not match this agent/config"),
    ("sweep-missing-file", "sweep file that does not exist", lambda r: r.mkdir(), SWEEP_ARGV,
     "cannot read the sweep file"),
    ("sweep-bad-yaml", "sweep file that is not YAML", _sweep("algo: sac\nenv Pendulum-v1\n  steps: 10\n"),
     SWEEP_ARGV, "sweep.yaml is not valid YAML at line 3, column 8"),
    ("sweep-not-mapping", "sweep file holding a list", _sweep("- sac\n- td3\n"), SWEEP_ARGV,
     "sweep.yaml must be a YAML mapping of keys"),
    ("sweep-key-unknown", "sweep file with a misspelt key", _sweep(SWEEP_BASE + "grids: {actor_lr: [1e-4]}\n"),
     SWEEP_ARGV, "unknown key 'grids' (did you mean grid?)"),
    ("sweep-algo-unknown", "sweep of an algorithm that does not exist", _sweep(SWEEP_OK.replace("sac", "sac9")),
     SWEEP_ARGV, "sweep.yaml: algo: unknown algorithm 'sac9'"),
    ("sweep-env-unknown", "sweep on an environment id with a typo",
     _sweep(SWEEP_OK.replace("Pendulum-v1", "Pendulum-v9")), SWEEP_ARGV,
     "sweep.yaml: env: unknown environment id 'Pendulum-v9'. Did you mean Pendulum-v1"),
    ("sweep-field-unknown", "grid field that is not a hyperparameter",
     _sweep(SWEEP_BASE + "grid: {actor_lrr: [1e-4]}\n"), SWEEP_ARGV,
     "grid.actor_lrr: 'actor_lrr' is not a field of sac or of the run options; did you mean actor_lr?"),
    ("sweep-field-owned", "grid over a field the sweep sets itself", _sweep(SWEEP_BASE + "grid: {seed: [1, 2]}\n"),
     SWEEP_ARGV, "grid.seed: seed is set by the sweep itself; list the seeds under seeds:"),
    ("sweep-grid-empty", "empty grid", _sweep(SWEEP_BASE + "grid: {}\n"), SWEEP_ARGV, "grid is empty"),
    ("sweep-grid-values-empty", "grid field with no values", _sweep(SWEEP_BASE + "grid: {actor_lr: []}\n"),
     SWEEP_ARGV, "grid.actor_lr is an empty list"),
    ("sweep-grid-not-list", "grid field with one value instead of a list",
     _sweep(SWEEP_BASE + "grid: {actor_lr: 0.001}\n"), SWEEP_ARGV,
     "grid.actor_lr must be a list of values, e.g. [0.001]"),
    ("sweep-value-type", "grid value of the wrong type", _sweep(SWEEP_BASE + "grid: {batch_size: [64, big]}\n"),
     SWEEP_ARGV, "grid.batch_size value 'big': batch_size must be an integer, got 'big' (str)"),
    ("sweep-value-range", "grid value out of range", _sweep(SWEEP_BASE + "grid: {actor_lr: [0.0, 1e-3]}\n"),
     SWEEP_ARGV, "grid.actor_lr value 0.0: actor_lr must be > 0, got 0.0"),
    ("sweep-steps-text", "steps not a number", _sweep(SWEEP_OK.replace("1000", "ten")), SWEEP_ARGV,
     "steps must be an integer >= 1, got 'ten' (str)"),
    ("sweep-seeds-not-list", "seeds a number instead of a list", _sweep(SWEEP_OK.replace("[0, 1]", "3")),
     SWEEP_ARGV, "seeds must be a non-empty list of integers"),
    ("sweep-search-bad", "random search over an impossible range",
     _sweep(SWEEP_BASE + "search: {samples: 4, space: {actor_lr: {loguniform: [0, 1e-3]}}}\n"), SWEEP_ARGV,
     "search.space.actor_lr: loguniform needs 0 < low < high"),
    ("sweep-scheduler-unknown", "scheduler that does not exist", _sweep(SWEEP_OK + "scheduler: hyperband\n"),
     SWEEP_ARGV, "scheduler must be one of fifo, asha, got 'hyperband'"),
    ("sweep-other-sweep", "sweep folder of a different sweep", _other_sweep, SWEEP_ARGV,
     "holds a different sweep (it differs in: steps)"),
]


def clean(text: str) -> str:
    """One line: tyro's box drawing removed, whitespace collapsed (tyro wraps long messages)."""
    return " ".join(re.sub(r"[╭╮╰╯│─]+", " ", text).split())


def run_cli(argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = main(argv)
    return code, err.getvalue()


def prepared_sac_run(tmp_path: Path) -> Path:
    run = tmp_path / "sac-run"
    _config(run)
    return run


@pytest.mark.parametrize(("case", "what", "argv", "message"), CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_bad_cli_input(case: str, what: str, argv: list[str], message: str, tmp_path: Path) -> None:
    run = prepared_sac_run(tmp_path)
    code, err = run_cli([a.replace("{run}", str(run)) for a in argv])
    assert code == 2, err
    assert message in clean(err), err
    assert "Traceback" not in err


@pytest.mark.parametrize(("case", "what", "setup", "argv", "message"), FILE_CASES, ids=[c[0] for c in FILE_CASES])
def test_bad_file(case: str, what: str, setup: Callable[[Path], None], argv: list[str], message: str,
                  tmp_path: Path) -> None:
    run = tmp_path / "run"
    setup(run)
    code, err = run_cli([a.replace("{run}", str(run)) for a in argv])
    assert code == 2, err
    assert message in clean(err), err
    assert "Traceback" not in err


def test_debug_flag_shows_the_traceback() -> None:
    code, err = run_cli(["train", "sac", "--env", "Pendulum-v9", "--debug"])
    assert code == 2 and "Traceback" in err and "unknown environment id" in err


def test_every_case_is_documented() -> None:
    doc = DOC.read_text()
    ids = [c[0] for c in CLI_CASES] + [c[0] for c in FILE_CASES]
    assert len(ids) == len(set(ids)) and len(ids) >= 30
    missing = [i for i in ids if f"`{i}`" not in doc]
    assert not missing, f"add these cases to {DOC}: {missing}"


def markdown_table(tmp: Path) -> str:
    """The docs table: every case with the message critix gives today."""
    lines = ["| case | bad input | command | message (stderr, exit code 2) |", "|---|---|---|---|"]

    def cell(text: str) -> str:
        text = re.sub(r"-{3,}|For full helptext, (see|run) critix train \w+ --help", " ", clean(text))
        text = re.sub(r"/\S*/(sac-run|run)\b", "RUN", " ".join(text.split()))
        return text.replace("{run}", "RUN").replace("|", "\\|")

    def message(err: str) -> str:  # "['a']['b']" would read as a Markdown reference link: escape the second "["
        return cell(err)[:300].replace("][", "]\\[")

    for i, (case, what, argv, _) in enumerate(CLI_CASES):
        run = prepared_sac_run(tmp / f"c{i}")
        argv = [a.replace("{run}", str(run)) for a in argv]
        code, err = run_cli(argv)
        assert code == 2
        lines.append(f"| `{case}` | {what} | `critix {cell(' '.join(argv))}` | {message(err)} |")
    for i, (case, what, setup, argv, _) in enumerate(FILE_CASES):
        run = tmp / f"f{i}" / "run"
        run.parent.mkdir(parents=True)
        setup(run)
        code, err = run_cli([a.replace("{run}", str(run)) for a in argv])
        assert code == 2
        lines.append(f"| `{case}` | {what} | `critix {cell(' '.join(argv).replace(str(run), 'RUN'))}` "
                     f"| {message(err)} |")
    return "\n".join(lines)


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        print(markdown_table(Path(tmp)))
    sys.exit(0)
