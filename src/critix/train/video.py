"""Videos of evaluation episodes, for every mode: `--video-every N` during training, `critix eval --video` after.

A `Recorder` plays deterministic episodes of one member's agent (seed 0's, or the first seed of each grid point)
in a Gymnasium env made with render_mode="rgb_array" and writes one file per episode into RUN_DIR/videos/. It needs
one thing from a stepper, `greedy_actions(obs)`, so host, compiled and offline runs record the same way.

- Episode k of member m starts from `env.reset(seed=seed + m * eval_episodes + k)`, the reset seed that member's
  k-th evaluation env gets (`critix.train.evaluate`): a video taken at an evaluation shows that evaluation's own
  episode (host and offline runs; compiled runs evaluate inside JAX, so theirs is a separate episode).
- Compiled runs (`gymnax:` ids) play in the Gymnasium twin of their JAX env (same observations, actions and
  dynamics: the classic control envs); other JAX envs have none and are refused with the reason.
- A file holds the episode's first observation and one frame per step: episode length + 1 frames. MP4 (H.264)
  through the ffmpeg binary that imageio-ffmpeg ships; where it cannot run, GIF through Pillow (Pillow merges
  consecutive identical frames, adding up their durations).
- MuJoCo renders off-screen through OpenGL: with no display and MUJOCO_GL unset, EGL is chosen; a backend that
  fails stops the run before training with what to install or set.
- Training videos are named by step (`videos/step_000000010000.mp4`) and truncated on resume like metrics.csv, so
  a resumed run neither duplicates nor loses one; `critix eval --video` writes `videos/eval_step_....mp4`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import warnings
from pathlib import Path
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np

from critix.envs.gym import check_env_id, flatten_observations, to_env_action
from critix.envs.jax_envs import GYMNAX_PREFIX, is_jax_env
from critix.files import atomic_path, atomic_write_json
from critix.train.evaluate import MAX_EVAL_STEPS
from critix.types import CritixError

VIDEO_DIR = "videos"
SUFFIXES = (".mp4", ".gif")
TWINS = {f"{GYMNAX_PREFIX}{name}": name for name in
         ("CartPole-v1", "Acrobot-v1", "Pendulum-v1", "MountainCar-v0", "MountainCarContinuous-v0")}
"""gymnax env ids -> the Gymnasium env with the same observations, actions and dynamics, which renders them."""
MUJOCO_HELP = ("MuJoCo renders off-screen through EGL (a GPU driver's or Mesa's: apt-get install libegl1 "
               "libgl1-mesa-dri; then MUJOCO_GL=egl) or OSMesa (software: apt-get install libosmesa6; then "
               "MUJOCO_GL=osmesa PYOPENGL_PLATFORM=osmesa); with a display, MUJOCO_GL=glfw")
TRAINING_NAME = re.compile(r"step_(\d+)(?:_episode_\d+)?$")


@dataclasses.dataclass(frozen=True)
class Video:
    """One recorded episode."""

    path: Path
    member: int
    episode: int
    length: int
    """Env steps of the episode; the file holds length + 1 frames."""
    episode_return: float


def render_env_id(env_id: str) -> str:
    """The Gymnasium env that renders `env_id`'s episodes: itself, or a JAX env's Gymnasium twin."""
    if not is_jax_env(env_id):
        return env_id
    if env_id in TWINS:
        return TWINS[env_id]
    raise CritixError(f"videos of compiled runs play the agent in the Gymnasium twin of its JAX env; {env_id} has "
                      f"none (twins: {', '.join(TWINS)}). Train on the Gymnasium id to record videos, or drop "
                      "--video-every / --video")


def is_mujoco(env_id: str) -> bool:
    try:
        entry = getattr(gym.spec(env_id), "entry_point", "")
    except gym.error.Error:  # not registered (yet): not one of Gymnasium's MuJoCo envs
        return False
    return isinstance(entry, str) and entry.startswith("gymnasium.envs.mujoco")


def prepare_backend(env_id: str | None) -> None:
    """Call before the run's envs are made: for a MuJoCo env, choose EGL where there is no display and MUJOCO_GL
    is unset, and check that MuJoCo loads with the chosen backend (it loads it on import)."""
    if env_id is None or is_jax_env(env_id) or not is_mujoco(env_id):
        return
    if "MUJOCO_GL" not in os.environ and not os.environ.get("DISPLAY"):
        os.environ["MUJOCO_GL"] = "egl"  # no display: glfw cannot open a context; EGL renders off-screen
        os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
    try:
        import gymnasium.envs.mujoco  # noqa: F401  (imports mujoco and its OpenGL backend)
    except Exception as err:  # backends fail with many types (ImportError, AttributeError, FatalError ...)
        raise CritixError(mujoco_message(env_id, err)) from None


def mujoco_message(env_id: str, err: BaseException) -> str:
    return (f"cannot render {env_id} off-screen for videos: MuJoCo's OpenGL backend MUJOCO_GL="
            f"{os.environ.get('MUJOCO_GL', '(unset)')} failed ({type(err).__name__}: {err}). {MUJOCO_HELP}. Or "
            "record no videos (drop --video-every / --video).")


def make_render_env(env_id: str, env_kwargs: Mapping[str, Any] | None = None) -> gym.Env:
    """`env_id` made as the evaluation envs are (same wrappers), rendering rgb_array frames; checked by rendering
    one frame, so a machine that cannot render fails here, with the fix, before any training. `env_kwargs` go to
    gymnasium.make as in training; Dict and Tuple observations are flattened as in training."""
    from critix.envs import pixels

    wrappers, make_kwargs = pixels.prepare(env_id)
    check_env_id(env_id)
    prepare_backend(env_id)
    mujoco = is_mujoco(env_id)
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # pygame (classic control) draws off-screen, no window
    try:
        env = gym.make(env_id, render_mode="rgb_array", **{**make_kwargs, **(env_kwargs or {})})
    except gym.error.DependencyNotInstalled as err:
        raise CritixError(f"videos of {env_id} need its rendering dependency: {err}") from None
    except TypeError as err:  # an env class without a render_mode argument
        raise CritixError(f"{env_id} cannot render rgb_array frames for videos ({err})") from None
    for wrap in wrappers:
        env = wrap(env)
    env = flatten_observations(env, env_id)
    try:
        env.reset(seed=0)
        frame = env.render()
    except gym.error.DependencyNotInstalled as err:
        env.close()
        raise CritixError(f"videos of {env_id} need its rendering dependency: {err}") from None
    except Exception as err:  # OpenGL backends fail with many types (FatalError, AttributeError, ImportError ...)
        env.close()
        if mujoco:
            raise CritixError(mujoco_message(env_id, err)) from None
        raise CritixError(f"cannot render {env_id} for videos ({type(err).__name__}: {err})") from None
    if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[-1] not in (3, 4):
        env.close()
        raise CritixError(f"{env_id} rendered {type(frame).__name__} {getattr(frame, 'shape', '')} for "
                          "render_mode='rgb_array', not an image [H, W, 3]: it cannot be recorded")
    return env


def check_spaces_match(env_id: str, render_id: str, env: gym.Env, obs_shape: tuple[int, ...] | None,
                       action_space: gym.Space | None) -> None:
    """The video env (a twin) must take the agent's observations and actions as they are."""
    if obs_shape is not None and tuple(env.observation_space.shape or ()) != tuple(obs_shape):
        raise CritixError(f"the video env {render_id} has observations {env.observation_space.shape}, but {env_id} "
                          f"has {obs_shape}: it cannot play this agent")
    if action_space is None:
        return
    same = type(action_space) is type(env.action_space)
    if same and isinstance(action_space, gym.spaces.Discrete):
        same = action_space.n == env.action_space.n
    elif same and isinstance(action_space, gym.spaces.Box):
        same = action_space.shape == env.action_space.shape
    if not same:
        raise CritixError(f"the video env {render_id} has actions {env.action_space}, but {env_id} has "
                          f"{action_space}: it cannot play this agent")


def ffmpeg_available() -> bool:
    try:
        import imageio_ffmpeg

        imageio_ffmpeg.get_ffmpeg_exe()
        return True
    except (ImportError, RuntimeError):
        return False


class _Writer:
    """Frames of one episode into MP4 (streamed to ffmpeg) or GIF (kept, then written by Pillow)."""

    def __init__(self, tmp: Path, fps: float) -> None:
        self.tmp, self.fps, self.frames = tmp, fps, 0
        self.gif: list[Any] | None = None
        if tmp.suffix == ".gif":
            self.gif = []
            return
        import imageio.v2 as imageio

        # Start ffmpeg without a pre-exec hook: a hook needs a real fork() of this multithreaded (JAX) process.
        os.environ.setdefault("IMAGEIO_FFMPEG_NO_PREVENT_SIGINT", "1")
        self.mp4 = imageio.get_writer(str(tmp), format="FFMPEG", mode="I", fps=fps, codec="libx264",
                                      pixelformat="yuv420p", macro_block_size=1, ffmpeg_log_level="error")

    def add(self, frame: np.ndarray) -> None:
        frame = np.asarray(frame)[..., :3].astype(np.uint8, copy=False)
        self.frames += 1
        if self.gif is not None:
            from PIL import Image

            self.gif.append(Image.fromarray(frame))
            return
        height, width = frame.shape[:2]  # H.264 in yuv420p needs even sides: pad by one edge row/column
        if height % 2 or width % 2:
            frame = np.pad(frame, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")
        self.mp4.append_data(frame)

    def close(self) -> None:
        if self.gif is None:
            self.mp4.close()
        elif self.gif:
            duration = max(10, round(1000 / self.fps / 10) * 10)  # GIF delays are whole centiseconds
            self.gif[0].save(self.tmp, save_all=True, append_images=self.gif[1:], duration=duration, loop=0)


class Recorder:
    """Records episodes of a stepper's members in a rendering copy of the run's env (see the module docstring)."""

    def __init__(self, env_id: str, episodes: int = 1, obs_shape: tuple[int, ...] | None = None,
                 action_space: gym.Space | None = None, env_kwargs: Mapping[str, Any] | None = None) -> None:
        self.env_id, self.episodes = env_id, episodes
        self.render_id = render_env_id(env_id)
        self.env = make_render_env(self.render_id, None if is_jax_env(env_id) else env_kwargs)
        try:
            check_spaces_match(env_id, self.render_id, self.env, obs_shape, action_space)
        except CritixError:
            self.env.close()
            raise
        self.fps = float(self.env.metadata.get("render_fps") or 30)
        self.suffix = ".mp4" if ffmpeg_available() else ".gif"
        if self.suffix == ".gif":
            warnings.warn("ffmpeg (the imageio-ffmpeg package) is not available: videos are written as GIF; "
                          "pip install imageio-ffmpeg for MP4", stacklevel=2)

    @classmethod
    def for_stepper(cls, stepper: Any, episodes: int) -> Recorder:
        """A recorder of `stepper`'s env (a compiled run's: its JAX env's twin), checked against its spaces."""
        env_kwargs = getattr(stepper, "env_kwargs", None)  # the host and offline steppers' env kwargs
        spaces = stepper if hasattr(stepper, "obs_space") else getattr(getattr(stepper, "member", None), "env", None)
        if spaces is None:
            return cls(stepper.env_id, episodes, env_kwargs=env_kwargs)
        obs_space = getattr(spaces, "obs_space", None) or spaces.observation_space
        act_space = getattr(spaces, "act_space", None) or spaces.action_space
        return cls(stepper.env_id, episodes, tuple(obs_space.shape), act_space, env_kwargs)

    def record(self, stepper: Any, members: list[int], folders: list[Path], name: str, seed: int,
               eval_episodes: int) -> list[list[Video]]:
        """For each member m (with its folder): `self.episodes` episodes into folder/videos/<name>[_episode_k].
        Returns the videos per member."""
        out = []
        for member, folder in zip(members, folders):
            videos = []
            for k in range(self.episodes):
                stem = name if k == 0 else f"{name}_episode_{k}"
                path = Path(folder) / VIDEO_DIR / f"{stem}{self.suffix}"
                length, ret = self._episode(stepper, member, seed + member * eval_episodes + k, path)
                videos.append(Video(path, member, k, length, ret))
            out.append(videos)
        return out

    def _episode(self, stepper: Any, member: int, seed: int, path: Path) -> tuple[int, float]:
        env, num = self.env, stepper.num_members
        obs, _ = env.reset(seed=seed)
        total = 0.0
        with atomic_path(path) as tmp:
            writer = _Writer(tmp, self.fps)
            try:
                writer.add(env.render())
                for length in range(1, MAX_EVAL_STEPS + 1):
                    batch = np.broadcast_to(np.asarray(obs)[None, None], (num, 1, *np.shape(obs)))
                    action = to_env_action(stepper.greedy_actions(batch)[member], env.action_space, 1)[0]
                    if isinstance(env.action_space, gym.spaces.Box):
                        action = action.reshape(env.action_space.shape)
                    obs, reward, terminated, truncated, _ = env.step(action)
                    total += float(reward)
                    writer.add(env.render())
                    if terminated or truncated:
                        return length, total
            finally:
                writer.close()
        raise CritixError(f"the video episode of {self.env_id} did not end in {MAX_EVAL_STEPS} steps; give the env "
                          "a TimeLimit")

    def close(self) -> None:
        self.env.close()


def training_name(step: int) -> str:
    return f"step_{step:012d}"


def listed(run_dir: Path) -> list[str]:
    """The video files of a run folder, relative to it (summary.json's "videos")."""
    folder = Path(run_dir) / VIDEO_DIR
    if not folder.is_dir():
        return []
    return sorted(p.relative_to(run_dir).as_posix() for p in folder.iterdir()
                  if p.suffix in SUFFIXES and not p.name.startswith("."))


def truncate_after(run_dir: Path, step: int) -> None:
    """Remove training videos of steps after `step` (and temporary files a kill left): on resume they are recorded
    again, as metrics.csv rows are logged again."""
    folder = Path(run_dir) / VIDEO_DIR
    if not folder.is_dir():
        return
    for path in folder.iterdir():
        match = TRAINING_NAME.match(path.stem)
        if path.name.startswith(".") or (match and int(match.group(1)) > step):
            path.unlink(missing_ok=True)


def record_checkpoint(stepper: Any, run_dir: Path, checkpoint_name: str, seed: int, eval_episodes: int,
                      episodes: int) -> list[str]:
    """`critix eval --video`: videos of the first member of each output folder (the run folder; a compiled grid's
    points) with the evaluation's reset seeds, into videos/eval_<checkpoint>; each folder's summary.json, if it has
    one, lists them. Returns the paths relative to `run_dir`."""
    run_dir = Path(run_dir)
    outputs = stepper.outputs(run_dir) if hasattr(stepper, "outputs") else None
    folders = [out.run_dir for out in outputs] if outputs else [run_dir]
    members = [out.members.start for out in outputs] if outputs else [0]
    recorder = Recorder.for_stepper(stepper, episodes)
    try:
        videos = recorder.record(stepper, members, folders, f"eval_{checkpoint_name}", seed, eval_episodes)
    finally:
        recorder.close()
    for folder in folders:
        summary_path = Path(folder) / "summary.json"
        try:
            summary = json.loads(summary_path.read_text())
        except (OSError, ValueError):
            continue  # no finished run yet: its summary.json will list the folder's videos
        if isinstance(summary, dict):
            atomic_write_json(summary_path, {**summary, "videos": listed(folder)})
    return [clip.path.relative_to(run_dir).as_posix() for recorded in videos for clip in recorded]
