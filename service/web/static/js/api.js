// JSON calls to the API with the page's session cookie. A 401 means the session
// ended (expired, or its key was revoked): reloading shows the login form.

export class NotFound extends Error {}

export async function getJSON(path) {
  const response = await fetch(path, { credentials: "same-origin", headers: { Accept: "application/json" } });
  if (response.status === 401) {
    window.location.reload();
    throw new Error("signed out");
  }
  if (response.status === 404) throw new NotFound(path);
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return response.json();
}

// Every page of a list, following `next_cursor`, handing each page over as it comes.
export async function allPages(path, cap, onPage) {
  let url = path;
  let seen = 0;
  for (;;) {
    const page = await getJSON(url);
    onPage(page.items);
    seen += page.items.length;
    if (!page.next_cursor || seen >= cap) return seen < cap || !page.next_cursor;
    url = `${path}&cursor=${encodeURIComponent(page.next_cursor)}`;
  }
}
