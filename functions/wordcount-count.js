// wordcount-count.js: the second stage of WordCount. Keeps a running count per word in
// env.STATE (partitioned like its input, so each word's count lives in one partition) and emits
// {word, count} on every occurrence.
export default {
  async process(record, env, ctx) {
    const stored = await env.STATE.get(record.key);
    const count = (stored === null ? 0 : Number(await stored.text())) + 1;
    await env.STATE.put(record.key, String(count));
    ctx.emit({ word: record.key, count }, { key: record.key });
  },
};
