// echo.js: answers with what the function saw of the request, as JSON.
export default {
  async fetch(request) {
    const url = new URL(request.url);
    return Response.json({
      method: request.method,
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      headers: Object.fromEntries(request.headers),
      body: await request.text(),
    });
  },
};
