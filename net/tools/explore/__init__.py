"""The explorer: a page that shows backpropagation in motion on any net (scripts/explore.py).

- `layout`    where each blob and gate goes (layered by topological depth; no Graphviz)
- `explorer`  the Explorer (a Net, its default feed, walks as JSON) and the page as one string
- `server`    the HTTP server (standard library), on 127.0.0.1 unless told otherwise
- page.html, page.css, page.js: the page; the script only reveals what the server computed

The page's contract, for tests and anyone driving it: each blob is an element with
`data-blob="NAME"` whose `data-value` and `data-grad` attributes hold JSON (a number for a
scalar; {"shape", "min", "mean", "max"} for an array) once computed and are absent before; the
buttons are #forward-step, #backward-step, #run-all and #reset; each editable input is an
`<input data-input="NAME">` holding JSON; #status names the next step.
"""
from .explorer import Explorer, FeedError, walk_json
from .layout import layout
from .server import make_server

__all__ = ["Explorer", "FeedError", "layout", "make_server", "walk_json"]
