"""The MiniWoB++ families the browser tier runs, and their task pages.

A module of its own with no imports, so registering the ``agentrl/MiniWoB-<family>-v0`` ids
(at ``import agentrl``) does not load the browser layer.
"""

# Family name -> task page in the miniwob wheel (the "-nodelay" page where the original
# animates, so that the page is ready as soon as genProblem() returns).
PAGES = {
    "click-test": "click-test.html",
    "click-test-2": "click-test-2.html",
    "click-button": "click-button.html",
    "click-button-sequence": "click-button-sequence.html",
    "click-link": "click-link.html",
    "click-dialog": "click-dialog.html",
    "drag-box": "drag-box.html",
    "use-slider": "use-slider.html",
    "use-slider-2": "use-slider-2.html",
    "click-dialog-2": "click-dialog-2.html",
    "click-tab": "click-tab.html",
    "click-checkboxes": "click-checkboxes.html",
    "click-option": "click-option.html",
    "click-collapsible": "click-collapsible-nodelay.html",
    "choose-list": "choose-list.html",
    "enter-text": "enter-text.html",
    "enter-text-2": "enter-text-2.html",
    "enter-text-dynamic": "enter-text-dynamic.html",
    "enter-password": "enter-password.html",
    "login-user": "login-user.html",
    "focus-text": "focus-text.html",
    "focus-text-2": "focus-text-2.html",
    "simple-arithmetic": "simple-arithmetic.html",
    "find-word": "find-word.html",
    "odd-or-even": "odd-or-even.html",
    "email-inbox-delete": "email-inbox-delete.html",
}
