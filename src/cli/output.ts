/**
 * Terminal output: plain lines when stdout is not a TTY (CI, pipes) or NO_COLOR is set, a little
 * emphasis otherwise. No spinner control codes ever reach a non-TTY.
 */
export interface Output {
  readonly interactive: boolean;
  line(text?: string): void;
  error(text: string): void;
  bold(text: string): string;
  dim(text: string): string;
}

export function terminalOutput(stream: NodeJS.WriteStream = process.stdout, errors: NodeJS.WriteStream = process.stderr): Output {
  const interactive = Boolean(stream.isTTY) && !process.env.NO_COLOR && process.env.TERM !== 'dumb' && !process.env.CI;
  const style = (code: number, reset: number) => (text: string) => (interactive ? `\u001b[${code}m${text}\u001b[${reset}m` : text);
  return {
    interactive,
    line: (text = '') => stream.write(`${text}\n`),
    error: (text) => errors.write(`${text}\n`),
    bold: style(1, 22),
    dim: style(2, 22),
  };
}
