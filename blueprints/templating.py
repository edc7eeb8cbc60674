"""What every page's template calls many times, made cheap without changing what it prints:
the catalogue behind `_()`, `{% trans %}` and the other gettext functions, and `url_for`.

Flask-Babel's Jinja callables find the catalogue again on every call (about ten lookups of
Flask's context-local `g` each), and Jinja reaches them through two more calling layers;
`url_for` builds the same few URLs on every page. Here the catalogue is found once for each
locale Flask-Babel picks (services/language.py), and a URL is built once per process for the
same arguments."""

from collections import ChainMap

from flask import Flask
from flask.globals import _cv_app, _cv_request
from jinja2 import pass_eval_context
from markupsafe import Markup

from services import language

# Finished (escaped, formatted) translations of messages given without variables, for each
# catalogue (one per language), and how many each may hold: the templates' messages are a
# fixed set, but `_(label)` could be handed any text.
_finished_by_catalogue = {}
FINISHED_MAX = 4096


def _catalogue():
    """This moment's catalogue and its finished translations (None outside an app context)."""
    context = _cv_app.get(None)
    if context is None:  # no app context: a catalogue that translates nothing
        return language.catalogue_for(None), None
    state = getattr(context.g, "_flask_babel", None)
    catalogue = language.catalogue_for(getattr(state, "babel_locale", None))
    finished = _finished_by_catalogue.get(catalogue)
    if finished is None:
        finished = _finished_by_catalogue.setdefault(catalogue, {})
    return catalogue, finished


@pass_eval_context
def gettext(eval_context, message: str, /, **variables) -> str:
    """Jinja's new-style `gettext` (and `_`): the translation, marked safe where the template
    escapes, with `variables` put in (escaped); `%%` stands for `%` even without them. The
    arguments before `/` are positional so that a variable may be called `message`."""
    catalogue, finished = _catalogue()
    if variables or not eval_context.autoescape or finished is None:
        text = catalogue.ugettext(message)
        return (Markup(text) if eval_context.autoescape else text) % variables
    text = finished.get(message)
    if text is None:
        text = Markup(catalogue.ugettext(message)) % {}
        if len(finished) < FINISHED_MAX:
            finished[message] = text
    return text


@pass_eval_context
def ngettext(eval_context, singular: str, plural: str, count: int, /, **variables) -> str:
    """Jinja's new-style `ngettext`: the form for `count`, which is also `%(num)s`."""
    variables.setdefault("num", count)
    text = _catalogue()[0].ungettext(singular, plural, count)
    return (Markup(text) if eval_context.autoescape else text) % variables


@pass_eval_context
def pgettext(eval_context, context: str, message: str, /, **variables) -> str:
    """Jinja's new-style `pgettext`: `message` as translated in `context`."""
    variables.setdefault("context", context)
    text = _catalogue()[0].upgettext(context, message)
    return (Markup(text) if eval_context.autoescape else text) % variables


@pass_eval_context
def npgettext(
    eval_context, context: str, singular: str, plural: str, count: int, /, **variables
) -> str:
    """Jinja's new-style `npgettext`: the form for `count` as translated in `context`."""
    variables.setdefault("context", context)
    variables.setdefault("num", count)
    text = _catalogue()[0].unpgettext(context, singular, plural, count)
    return (Markup(text) if eval_context.autoescape else text) % variables


# How many URLs an app keeps built; past that it starts again (a `next=` value is the
# visitor's own text, so the set of arguments seen is not bounded).
URLS_MAX = 4096
# Argument types whose equal values always give the same URL (True == 1, but not as a URL).
_PLAIN = frozenset({str, int, type(None)})


def cached_url_for(app: Flask):
    """`app.url_for` remembering what it built, for templates. Inside a request a URL without
    `_external`/`_scheme` depends only on the endpoint, the arguments (in their order), the
    path the app is mounted at and the request's subdomain, so those are the key. Anything
    else is built each time: a `.endpoint` (relative to the request's blueprint), arguments of
    other types, an app with `url_defaults` functions (they may read the request) or with
    host matching, and URLs that come out absolute."""
    build = app.url_for
    if app.url_map.host_matching:
        return build
    urls = {}

    def url_for(endpoint: str, **values) -> str:
        context = _cv_request.get(None)  # Flask's request context, None outside a request
        adapter = context.url_adapter if context is not None else None
        if (
            adapter is None
            or endpoint[:1] == "."
            or "_external" in values
            or "_scheme" in values
            or app.url_default_functions
            or not _PLAIN.issuperset(map(type, values.values()))
        ):
            return build(endpoint, **values)
        key = (endpoint, adapter.script_name, adapter.subdomain, *values.items())
        url = urls.get(key)
        if url is None:
            url = build(endpoint, **values)
            if url[:1] == "/" and url[:2] != "//":
                if len(urls) >= URLS_MAX:
                    urls.clear()
                urls[key] = url
        return url

    return url_for


class TemplateGlobals(ChainMap):
    """A template's globals (its own over the environment's) whose `keys()` is a dict's keys
    view. Each `{% from "_macros.html" import ... %}` subtracts these names from the page's
    (jinja2's Template._get_default_module); against a ChainMap's view that is a Python loop
    asking every map about every name, against a dict's view one step in C."""

    def keys(self):
        """Every map's names, the first map's winning, as a dict's keys view."""
        names = {}
        for mapping in reversed(self.maps):
            names.update(mapping)
        return names.keys()


def install(app: Flask) -> None:
    """Put these in place of the template callables Flask-Babel and Flask installed (after
    babel.init_app); `_` calls `gettext` directly instead of looking it up on every call.
    Templates loaded from now on get TemplateGlobals (Environment.make_globals)."""
    environment = app.jinja_env
    environment.make_globals = lambda own: TemplateGlobals(
        {} if own is None else own, environment.globals
    )
    environment.newstyle_gettext = True
    environment.globals.update(
        gettext=gettext,
        _=gettext,
        ngettext=ngettext,
        pgettext=pgettext,
        npgettext=npgettext,
        url_for=cached_url_for(app),
    )
