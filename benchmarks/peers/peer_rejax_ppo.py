"""Train rejax PPO on gymnax CartPole-v1, N seeds in one jit(vmap(train)) call, and print one JSON line.

Runs ONLY inside benchmarks/peers/.venv-rejax (see install_rejax.sh); critix never imports it. The seeds are
trained with rejax's own recipe, `jax.jit(jax.vmap(algo.train))(keys)` (keys from `--seed`), compiled ahead of
time and then run, each timed apart, as critix's compiled stepper times its chunks:
- compile_seconds: `.lower(keys)` (trace) + `.compile()`;
- run_seconds: one call of the compiled program, until `jax.block_until_ready` on the trained state;
- wall_seconds = compile_seconds + run_seconds: what the first call of the jitted function costs.
Evaluation is outside every timer.

Hyperparameters: the common set of benchmarks/ppo_speed.py `--rejax` (each flag here is passed explicitly there,
and the same values go to `critix train ppo` as CLI flags). rejax name = critix flag:

| rejax PPO field            | critix `train ppo` flag   | value (default here)            |
|----------------------------|---------------------------|---------------------------------|
| num_envs                   | --num-envs                | 4                               |
| num_steps                  | --rollout-length          | 2048                            |
| num_minibatches            | --minibatch-size          | num_envs * num_steps / 64 = 128 |
| num_epochs                 | --num-epochs              | 10                              |
| learning_rate (Adam)       | --learning-rate           | 3e-4                            |
| (optax.linear_schedule)    | --anneal-learning-rate    | linear to 0 (ppo_speed.py's default) |
| (optax.adam's eps, 1e-8)   | --adam-eps                | 1e-8                            |
| max_grad_norm = inf        | --max-grad-norm 0         | no gradient clipping (below)    |
| gamma                      | --gamma                   | 0.99                            |
| gae_lambda                 | --gae-lambda              | 0.95                            |
| clip_eps                   | --clip-ratio              | 0.2                             |
| clip_eps (value clipping)  | --value-clip-ratio        | 0.2 (rejax always clips V)      |
| ent_coef                   | --entropy-coef            | 0.0                             |
| vf_coef = 1.0              | --value-coef 0.5          | see below                       |
| (per-minibatch adv. norm.) | --normalize-advantage     | on                              |
| agent_kwargs               | --hidden-sizes, --activation | 64 64, tanh (separate actor and critic) |
| normalize_observations / _rewards | --no-normalize-obs / --no-normalize-reward | off       |
| total_timesteps = eval_freq | --steps                  | iterations x num_envs x num_steps |

Why these and not each library's default: the set is critix's PPO defaults (Stable-Baselines3's) as the PPO speed
benchmark runs them (4 envs), adjusted where rejax hard-codes something critix can be set to:
- gradient clipping: rejax applies `optax.clip(max_grad_norm)`, an element-wise clip, critix a global-norm clip;
  neither can do the other's, so both are off (rejax's default max_grad_norm is inf; critix `--max-grad-norm 0`);
- Adam epsilon: rejax uses optax.adam's default 1e-8, critix's default is SB3's 1e-5: critix gets 1e-8;
- value loss: rejax's is vf_coef * 0.5 * max((V - G)^2, (V_clipped - G)^2) with V clipped to clip_eps around the
  rollout's values; critix's is value_coef * max(...) with `--value-clip-ratio`: vf_coef 1.0 and value_coef 0.5
  give the same loss (SB3's coefficient 0.5 on the squared error);
- rejax keeps one Adam per network (actor, critic), critix one Adam over both; Adam is per-parameter and the
  networks share no parameters, so without global-norm clipping the two are the same update.
What differs and cannot be set: rejax treats a time-limit truncation (CartPole's 500 steps) as a termination
(gymnax's single `done`; no bootstrap), critix bootstraps from the final observation (one more value forward pass
over each rollout); rejax computes old values during the rollout, critix recomputes them (and the old
log-probabilities) at the start of the update; initialisers differ (rejax: flax's default lecun-normal on every
layer; critix: orthogonal 0.01 on the logits). The amount of work is otherwise the same: 123 iterations of
2048 x 4 env steps and 10 x 128 minibatch steps of 64 per seed for 1M steps.

rejax's in-training evaluation (128 stochastic episodes every `eval_freq` steps, inside `train`) is replaced by a
no-op `eval_callback`, so the timers hold training only, as critix's do; the final evaluation here is greedy
(argmax of the logits), `--eval-episodes` episodes per seed on gymnax CartPole-v1, like critix's.

    benchmarks/peers/.venv-rejax/bin/python benchmarks/peers/peer_rejax_ppo.py --num-seeds 2 --steps 50000
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from importlib.metadata import version

import gymnax
import jax
import jax.numpy as jnp
import numpy as np
import optax
from rejax import PPO


def learning_rate(args: argparse.Namespace, total_timesteps: int) -> float | optax.Schedule:
    """Constant, or with --anneal-learning-rate linear from --learning-rate to 0 over the run's gradient steps (what
    critix's --anneal-learning-rate does). rejax takes any optax learning rate: its two Adams (actor, critic) each
    count one step per minibatch, so both follow the schedule over iterations x epochs x minibatches steps."""
    if not args.anneal_learning_rate:
        return args.learning_rate
    batch = args.num_envs * args.rollout_length
    gradient_steps = (total_timesteps // batch) * args.num_epochs * (batch // args.minibatch_size)
    return optax.linear_schedule(args.learning_rate, 0.0, gradient_steps)


def make_algo(args: argparse.Namespace, total_timesteps: int) -> PPO:
    batch = args.num_envs * args.rollout_length
    if batch % args.minibatch_size:
        raise SystemExit(f"num_envs x rollout_length ({batch}) must be a multiple of --minibatch-size")
    algo = PPO.create(
        env="CartPole-v1",
        total_timesteps=total_timesteps,
        eval_freq=total_timesteps,  # one fori_loop over all iterations, one (no-op) evaluation at the end
        skip_initial_evaluation=True,
        num_envs=args.num_envs,
        num_steps=args.rollout_length,
        num_minibatches=batch // args.minibatch_size,
        num_epochs=args.num_epochs,
        learning_rate=learning_rate(args, total_timesteps),
        max_grad_norm=math.inf,
        gamma=args.gamma,
        gae_lambda=args.gae_lambda,
        clip_eps=args.clip_ratio,
        ent_coef=args.entropy_coef,
        vf_coef=args.vf_coef,
        normalize_observations=False,
        normalize_rewards=False,
        agent_kwargs={"activation": args.activation, "hidden_layer_sizes": tuple(args.hidden_sizes)},
    )
    return algo.replace(eval_callback=lambda algo, ts, rng: ())


def greedy_returns(algo: PPO, actor_params: dict, key: jax.Array, episodes: int) -> np.ndarray:
    """Deterministic returns [S, episodes] of the S seeds' policies (argmax of the logits) on gymnax CartPole-v1."""
    env, env_params = gymnax.make("CartPole-v1")
    max_steps = int(env_params.max_steps_in_episode)

    def one_seed(params: dict, key: jax.Array) -> jax.Array:
        reset_key, key = jax.random.split(key)
        obs, state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(reset_key, episodes), env_params)

        def step(carry: tuple, _: None) -> tuple[tuple, None]:
            obs, state, returns, alive, key = carry
            logits = algo.actor.apply(params, obs, method=lambda m, o: m.action_logits(m.features(o)))
            action = jnp.argmax(logits, axis=-1)
            key, step_key = jax.random.split(key)
            obs, state, reward, done, _ = jax.vmap(env.step, in_axes=(0, 0, 0, None))(
                jax.random.split(step_key, episodes), state, action, env_params)
            returns = returns + jnp.where(alive, reward, 0.0)
            alive = jnp.logical_and(alive, jnp.logical_not(done))
            return (obs, state, returns, alive, key), None

        init = (obs, state, jnp.zeros(episodes), jnp.ones(episodes, bool), key)
        (_, _, returns, _, _), _ = jax.lax.scan(step, init, None, length=max_steps)
        return returns

    seeds = jax.tree.leaves(actor_params)[0].shape[0]
    return np.asarray(jax.jit(jax.vmap(one_seed))(actor_params, jax.random.split(key, seeds)))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--num-seeds", type=int, default=16)
    parser.add_argument("--steps", type=int, default=1_000_000,
                        help="env steps per seed; rounded up to whole iterations of num_envs x rollout_length")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num-envs", type=int, default=4)
    parser.add_argument("--rollout-length", type=int, default=2048)
    parser.add_argument("--minibatch-size", type=int, default=64)
    parser.add_argument("--num-epochs", type=int, default=10)
    parser.add_argument("--learning-rate", type=float, default=3e-4)
    parser.add_argument("--anneal-learning-rate", action="store_true",
                        help="decay the learning rate linearly to 0 over the run's gradient steps")
    parser.add_argument("--gamma", type=float, default=0.99)
    parser.add_argument("--gae-lambda", type=float, default=0.95)
    parser.add_argument("--clip-ratio", type=float, default=0.2)
    parser.add_argument("--entropy-coef", type=float, default=0.0)
    parser.add_argument("--vf-coef", type=float, default=1.0, help="rejax's vf_coef (its loss has a 0.5 inside)")
    parser.add_argument("--hidden-sizes", type=int, nargs="+", default=[64, 64])
    parser.add_argument("--activation", default="tanh")
    parser.add_argument("--eval-episodes", type=int, default=10)
    args = parser.parse_args()

    per_iteration = args.num_envs * args.rollout_length
    total = math.ceil(args.steps / per_iteration) * per_iteration  # critix's compiled loop rounds up the same way
    algo = make_algo(args, total)
    train = jax.jit(jax.vmap(algo.train))
    keys = jax.random.split(jax.random.PRNGKey(args.seed), args.num_seeds)
    start = time.perf_counter()
    lowered = train.lower(keys)
    lowered_at = time.perf_counter()
    executable = lowered.compile()
    compiled_at = time.perf_counter()
    ts, _ = executable(keys)
    jax.block_until_ready(ts)
    run_seconds = time.perf_counter() - compiled_at
    compile_seconds = compiled_at - start
    returns = greedy_returns(algo, ts.actor_ts.params, jax.random.PRNGKey(10_000 + args.seed), args.eval_episodes)
    steps_done = np.asarray(ts.global_step)
    if not np.all(steps_done == total):
        raise SystemExit(f"rejax ran {steps_done} env steps per seed, expected {total}")
    per_seed = returns.mean(axis=1)
    print(json.dumps({
        "lib": "rejax", "lib_version": version("rejax"), "env": "gymnax:CartPole-v1", "num_seeds": args.num_seeds,
        "steps": total, "wall_seconds": compile_seconds + run_seconds, "run_seconds": run_seconds,
        "compile_seconds": compile_seconds, "trace_lower_seconds": lowered_at - start,
        "wall_note": "jax.jit(jax.vmap(algo.train)) compiled ahead of time: compile_seconds = lower (trace) + "
                     "compile, run_seconds = one call of the compiled program, wall_seconds = their sum",
        "steps_per_second": total / (compile_seconds + run_seconds), "steps_per_second_steady": total / run_seconds,
        "final_return": [float(x) for x in per_seed], "final_return_mean": float(per_seed.mean()),
        "final_return_min": float(per_seed.min()),
        "hyperparameters": {k: v for k, v in vars(args).items() if k not in ("num_seeds", "steps", "seed")},
        "jax": jax.__version__, "jaxlib": version("jaxlib"), "gymnax": version("gymnax"), "flax": version("flax"),
        "optax": version("optax"), "python": platform.python_version(), "device": str(jax.devices()[0]),
    }))


if __name__ == "__main__":
    main()
