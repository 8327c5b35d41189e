// Runs www/dist/bench.html with a query and returns what it measured. The page's contract
// (www/src/bench/bench.ts): `document.body.dataset.done = "1"` when finished, `dataset.error` when it
// failed, and the results in `window.__benchResults`.

/** Opens `bench.html?query` on `server` in `page`; resolves to the results, or throws the page's error. */
export async function runBenchPage(page, server, query) {
  await page.goto(`${server.url}bench.html?${query}`);
  await page.waitForFunction(() => document.body.dataset.done === '1' || document.body.dataset.error, null, { timeout: 3_600_000 });
  const error = await page.evaluate(() => document.body.dataset.error);
  if (error) throw new Error(`the bench page failed: ${error}`);
  return page.evaluate(() => window.__benchResults);
}
