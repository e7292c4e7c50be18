"""`critix.load` and `critix export` beyond the happy path: the loaded policy acts exactly as the run's own steppers
evaluate (host, offline and compiled grid runs, every seed, with observation normalisation), checkpoint steps and
seed members, old checkpoints without recorded spaces, bad input, and ONNX export of every registered algorithm."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import jax
import numpy as np
import pytest

import critix
from critix import agents
from critix.agents import common, dqn
from critix.cli import main
from critix.envs.gym import scale_action
from critix.policy import ObsNormalization, Policy
from critix.train import checkpoint
from critix.train.config import load_run_config
from critix.train.grid import member_config
from critix.train.modes import make_stepper
from critix.types import CritixError
from critix.values.heads import HeadConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from test_datasets import make_episodes, write  # noqa: E402

QUIET = ["--eval-episodes", "1", "--no-progress", "--no-tensorboard"]
RNG = np.random.default_rng(0)
PENDULUM_OBS = RNG.uniform([-1, -1, -8], [1, 1, 8], (16, 3)).astype(np.float32)


@pytest.fixture(scope="module")
def sac_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SAC on Pendulum, 2 seeds, --normalize-obs, checkpoints at steps 100 and 200."""
    run_dir = tmp_path_factory.mktemp("load") / "sac"
    assert main(["train", "sac", "--env", "Pendulum-v1", "--steps", "200", "--num-seeds", "2", "--learning-starts",
                 "50", "--hidden-sizes", "16", "16", "--batch-size", "16", "--normalize-obs", "--eval-every", "100",
                 "--run-dir", str(run_dir), *QUIET]) == 0
    return run_dir


@pytest.fixture(scope="module")
def iql_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """IQL on a tiny Pendulum dataset, 2 seeds, observations standardised with the dataset's statistics."""
    folder = tmp_path_factory.mktemp("load")
    dataset = write(folder / "ds", make_episodes(4, 10))
    run_dir = folder / "iql"
    assert main(["train", "iql", "--dataset", str(dataset), "--steps", "20", "--chunk-size", "10", "--num-seeds", "2",
                 "--hidden-sizes", "16", "16", "--batch-size", "8", "--normalize-obs", "--eval-every", "0",
                 "--run-dir", str(run_dir), *QUIET]) == 0
    return run_dir


def started_stepper(run_dir: Path) -> tuple[object, object]:
    """The run's own stepper, started from its newest checkpoint (as `critix eval` does), and the run config."""
    algo, cfg, run = load_run_config(run_dir)
    stepper = make_stepper(algo, cfg, run)
    stepper.start(checkpoint.latest_valid(run_dir / "checkpoints", quarantine=False))
    return stepper, run


def test_host_policy_acts_as_the_stepper_evaluates_every_seed(sac_run: Path) -> None:
    stepper, _ = started_stepper(sac_run)
    try:
        want = stepper.greedy_actions(np.stack([PENDULUM_OBS] * 2))  # [S, B, A], each seed's statistics
        low, high = stepper.act_space.low, stepper.act_space.high
    finally:
        stepper.close()
    for seed in range(2):
        policy = critix.load(sac_run, seed_index=seed)
        assert policy.normalization.kind == "running" and policy.num_seeds == 2 and policy.step == 200
        np.testing.assert_allclose(policy.act(PENDULUM_OBS), scale_action(want[seed], low, high), atol=1e-6)
    assert "seed 1 of 2" in repr(critix.load(sac_run, seed_index=1))
    assert not np.allclose(critix.load(sac_run).act(PENDULUM_OBS), critix.load(sac_run, seed_index=1).act(PENDULUM_OBS))


def test_offline_policy_standardises_with_the_dataset_statistics(iql_run: Path) -> None:
    stepper, _ = started_stepper(iql_run)
    try:
        want = np.asarray(stepper.greedy(stepper.agent, np.stack([PENDULUM_OBS] * 2)))
        data_mean, data_std = stepper.data.obs_mean, stepper.data.obs_std
    finally:
        stepper.close()
    policy = critix.load(iql_run, seed_index=1)
    assert policy.mode == "offline" and policy.normalization.kind == "dataset" and policy.env_id == "Pendulum-v1"
    np.testing.assert_array_equal(policy.normalization.mean, data_mean)
    np.testing.assert_array_equal(policy.normalization.scale, data_std)
    np.testing.assert_allclose(policy.act(PENDULUM_OBS), scale_action(want[1], -2.0, 2.0), atol=1e-6)


def test_step_selects_a_checkpoint_and_a_missing_step_lists_the_others(sac_run: Path) -> None:
    early, late = critix.load(sac_run, step=100), critix.load(sac_run)
    assert (early.step, late.step) == (100, 200)
    assert not np.allclose(early.act(PENDULUM_OBS), late.act(PENDULUM_OBS))  # 100 more steps of training
    with pytest.raises(CritixError, match="no checkpoint at step 150; it has steps 100, 200"):
        critix.load(sac_run, step=150)


def test_sampled_actions_follow_the_key(sac_run: Path) -> None:
    policy = critix.load(sac_run, sample_seed=3)
    a, b = policy.act(PENDULUM_OBS, deterministic=False), policy.act(PENDULUM_OBS, deterministic=False)
    assert not np.allclose(a, b)  # the policy's own key stream moves on
    np.testing.assert_array_equal(critix.load(sac_run, sample_seed=3).act(PENDULUM_OBS, deterministic=False), a)
    np.testing.assert_array_equal(policy.act(PENDULUM_OBS, False, key=5), policy.act(PENDULUM_OBS, False, key=5))
    assert np.all(np.abs(a) <= 2.0)  # sampled actions are within the bounds too


def rewrite_meta(ckpt: Path, drop: tuple[str, ...]) -> None:
    """meta.json as a checkpoint written before critix recorded `drop`, with a valid checksum."""
    meta = json.loads((ckpt / checkpoint.META_FILE).read_text())
    for key in drop:
        meta.pop(key)
    meta[checkpoint.META_CHECKSUM] = checkpoint._meta_digest(meta)
    (ckpt / checkpoint.META_FILE).write_text(json.dumps(meta))


def test_checkpoints_without_recorded_spaces_or_statistics_still_load(sac_run: Path, iql_run: Path,
                                                                       tmp_path: Path) -> None:
    import shutil

    for run_dir, drop in ((sac_run, ("spaces",)), (iql_run, ("spaces", "obs_mean", "obs_std"))):
        old = tmp_path / run_dir.name
        shutil.copytree(run_dir, old)
        for ckpt in checkpoint.list_checkpoints(old / "checkpoints"):
            rewrite_meta(ckpt, drop)
        new_policy, old_policy = critix.load(run_dir), critix.load(old)  # the env or dataset gives what is missing
        assert old_policy.action_space == new_policy.action_space
        np.testing.assert_array_equal(old_policy.act(PENDULUM_OBS), new_policy.act(PENDULUM_OBS))


def test_compiled_grid_points_load_their_own_members(tmp_path: Path) -> None:
    run_dir = tmp_path / "grid"
    assert main(["train", "ppo", "--env", "gymnax:CartPole-v1", "--num-envs", "2", "--num-seeds", "2", "--steps", "64",
                 "--rollout-length", "16", "--minibatch-size", "16", "--num-epochs", "1", "--hidden-sizes", "16",
                 "--log-every", "64", "--normalize-obs", "--grid", "learning_rate=0.01,0.001", "--run-dir",
                 str(run_dir), *QUIET]) == 0
    with pytest.raises(CritixError, match=r"grid run of 2 grid points; load one point's folder.*00_learning_rate=0.01"):
        critix.load(run_dir)
    stepper, _ = started_stepper(run_dir)
    points = sorted((run_dir / "grid").iterdir())
    obs = RNG.normal(size=(16, 4)).astype(np.float32)
    for g, point in enumerate(points):
        for seed in range(2):
            member = g * 2 + seed
            carry = jax.tree.map(lambda x, m=member: x[m], stepper.carry)
            cfg = member_config(stepper.cfg, carry.hparams)
            want = stepper.member.module.act(cfg, carry.agent, stepper.member.prepare(obs, carry.obs_rms),
                                             jax.random.PRNGKey(0), True)
            policy = critix.load(point, seed_index=seed)
            assert policy.mode == "compiled" and policy.normalization.kind == "running"
            np.testing.assert_array_equal(policy.act(obs), np.asarray(want))
    assert main(["export", str(points[1]), "--out", str(tmp_path / "point.onnx"), "--seed-index", "1"]) == 0


# ---- bad input ---------------------------------------------------------------------------------------------------


def test_unknown_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CritixError, match="is not a folder; give a run folder"):
        critix.load(tmp_path / "nowhere")
    with pytest.raises(CritixError, match="config.json is missing or malformed"):
        critix.load(tmp_path)


def test_folder_without_checkpoints_is_refused(sac_run: Path, tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text((sac_run / "config.json").read_text())
    with pytest.raises(CritixError, match="has no complete checkpoint in .*let it train"):
        critix.load(tmp_path)
    assert main(["export", str(tmp_path), "--out", str(tmp_path / "p.onnx")]) == 2


def test_bad_seed_index_and_observation_shapes_are_refused(sac_run: Path) -> None:
    with pytest.raises(CritixError, match="seed_index 2 is out of range: .* trained 2 seed"):
        critix.load(sac_run, seed_index=2)
    policy = critix.load(sac_run)
    with pytest.raises(CritixError, match=r"observation of shape \(4,\); it takes one observation of shape \(3,\)"):
        policy.act(np.zeros(4))
    with pytest.raises(CritixError, match="must be numbers"):
        policy.act(np.array(["a", "b", "c"]))


def test_export_names_the_missing_extra(sac_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "jax2onnx", None)  # import jax2onnx raises ImportError
    assert main(["export", str(sac_run), "--out", str(tmp_path / "p.onnx")]) == 2
    assert "pip install 'critix[export]'" in capsys.readouterr().err
    assert not (tmp_path / "p.onnx").exists()


def test_export_names_the_algorithm_the_converter_cannot_convert(sac_run: Path, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import jax2onnx

    def refuse(*args: object, **kwargs: object) -> None:
        raise NotImplementedError("no plugin for primitive 'exotic_op'")

    monkeypatch.setattr(jax2onnx, "to_onnx", refuse)
    with pytest.raises(CritixError, match="cannot export the sac policy .*exotic_op"):
        critix.load(sac_run).export_onnx(tmp_path / "p.onnx")


def test_import_critix_stays_light() -> None:
    code = "import sys, critix; assert 'jax' not in sys.modules; print(' '.join(dir(critix)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert {"load", "Policy", "__version__"} <= set(out.split())
    assert critix.load is critix.policy.load and critix.Policy is Policy


# ---- every algorithm exports ---------------------------------------------------------------------------------------

BOX_OBS = gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)
BOX_ACTIONS = gym.spaces.Box(np.array([-2.0, 0.0], np.float32), np.array([2.0, 1.0], np.float32))


def untrained_policy(algo: str, cfg: object, obs_space: gym.Space, act_space: gym.Space,
                     normalization: ObsNormalization) -> Policy:
    module = agents.get(algo).module
    state = module.init(cfg, jax.random.PRNGKey(1), obs_space, act_space)
    return Policy(algo=algo, config=cfg, run=None, state=state, observation_space=obs_space, action_space=act_space,
                  normalization=normalization, mode="host", env_id="test", run_dir=Path("none"),
                  checkpoint_dir=Path("none"), step=0, seed_index=0, num_seeds=1)


def export_cases() -> list[tuple[str, object, gym.Space, gym.Space]]:
    cases = []
    for name, spec in agents.REGISTRY.items():
        discrete = getattr(spec.module, "ACTIONS", None) == "discrete"
        cases.append((name, spec.default_config, BOX_OBS, gym.spaces.Discrete(3) if discrete else BOX_ACTIONS))
    cases.append(("ppo", agents.get("ppo").default_config, BOX_OBS, gym.spaces.Discrete(3)))  # categorical
    for head in ("quantile", "hl-gauss", "two-hot"):
        cases.append(("dqn", dqn.Config(value_head=HeadConfig(head, v_min=-5.0, v_max=5.0, num_bins=21), dueling=True),
                      BOX_OBS, gym.spaces.Discrete(3)))
    cases.append(("dqn", dqn.Config(encoder="minatar"), gym.spaces.Box(0, 1, (10, 10, 4), bool),
                  gym.spaces.Discrete(3)))
    cases.append(("sac", common.replace_fields(agents.get("sac").default_config, activation="gelu"), BOX_OBS,
                  BOX_ACTIONS))
    return cases


@pytest.mark.parametrize("algo,cfg,obs_space,act_space", export_cases(),
                         ids=lambda x: x if isinstance(x, str) else None)
def test_every_algorithm_exports_and_onnx_runtime_agrees(algo: str, cfg: object, obs_space: gym.Space,
                                                        act_space: gym.Space, tmp_path: Path) -> None:
    flat = len(obs_space.shape) == 1
    normalization = (ObsNormalization("running", np.array([0.5, -1.0, 2.0], np.float32),
                                      np.array([4.0, 0.25, 1.0], np.float32)) if flat else ObsNormalization("none"))
    policy = untrained_policy(algo, cfg, obs_space, act_space, normalization)
    result = policy.export_onnx(tmp_path / "policy.onnx")
    assert result.max_abs_diff <= 1e-5 and result.observations_checked == 256
    assert result.output_dtype == ("int32" if isinstance(act_space, gym.spaces.Discrete) else "float32")
    assert result.input_shape == ("B", *obs_space.shape) and (tmp_path / "policy.onnx").stat().st_size > 0
