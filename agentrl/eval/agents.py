"""Agents that `agentrl eval` can evaluate, each turned into an episode function.

==============  ==============================================================================
``oracle``      the env's scripted solver (an upper bound; proves the env's reward is reachable)
``random``      the env's random actions (a floor)
``hf``          a local transformers model directory (``--model PATH``), in-process, batched
``vllm``        a model directory served by vLLM's async engine in-process (optional extra)
``openai``      an OpenAI-compatible server (``--base-url``, ``--model NAME``) at token level:
                the prompt goes as token ids rendered with ``--tokenizer PATH`` (default: the
                model name as a local path), exact like training
``openai-chat`` the same server through ``/v1/chat/completions`` (messages in, text out): for
                API models whose tokenizer you do not have; no token ids are recorded
==============  ==============================================================================

Model paths, servers and served model names are checked before the run starts, so a typo fails
in a second with a message that says what is wrong, not after the first episode.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp

import agentrl
from agentrl.eval.runner import AgentSpec, EpisodeFn, EvalSettings, agent_seed, scripted_episode_fn
from agentrl.policy.base import SamplingParams
from agentrl.policy.models import ModelLoadError, NoTokenizer, check_model_dir, load_tokenizer
from agentrl.types import Trajectory


class AgentLoadError(ValueError):
    """The agent could not be set up (bad model path, unreachable server, missing extra)."""


def _check_model_dir(path: str | None, what: str) -> Path:
    if not path:
        raise AgentLoadError(f"--model is required: the {what} directory (save_pretrained format)")
    try:
        return check_model_dir(path)
    except ModelLoadError as exc:
        raise AgentLoadError(str(exc)) from None


def _load_tokenizer(path: str | None):
    """``load_tokenizer`` for eval's flags: only a local folder (``--agent openai``'s ``--model`` is
    the served name, not a folder: say to pass ``--tokenizer`` rather than try the Hub with it),
    the ``--tokenizer`` hint on a folder without tokenizer files, and eval's error type."""
    if not path or not Path(path).expanduser().is_dir():
        raise AgentLoadError(f"tokenizer path {path!r} is not a directory (pass --tokenizer PATH)")
    try:
        return load_tokenizer(path)
    except NoTokenizer as exc:
        raise AgentLoadError(f"{exc}: pass --tokenizer PATH") from None
    except ModelLoadError as exc:
        raise AgentLoadError(str(exc)) from None


async def check_server(base_url: str, api_key: str | None = None, timeout_s: float = 10.0) -> list[str]:
    """The model names an OpenAI-compatible server offers; AgentLoadError when it cannot be reached."""
    url = base_url.rstrip("/")
    url = url if url.endswith("/v1") else url + "/v1"
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as session,
            session.get(f"{url}/models", headers=headers) as response,
        ):
            if response.status != 200:
                raise AgentLoadError(f"{url}/models answered HTTP {response.status}: {await response.text()}")
            return [m["id"] for m in (await response.json()).get("data", [])]
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        raise AgentLoadError(f"cannot reach the server at {base_url}: {type(exc).__name__}: {exc}") from None


class EpisodeRunner:
    """An episode function and the resources behind it (closed with :meth:`aclose`)."""

    def __init__(self, play: EpisodeFn, close=None):
        self.play = play
        self._close = close

    async def aclose(self) -> None:
        if self._close is not None:
            await self._close()


def build_runner(settings: EvalSettings, api_key: str | None = None, *, strict: bool = True) -> EpisodeRunner:
    """Set up ``settings.agent``; raises AgentLoadError with a readable reason.

    Every agent plays through the one turn loop (:func:`agentrl.rollout.episode.run_actor`);
    ``strict`` (default): an exception that is not an infrastructure error fails the run.
    """
    agent: AgentSpec = settings.agent
    if agent.kind in ("oracle", "random"):
        return EpisodeRunner(scripted_episode_fn(settings))

    from agentrl.policy.factory import PolicyLoadError, load_policy
    from agentrl.policy.render import ChatRenderer
    from agentrl.rollout.episode import ChatActor, TokenActor, run_actor

    sampling = SamplingParams(temperature=agent.temperature, max_tokens=agent.max_tokens)

    def env_factory():
        return agentrl.make(settings.env_id, **settings.env_options)

    if agent.kind in ("openai", "openai-chat"):
        if not (agent.base_url and agent.model):
            raise AgentLoadError(f"{agent.kind} needs --base-url and --model (the served model name)")
        tokenizer = _load_tokenizer(agent.tokenizer or agent.model) if agent.kind == "openai" else None
        served = asyncio.run(check_server(agent.base_url, api_key))
        if served and agent.model not in served:
            raise AgentLoadError(f"the server at {agent.base_url} serves {', '.join(served)}, not --model {agent.model!r}")
        model = agent.model
    else:
        model = str(_check_model_dir(agent.model, "transformers model" if agent.kind == "hf" else "model"))
        tokenizer = _load_tokenizer(agent.tokenizer or model)
    try:
        policy = load_policy(agent.kind, model, tokenizer=tokenizer, base_url=agent.base_url, api_key=api_key)
    except PolicyLoadError as exc:
        raise AgentLoadError(str(exc)) from None
    except (OSError, ValueError) as exc:  # transformers could not read the folder: a bad config or no weights
        raise AgentLoadError(f"cannot load the model from {model!r}: {str(exc).splitlines()[0]}") from None
    actor = ChatActor(policy, sampling) if agent.kind == "openai-chat" else TokenActor(policy, ChatRenderer(tokenizer), sampling)

    async def play(task_id: str, seed: int) -> Trajectory:
        return await run_actor(
            env_factory, actor, seed=seed, task_id=task_id, sampling_seed=agent_seed(seed, task_id),
            timeout_s=agent.episode_timeout_s, strict=strict,
        )

    return EpisodeRunner(play, policy.aclose)
