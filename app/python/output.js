// Python's stdout and stderr on their way out of a worker, bounded: an endless print()
// loop would otherwise post one message per line, far faster than the page can show them,
// and freeze it (and everything queued behind them, terminatePlugin included).
//
//   const output = boundedOutput(post);                 // post({type: "stdout" | "stderr", text})
//   output.write("stdout", line);                        // Pyodide's batched stdout: one line a call
//
// While output is slow, each line is posted at once, as before. Within any 100 ms, at most
// 8 messages go out; lines past that wait, joined with "\n", for the next message (at the
// end of those 100 ms, or with the next line after them). Past 16,384 characters in 100 ms
// lines are dropped, and the next message says how many. One line is cut at that size.
// The timer cannot run while Python loops, so a line written after the 100 ms sends what
// waits; the timer only sends what is left once Python stops.

export const OUTPUT_INTERVAL_MS = 100;
export const OUTPUT_MESSAGES_PER_INTERVAL = 8;
export const OUTPUT_CHARACTERS_PER_INTERVAL = 16_384;

export function boundedOutput(post, { now = () => performance.now() } = {}) {
  let started = -Infinity; // when this interval began
  let messages = 0; // posted in this interval
  let characters = 0; // written in this interval, posted or waiting
  let dropped = 0; // lines dropped in this interval
  let waiting = []; // [{type, lines}], in order
  let timer = null;

  function send() {
    clearTimeout(timer);
    timer = null;
    for (const { type, lines } of waiting) post({ type, text: lines.join("\n") });
    if (dropped) {
      post({ type: "stderr", text: `... ${dropped} lines of output dropped: more than ${OUTPUT_CHARACTERS_PER_INTERVAL} characters in ${OUTPUT_INTERVAL_MS} ms` });
    }
    messages += waiting.length + (dropped ? 1 : 0);
    waiting = [];
    dropped = 0;
  }

  function write(type, line) {
    const time = now();
    if (time - started >= OUTPUT_INTERVAL_MS) {
      send(); // what waited belongs to the interval that just ended
      started = time;
      messages = 0;
      characters = 0;
    }
    let text = String(line);
    if (text.length > OUTPUT_CHARACTERS_PER_INTERVAL) {
      text = `${text.slice(0, OUTPUT_CHARACTERS_PER_INTERVAL)}... (${text.length - OUTPUT_CHARACTERS_PER_INTERVAL} more characters cut)`;
    }
    characters += text.length + 1;
    if (characters > OUTPUT_CHARACTERS_PER_INTERVAL && characters - text.length - 1 > 0) {
      dropped += 1;
    } else if (messages < OUTPUT_MESSAGES_PER_INTERVAL && !waiting.length) {
      post({ type, text });
      messages += 1;
      return;
    } else {
      const last = waiting[waiting.length - 1];
      if (last?.type === type) last.lines.push(text);
      else waiting.push({ type, lines: [text] });
    }
    timer ??= setTimeout(send, Math.max(0, started + OUTPUT_INTERVAL_MS - time));
  }

  return { write, flush: send };
}
