"""The monitoring page and the offline API docs: HTML routes, browser sessions, templates
and the vendored static assets they load (nothing comes from a CDN)."""
