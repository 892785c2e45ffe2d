// The workerd side of bench:invoke: the same trivial function Tributary runs.
export default { fetch() { return new Response('ok'); } };
