// wordcount-windowed.js: the windowed WordCount stage — words per 10-second tumbling window of
// event time (here the arrival time the source stamps), built on the platform's window library.
// Each closed window emits {key: word, start, end, value: count}.
import { tumbling } from 'tributary:windows';

export default tumbling(10_000, { init: () => 0, add: (count) => count + 1 });
