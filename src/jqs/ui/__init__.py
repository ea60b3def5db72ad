"""The dashboard at /ui: server-rendered pages over the store, signed in with an API key.

jqs.ui.pages mounts the routes, which live by area (signin, overview, jobs, submit, admin);
jqs.ui.render answers them from the templates; jqs.ui.access says who may see and do what;
jqs.ui.session is the signed session cookie; jqs.ui.filters the jobs page's search. Served
by the API's own app (jqs.api.app), with its files (templates, vendored htmx, the
stylesheet) in this package.
"""
