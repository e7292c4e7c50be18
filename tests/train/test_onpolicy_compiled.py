"""On-policy host loop and compiled mode end to end: run folders, eval, clear errors, and host/compiled agreement.

Shapes stay tiny (hidden 16, short rollouts) so each test compiles a handful of small functions.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from safetensors.numpy import load_file

from critix.cli import main
from critix.envs import jax_envs

PPO_TINY = ["--hidden-sizes", "16", "--rollout-length", "16", "--minibatch-size", "16", "--num-epochs", "2",
            "--eval-episodes", "2", "--no-progress", "--no-tensorboard"]


# --- a deterministic toy env, the same code as a JAX env and as a Gymnasium env ---------------------------------

def toy_chain() -> jax_envs.JaxEnv:
    """Walk on 0..4 (action 1 right, 0 left); reward = action; terminated at 4; truncated after 6 steps.
    Deterministic, including its reset, so host and compiled runs see identical data."""

    def obs_of(position: jax.Array, time: jax.Array) -> jax.Array:
        return jnp.stack([position / 4.0, time / 6.0, 1.0]).astype(jnp.float32)

    def reset_fn(key: jax.Array) -> tuple[jax.Array, tuple]:
        state = (jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))
        return obs_of(*state), state

    def step_fn(key: jax.Array, state: tuple, action: jax.Array) -> tuple:
        position = jnp.maximum(state[0] + 2 * jnp.asarray(action, jnp.int32) - 1, 0)
        time = state[1] + 1
        return (obs_of(position, time), (position, time), jnp.asarray(action, jnp.float32), position >= 4,
                time >= 6)

    return jax_envs.JaxEnv("jax:ToyChain", gym.spaces.Box(-1.0, 2.0, (3,), np.float32), gym.spaces.Discrete(2), 6,
                           reset_fn, step_fn)


jax_envs.register("ToyChain", toy_chain)
if "critix-test/ToyChain-v0" not in gym.registry:
    gym.register("critix-test/ToyChain-v0", entry_point=lambda **_: jax_envs.GymnasiumAdapter(toy_chain()))


@pytest.mark.parametrize("normalize", [[], ["--normalize-obs", "--normalize-reward"]], ids=["raw", "normalized"])
def test_compiled_and_host_mode_agree_on_a_deterministic_env(tmp_path: Path, normalize: list[str]) -> None:
    """The same PPO module, seeds and keys: a host run on the Gymnasium env and a compiled run on the JAX env
    collect the same rollouts and end with the same parameters and evaluation returns, also with observation
    normalisation and reward scaling (the running statistics: float64 numpy on the host, float32 compiled)."""
    common = ["--num-seeds", "2", "--num-envs", "2", "--steps", "64", "--rollout-length", "8", "--minibatch-size", "8",
              "--num-epochs", "2", "--hidden-sizes", "16", "--learning-rate", "0.01", "--eval-episodes", "2",
              "--no-progress", "--no-tensorboard", *normalize]
    assert main(["train", "ppo", "--env", "critix-test/ToyChain-v0", "--run-dir", str(tmp_path / "host"), *common]) == 0
    assert main(["train", "ppo", "--env", "jax:ToyChain", "--run-dir", str(tmp_path / "compiled"), *common]) == 0
    host = json.loads((tmp_path / "host" / "summary.json").read_text())
    compiled = json.loads((tmp_path / "compiled" / "summary.json").read_text())
    assert (host["mode"], compiled["mode"]) == ("host", "compiled")
    assert host["steps"] == compiled["steps"] == 64 and host["gradient_steps"] == compiled["gradient_steps"]
    np.testing.assert_allclose(host["final_return"], compiled["final_return"])

    def agent_arrays(run: Path, prefix: str) -> dict[str, np.ndarray]:
        ckpt = sorted((run / "checkpoints").glob("step_*"))[-1]
        arrays = load_file(str(ckpt / "state.safetensors"))
        return {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}

    host_agent = agent_arrays(tmp_path / "host", "['agent']")
    compiled_agent = agent_arrays(tmp_path / "compiled", "['carry'].agent")
    assert host_agent.keys() == compiled_agent.keys() and any("actor_params" in k for k in host_agent)
    # Raw: float32 both ways. Normalised: the statistics are float64 on the host and float32 compiled, so the
    # parameters drift apart over the 8 updates, by up to 6e-5 beyond rtol over seeds 0-5 (minibatch orders of
    # agents.common.permutation; up to 9e-6 with jax.random.permutation's).
    atol = 1e-4 if normalize else 2e-5
    for name, value in host_agent.items():
        np.testing.assert_allclose(compiled_agent[name], value, rtol=2e-4, atol=atol, err_msg=name)
    assert int(host_agent[".steps"].max()) == 4  # both trained on 64 / (8 x 2) = 4 rollouts per seed


def test_ppo_host_discrete_run_folder_eval_and_resume(tmp_path: Path) -> None:
    run_dir = tmp_path / "ppo"
    argv = ["train", "ppo", "--env", "CartPole-v1", "--steps", "128", "--num-envs", "2", "--num-seeds", "2",
            "--eval-every", "64", "--normalize-obs", "--normalize-reward", "--run-dir", str(run_dir), *PPO_TINY]
    assert main(argv) == 0
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["algo"] == "ppo" and summary["steps"] == 128 and len(summary["final_return"]) == 2
    assert summary["gradient_steps"] == 4 * 2 * 2  # 4 rollouts of 32 transitions, 2 minibatches, 2 epochs
    assert (run_dir / "learning_curve.png").exists()
    header = (run_dir / "metrics.csv").read_text().splitlines()[0]
    for column in ("actor/loss", "critic/loss", "actor/approx_kl", "train/episode_return", "eval/return"):
        assert column in header
    assert main(["eval", str(run_dir), "--episodes", "2"]) == 0
    assert main(["train", "ppo", "--resume", str(run_dir), "--steps", "192", "--no-progress"]) == 0
    assert json.loads((run_dir / "summary.json").read_text())["steps"] == 192


def test_a2c_host_continuous_actions(tmp_path: Path) -> None:
    run_dir = tmp_path / "a2c"
    assert main(["train", "a2c", "--env", "Pendulum-v1", "--steps", "100", "--num-envs", "2", "--hidden-sizes", "16",
                 "--eval-episodes", "1", "--run-dir", str(run_dir), "--no-progress", "--no-tensorboard"]) == 0
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["steps"] == 100 and summary["gradient_steps"] == 10  # rollouts of 5 steps x 2 envs
    assert -2000 < summary["final_return_mean"] < 0


def test_compiled_dqn_updates_once_per_four_env_steps(tmp_path: Path) -> None:
    """DQN's utd_ratio 0.25 at 1 env: bursts of 4 env steps, then 1 gradient step (not one per step)."""
    run_dir = tmp_path / "dqn"
    assert main(["train", "dqn", "--env", "gymnax:CartPole-v1", "--steps", "400", "--learning-starts", "100",
                 "--batch-size", "16", "--hidden-sizes", "16", "--eval-episodes", "1", "--num-seeds", "2",
                 "--log-every", "100", "--run-dir", str(run_dir), "--no-progress", "--no-tensorboard"]) == 0
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["steps"] == 400 and summary["gradient_steps"] == 75  # (400 - 100) / 4
    assert all(8 <= r <= 500 for r in summary["final_return"])


def test_compiled_ppo_and_sac_on_gymnax(tmp_path: Path) -> None:
    run_dir = tmp_path / "cp"
    assert main(["train", "ppo", "--env", "gymnax:CartPole-v1", "--steps", "128", "--num-envs", "2", "--num-seeds",
                 "2", "--log-every", "64", "--run-dir", str(run_dir), *PPO_TINY]) == 0
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["mode"] == "compiled" and summary["steps"] == 128 and len(summary["final_return"]) == 2
    assert all(9 <= r <= 500 for r in summary["final_return"])
    assert main(["eval", str(run_dir), "--episodes", "2"]) == 0
    sac_dir = tmp_path / "sac"
    assert main(["train", "sac", "--env", "gymnax:Pendulum-v1", "--steps", "300", "--learning-starts", "100",
                 "--batch-size", "16", "--hidden-sizes", "16", "--eval-episodes", "1", "--num-seeds", "2",
                 "--log-every", "100", "--run-dir", str(sac_dir), "--no-progress", "--no-tensorboard"]) == 0
    summary = json.loads((sac_dir / "summary.json").read_text())
    assert summary["gradient_steps"] == 200 and -2000 < summary["final_return_mean"] < 0
    rows = (sac_dir / "metrics.csv").read_text().splitlines()
    assert "critic/loss" in rows[0] and len(rows) > 3


def test_compiled_run_times_compiling_apart_from_running(tmp_path: Path) -> None:
    """The compiled stepper compiles each chunk program ahead of time: summary.json's compile_seconds is compiling
    only and train_seconds the running, so a run that is one chunk has a steady rate too; equal chunks compile once."""
    run_dir = tmp_path / "one"
    assert main(["train", "ppo", "--env", "gymnax:CartPole-v1", "--steps", "128", "--num-envs", "2", "--num-seeds",
                 "2", "--log-every", "128", "--eval-every", "0", "--run-dir", str(run_dir), *PPO_TINY]) == 0
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["compile_seconds"] > 0 and summary["train_seconds"] > 0 and summary["steps_per_second"] > 0
    assert summary["compile_seconds"] + summary["train_seconds"] < summary["wall_seconds"]
    assert "compiling" in summary["compile_seconds_note"]

    from critix.agents import ppo
    from critix.train.compiled import Compiled
    from critix.train.config import RunConfig

    stepper = Compiled("ppo", ppo.Config(hidden_sizes=(16,), minibatch_size=16, num_epochs=1),
                       RunConfig(env="gymnax:CartPole-v1", steps=96, num_envs=2, num_seeds=2, rollout_length=16,
                                 log_every=32, progress=False, tensorboard=False))
    stepper.start(None)
    chunks = [stepper.advance() for _ in range(3)]
    assert [c.steps for c in chunks] == [32, 64, 96] and not any(c.compiled for c in chunks)
    assert chunks[0].compile_seconds > 0 and chunks[1].compile_seconds == chunks[2].compile_seconds == 0
    assert len(stepper.executables) == 1  # the carry a chunk returns has the types of the one it took


@pytest.mark.parametrize("argv,message", [
    (["train", "ppo", "--env", "gymnax:CartPole-v9"], "unknown gymnax environment"),
    (["train", "dqn", "--env", "gymnax:CartPole-v1", "--utd-ratio", "0.3333"], "no whole number of gradient steps"),
    (["train", "dqn", "--env", "gymnax:CartPole-v1", "--n-step", "3"], "run in host mode"),
    (["train", "sac", "--env", "gymnax:Pendulum-v1", "--normalize-reward"], "sac is off-policy"),
    (["train", "sac", "--env", "Pendulum-v1", "--normalize-reward"], "sac is off-policy"),
    (["train", "ppo", "--env", "CartPole-v1", "--rollout-length", "8", "--minibatch-size", "64"], "minibatch_size"),
    (["train", "ppo", "--env", "CartPole-v1", "--gae-lambda", "2"], "gae_lambda"),
])
def test_bad_on_policy_input_gives_one_clear_error(argv, message, capsys) -> None:
    assert main([*argv, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_host_ppo_compiles_its_update_once_ahead_of_the_first_update() -> None:
    """The first chunk lowers and compiles the update in a background thread (`OnPolicy._compile_update_ahead`) for
    the arguments the update is then called with: the update's calls reuse that program, none lowers it again."""
    from critix import agents
    from critix.train.config import RunConfig
    from critix.train.onpolicy import OnPolicy

    lowered: list[str] = []

    def listen(event: str, duration: float, **kwargs: object) -> None:
        if (event == "/jax/core/compile/jaxpr_to_mlir_module_duration"
                and kwargs.get("fun_name") == "jit(train_rollout)"):
            lowered.append(threading.current_thread().name)

    cfg = agents.get("ppo").module.Config(hidden_sizes=(16,), minibatch_size=16, num_epochs=1)
    stepper = OnPolicy("ppo", cfg, RunConfig(env="CartPole-v1", steps=96, num_envs=2, num_seeds=2, rollout_length=16,
                                             normalize_obs=True))
    jax.monitoring.register_event_duration_secs_listener(listen)
    try:
        stepper.start(None)
        first = stepper.advance()
        assert first.compiled and stepper.update_compile is None and stepper.update_lowered.is_set()
        while stepper.vector_steps * stepper.num_envs < stepper.total_steps:
            assert not stepper.advance().compiled
        assert lowered == ["critix-update-compile"]
    finally:
        jax.monitoring.unregister_event_duration_listener(listen)
        stepper.close()
