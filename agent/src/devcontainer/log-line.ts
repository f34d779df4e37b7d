/**
 * The CLI's `--log-format json` writes one JSON object a line with the text in
 * `text`; anything else (a plain line) is passed through as it is.
 */
export function logLineText(line: string): string {
  if (!line.startsWith('{')) return line;
  try {
    const parsed = JSON.parse(line) as { text?: unknown };
    return typeof parsed.text === 'string' ? parsed.text : line;
  } catch {
    return line;
  }
}
