"""WebShop's page state machine and the page model both the text env and the web page render.

States (``PageState.page``) and the actions legal on each::

    index          search[kw]                       -> results (page 1)
    results        click[<asin>]                    -> item
                   click[next >] / click[< prev]    -> results, page +- 1
                   click[back to search]            -> index
    item           click[<option value>]            -> item, that option set
                   click[description|features|reviews|attributes] -> sub
                   click[< prev]                    -> results (same query and page)
                   click[buy now]                   -> done
                   click[back to search]            -> index
    sub            click[< prev]                    -> item (options kept)
                   click[back to search]            -> index
    done           (terminal)

``search[...]`` is legal only where the page shows a search bar (the index page); ``click[v]`` only
when lower-cased ``v`` is one of the page's clickables (button labels, result asins, option
values). A search returns the top 50 products, shown 10 per page; WebShop's debugging queries
``<r>``, ``<a> attr``, ``<c> category`` and ``<q> query`` filter instead (:meth:`Shop.search`).

:func:`build_page` turns a state into a :class:`Page` — an ordered list of :class:`Element` s.
:meth:`Page.to_text` joins their texts with `` [SEP] `` (WebShop's simple text observation);
:meth:`Page.to_html` renders the same elements as a web page. One model, two views.
"""

from __future__ import annotations

import dataclasses
import html
import math
from typing import Literal
from urllib.parse import quote

from agentrl_envs.webshop.shop import Shop

from agentrl.env import ActionError

RESULTS_PER_PAGE = 10
SUB_PAGES = ("description", "features", "reviews", "attributes")
BACK_TO_SEARCH, NEXT, PREV, BUY = "back to search", "next >", "< prev", "buy now"

PageName = Literal["index", "results", "item", "sub", "done"]


@dataclasses.dataclass(frozen=True)
class PageState:
    """Where the shopper is: small and immutable, so a fork shares it."""

    page: PageName = "index"
    query: str = ""
    page_num: int = 1
    asin: str | None = None
    options: tuple[tuple[str, str], ...] = ()  # chosen (option name, value), sorted by name
    sub_page: str | None = None
    draw: int = 0  # seed of a "<r>" search's random sample

    def key(self) -> str:
        """Canonical key for GiGPO anchor states (page, query, page number, asin, options, sub-page)."""
        if self.page == "index":
            return "index"
        if self.page == "results":
            return f"results|{self.query}|{self.page_num}" + (f"|{self.draw}" if self.draw else "")
        chosen = ",".join(f"{k}={v}" for k, v in self.options)
        parts = [self.page, self.query, str(self.page_num), self.asin or "", chosen]
        if self.page == "sub":
            parts.append(self.sub_page or "")
        return "|".join(parts)

    @property
    def chosen(self) -> dict[str, str]:
        return dict(self.options)


@dataclasses.dataclass(frozen=True)
class Element:
    """One visible node. ``kind``: instruction, heading, text, search, button, result, label, option."""

    kind: str
    text: str
    selected: bool = False

    @property
    def clickable(self) -> bool:
        return self.kind in ("button", "result", "option")


@dataclasses.dataclass(frozen=True)
class Page:
    name: PageName
    elements: tuple[Element, ...]

    @property
    def has_search_bar(self) -> bool:
        return any(e.kind == "search" for e in self.elements)

    @property
    def clickables(self) -> list[str]:
        return [e.text.lower() for e in self.elements if e.clickable]

    def available_actions(self) -> list[str]:
        actions = ["search[<your query>]"] if self.has_search_bar else []
        return actions + [f"click[{c}]" for c in self.clickables]

    def to_text(self) -> str:
        """Visible texts joined by `` [SEP] ``, then the available actions."""
        texts = []
        for e in self.elements:
            if e.kind == "instruction":
                texts += ["Instruction:", e.text]
            else:
                texts.append(f"{e.text} (selected)" if e.selected else e.text)
        observation = " [SEP] ".join(texts)
        if self.name == "done":
            return observation
        return f"{observation}\nAvailable actions: {', '.join(self.available_actions())}"

    def to_html(self, base: str) -> str:
        """The page as HTML; links and the search form go to ``{base}/click?v=...`` and ``{base}/search``."""
        body = []
        for e in self.elements:
            text = html.escape(e.text)
            if e.kind == "instruction":
                body.append(f'<div id="instruction"><b>Instruction:</b> {text}</div>')
            elif e.kind == "heading":
                body.append(f"<h2>{text}</h2>")
            elif e.kind == "search":
                body.append(
                    f'<form action="{base}/search" method="get" id="search-form">'
                    f'<input name="q" id="search-input" placeholder="Search" autofocus>'
                    f'<button type="submit" id="search-button">{text}</button></form>'
                )
            elif e.kind == "label":
                body.append(f'<div class="label">{text}</div>')
            elif e.clickable:
                css = {"button": "button", "result": "product-link", "option": "option"}[e.kind]
                css += " selected" if e.selected else ""
                value = html.escape(e.text.lower(), quote=True)
                body.append(
                    f'<a class="{css}" data-click="{value}" href="{base}/click?v={quote(e.text.lower())}">{text}</a>'
                )
            else:
                body.append(f"<p>{text}</p>")
        return HTML_TEMPLATE.format(title=f"WebShop · {self.name}", body="\n".join(body))


HTML_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: sans-serif; max-width: 56rem; margin: 2rem auto; color: #222; }}
#instruction {{ background: #fff8e1; padding: .6rem 1rem; border-left: 4px solid #f0a000; margin-bottom: 1rem; }}
a.button, a.option, #search-button {{ display: inline-block; margin: .2rem; padding: .3rem .8rem; border: 1px solid #888;
  border-radius: 4px; text-decoration: none; color: #222; background: #f4f4f4; }}
a.option.selected {{ background: #1565c0; color: white; border-color: #1565c0; }}
a.product-link {{ display: block; margin-top: 1rem; font-weight: bold; color: #1565c0; }}
.label {{ margin-top: .6rem; font-weight: bold; text-transform: capitalize; }}
#search-input {{ width: 30rem; padding: .4rem; }}
</style></head><body>
{body}
</body></html>
"""


def build_page(shop: Shop, instruction: str, state: PageState, score: float | None = None) -> Page:
    """The page shown in ``state`` (``score`` is shown on the done page)."""
    elements = [Element("instruction", instruction)]
    if state.page == "index":
        elements = [Element("heading", "WebShop"), *elements, Element("search", "Search")]
    elif state.page == "results":
        results = shop.search(state.query, state.draw)
        pages = max(1, math.ceil(len(results) / RESULTS_PER_PAGE))
        elements += [
            Element("button", "Back to Search"),
            Element("text", f"Page {state.page_num} (Total results: {len(results)})"),
        ]
        if state.page_num > 1:
            elements.append(Element("button", "< Prev"))
        if state.page_num < pages:
            elements.append(Element("button", "Next >"))
        start = (state.page_num - 1) * RESULTS_PER_PAGE
        for asin in results[start : start + RESULTS_PER_PAGE]:
            product = shop.by_asin[asin]
            elements += [
                Element("result", asin),
                Element("text", product.title),
                Element("text", _price(product)),
            ]
    elif state.page in ("item", "sub"):
        product = shop.by_asin[state.asin]
        elements += [Element("button", "Back to Search"), Element("button", "< Prev")]
        if state.page == "item":
            chosen = state.chosen
            for name, values in product.options.items():
                elements.append(Element("label", name))
                elements += [Element("option", v, selected=chosen.get(name) == v) for v in values]
            elements += [
                Element("heading", product.title),
                Element("text", f"Price: ${product.price:.2f}"),
                Element("text", "Rating: N.A."),
                *(Element("button", s.capitalize()) for s in SUB_PAGES),
                Element("button", "Buy Now"),
            ]
        else:
            elements += [Element("text", t) for t in _sub_page_texts(product, state.sub_page)]
    else:  # done
        product = shop.by_asin[state.asin]
        chosen = ", ".join(f"{k}: {v}" for k, v in state.options) or "none"
        elements += [
            Element("heading", "Thank you for shopping with us!"),
            Element("text", f"Purchased: {product.asin} {product.title}"),
            Element("text", f"Options: {chosen}"),
            Element("text", "Your score (min 0.0, max 1.0)"),
            Element("text", f"{score:.4f}" if score is not None else "N.A."),
        ]
    return Page(state.page, tuple(elements))


def _price(product) -> str:
    if len(product.pricing) == 2:
        return f"${product.pricing[0]:.2f} to ${product.pricing[1]:.2f}"
    return f"${product.price:.2f}"


def _sub_page_texts(product, sub_page: str | None) -> list[str]:
    if sub_page == "description":
        return [product.description]
    if sub_page == "features":
        return list(product.bullet_points)
    if sub_page == "attributes":
        return list(product.attributes)
    if not product.reviews:
        return ["No reviews yet."]
    return [f"Rating: {r.rating}/5 — {r.text}" for r in product.reviews]


def apply_action(
    shop: Shop, state: PageState, page: Page, command: str, argument: str, draw: int = 0
) -> PageState:
    """The next state; raises :class:`ActionError` (with a model-readable reason) for an illegal action.

    ``draw`` seeds the sample of a ``search[<r>]`` (WebShop's random-products query).
    """
    if command == "search":
        if not page.has_search_bar:
            raise ActionError("There is no search bar on this page: click[back to search] first.")
        query = " ".join(argument.split())
        if not query:
            raise ActionError("search[...] needs keywords, e.g. search[gluten free cookies].")
        return PageState("results", query=query, page_num=1, draw=draw if query.lower().startswith("<r>") else 0)

    target = argument.strip().lower()
    if target not in page.clickables:
        raise ActionError(f"{argument!r} is not clickable on this page.")
    if target == BACK_TO_SEARCH:
        return PageState("index")
    if state.page == "results":
        if target == NEXT:
            return dataclasses.replace(state, page_num=state.page_num + 1)
        if target == PREV:
            return dataclasses.replace(state, page_num=state.page_num - 1)
        return dataclasses.replace(state, page="item", asin=target.upper(), options=())
    if state.page == "item":
        if target == PREV:
            return dataclasses.replace(state, page="results", asin=None, options=())
        if target == BUY:
            return dataclasses.replace(state, page="done")
        if target in SUB_PAGES:
            return dataclasses.replace(state, page="sub", sub_page=target)
        product = shop.by_asin[state.asin]
        chosen = {**state.chosen, product.option_of(target): target}
        return dataclasses.replace(state, options=tuple(sorted(chosen.items())))
    # sub page: the only other clickable is "< prev"
    return dataclasses.replace(state, page="item", sub_page=None)
