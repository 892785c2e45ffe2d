// hello.js: the smallest useful Tributary function.
//   HTTP:   GET /v1/invoke/hello?name=Ada  ->  "Hello, Ada!"
//   stream: process({ value: "ada" })      ->  emits "Hello, ada!"
export default {
  fetch(request, env, ctx) {
    const name = new URL(request.url).searchParams.get('name') ?? 'world';
    console.log(`greeting ${name}`);
    return new Response(`Hello, ${name}!\n`, { headers: { 'content-type': 'text/plain; charset=utf-8' } });
  },

  process(record, env, ctx) {
    return `Hello, ${record.value}!`;
  },
};
