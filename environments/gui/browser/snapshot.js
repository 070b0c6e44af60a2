// Returns the visible page under #wrap as a tree of {id, role, name, value, checked, selected,
// focused, disabled, options, children} (see agentrl_envs/gui/tree.py). Element ids are kept in
// data-agentrl-id, so an element keeps its id for the whole page load; new elements get fresh ids.
// Elements that carry no text and are not interactive are flattened into their parent.
// The task utterance (#query), the reward display, the start cover and the click canvas are
// never part of the tree. With withBoxes (arguments[0]) each node also gets its box
// [left, top, width, height], rounded CSS pixels from the page's top-left (pointer families).
return (function (withBoxes) {
  if (window.__agentrlNextId === undefined) window.__agentrlNextId = 1;
  var SKIP = {"query": 1, "reward-display": 1, "sync-task-cover": 1, "click-canvas": 1};
  var SKIP_TAGS = {SCRIPT: 1, STYLE: 1, NOSCRIPT: 1, BR: 1, HR: 1, OPTION: 1, TEMPLATE: 1};

  function idOf(el) {
    if (!el.dataset.agentrlId) el.dataset.agentrlId = String(window.__agentrlNextId++);
    return +el.dataset.agentrlId;
  }
  function visible(el) {
    if (el.getClientRects().length === 0) return false;
    var style = window.getComputedStyle(el);
    return style.visibility !== "hidden" && style.display !== "none" && style.opacity !== "0";
  }
  function squash(s) { return (s || "").replace(/\s+/g, " ").trim(); }
  function ownText(el) {
    var parts = [];
    el.childNodes.forEach(function (c) { if (c.nodeType === 3 && squash(c.data)) parts.push(squash(c.data)); });
    return parts.join(" ");
  }
  function labelFor(el) {
    var wrapping = el.closest("label");
    if (wrapping) return squash(wrapping.textContent);
    if (el.id) {
      var lab = document.querySelector('label[for="' + el.id + '"]');
      if (lab) return squash(lab.textContent);
    }
    return squash(el.getAttribute("aria-label") || el.getAttribute("placeholder") || "");
  }
  function describe(el) {
    var tag = el.tagName, role = null, node = {};
    if (tag === "INPUT") {
      var type = (el.type || "text").toLowerCase();
      if (type === "checkbox" || type === "radio") { role = type; node.checked = el.checked; node.name = labelFor(el); }
      else if (type === "button" || type === "submit" || type === "reset") { role = "button"; node.name = el.value; }
      else if (type === "hidden") return null;
      else { role = "textbox"; node.name = labelFor(el); node.value = el.value; }
    } else if (tag === "TEXTAREA") { role = "textbox"; node.name = labelFor(el); node.value = el.value; }
    else if (tag === "SELECT") {
      role = "combobox";
      node.options = Array.prototype.map.call(el.options, function (o) { return squash(o.textContent); });
      node.value = el.selectedIndex >= 0 ? squash(el.options[el.selectedIndex].textContent) : "";
    }
    else if (tag === "BUTTON") {
      role = "button"; node.name = squash(el.textContent);
      // Toggle buttons mark their state with aria-pressed or a "selected" class.
      if (el.getAttribute("aria-pressed") === "true" || el.classList.contains("selected")) node.selected = true;
    }
    else if (tag === "A") { role = (el.closest('[role="tablist"]') ? "tab" : "link"); node.name = squash(el.textContent);
      if (role === "tab") node.selected = el.parentElement.getAttribute("aria-selected") === "true"; }
    else if (/^H[1-6]$/.test(tag)) { role = "heading"; node.name = ownText(el); }
    else if (tag === "LABEL") {
      if (el.querySelector("input, select, textarea")) return null;  // its text names the control
      role = "label"; node.name = ownText(el);
    }
    else if (tag === "LI") { role = "listitem"; node.name = ownText(el); }
    else if (tag === "IMG" || tag === "svg" || tag === "CANVAS") { role = "image"; node.name = squash(el.getAttribute("alt") || el.getAttribute("title") || ""); }
    else {
      var r = el.getAttribute("role");
      if (r === "dialog") role = "dialog";
      if (el.classList.contains("ui-slider")) role = "slider";  // a jQuery UI slider's track
      node.name = ownText(el);
      // Text styled as clickable (cursor: pointer) is what a user would call a link.
      if (!role && node.name) role = window.getComputedStyle(el).cursor === "pointer" ? "link" : "text";
      // An icon: no text, no element children, but styled clickable. Named by title or class.
      if (!role && el.children.length === 0 && window.getComputedStyle(el).cursor === "pointer") {
        role = "button"; node.name = squash(el.getAttribute("title") || el.getAttribute("aria-label") || el.className);
      }
      if (!role && el.getAttribute("tabindex") !== null) role = "group";
    }
    if (!role) return null;
    node.role = role;
    if (el.getAttribute("aria-expanded") !== null) node.expanded = el.getAttribute("aria-expanded") === "true";
    if (document.activeElement === el) node.focused = true;
    if (el.disabled) node.disabled = true;
    if (withBoxes) {
      var r = el.getBoundingClientRect();
      node.box = [Math.round(r.left + window.scrollX), Math.round(r.top + window.scrollY),
                  Math.round(r.width), Math.round(r.height)];
    }
    return node;
  }
  function visit(el, out) {
    if (el.nodeType !== 1 || SKIP[el.id] || SKIP_TAGS[el.tagName] || !visible(el)) return;
    if (el.getAttribute("aria-hidden") === "true") return;
    var node = describe(el);
    if (node) node.id = idOf(el);  // pre-order, so ids read top to bottom
    var leaf = node && (node.role === "button" || node.role === "textbox" || node.role === "combobox" ||
                        node.role === "image" || node.role === "tab" ||
                        (node.role === "link" && el.children.length === 0));
    var children = [];
    if (!leaf) Array.prototype.forEach.call(el.children, function (c) { visit(c, children); });
    if (node) {
      node.children = children;
      out.push(node);
    } else {
      Array.prototype.push.apply(out, children);
    }
  }
  var roots = [];
  // The whole body: jQuery UI puts dialogs and menus outside #wrap.
  Array.prototype.forEach.call(document.body.children, function (c) { visit(c, roots); });
  var query = document.getElementById("query");
  return {utterance: query ? squash(query.textContent) : "", roots: roots};
})(arguments[0]);
