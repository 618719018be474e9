"""/docs and /redoc: page shells that load /openapi.json with the user's API key.

FastAPI's own pages fetch /openapi.json without a header, which fails once keys are on. These
shells hold no data: they fetch the document (with the key kept in the tab's sessionStorage,
asked for when the API answers 401 or 403) and hand it to Swagger UI, which also adds the key to
every "Try it out" request, or to Redoc. Without keys configured they behave as FastAPI's pages.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse

SWAGGER_JS = "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui-bundle.js"
SWAGGER_CSS = "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui.css"
REDOC_JS = "https://cdn.jsdelivr.net/npm/redoc@2/bundles/redoc.standalone.js"

# Shared by both pages: fetch the document with the stored key; on 401/403 show a key form.
KEY_SCRIPT = """
const KEY = "recflow-api-key";
const given = new URLSearchParams(window.location.hash.slice(1)).get("key");
if (given) {
  sessionStorage.setItem(KEY, given);  // a fragment never reaches the server
  history.replaceState(null, "", window.location.pathname + window.location.search);
}
function storedKey() { return sessionStorage.getItem(KEY) || ""; }
function withKey(headers) {
  const k = storedKey();
  if (k) headers["X-API-Key"] = k;
  return headers;
}
function askKey(message, retry) {
  const form = document.getElementById("key-form");
  document.getElementById("key-message").textContent = message;
  form.hidden = false;
  form.onsubmit = (e) => {
    e.preventDefault();
    sessionStorage.setItem(KEY, document.getElementById("key-input").value.trim());
    form.hidden = true;
    retry();
  };
}
function loadDocument(start) {
  fetch("/openapi.json", { headers: withKey({}) }).then((r) => {
    if (r.status === 401 || r.status === 403) {
      return r.json().then((b) => askKey(b.error, () => loadDocument(start)));
    }
    return r.json().then(start);
  }).catch((err) => askKey("cannot load /openapi.json: " + err, () => loadDocument(start)));
}
"""

KEY_FORM = """
<form id="key-form" hidden style="font: 14px system-ui, sans-serif; margin: 1rem;">
  <p id="key-message"></p>
  <label>API key <input id="key-input" type="password" autocomplete="off" size="40"></label>
  <button type="submit">Use this key</button>
</form>
"""


def swagger_page(title: str) -> str:
    return f"""<!DOCTYPE html>
<html><head>
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<link type="text/css" rel="stylesheet" href="{SWAGGER_CSS}">
<title>{title} - Swagger UI</title>
</head><body>
{KEY_FORM}
<div id="swagger-ui"></div>
<script src="{SWAGGER_JS}"></script>
<script>
{KEY_SCRIPT}
loadDocument((spec) => SwaggerUIBundle({{
  spec: spec,
  dom_id: "#swagger-ui",
  layout: "BaseLayout",
  deepLinking: true,
  showExtensions: true,
  showCommonExtensions: true,
  oauth2RedirectUrl: window.location.origin + "/docs/oauth2-redirect",
  requestInterceptor: (req) => {{ withKey(req.headers); return req; }},
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
}}));
</script>
</body></html>"""


def redoc_page(title: str) -> str:
    return f"""<!DOCTYPE html>
<html><head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} - ReDoc</title>
<style>body {{ margin: 0; padding: 0; }}</style>
</head><body>
{KEY_FORM}
<div id="redoc"></div>
<script src="{REDOC_JS}"></script>
<script>
{KEY_SCRIPT}
loadDocument((spec) => Redoc.init(spec, {{}}, document.getElementById("redoc")));
</script>
</body></html>"""


def install(app: FastAPI) -> None:
    """Mounts /docs, /docs/oauth2-redirect and /redoc (create the app with docs_url=None and
    redoc_url=None)."""
    title = app.title

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        """Swagger UI on the OpenAPI document, sending the key the user gives it."""
        return HTMLResponse(swagger_page(title))

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    def swagger_ui_redirect() -> HTMLResponse:
        """Swagger UI's OAuth2 redirect page."""
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        """ReDoc on the OpenAPI document, sending the key the user gives it."""
        return HTMLResponse(redoc_page(title))
