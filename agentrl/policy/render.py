"""Chat rendering with exact token accounting (token-in / token-out).

A :class:`Conversation` keeps the context as token ids, never as re-tokenized text:

* the first prompt ``P`` is the chat template's render of ``[system, user(obs_0)]`` with the
  assistant header (loss mask 0);
* each completion ``C_t`` is appended **verbatim** as sampled (loss mask 1) — decoding is only
  used to read the action text;
* each observation is appended as the template's *delta* ``D_t`` (loss mask 0): the rest of the
  assistant turn the sampler did not produce (e.g. the ``\\n`` after ``<|im_end|>``, or the
  whole end marker when the turn was cut by length or a stop string), the observation turn and
  the next assistant header.

So the context of turn t is ``P ‖ C_1 ‖ D_1 ‖ … ‖ C_{t-1} ‖ D_{t-1}``, exactly what the policy
saw, and the loss mask is 1 exactly on sampled tokens.

**Prefix check.** ``D_t`` is found by rendering the whole message history with the template and
requiring that the text of the stream so far is a prefix of it. When it is not, the template
rewrote an earlier turn (Qwen3-style templates drop earlier ``<think>`` blocks, some strip
whitespace, compaction rewrites history): the conversation then starts a **new segment** whose
prompt is the template's canonical render, instead of drifting from what the template would
show the model. ``segment_breaks`` counts how often that happened. Text (not ids) is compared,
so a sampled tokenization that differs from the canonical one is *not* a break: the sampled ids
stay the source of truth.

**Context modes.**

``full``
    The whole conversation, as above (one training sequence per segment).
``window``
    The GiGPO paper's setup: every step is a fresh single-turn prompt holding the task (the first
    observation), the last ``history_window`` (action, observation) pairs and the current
    observation. Each step is its own segment (``segment == step index``).
"""

from __future__ import annotations

import copy
from typing import Any, Literal

from transformers import PreTrainedTokenizerBase

from agentrl.types import ToolSpec

ContextMode = Literal["full", "window"]
_SENTINEL = "\x00agentrl-sentinel\x00"


class RenderError(ValueError):
    """The chat template cannot be used for exact token accounting (the message says why)."""


class ChatRenderer:
    """Turns env text into prompt token ids for one tokenizer / chat template.

    ``observation_role`` is the role observation turns get (``user`` by default; ``tool`` for
    templates that render tool results specially).
    """

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        *,
        mode: ContextMode = "full",
        history_window: int = 2,
        observation_role: str = "user",
    ):
        if mode not in ("full", "window"):
            raise ValueError(f"mode must be 'full' or 'window', got {mode!r}")
        if history_window < 0:
            raise ValueError("history_window must be >= 0")
        if getattr(tokenizer, "chat_template", None) is None:
            raise RenderError("the tokenizer has no chat template")
        self.tokenizer = tokenizer
        self.mode = mode
        self.history_window = history_window
        self.observation_role = observation_role
        self.assistant_tail_ids = self._assistant_tail()
        self.stop_token_ids = self._end_of_turn_ids()

    # ------------------------------------------------------------------ public
    def start(self, system_prompt: str, observation: str, tools: list[ToolSpec] | None = None) -> Conversation:
        """A conversation at the first prompt of an episode."""
        return Conversation(self, system_prompt, observation, [t.to_openai() for t in tools or []])

    def render_text(self, messages: list[dict[str, Any]], tools: list[dict] | None, generation_prompt: bool) -> str:
        return self.tokenizer.apply_chat_template(
            messages, tools=tools or None, tokenize=False, add_generation_prompt=generation_prompt
        )

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def decode(self, token_ids: list[int]) -> str:
        return self.tokenizer.decode(token_ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)

    # ------------------------------------------------------------------ template probing
    def _assistant_tail(self) -> list[int]:
        """Ids the template puts after an assistant message's content (e.g. ``<|im_end|>\\n``)."""
        messages = [{"role": "user", "content": "x"}, {"role": "assistant", "content": _SENTINEL}]
        text = self.render_text(messages, None, generation_prompt=False)
        if _SENTINEL not in text:
            raise RenderError("the chat template does not render assistant content verbatim")
        return self.encode(text[text.rindex(_SENTINEL) + len(_SENTINEL):])

    def _end_of_turn_ids(self) -> tuple[int, ...]:
        """The special token that ends an assistant turn (a stop token for the sampler)."""
        special = set(self.tokenizer.all_special_ids)
        first = self.assistant_tail_ids[:1]
        ids = tuple(first) if first and first[0] in special else ()
        if self.tokenizer.eos_token_id is not None and self.tokenizer.eos_token_id not in ids:
            ids += (int(self.tokenizer.eos_token_id),)
        return ids


class Conversation:
    """The token stream of one episode (see the module docstring)."""

    def __init__(self, renderer: ChatRenderer, system_prompt: str, observation: str, tools: list[dict]):
        self.renderer = renderer
        self.tools = tools
        self.messages: list[dict[str, Any]] = [{"role": "system", "content": system_prompt}] if system_prompt else []
        self.messages.append({"role": "user", "content": observation})
        self.task_text = observation
        self.history: list[tuple[str, str]] = []  # (action, observation) pairs, for window mode
        self.segment = 0
        self.segment_breaks = 0
        self.ids: list[int] = []
        self.loss_mask: list[int] = []
        self._text = ""
        self._restart(self._canonical_text())

    # ------------------------------------------------------------------ public
    def prompt_ids(self) -> list[int]:
        """The ids to condition the next completion on (a copy)."""
        return list(self.ids)

    def add_completion(self, token_ids: list[int]) -> str:
        """Append a sampled completion verbatim; returns the action text (end marker removed)."""
        tail = self.renderer.assistant_tail_ids
        ends_with_stop = bool(token_ids) and token_ids[-1] in self.renderer.stop_token_ids
        action = self.renderer.decode(token_ids[:-1] if ends_with_stop else token_ids)
        self.ids += token_ids
        self.loss_mask += [1] * len(token_ids)
        self._text += self.renderer.decode(token_ids)
        # The part of the template's end-of-turn marker the sampler did not write (all of it when
        # the turn was cut by length or a stop string) is appended, untrained, with the observation.
        self._pending_tail = tail[1:] if ends_with_stop and tail[:1] == token_ids[-1:] else tail
        self._last_action = action
        self.messages.append({"role": "assistant", "content": action})
        return action

    def add_observation(self, observation: str) -> None:
        """Append the env's answer as the template's delta, or start a new segment."""
        self.messages.append({"role": self.renderer.observation_role, "content": observation})
        self.history.append((self._last_action, observation))
        if self.renderer.mode == "window":
            self.segment += 1
            self._restart(self._window_text())
            return
        tail = self._pending_tail
        stream_text = self._text + self.renderer.decode(tail)
        canonical = self._canonical_text()
        if not canonical.startswith(stream_text):
            self.segment += 1
            self.segment_breaks += 1
            self._restart(canonical)
            return
        delta = tail + self.renderer.encode(canonical[len(stream_text):])
        if len(delta) == len(tail):
            raise RenderError(f"the chat template renders observation {observation[:40]!r} as no tokens")
        self.ids += delta
        self.loss_mask += [0] * len(delta)
        self._text = canonical

    def fork(self) -> Conversation:
        """An independent copy (tree rollouts branch conversations with their envs)."""
        twin = copy.copy(self)
        twin.messages = [dict(m) for m in self.messages]
        twin.history = list(self.history)
        twin.ids = list(self.ids)
        twin.loss_mask = list(self.loss_mask)
        return twin

    # ------------------------------------------------------------------ internals
    def _restart(self, text: str) -> None:
        self._text = text
        self.ids = self.renderer.encode(text)
        self.loss_mask = [0] * len(self.ids)

    def _canonical_text(self) -> str:
        return self.renderer.render_text(self.messages, self.tools, generation_prompt=True)

    def _window_text(self) -> str:
        """GiGPO-style single-turn prompt: task, recent history, current observation."""
        window = self.history[-self.renderer.history_window:] if self.renderer.history_window else []
        step = len(self.history)
        lines = [self.task_text, ""]
        if window:
            first = step - len(window) + 1
            lines.append(f"You have taken {step} step(s). The last {len(window)}:")
            for k, (action, observation) in enumerate(window[:-1], first):
                lines += [f"[Action {k}]: {action}", f"[Observation {k}]: {observation}"]
            lines.append(f"[Action {step}]: {window[-1][0]}")
        lines += [f"Current observation (step {step + 1}):", self.history[-1][1]]
        system = [m for m in self.messages[:1] if m["role"] == "system"]
        messages = system + [{"role": "user", "content": "\n".join(lines)}]
        return self.renderer.render_text(messages, self.tools, generation_prompt=True)

