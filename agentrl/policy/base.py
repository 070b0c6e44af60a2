"""The policy contract: token ids in, token ids + behaviour logprobs out.

``Policy.generate(prompt_token_ids, sampling) -> Completion`` is the only call the rollout
engine makes. The completion's ``token_ids`` are exactly what the sampler drew (including the
stop token that ended the turn, if any) and ``logprobs[i]`` is the log-probability of
``token_ids[i]`` under the distribution it was sampled from *before* top-k/top-p truncation:

    logprobs[i] = log_softmax(logits_i / T)[token_ids[i]]      (T = temperature; T = 0 → T = 1)

which is what a trainer recomputes with a forward pass over the same ids (the behaviour policy
π_behav of the PPO/TIS ratio). The trainer bumps the policy version on every weight update.
A turn may span a weight update (the in-process HF sampler yields mid-decode, see
:mod:`agentrl.policy.hf`): ``token_versions[i]`` is then the version of the weights that sampled
``token_ids[i]`` (and ``logprobs[i]`` is under those weights), and ``policy_version`` is the
oldest of them — the conservative staleness of the whole turn. A turn sampled by one version
has ``token_versions = None`` and that version as ``policy_version``.

Errors a backend raises are typed, so the rollout engine can tell infrastructure failures
(retry, mask out of learning) from a prompt that is simply too long (a clean truncation).
"""

from __future__ import annotations

from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, model_validator

from agentrl.errors import InfraError

FinishReason = Literal["stop", "length"]


class SamplingParams(BaseModel):
    """How to sample one completion; every backend maps these onto its own options.

    ``temperature == 0`` means greedy decoding. ``top_k == 0`` and ``top_p == 1`` disable those
    filters. ``stop`` strings end the turn once the decoded completion contains one (the tokens
    are kept as sampled; the stop string is not cut out of the ids). ``stop_token_ids`` end the
    turn on that token (it is kept as the last sampled token). ``seed`` makes one request
    reproducible where the backend supports it.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_tokens: int = Field(default=256, ge=1)
    temperature: float = Field(default=1.0, ge=0.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    top_k: int = Field(default=0, ge=0)
    stop: tuple[str, ...] = ()
    stop_token_ids: tuple[int, ...] = ()
    seed: int | None = None

    def with_stop_token_ids(self, ids: tuple[int, ...] | list[int]) -> SamplingParams:
        """A copy that also stops on ``ids`` (e.g. the chat template's end-of-turn token)."""
        merged = tuple(dict.fromkeys((*self.stop_token_ids, *ids)))
        return self.model_copy(update={"stop_token_ids": merged})


class Completion(BaseModel):
    """What the sampler returned for one prompt.

    ``text`` is the backend's decoding when it has one (chat-only servers return only text:
    ``token_ids`` is then empty and the completion cannot be trained on). ``policy_version`` is
    the oldest version that sampled a token of it; ``token_versions`` the version of each token
    when more than one did (None: all were ``policy_version``; see the module docstring).
    """

    model_config = ConfigDict(extra="forbid")

    token_ids: list[int]
    logprobs: list[float]
    finish_reason: FinishReason
    policy_version: int = 0
    token_versions: list[int] | None = None
    text: str | None = None

    @model_validator(mode="after")
    def _aligned(self) -> Completion:
        if len(self.logprobs) != len(self.token_ids):
            raise ValueError(f"{len(self.logprobs)} logprobs for {len(self.token_ids)} tokens")
        check_token_versions(self.token_versions, len(self.token_ids), self.policy_version)
        return self


def check_token_versions(versions: list[int] | None, tokens: int, oldest: int | None) -> None:
    """Per-token versions, when given, are one per token and their oldest is ``oldest``."""
    if versions is None:
        return
    if len(versions) != tokens:
        raise ValueError(f"{len(versions)} token versions for {tokens} tokens")
    if oldest != min(versions, default=oldest):
        raise ValueError(f"policy_version {oldest} is not the oldest token version {min(versions)}")


@runtime_checkable
class Policy(Protocol):
    """Anything that samples completions from token ids (see the module docstring)."""

    @property
    def policy_version(self) -> int: ...

    @property
    def max_context_tokens(self) -> int | None:
        """Prompt + completion limit of the model (None: unknown / unlimited)."""
        ...

    async def generate(self, prompt_token_ids: list[int], sampling: SamplingParams) -> Completion: ...


class VersionedPolicy:
    """The two :class:`Policy` properties every token backend serves the same way, held once:
    ``policy_version`` (from ``self._version``, set by the backend on each weight update) and
    ``max_context_tokens`` (from ``self._max_context``; None: unknown / unlimited)."""

    _version: int = 0
    _max_context: int | None = None

    @property
    def policy_version(self) -> int:
        return self._version

    @property
    def max_context_tokens(self) -> int | None:
        return self._max_context


@runtime_checkable
class TrainablePolicy(Policy, Protocol):
    """A sampler the trainer updates: what :class:`agentrl.train.trainer.Trainer` needs of it.

    ``weights_lock`` is held around every in-place change of the weights (the in-process HF
    sampler's decode steps run under it, and a decode batch yields to a holder at its next
    token; a sampler with its own copy gives a no-op lock). ``sync_weights(weights, version)``
    makes the sampler serve ``weights`` — a module or its state dict — as ``version`` (default:
    the next one) and returns it; the sampler does its own locking and loading: a version bump
    when ``weights`` is the module it samples from, a load into its copy otherwise (the HF
    sampler's own weights, vLLM's engine). ``pause()`` stops sampling (returns once no decode
    step runs: the HF sampler at the next token, vLLM once the turns in flight are done; pauses
    nest) and ``resume()`` undoes one pause. ``reseed(seed)`` reseeds sampling for requests
    without a seed of their own. ``aclose()`` releases the sampler.
    """

    weights_lock: Any

    async def sync_weights(self, weights: Any, version: int | None = None) -> int: ...

    async def pause(self) -> None: ...

    def resume(self) -> None: ...

    def reseed(self, seed: int) -> None: ...

    async def aclose(self) -> None: ...


class PolicyError(Exception):
    """Base of every error a policy backend raises."""


class PolicyBackendError(PolicyError, InfraError):
    """The backend failed (server down, connection reset, 5xx, engine crash): an infrastructure
    failure. The rollout engine marks the episode ``infra_error`` and retries it."""


class ContextOverflowError(PolicyError):
    """The prompt leaves no room to generate: the episode ends as a clean ``context_overflow``
    truncation, not a crash and not an infrastructure failure."""


class TokenIdsUnavailableError(PolicyError):
    """The backend returned text but no token ids; token-level training needs the ids."""


def state_dict_of(weights: Any) -> dict[str, Any]:
    """The state dict of ``weights``: a module's ``state_dict()``, or ``weights`` itself (a
    mapping of names to tensors)."""
    return weights.state_dict() if hasattr(weights, "state_dict") else dict(weights)


def generation_budget(prompt_len: int, sampling: SamplingParams, max_context_tokens: int | None) -> int:
    """Tokens the completion may use: ``min(max_tokens, context - prompt)``.

    Raises :class:`ContextOverflowError` when the prompt already fills the context.
    """
    if max_context_tokens is None:
        return sampling.max_tokens
    room = max_context_tokens - prompt_len
    if room < 1:
        raise ContextOverflowError(f"prompt has {prompt_len} tokens; the context holds {max_context_tokens}")
    return min(sampling.max_tokens, room)
