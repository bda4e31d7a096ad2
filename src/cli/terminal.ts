/**
 * Text for a terminal line. Keys, reasons and provider messages are anyone's bytes: an
 * object key can hold ESC (`\x1b[2J` clears the screen, `\x1b]0;...\x07` retitles the
 * window), CR (overwrites the line, hiding what came before), LF (forges a line of output)
 * or bidirectional overrides (shows text in another order than it is). They are shown
 * escaped instead, as JavaScript writes them: `\t`, `\n`, `\r`, `\xNN` for the other C0,
 * DEL and C1 controls, `\uNNNN` for the Unicode format characters that reorder or hide text.
 * A backslash is left as it is, so keys without such characters print unchanged.
 * `--json` output needs none of this: JSON escapes control characters itself.
 */

// C0 controls, DEL, C1 controls; line and paragraph separators; bidirectional embeddings,
// overrides and isolates; zero-width characters and the BOM
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const UNPRINTABLE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069\u200b-\u200f\u061c\ufeff]/g;
const NAMED: Readonly<Record<string, string>> = { '\t': '\\t', '\n': '\\n', '\r': '\\r' };

/** `text` with its control and reordering characters escaped (see the module comment). */
export function printable(text: string): string {
  return text.replace(UNPRINTABLE, (c) => {
    const named = NAMED[c];
    if (named !== undefined) return named;
    const code = c.charCodeAt(0);
    return code < 0x100 ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
  });
}
