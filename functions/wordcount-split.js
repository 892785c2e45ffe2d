// wordcount-split.js: the first stage of WordCount. Each record's value is a line of text; emits
// one record per word, keyed by the word so the next edge can partition by key.
export default {
  process(record, env, ctx) {
    const words = String(record.value).toLowerCase().split(/[^a-z0-9']+/);
    for (const word of words) if (word) ctx.emit(word, { key: word });
  },
};
