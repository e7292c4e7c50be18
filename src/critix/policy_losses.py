"""Policy, temperature, exploration and on-policy value losses as small pure functions of arrays.

PPO's two losses are elementwise (the caller takes the mean); the off-policy and offline losses return the batch
loss, the mean over B, exactly as the agents compute it (the agents' numerics are pinned bit for bit, and
-mean(x) is not always mean(-x) in the sign of a zero), and `cql_penalty` one value per critic. Shapes: B batch,
E critic ensemble, A actions (action dimensions for continuous actions, the number of actions for discrete
ones), N sampled actions per state. The stop-gradients the papers require are inside the functions, so a caller
differentiates the result directly; vmap a function over extra leading axes (seeds, a hyperparameter grid).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def ppo_clip_loss(ratio: jax.Array, advantage: jax.Array, clip_ratio: float) -> jax.Array:
    """Negated clipped surrogate of PPO (Schulman et al. 2017, Eq. 7):
    -min(r A, clip(r, 1 - eps, 1 + eps) A). clip_ratio = 0 gives the plain policy-gradient surrogate -r A, whose
    gradient at r = 1 is the A2C/REINFORCE gradient -A grad log pi (Mnih et al. 2016, #85, Alg. S3)."""
    if clip_ratio <= 0.0:
        return -ratio * advantage
    clipped = jnp.clip(ratio, 1.0 - clip_ratio, 1.0 + clip_ratio)
    return -jnp.minimum(ratio * advantage, clipped * advantage)


def value_regression_loss(
    value: jax.Array, old_value: jax.Array, target: jax.Array, clip_ratio: float
) -> jax.Array:
    """(V - G)^2, or with clip_ratio > 0 the pessimistic clipped form of OpenAI baselines' PPO2:
    max((V - G)^2, (V_old + clip(V - V_old, -c, c) - G)^2)."""
    loss = jnp.square(value - target)
    if clip_ratio <= 0.0:
        return loss
    clipped = old_value + jnp.clip(value - old_value, -clip_ratio, clip_ratio)
    return jnp.maximum(loss, jnp.square(clipped - target))


# --- maximum-entropy actor-critic (SAC) -------------------------------------------------------------------------


def sac_actor_loss(log_prob: jax.Array, q: jax.Array, alpha: jax.Array | float) -> jax.Array:
    """SAC's actor loss, mean_B [alpha log pi(a~|s) - min_i Q_i(s, a~)] (Haarnoja et al. 2018b, #53, Eq. 7 with
    the reparameterised a~ of Eq. 11 and the clipped double-Q minimum of Sec. 5): log_prob [B], q [E, B] -> [].

    Gradients flow into log_prob and q (both through the reparameterised action); the temperature alpha is a
    constant here (its own loss is `sac_temperature_loss`).
    """
    return jnp.mean(jax.lax.stop_gradient(alpha) * log_prob - jnp.min(q, axis=0))


def sac_temperature_loss(log_alpha: jax.Array, log_prob: jax.Array, target_entropy: float) -> jax.Array:
    """SAC's temperature loss, mean_B [-alpha (log pi(a~|s) + target_entropy)] with alpha = exp(log_alpha)
    (#53 Eq. 18, parameterised by log alpha as in the authors' code): log_alpha [], log_prob [B] -> [].

    Only log_alpha gets a gradient (log_prob is a sample of the policy, held fixed): alpha rises while the
    policy's entropy -log pi is below the target and falls while it is above.
    """
    return -jnp.mean(jnp.exp(log_alpha) * jax.lax.stop_gradient(log_prob + target_entropy))


def sac_discrete_actor_loss(log_pi: jax.Array, q: jax.Array, alpha: jax.Array | float) -> jax.Array:
    """Discrete SAC's actor loss, mean_B of the exact expectation sum_a pi(a|s) [alpha log pi(a|s) - min_i Q_i(s, a)]
    (Christodoulou 2019, #55, Eq. 12), computed as minus the soft state value sum_a pi (Q - alpha log pi) (#55 Eq. 3):
    log_pi [B, A] (log-probabilities of every action), q [E, B, A] -> [].

    Only log_pi gets a gradient: with the expectation taken exactly there is no reparameterisation, so Q and
    alpha are constants.
    """
    q_min = jax.lax.stop_gradient(jnp.min(q, axis=0))
    return -jnp.mean(jnp.sum(jnp.exp(log_pi) * (q_min - jax.lax.stop_gradient(alpha) * log_pi), axis=-1))


def sac_discrete_temperature_loss(log_alpha: jax.Array, log_pi: jax.Array, target_entropy: float) -> jax.Array:
    """Discrete SAC's temperature loss, mean_B sum_a pi(a|s) [-alpha (log pi(a|s) + target_entropy)]
    = mean_B [-alpha (target_entropy - H(pi(.|s)))] with alpha = exp(log_alpha) (#55 Eq. 11): log_alpha [],
    log_pi [B, A] -> []. Only log_alpha gets a gradient.
    """
    entropy = -jnp.sum(jnp.exp(log_pi) * log_pi, axis=-1)  # [B]
    return -jnp.mean(jnp.exp(log_alpha) * jax.lax.stop_gradient(target_entropy - entropy))


# --- deterministic actor-critic (DDPG, TD3, TD3+BC) -------------------------------------------------------------


def deterministic_actor_loss(q: jax.Array) -> jax.Array:
    """The deterministic policy-gradient actor loss, -mean_B Q(s, pi(s)) (DDPG, Lillicrap et al. 2016, #81, Eq. 6 /
    Alg. 1; TD3, Fujimoto et al. 2018, #98, Alg. 1 with Q = Q_1): q [B] -> []. Its gradient reaches the actor
    through the action pi(s) inside q."""
    return -jnp.mean(q)


def td3bc_actor_loss(q: jax.Array, action: jax.Array, behaviour_action: jax.Array, alpha: float) -> jax.Array:
    """TD3+BC's actor loss, -lambda mean_B Q(s, pi(s)) + mean_{B,A} (pi(s) - a)^2 with lambda = alpha / mean_B |Q|
    (Fujimoto & Gu 2021, "A Minimalist Approach to Offline RL", Eq. 3-4): q [B], action (pi(s)) [B, A],
    behaviour_action (the dataset's a) [B, A] -> scalar.

    lambda is a batch statistic and a constant (no gradient through mean |Q|), and, as in
    the authors' code, |Q| is taken at the policy's actions and the squared error is averaged over action
    dimensions (F.mse_loss).
    """
    lam = jax.lax.stop_gradient(alpha / jnp.mean(jnp.abs(q)))
    return -lam * jnp.mean(q) + jnp.mean(jnp.square(action - behaviour_action))


# --- offline RL: advantage-weighted regression (IQL, XQL, f-DVL) and the CQL penalty ----------------------------


def advantage_weights(advantage: jax.Array, beta: float, max_weight: float) -> jax.Array:
    """Advantage-weighted regression weights min(exp(beta A), max_weight) (IQL, Kostrikov et al. 2022, Eq. 7, with
    the clip of the reference code; also XQL's and f-DVL's policy extraction): advantage [B] -> [B].
    Use them as constants in `awr_loss`."""
    return jnp.minimum(jnp.exp(beta * advantage), max_weight)


def awr_loss(log_prob: jax.Array, weight: jax.Array) -> jax.Array:
    """Advantage-weighted regression's actor loss, the weighted negative log-likelihood of the dataset's actions
    -mean_B w log pi(a|s) (IQL Eq. 7): log_prob, weight [B] -> []. Only log_prob gets a gradient; the weights
    (`advantage_weights`) are constants."""
    return -jnp.mean(jax.lax.stop_gradient(weight) * log_prob)


def cql_penalty(q_data: jax.Array, rand_q: jax.Array, rand_log_density: jax.Array | float, pi_q: jax.Array,
                pi_log_prob: jax.Array, next_pi_q: jax.Array, next_pi_log_prob: jax.Array) -> jax.Array:
    """CQL(H)'s conservative penalty per critic, E_s[log sum_j exp(Q(s, a_j) - log mu(a_j|s))] - E_D[Q(s, a)]
    (Kumar et al. 2020, "Conservative Q-Learning for Offline RL", Eq. 4, with the importance-sampled log-sum-exp
    of Appendix F): the mean over B of the logsumexp over the 3N samples (N uniform, N from pi(.|s), N from
    pi(.|s')), each importance-weighted by its proposal density, minus Q at the dataset action.

    q_data [E, B]; rand_q, pi_q, next_pi_q [E, N, B]; rand_log_density (log of the uniform density, 0.5^A on
    [-1, 1]^A) a scalar; pi_log_prob, next_pi_log_prob [N, B] -> [E]. Gradients flow into the Q values; the
    sampled actions and their log-densities are the caller's constants.
    """
    stacked = jnp.concatenate([rand_q - rand_log_density, pi_q - pi_log_prob, next_pi_q - next_pi_log_prob], axis=1)
    return jnp.mean(jax.nn.logsumexp(stacked, axis=1) - q_data, axis=-1)


# --- exploration --------------------------------------------------------------------------------------------------


def linear_epsilon(
    gradient_steps: jax.Array | int,
    learning_starts: int,
    utd_ratio: float,
    exploration_steps: int,
    epsilon_start: float,
    epsilon_end: float,
) -> jax.Array:
    """Linearly annealed epsilon of epsilon-greedy exploration (Mnih et al. 2015, "Human-level control through deep
    RL", Methods: annealed linearly, then fixed; SB3's linear schedule): epsilon_start -> epsilon_end over
    `exploration_steps` env steps per seed, then constant. Env steps are counted from the gradient steps as
    learning_starts + gradient_steps / utd_ratio. gradient_steps [] (or any shape) -> the same shape, float32."""
    env_steps = learning_starts + jnp.asarray(gradient_steps).astype(jnp.float32) / utd_ratio
    fraction = jnp.clip(env_steps / max(exploration_steps, 1), 0.0, 1.0)
    return epsilon_start + fraction * (epsilon_end - epsilon_start)
